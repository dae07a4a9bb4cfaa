//! `emstail check --connect`: every EMS API and S3 bucket a configuration sends to, reached
//! once with its credentials, so that a wrong port, password, key or bucket shows before the
//! first stream, not as its dead letter. Nothing changes anywhere: EMS is asked its `version`,
//! each bucket is listed for at most one key under a prefix no upload writes, and
//! StreamAutoRouter's RTMP destination is connected to and left at once.

use super::ems::{EmsClient, EmsClientConfig};
use super::s3::S3Target;
use crate::action::{ApiTarget, ControlEscaped, Params, PluginId};
use crate::config::{Config, UploadParams};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// One EMS API or S3 bucket, and who sends to it.
#[derive(Debug)]
pub struct Reached {
    /// `EMS API URL` or `S3 bucket NAME at ENDPOINT`, credentials left out.
    pub target: String,
    /// The plugins and rules that send there (`Rules:NAME` for a rule).
    pub users: Vec<String>,
    pub outcome: Outcome,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It answered as it will have to; what it said.
    Answered(String),
    /// Why actions sent there would fail.
    Failed(String),
    /// Not tried, and why (a bucket named by a template is only known per event).
    NotChecked(String),
}

#[derive(PartialEq)]
enum Probe {
    Ems(ApiTarget),
    /// An RTMP destination, `host:port`: EMS takes a `pushStream` whatever the destination
    /// does, and only its own log says when the push cannot connect.
    Rtmp(String),
    S3 {
        params: UploadParams,
        bucket: String,
    },
    Unknown(String),
}

/// Reaches every target `config` sends to, all at once (one thread each), and returns them
/// in the order the config names them, each once.
pub fn reach_all(config: &Config) -> Vec<Reached> {
    let probes = probes(config);
    // The timeouts the actions get.
    let ems = EmsClient::new(EmsClientConfig::of(&config.service));
    std::thread::scope(|scope| {
        let running: Vec<_> = probes
            .into_iter()
            .map(|(target, users, probe)| {
                let ems = &ems;
                let outcome = scope.spawn(move || reach(ems, &probe));
                (target, users, outcome)
            })
            .collect();
        running
            .into_iter()
            .map(|(target, users, outcome)| Reached {
                target,
                users,
                outcome: outcome.join().unwrap_or_else(|_| {
                    Outcome::Failed("the check panicked (a bug in emstail)".into())
                }),
            })
            .collect()
    })
}

fn reach(ems: &EmsClient, probe: &Probe) -> Outcome {
    match probe {
        Probe::Ems(target) => match ems.call(target, "version", &Params::new()) {
            Ok(answer) => {
                let banner = answer.data.get("banner").and_then(|b| b.as_str());
                let shown: String = banner.unwrap_or("no banner").chars().take(200).collect();
                Outcome::Answered(format!("answered version: {}", ControlEscaped(&shown)))
            }
            Err(failure) => Outcome::Failed(failure.to_string()),
        },
        Probe::S3 { params, bucket } => match S3Target::new(params) {
            Ok(s3) => match s3.probe(bucket) {
                Ok(said) => Outcome::Answered(said),
                Err(failure) => Outcome::Failed(failure.to_string()),
            },
            Err(e) => Outcome::Failed(e),
        },
        Probe::Rtmp(address) => match connect(address) {
            Ok(to) => Outcome::Answered(format!("accepts connections on {to}")),
            Err(why) => Outcome::Failed(format!("cannot connect to {address}: {why}")),
        },
        Probe::Unknown(why) => Outcome::NotChecked(why.clone()),
    }
}

