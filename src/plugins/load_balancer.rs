//! StreamLoadBalancer: asks every destination EMS to pull each new inbound stream from this one.

use super::{Plugin, Refusal, created_by_emstail, names, with_marker};
use crate::action::{Action, ApiTarget, Params, PlannedAction, PluginId};
use crate::config::{Config, Destination, LoadBalancerParams};
use crate::event::{Event, StreamInfo};
use std::net::{IpAddr, Ipv6Addr};

pub struct StreamLoadBalancer {
    params: LoadBalancerParams,
    ems: ApiTarget,
}

impl StreamLoadBalancer {
    pub fn new(config: &Config) -> StreamLoadBalancer {
        StreamLoadBalancer {
            params: config.load_balancer.params.clone(),
            ems: config.service.ems_api.clone(),
        }
    }

    /// This EMS's address as the destinations should reach it.
    fn origin<'a>(&'a self, stream: &'a StreamInfo) -> Option<&'a str> {
        [
            self.params.origin_address.as_deref(),
            stream.near_ip.as_deref(),
            stream.ip.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|candidate| !candidate.is_empty())
    }

    /// This EMS is the destination with this EMS's own API endpoint, or one at the origin's
    /// address. A loopback origin says nothing about which host is which (several EMS
    /// instances on one machine), so then only the API endpoint decides.
    fn is_this_ems(&self, destination: &Destination, origin: Option<&str>) -> bool {
        same_endpoint(&destination.api, &self.ems)
            || origin.is_some_and(|origin| {
                let origin = host_of(origin);
                !is_loopback(origin) && host_of(&destination.address).eq_ignore_ascii_case(origin)
            })
    }

    /// The pull for one destination, or why this destination cannot be asked.
    fn pull(
        &self,
        destination: &Destination,
        origin: Option<&str>,
        stream: &StreamInfo,
    ) -> Result<PlannedAction, String> {
        let Some(origin) = origin else {
            return Err(format!(
                "{}: the event for {} has neither nearIp nor ip; set origin_address",
                destination.address,
                names::shown(&stream.name)
            ));
        };
        if !is_address(origin) {
            return Err(format!(
                "{}: the event's address {} is not a host name or IP address (stream {}); \
                 set origin_address",
                destination.address,
                names::shown(origin),
                names::shown(&stream.name)
            ));
        }
        let origin_host = host_of(origin);
        let loopback_destination =
            is_loopback(host_of(&destination.address)) || is_loopback(destination.api.host());
        if is_unspecified(origin_host) || (is_loopback(origin_host) && !loopback_destination) {
            return Err(format!(
                "{}: origin {origin} is not reachable from it (stream {}); set origin_address",
                destination.address,
                names::shown(&stream.name)
            ));
        }
        let params = Params::new()
            .with(
                "uri",
                format!("rtmp://{}/live/{}", uri_host(origin), stream.name),
            )
            .with("localStreamName", &stream.name)
            .with_bool("keepAlive", false);
        Ok(PlannedAction {
            plugin: PluginId::StreamLoadBalancer,
            // One lane per destination API and stream: two EMS on one host are two
            // destinations, and one that is down must not hold up the other.
            lane: format!("{}{}", destination.api.base, stream.name),
            stream: Some(stream.name.clone()),
            stream_id: None,
            action: Action::EmsCall {
                target: destination.api.clone(),
                command: "pullStream".to_string(),
                params: with_marker(params),
                only_if_armed: None,
            },
        })
    }
}

impl Plugin for StreamLoadBalancer {
    fn id(&self) -> PluginId {
        PluginId::StreamLoadBalancer
    }

    fn handle(&mut self, event: &Event, out: &mut Vec<PlannedAction>) -> Result<(), Refusal> {
        let Event::InStreamCreated(stream) = event else {
            return Ok(());
        };
        if created_by_emstail(stream) {
            return Ok(());
        }
        let origin = self.origin(stream);
        // The name goes into the pull URI's path and into localStreamName.
        let name_ok = names::check(PluginId::StreamLoadBalancer, &stream.name)
            .and_then(|()| ends_no_uri_path(&stream.name));
        let mut failures = Vec::new();
        for destination in &self.params.destinations {
            if self.is_this_ems(destination, origin) {
                continue;
            }
            name_ok.clone()?;
            match self.pull(destination, origin, stream) {
                Ok(action) => out.push(action),
                Err(reason) => failures.push(reason),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Refusal {
                plugin: PluginId::StreamLoadBalancer,
                reason: failures.join("; "),
            })
        }
    }
}

