//! The six plugins of the original EMS web services, and the custom rules. Each is a pure
//! function of its own state and an event.

pub mod auto_router;
pub mod keys;
pub mod load_balancer;
pub mod names;
pub mod recorder;
pub mod rules;
pub mod upload;

use crate::action::{Params, PlannedAction, PluginId};
use crate::config::Config;
use crate::event::{Event, StreamInfo};

/// The marker custom parameter on every pull, push and record emstail issues. EMS echoes
/// `_`-prefixed keys back in the settings of the stream it creates, so emstail knows its own
/// work when it sees it again, on this host or another.
pub const MARKER_KEY: &str = "_emstail";

pub trait Plugin: Send {
    /// Which plugin this is (its name is the config block name, e.g. `StreamRecorder`).
    fn id(&self) -> PluginId;
    /// Appends the actions for `event` to `out`, or says why the event was refused.
    fn handle(&mut self, event: &Event, out: &mut Vec<PlannedAction>) -> Result<(), Refusal>;
}

/// An event a plugin would act on but must not: counted and reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub plugin: PluginId,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    /// The plugin and the reason, control characters escaped (`\n`, `\u{1b}`): a reason can
    /// name an event's file path or address, and it is shown in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.plugin,
            crate::action::ControlEscaped(&self.reason)
        )
    }
}

/// The enabled plugins, in the original's order: StreamRecorder, StreamLoadBalancer,
/// StreamAutoRouter, AmazonHDSUpload, AmazonHLSUpload, AmazonDASHUpload.
pub fn enabled(config: &Config) -> Vec<Box<dyn Plugin>> {
    let mut plugins: Vec<Box<dyn Plugin>> = Vec::new();
    if config.recorder.enabled {
        plugins.push(Box::new(recorder::StreamRecorder::new(config)));
    }
    if config.load_balancer.enabled {
        plugins.push(Box::new(load_balancer::StreamLoadBalancer::new(config)));
    }
    if config.auto_router.enabled {
        plugins.push(Box::new(auto_router::StreamAutoRouter::new(config)));
    }
    if config.hds.enabled {
        plugins.push(Box::new(upload::Uploader::new(
            upload::Protocol::Hds,
            config,
        )));
    }
    if config.hls.enabled {
        plugins.push(Box::new(upload::Uploader::new(
            upload::Protocol::Hls,
            config,
        )));
    }
    if config.dash.enabled {
        plugins.push(Box::new(upload::Uploader::new(
            upload::Protocol::Dash,
            config,
        )));
    }
    plugins
}

/// True for a stream emstail itself pulled or pushed (EMS echoed the marker back).
pub fn created_by_emstail(stream: &StreamInfo) -> bool {
    [&stream.pull_settings, &stream.push_settings]
        .into_iter()
        .flatten()
        .any(|settings| settings.is_truthy(MARKER_KEY))
}

/// EMS (re)started: every stream, id and timer of the run before is gone, and the `*Closed`
/// events of a crash never come. Ids start again.
pub fn is_server_started(event: &Event) -> bool {
    matches!(event, Event::Other { kind, .. } if kind == "serverStarted")
}

