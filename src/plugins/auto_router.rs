//! StreamAutoRouter: pushes every new inbound stream whose name matches `token` to another EMS.

use super::{Plugin, Refusal, created_by_emstail, names, with_marker};
use crate::action::{Action, ApiTarget, Params, PlannedAction, PluginId};
use crate::config::{AutoRouterParams, Config};
use crate::event::{Event, StreamInfo};

pub struct StreamAutoRouter {
    params: AutoRouterParams,
    ems: ApiTarget,
}

impl StreamAutoRouter {
    pub fn new(config: &Config) -> StreamAutoRouter {
        StreamAutoRouter {
            params: config.auto_router.params.clone(),
            ems: config.service.ems_api.clone(),
        }
    }

    /// A stream that came from the destination would only bounce back to it.
    fn comes_from_destination(&self, stream: &StreamInfo) -> bool {
        let destination = self.params.destination_host.trim();
        let far = stream.far_ip.as_deref().unwrap_or("").trim();
        !destination.is_empty() && far.eq_ignore_ascii_case(destination)
    }

    fn push(&self, stream: &StreamInfo) -> Result<Option<PlannedAction>, Refusal> {
        if !stream.name.contains(self.params.token.as_str())
            || created_by_emstail(stream)
            || self.comes_from_destination(stream)
        {
            return Ok(None);
        }
        if self.params.push_uri.trim().is_empty() {
            return Err(Refusal {
                plugin: PluginId::StreamAutoRouter,
                reason: format!("not forwarding {}: destination_uri is empty", stream.name),
            });
        }
        // The name becomes localStreamName, and EMS appends it to the push URI.
        names::check(PluginId::StreamAutoRouter, &stream.name)?;
        let params = Params::new()
            .with("uri", self.params.push_uri.trim())
            .with("localStreamName", &stream.name)
            .with_bool("keepAlive", false);
        Ok(Some(PlannedAction {
            plugin: PluginId::StreamAutoRouter,
            lane: stream.name.clone(),
            stream: Some(stream.name.clone()),
            stream_id: None,
            action: Action::EmsCall {
                target: self.ems.clone(),
                command: "pushStream".to_string(),
                params: with_marker(params),
                only_if_armed: None,
            },
        }))
    }
}

impl Plugin for StreamAutoRouter {
    fn id(&self) -> PluginId {
        PluginId::StreamAutoRouter
    }