/// `Ok` for a name that the pull URI's path can end with: a `?` or `#` in it would end the
/// path there, and every destination would pull the stream named before it (another
/// publisher's, under this name) once for every such name.
fn ends_no_uri_path(name: &str) -> Result<(), Refusal> {
    if name.contains(['?', '#']) {
        return Err(Refusal {
            plugin: PluginId::StreamLoadBalancer,
            reason: format!(
                "stream name {} refused: it contains '?' or '#', which would end the path of \
                 the pull URI",
                names::shown(name)
            ),
        });
    }
    Ok(())
}

/// The host of `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn host_of(address: &str) -> &str {
    let address = address.trim();
    if let Some(bracketed) = address.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or("");
    }
    match address.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => address,
    }
}

/// A host name or IP address (with a port, brackets or an IPv6 zone): nothing that could end
/// the host of the pull URI and start its user, path, query or another EMS parameter.
fn is_address(origin: &str) -> bool {
    !origin.is_empty()
        && origin.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | '%')
        })
}

/// `origin` as the host part of a URI (an IPv6 address needs brackets).
fn uri_host(origin: &str) -> String {
    match origin.parse::<Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => origin.to_string(),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_unspecified(host: &str) -> bool {
    host.is_empty() || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// The port of an API base URL, explicit or implied by its scheme.
fn port_of(target: &ApiTarget) -> Option<u16> {
    let (scheme, rest) = target.base.split_once("://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, after)| after),
        None => authority.split_once(':').map_or("", |(_, port)| port),
    };
    let port = after_host.trim_start_matches(':');
    if port.is_empty() {
        return match scheme {
            "https" => Some(443),
            _ => Some(80),
        };
    }
    port.parse().ok()
}

/// Two API targets that reach the same EMS (all loopback names count as one host).
fn same_endpoint(a: &ApiTarget, b: &ApiTarget) -> bool {
    let same_host =
        a.host().eq_ignore_ascii_case(b.host()) || (is_loopback(a.host()) && is_loopback(b.host()));
    same_host && port_of(a) == port_of(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{assert_separators, config, ems_calls, event};
    use serde_json::json;

    fn destination(address: &str) -> Destination {
        Destination {
            address: address.to_string(),
            api: ApiTarget::plain(&format!("http://{address}:7777/")),
        }
    }

    fn balancer(destinations: Vec<Destination>) -> StreamLoadBalancer {
        let mut config = config();
        config.load_balancer.enabled = true;
        config.load_balancer.params = LoadBalancerParams {
            destinations,
            origin_address: None,
        };
        StreamLoadBalancer::new(&config)
    }

    fn created(name: &str, near_ip: &str) -> Event {
        event(
            "inStreamCreated",
            json!({"name": name, "ip": near_ip, "nearIp": near_ip, "farIp": "10.0.0.50"}),
        )
    }

    fn run(plugin: &mut StreamLoadBalancer, event: &Event) -> Vec<PlannedAction> {
        let mut out = Vec::new();
        plugin
            .handle(event, &mut out)
            .expect("every destination can reach the origin");
        out
    }

    fn target_of(action: &PlannedAction) -> String {
        match &action.action {
            Action::EmsCall { target, .. } => target.to_string(),
            other => panic!("expected an EMS call, got {other:?}"),
        }
    }

    #[test]
    fn every_destination_pulls_the_new_stream() {
        let mut plugin = balancer(vec![destination("192.168.2.3"), destination("192.168.2.4")]);
        let out = run(&mut plugin, &created("cam1", "192.168.2.10"));
        let expected =
            "uri=rtmp://192.168.2.10/live/cam1 localStreamName=cam1 keepAlive=0 _emstail=1";
        assert_eq!(
            ems_calls(&out),
            vec![
                ("pullStream".to_string(), expected.to_string()),
                ("pullStream".to_string(), expected.to_string()),
            ]
        );
        assert_eq!(target_of(&out[0]), "http://192.168.2.3:7777/");
        assert_eq!(target_of(&out[1]), "http://192.168.2.4:7777/");
        assert_eq!(out[0].lane, "http://192.168.2.3:7777/cam1");
        assert_eq!(out[1].lane, "http://192.168.2.4:7777/cam1");
        assert!(out.iter().all(|a| a.plugin == PluginId::StreamLoadBalancer));
        assert!(out.iter().all(|a| a.stream.as_deref() == Some("cam1")));
    }

    #[test]
    fn api_proxy_destination_is_called_through_the_proxy() {
        let proxy = Destination {
            address: "192.168.2.193".to_string(),
            api: ApiTarget {
                base: "http://192.168.2.193:8888/apiproxy/".to_string(),
                user: Some("u".to_string()),
                password: Some(crate::action::Secret::new("p")),
            },
        };
        let mut plugin = balancer(vec![proxy.clone()]);
        let out = run(&mut plugin, &created("cam1", "192.168.2.10"));
        let Action::EmsCall { target, .. } = &out[0].action else {
            panic!("pullStream is an EMS call");
        };
        assert_eq!(target, &proxy.api);
    }

    #[test]
    fn origin_address_overrides_the_events_address() {
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        plugin.params.origin_address = Some("origin.example".to_string());
        let out = run(&mut plugin, &created("cam1", "10.0.0.1"));
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("pullStream is an EMS call");
        };
        assert_eq!(params.get("uri"), Some("rtmp://origin.example/live/cam1"));
    }

    #[test]
    fn ip_is_used_when_near_ip_is_missing() {
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        let out = run(
            &mut plugin,
            &event("inStreamCreated", json!({"name": "cam1", "ip": "10.0.0.7"})),
        );
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("pullStream is an EMS call");
        };
        assert_eq!(params.get("uri"), Some("rtmp://10.0.0.7/live/cam1"));
    }

    #[test]
    fn ipv6_origin_is_bracketed_in_the_uri() {
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        let out = run(&mut plugin, &created("cam1", "fd00::10"));
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("pullStream is an EMS call");
        };
        assert_eq!(params.get("uri"), Some("rtmp://[fd00::10]/live/cam1"));
    }

    #[test]
    fn streams_emstail_created_are_not_pulled_again() {
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        let ours = event(
            "inStreamCreated",
            json!({"name": "cam1", "nearIp": "10.0.0.1", "pullSettings": {"_emstail": "1"}}),
        );
        assert!(run(&mut plugin, &ours).is_empty());
    }

    #[test]
    fn only_in_stream_created_is_handled() {
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        let closed = event(
            "inStreamClosed",
            json!({"name": "cam1", "nearIp": "10.0.0.1"}),
        );
        assert!(run(&mut plugin, &closed).is_empty());
    }

    #[test]
    fn this_ems_is_skipped_and_the_others_still_pull() {
        let mut plugin = balancer(vec![
            destination("192.168.2.3"),
            destination("192.168.2.10"),
            destination("192.168.2.4"),
        ]);
        let out = run(&mut plugin, &created("cam1", "192.168.2.10"));
        let targets: Vec<String> = out.iter().map(target_of).collect();
        assert_eq!(
            targets,
            vec!["http://192.168.2.3:7777/", "http://192.168.2.4:7777/"]
        );
    }

    #[test]
    fn destination_with_the_local_api_endpoint_is_skipped() {
        let mut plugin = balancer(vec![destination("localhost"), destination("192.168.2.3")]);
        let out = run(&mut plugin, &created("cam1", "192.168.2.10"));
        assert_eq!(out.len(), 1);
        assert_eq!(target_of(&out[0]), "http://192.168.2.3:7777/");
    }

    #[test]
    fn unusable_origin_is_refused_per_destination() {
        for origin in ["", "0.0.0.0", "::"] {
            let mut plugin = balancer(vec![destination("192.168.2.3")]);
            let mut out = Vec::new();
            let refusal = plugin
                .handle(&created("cam1", origin), &mut out)
                .unwrap_err();
            assert_eq!(refusal.plugin, PluginId::StreamLoadBalancer);
            assert!(refusal.reason.contains("origin_address"), "{refusal}");
            assert!(refusal.reason.contains("192.168.2.3"), "{refusal}");
            assert!(out.is_empty(), "origin {origin:?}");
        }
    }

    /// A refusal per destination names the stream as every refusal does: its first 120
    /// characters and its length, not all of up to 16 KiB once for each destination.
    #[test]
    fn a_long_name_is_shown_short_in_each_destinations_refusal() {
        let name = "n".repeat(16_000);
        for origin in ["", "0.0.0.0", "evil host"] {
            let mut plugin = balancer(vec![destination("192.168.2.3"), destination("10.0.0.4")]);
            let refusal = plugin
                .handle(&created(&name, origin), &mut Vec::new())
                .unwrap_err();
            let shown = format!("{}… (16000 bytes)", "n".repeat(120));
            assert_eq!(refusal.reason.matches(&shown).count(), 2, "{origin:?}");
            assert!(
                refusal.reason.len() < 1_000,
                "{origin:?}: {}",
                refusal.reason
            );
        }
    }

    /// The event's address becomes the host of the pull URI every destination is sent:
    /// nothing in it may end the host and start a path, user, query or another parameter.
    #[test]
    fn an_event_address_that_is_not_a_host_is_refused() {
        for origin in [
            "evil.example/live/other?x=",
            "user@evil.example",
            "10.0.0.1#",
            "10.0.0.1 keepAlive=1",
            "127.0.0.1:\n2026-12-05 INFO forged",
            "10.0.0.1/x/../y",
            "10.0.0.1\nuri=rtmp://evil",
            "evil host",
            "10.0.0.1?a=b",
        ] {
            let mut plugin = balancer(vec![destination("192.168.2.3")]);
            let mut out = Vec::new();
            let refusal = plugin
                .handle(&created("cam1", origin), &mut out)
                .unwrap_err();
            assert!(out.is_empty(), "origin {origin:?}: {out:?}");
            assert!(refusal.reason.contains("origin_address"), "{refusal}");
            assert!(!refusal.to_string().contains('\n'), "{refusal}");
        }
        // Host names and IPv6 addresses with a zone are still addresses.
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        let out = run(&mut plugin, &created("cam1", "origin-1.example"));
        assert_eq!(
            ems_calls(&out)[0].1,
            "uri=rtmp://origin-1.example/live/cam1 localStreamName=cam1 keepAlive=0 _emstail=1"
        );
        for origin in ["10.0.0.1:1935", "[fe80::1%eth0]:1935", "ems-1.example.org"] {
            let mut plugin = balancer(vec![destination("192.168.2.3")]);
            assert_eq!(
                run(&mut plugin, &created("cam1", origin)).len(),
                1,
                "{origin}"
            );
        }
    }

    #[test]
    fn loopback_origin_only_serves_a_loopback_destination() {
        let local = Destination {
            address: "127.0.0.2".to_string(),
            api: ApiTarget::plain("http://127.0.0.2:7778/"),
        };
        let mut plugin = balancer(vec![destination("192.168.2.3"), local]);
        let mut out = Vec::new();
        let refusal = plugin
            .handle(&created("cam1", "127.0.0.1"), &mut out)
            .unwrap_err();
        assert!(refusal.reason.contains("192.168.2.3"), "{refusal}");
        assert_eq!(out.len(), 1, "the loopback destination still pulls");
        assert_eq!(target_of(&out[0]), "http://127.0.0.2:7778/");
        assert_eq!(out[0].lane, "http://127.0.0.2:7778/cam1");
    }

    #[test]
    fn several_ems_on_one_machine_are_told_apart_by_api_port() {
        let port = |p: u16| Destination {
            address: "127.0.0.1".to_string(),
            api: ApiTarget::plain(&format!("http://127.0.0.1:{p}/")),
        };
        // The local EMS API is http://127.0.0.1:7777/ (the default).
        let mut plugin = balancer(vec![port(7777), port(7778)]);
        let mut out = Vec::new();
        plugin
            .handle(&created("cam1", "127.0.0.1"), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1, "only the other instance pulls");
        assert_eq!(target_of(&out[0]), "http://127.0.0.1:7778/");
    }

    #[test]
    fn localhost_origin_is_not_sent_to_remote_hosts() {
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        plugin.params.origin_address = Some("localhost".to_string());
        let mut out = Vec::new();
        assert!(
            plugin
                .handle(&created("cam1", "10.0.0.1"), &mut out)
                .is_err()
        );
        assert!(out.is_empty());
    }

    #[test]
    fn hostile_stream_names_reach_the_params_unchanged() {
        let name = "a b,c=d keepAlive=1 \"q\" .. ü";
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        let out = run(&mut plugin, &created(name, "10.0.0.1"));
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("pullStream is an EMS call");
        };
        assert_eq!(params.get("localStreamName"), Some(name));
        assert_eq!(params.get("keepAlive"), Some("0"));
        assert_eq!(
            params.get("uri").map(str::to_string),
            Some(format!("rtmp://10.0.0.1/live/{name}"))
        );
        assert_separators(params);
    }

    #[test]
    fn address_helpers() {
        assert_eq!(host_of("10.0.0.1:1935"), "10.0.0.1");
        assert_eq!(host_of("[::1]:7777"), "::1");
        assert_eq!(host_of("fd00::1"), "fd00::1");
        assert!(is_loopback("127.0.0.2") && is_loopback("::1") && is_loopback("LOCALHOST"));
        assert!(!is_loopback("10.0.0.1"));
        assert_eq!(port_of(&ApiTarget::plain("http://h/")), Some(80));
        assert_eq!(port_of(&ApiTarget::plain("http://[::1]:7777/")), Some(7777));
        assert!(same_endpoint(
            &ApiTarget::plain("http://localhost:7777/"),
            &ApiTarget::plain("http://127.0.0.1:7777")
        ));
        assert!(!same_endpoint(
            &ApiTarget::plain("http://127.0.0.1:8888/apiproxy/"),
            &ApiTarget::plain("http://127.0.0.1:7777/")
        ));
    }

    /// A name no EMS command can hold was pulled anyway: each pull failed for good, and each
    /// failure was a dead letter holding the name four times, per destination and per publish.
    #[test]
    fn a_name_too_long_for_any_ems_command_is_refused_not_pulled() {
        let mut plugin = balancer(vec![destination("192.168.2.3"), destination("192.168.2.4")]);
        let long = "n".repeat(1 << 19);
        let mut out = Vec::new();
        let refusal = plugin
            .handle(&created(&long, "10.0.0.1"), &mut out)
            .expect_err("too long to pull");
        assert!(out.is_empty(), "{} pulls planned", out.len());
        assert!(
            refusal.reason.len() < 400 && refusal.reason.contains("524288 bytes"),
            "{refusal}"
        );
    }

    #[test]
    fn names_that_would_change_the_pull_uri_are_refused_not_pulled() {
        for name in [
            "../../x",
            "live/other",
            "a\\b",
            "..",
            "a\0b",
            "cam\r1",
            "\x1b[2J",
            // The path of the pull URI would end there: every destination would pull
            // `victim` (under the publisher's name), once per such name.
            "victim?1",
            "victim#",
        ] {
            let mut plugin = balancer(vec![destination("192.168.2.3"), destination("192.168.2.4")]);
            let mut out = Vec::new();
            let refusal = plugin
                .handle(&created(name, "10.0.0.1"), &mut out)
                .expect_err(name);
            assert_eq!(refusal.plugin, PluginId::StreamLoadBalancer);
            assert!(refusal.reason.contains("stream name"), "{refusal}");
            assert!(out.is_empty(), "{name}: {out:?}");
        }
    }

    /// A name refused for its '?' is shown as every refused name is: its first 120
    /// characters and its length, with accents and quotes as they are, as the calls that
    /// other plugins make for it show them.
    #[test]
    fn a_name_refused_for_a_question_mark_is_shown_short_and_as_elsewhere() {
        let name = format!("cafe\u{301} \"2\"?{}", "x".repeat(1000));
        let mut plugin = balancer(vec![destination("192.168.2.3")]);
        let refusal = plugin
            .handle(&created(&name, "10.0.0.1"), &mut Vec::new())
            .expect_err("a '?'");
        let shown = format!("cafe\u{301} \"2\"?{}", "x".repeat(110));
        assert_eq!(
            refusal.reason,
            format!(
                "stream name {shown}… ({} bytes) refused: it contains '?' or '#', which would \
                 end the path of the pull URI",
                name.len()
            )
        );
    }
}
