//! The rule engine: every event goes to every enabled plugin, synchronously, in a fixed order.
//! Pure: no I/O and no clock.

use crate::action::PlannedAction;
use crate::config::Config;
use crate::event::Event;
use crate::plugins::{self, Plugin, Refusal};

pub struct Engine {
    plugins: Vec<Box<dyn Plugin>>,
    refusals: Vec<Refusal>,
}

impl Engine {
    /// The enabled plugins of `config`, in the order of the original web services.
    pub fn new(config: &Config) -> Engine {
        Engine {
            plugins: plugins::enabled(config),
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
        for plugin in &mut self.plugins {
            if let Err(refusal) = plugin.handle(event, &mut actions) {
                self.refusals.push(refusal);
            }
        }
        actions
    }

    /// The refusals since the last call, oldest first.
    pub fn take_refusals(&mut self) -> Vec<Refusal> {
        std::mem::take(&mut self.refusals)
    }
}