/// How long a connection to an RTMP destination may take: it is on the LAN or the internet.
const RTMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP connection to `address` (each address it resolves to, until one takes it), closed at
/// once; the address that took it.
fn connect(address: &str) -> Result<SocketAddr, String> {
    let mut last = "it resolves to no address".to_string();
    for to in address.to_socket_addrs().map_err(|e| e.to_string())? {
        match TcpStream::connect_timeout(&to, RTMP_CONNECT_TIMEOUT) {
            Ok(_) => return Ok(to),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// `host:port` of an `rtmp://AUTHORITY/app` push URI, port 1935 when it names none.
fn rtmp_address(push_uri: &str) -> Option<String> {
    let authority = push_uri.strip_prefix("rtmp://")?.split('/').next()?;
    let port_given = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.matches(':').count() == 1,
    };
    Some(if port_given {
        authority.to_string()
    } else if authority.contains(':') && !authority.starts_with('[') {
        format!("[{authority}]:1935")
    } else {
        format!("{authority}:1935")
    })
}

/// Each target with its users, in config order: the EMS API of the plugins that call it,
/// the load balancer's destinations, the upload plugins' buckets, then the rules'.
fn probes(config: &Config) -> Vec<(String, Vec<String>, Probe)> {
    let mut list = Probes(Vec::new());
    for plugin in [PluginId::StreamAutoRouter, PluginId::StreamRecorder] {
        if config.is_enabled(plugin) {
            list.ems(&config.service.ems_api, plugin);
        }
    }
    if config.auto_router.enabled {
        let uri = config.auto_router.params.push_uri.trim();
        match rtmp_address(uri) {
            Some(address) => list.add(
                format!("RTMP destination {uri}"),
                PluginId::StreamAutoRouter,
                Probe::Rtmp(address),
            ),
            None => list.add(
                format!("RTMP destination {uri:?}"),
                PluginId::StreamAutoRouter,
                Probe::Unknown("not an rtmp:// URI".into()),
            ),
        }
    }
    if config.load_balancer.enabled {
        for destination in &config.load_balancer.params.destinations {
            list.ems(&destination.api, PluginId::StreamLoadBalancer);
        }
    }
    let uploads = [
        (PluginId::AmazonHLSUpload, &config.hls),
        (PluginId::AmazonHDSUpload, &config.hds),
        (PluginId::AmazonDASHUpload, &config.dash),
    ];
    for (plugin, block) in uploads {
        if block.enabled {
            list.s3(&block.params, &block.params.default_bucket, plugin);
        }
    }
    for rule in &config.rules {
        if let crate::config::RuleAction::Call { target, .. } = &rule.action {
            list.ems(target, rule.id());
        }
        let Some(s3) = rule.action.s3() else { continue };
        match &s3.bucket {
            None => list.s3(&s3.settings, &s3.settings.default_bucket, rule.id()),
            Some(template) if template.fields().next().is_none() => {
                list.s3(&s3.settings, &template.to_string(), rule.id())
            }
            Some(template) => list.add(
                format!("S3 bucket {template}"),
                rule.id(),
                Probe::Unknown("the bucket is named by each event".into()),
            ),
        }
    }
    list.0
}

struct Probes(Vec<(String, Vec<String>, Probe)>);

impl Probes {
    fn ems(&mut self, target: &ApiTarget, user: PluginId) {
        self.add(
            format!("EMS API {target}"),
            user,
            Probe::Ems(target.clone()),
        );
    }

    fn s3(&mut self, params: &UploadParams, bucket: &str, user: PluginId) {
        let at = match params.endpoint.as_deref().map(str::trim) {
            Some(endpoint) if !endpoint.is_empty() => crate::status::redact_url(endpoint),
            _ => format!("AWS {}", super::s3::region_name(params)),
        };
        let probe = Probe::S3 {
            params: params.clone(),
            bucket: bucket.to_string(),
        };
        self.add(format!("S3 bucket {bucket} at {at}"), user, probe);
    }

    /// Adds `user` to the same probe made for another user, or the probe. Two targets shown
    /// alike (one bucket, other keys) are each checked.
    fn add(&mut self, target: String, user: PluginId, probe: Probe) {
        let user = user.to_string();
        match self.0.iter_mut().find(|(_, _, p)| *p == probe) {
            Some((_, users, _)) if !users.contains(&user) => users.push(user),
            Some(_) => {}
            None => self.0.push((target, vec![user], probe)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rtmp_address;

    #[test]
    fn an_rtmp_address_gets_port_1935_when_its_uri_names_none() {
        let cases = [
            ("rtmp://10.0.0.9/live", Some("10.0.0.9:1935")),
            ("rtmp://10.0.0.9:1936/live", Some("10.0.0.9:1936")),
            ("rtmp://ems.example/app/x", Some("ems.example:1935")),
            ("rtmp://[::1]/live", Some("[::1]:1935")),
            ("rtmp://[::1]:1936/live", Some("[::1]:1936")),
            ("rtmp://fe80::1/live", Some("[fe80::1]:1935")),
            ("http://10.0.0.9/live", None),
        ];
        for (uri, expected) in cases {
            assert_eq!(rtmp_address(uri).as_deref(), expected, "{uri}");
        }
    }
}
