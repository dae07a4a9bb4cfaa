//! The six plugins of the original EMS web services. Each is a pure function of its own
//! state and an event.

use crate::action::PlannedAction;
use crate::config::Config;
use crate::event::Event;

/// The marker custom parameter on every pull, push and record emstail issues. EMS echoes
/// `_`-prefixed keys back in the settings of the stream it creates, so emstail knows its own
/// work when it sees it again, on this host or another.
pub const MARKER_KEY: &str = "_emstail";

pub trait Plugin {
    /// The config block name, e.g. `StreamRecorder`.
    fn name(&self) -> &'static str;
    /// Appends the actions for `event` to `out`, or says why the event was refused.
    fn handle(&mut self, event: &Event, out: &mut Vec<PlannedAction>) -> Result<(), Refusal>;
}

/// An event a plugin would act on but must not: counted and reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub plugin: &'static str,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.plugin, self.reason)
    }
}

/// The enabled plugins, in the original's order: StreamRecorder, StreamLoadBalancer,
/// StreamAutoRouter, AmazonHDSUpload, AmazonHLSUpload, AmazonDASHUpload.
pub fn enabled(config: &Config) -> Vec<Box<dyn Plugin>> {
    let _ = config;
    Vec::new()
}