/// `params` with the marker appended, as every pull, push and record carries it.
pub fn with_marker(params: Params) -> Params {
    params.with_bool(MARKER_KEY, true)
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::action::{Action, Params, PlannedAction};
    use crate::config::{Config, Plugin, ServiceConfig};
    use crate::event::Event;
    use serde_json::Value;
    use std::path::PathBuf;

    /// Every plugin disabled, service defaults but no media root: keys are placed from the
    /// path's tail, so the tests can use short made-up paths (the executor refuses to upload
    /// anything without a root, and a config file cannot leave it empty).
    pub fn config() -> Config {
        Config {
            path: PathBuf::from("config.ini"),
            service: ServiceConfig {
                media_root: Vec::new(),
                ..ServiceConfig::default()
            },
            auto_router: Plugin::default(),
            recorder: Plugin::default(),
            load_balancer: Plugin::default(),
            hls: Plugin::default(),
            hds: Plugin::default(),
            dash: Plugin::default(),
            rules: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The event as the parsers build it from a payload.
    pub fn event(kind: &str, payload: Value) -> Event {
        Event::from_payload(kind, payload).expect("test payloads are well formed")
    }

    /// `(command, params as sent)` of every EMS call.
    pub fn ems_calls(actions: &[PlannedAction]) -> Vec<(String, String)> {
        actions
            .iter()
            .map(|planned| match &planned.action {
                Action::EmsCall {
                    command, params, ..
                } => (command.clone(), params.to_command_line()),
                other => panic!("expected an EMS call, got {other:?}"),
            })
            .collect()
    }

    /// The command line EMS decodes has one unescaped `=` per parameter, one unescaped space
    /// between parameters and no unescaped comma: no value adds or splits a parameter.
    pub fn assert_separators(params: &Params) {
        let line = params.to_command_line();
        let (mut spaces, mut equals, mut commas) = (0, 0, 0);
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                ' ' => spaces += 1,
                '=' => equals += 1,
                ',' => commas += 1,
                _ => {}
            }
        }
        let count = params.0.len();
        assert_eq!(equals, count, "unescaped '=' in {line}");
        assert_eq!(spaces, count - 1, "unescaped ' ' in {line}");
        assert_eq!(commas, 0, "unescaped ',' in {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{config, event};
    use super::*;
    use crate::action::{ApiTarget, Params, PluginId};
    use crate::config::{AutoRouterParams, Destination, LoadBalancerParams, RecorderParams};
    use crate::engine::Engine;
    use serde_json::json;

    fn all_enabled() -> Config {
        let mut config = config();
        config.recorder.enabled = true;
        config.recorder.params = RecorderParams {
            file_location: "/var/media".to_string(),
            period_time: 3600,
        };
        config.load_balancer.enabled = true;
        config.load_balancer.params = LoadBalancerParams {
            destinations: vec![Destination {
                address: "192.168.2.3".to_string(),
                api: ApiTarget::plain("http://192.168.2.3:7777/"),
            }],
            origin_address: None,
        };
        config.auto_router.enabled = true;
        config.auto_router.params = AutoRouterParams {
            token: String::new(),
            destination_uri: "192.168.2.4".to_string(),
            push_uri: "rtmp://192.168.2.4/live".to_string(),
            destination_host: "192.168.2.4".to_string(),
        };
        for block in [&mut config.hds, &mut config.hls, &mut config.dash] {
            block.enabled = true;
            block.params.default_bucket = "b".to_string();
        }
        config
    }

    #[test]
    fn enabled_plugins_run_in_the_originals_order() {
        let engine = Engine::new(&all_enabled());
        assert_eq!(
            engine.plugin_names(),
            vec![
                "StreamRecorder",
                "StreamLoadBalancer",
                "StreamAutoRouter",
                "AmazonHDSUpload",
                "AmazonHLSUpload",
                "AmazonDASHUpload",
            ]
        );
    }

    #[test]
    fn disabled_plugins_produce_nothing() {
        let mut config = all_enabled();
        for enabled in [
            &mut config.recorder.enabled,
            &mut config.load_balancer.enabled,
            &mut config.auto_router.enabled,
            &mut config.hls.enabled,
            &mut config.hds.enabled,
            &mut config.dash.enabled,
        ] {
            *enabled = false;
        }
        let mut engine = Engine::new(&config);
        assert!(engine.plugin_names().is_empty());
        for (kind, payload) in [
            (
                "inStreamCreated",
                json!({"name": "s", "nearIp": "10.0.0.1"}),
            ),
            ("hlsChunkClosed", json!({"file": "/w/G/S/1.ts"})),
            ("dashChunkClosed", json!({"file": "/w/G/S/video/1/1.fmp4"})),
        ] {
            assert!(engine.handle(&event(kind, payload)).is_empty(), "{kind}");
        }
        assert!(engine.take_refusals().is_empty());

        let mut only_hls = config.clone();
        only_hls.hls.enabled = true;
        let mut engine = Engine::new(&only_hls);
        let stream = event(
            "inStreamCreated",
            json!({"name": "s", "nearIp": "10.0.0.1"}),
        );
        assert!(engine.handle(&stream).is_empty());
    }

    #[test]
    fn the_engine_runs_every_plugin_even_when_one_refuses() {
        let mut engine = Engine::new(&all_enabled());
        // No nearIp/ip: the load balancer (second) refuses; the router (third) still pushes.
        let actions = engine.handle(&event("inStreamCreated", json!({"name": "cam1"})));
        let plugins: Vec<&str> = actions.iter().map(|a| a.plugin.name()).collect();
        assert_eq!(plugins, vec!["StreamRecorder", "StreamAutoRouter"]);
        let refusals = engine.take_refusals();
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].plugin, PluginId::StreamLoadBalancer);
        assert!(engine.take_refusals().is_empty());
    }

    #[test]
    fn marker_is_recognised_in_pull_or_push_settings_as_a_string() {
        let marked = |settings: &str, value: serde_json::Value| {
            let Event::InStreamCreated(stream) = event(
                "inStreamCreated",
                json!({"name": "s", settings: {MARKER_KEY: value}}),
            ) else {
                panic!("inStreamCreated is typed");
            };
            created_by_emstail(&stream)
        };
        assert!(marked("pullSettings", json!("1")));
        assert!(marked("pushSettings", json!(1)));
        assert!(!marked("pullSettings", json!("0")));
        assert!(!marked("recordSettings", json!("1")));
    }

    #[test]
    fn marker_is_the_last_parameter() {
        let params = with_marker(Params::new().with("uri", "rtmp://h/live"));
        assert_eq!(params.to_command_line(), "uri=rtmp://h/live _emstail=1");
    }
}
