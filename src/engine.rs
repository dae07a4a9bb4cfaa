//! The rule engine: every event goes to every enabled plugin, synchronously, in a fixed order,
//! then to the custom rules in file order. Pure: no I/O and no clock.

use crate::action::PlannedAction;
use crate::config::Config;
use crate::event::{Envelope, Event};
use crate::plugins::rules::{Rules, Stamped};
use crate::plugins::{self, Plugin, Refusal};

pub struct Engine {
    plugins: Vec<Box<dyn Plugin>>,
    rules: Rules,
    refusals: Vec<Refusal>,
}

impl Engine {
    /// The enabled plugins of `config`, in the order of the original web services.
    pub fn new(config: &Config) -> Engine {
        Engine {
            plugins: plugins::enabled(config),
            rules: Rules::new(config),
            refusals: Vec::new(),
        }
    }

    /// Names of the enabled plugins, in the order they see events.
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.id().name()).collect()
    }

    /// Every action the plugins want for `event`. A plugin that refuses the event (an upload
    /// outside the media root, a pull with no usable origin) adds a [`Refusal`] and never stops
    /// the others.
    pub fn handle(&mut self, event: &Event) -> Vec<PlannedAction> {
        let mut actions = Vec::new();
        self.handle_stamped(
            Stamped {
                event,
                timestamp: None,
            },
            &mut actions,
        );
        actions
    }

    /// [`handle`](Engine::handle) for an event read with its envelope, whose `timestamp` the
    /// custom rules may use.
    pub fn handle_envelope(&mut self, envelope: &Envelope) -> Vec<PlannedAction> {
        let mut actions = Vec::new();
        self.handle_stamped(envelope.into(), &mut actions);
        actions
    }

    /// [`handle_envelope`](Engine::handle_envelope) adding the actions to `actions`, so that
    /// a caller handling many events reuses one vector.
    pub fn handle_envelope_into(&mut self, envelope: &Envelope, actions: &mut Vec<PlannedAction>) {
        self.handle_stamped(envelope.into(), actions);
    }

    /// The plugins, then the custom rules in file order. A rule that matched but could not
    /// act (a template naming a field the event lacks) adds a [`Refusal`].
    fn handle_stamped(&mut self, event: Stamped, actions: &mut Vec<PlannedAction>) {
        for plugin in &mut self.plugins {
            if let Err(refusal) = plugin.handle(event.event, actions) {
                self.refusals.push(refusal);
            }
        }
        if !self.rules.is_empty() {
            self.rules.handle(event, actions, &mut self.refusals);
        }
    }

    /// The refusals since the last call, oldest first.
    pub fn take_refusals(&mut self) -> Vec<Refusal> {
        std::mem::take(&mut self.refusals)
    }
}