    fn handle(&mut self, event: &Event, out: &mut Vec<PlannedAction>) -> Result<(), Refusal> {
        if let Event::InStreamCreated(stream) = event {
            out.extend(self.push(stream)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{assert_separators, config, ems_calls, event};
    use serde_json::json;

    fn router(token: &str) -> StreamAutoRouter {
        let mut config = config();
        config.auto_router.enabled = true;
        config.auto_router.params = AutoRouterParams {
            token: token.to_string(),
            destination_uri: "192.168.2.3".to_string(),
            push_uri: "rtmp://192.168.2.3/live".to_string(),
            destination_host: "192.168.2.3".to_string(),
        };
        StreamAutoRouter::new(&config)
    }

    fn run(plugin: &mut StreamAutoRouter, event: &Event) -> Vec<PlannedAction> {
        let mut out = Vec::new();
        plugin
            .handle(event, &mut out)
            .expect("a configured router never refuses");
        out
    }

    fn created(name: &str) -> Event {
        event(
            "inStreamCreated",
            json!({"name": name, "ip": "10.0.0.1", "nearIp": "10.0.0.1", "farIp": "10.0.0.9"}),
        )
    }

    #[test]
    fn matching_stream_is_pushed_to_the_destination() {
        let mut plugin = router("stream");
        let out = run(&mut plugin, &created("mystream1"));
        assert_eq!(
            ems_calls(&out),
            vec![(
                "pushStream".to_string(),
                "uri=rtmp://192.168.2.3/live localStreamName=mystream1 keepAlive=0 _emstail=1"
                    .to_string()
            )]
        );
        assert_eq!(out[0].plugin, PluginId::StreamAutoRouter);
        assert_eq!(out[0].lane, "mystream1");
        assert_eq!(out[0].stream.as_deref(), Some("mystream1"));
        let Action::EmsCall { target, .. } = &out[0].action else {
            panic!("pushStream is an EMS call");
        };
        assert_eq!(target.base, "http://127.0.0.1:7777/");
    }

    #[test]
    fn push_uri_with_port_and_app_is_used_as_configured() {
        let mut plugin = router("");
        plugin.params.push_uri = "rtmp://edge.example:1936/origin".to_string();
        let out = run(&mut plugin, &created("cam"));
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("pushStream is an EMS call");
        };
        assert_eq!(params.get("uri"), Some("rtmp://edge.example:1936/origin"));
    }

    #[test]
    fn empty_token_forwards_every_stream() {
        let mut plugin = router("");
        assert_eq!(run(&mut plugin, &created("anything")).len(), 1);
    }

    #[test]
    fn non_matching_stream_is_not_pushed() {
        let mut plugin = router("stream");
        assert!(run(&mut plugin, &created("camera")).is_empty());
    }

    #[test]
    fn stream_from_the_destination_is_not_pushed_back() {
        let mut plugin = router("");
        let bounced = event(
            "inStreamCreated",
            json!({"name": "s", "nearIp": "10.0.0.1", "farIp": "192.168.2.3"}),
        );
        assert!(run(&mut plugin, &bounced).is_empty());
    }

    #[test]
    fn stream_emstail_created_is_not_pushed() {
        let mut plugin = router("");
        for settings in ["pullSettings", "pushSettings"] {
            let ours = event(
                "inStreamCreated",
                json!({"name": "s", "farIp": "10.0.0.8", settings: {"_emstail": "1"}}),
            );
            assert!(run(&mut plugin, &ours).is_empty(), "{settings}");
        }
        let not_ours = event(
            "inStreamCreated",
            json!({"name": "s", "pullSettings": {"_emstail": "0"}}),
        );
        assert_eq!(run(&mut plugin, &not_ours).len(), 1);
    }

    #[test]
    fn closing_stream_is_not_pushed_again() {
        let mut plugin = router("");
        let closed = event("inStreamClosed", json!({"name": "s", "farIp": "10.0.0.8"}));
        assert!(run(&mut plugin, &closed).is_empty());
    }

    #[test]
    fn missing_far_ip_does_not_match_an_empty_destination_host() {
        let mut plugin = router("");
        plugin.params.destination_host = String::new();
        let out = run(&mut plugin, &event("inStreamCreated", json!({"name": "s"})));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn empty_push_uri_is_refused() {
        let mut plugin = router("");
        plugin.params.push_uri = String::new();
        let mut out = Vec::new();
        let refusal = plugin.handle(&created("s"), &mut out).unwrap_err();
        assert!(refusal.reason.contains("destination_uri"), "{refusal}");
        assert!(out.is_empty());
    }

    #[test]
    fn hostile_stream_names_reach_the_params_unchanged() {
        let name = "x stream, uri=rtmp:..evil..live \"q\" ü";
        let mut plugin = router("stream");
        let out = run(&mut plugin, &created(name));
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("pushStream is an EMS call");
        };
        assert_eq!(params.get("localStreamName"), Some(name));
        assert_eq!(params.get("uri"), Some("rtmp://192.168.2.3/live"));
        assert_separators(params);
    }

    #[test]
    fn names_that_would_change_the_push_are_refused_not_pushed() {
        for name in [
            "stream/../../x",
            "stream\\x",
            "stream\0",
            "stream\n1",
            "stream\x7f",
        ] {
            let mut plugin = router("stream");
            let mut out = Vec::new();
            let refusal = plugin.handle(&created(name), &mut out).expect_err(name);
            assert_eq!(refusal.plugin, PluginId::StreamAutoRouter);
            assert!(refusal.reason.contains("stream name"), "{refusal}");
            assert!(out.is_empty(), "{name}: {out:?}");
        }
        // A name the token does not select is not the router's business: no refusal.
        let mut plugin = router("stream");
        assert!(run(&mut plugin, &created("../other")).is_empty());
    }
}
