//! The six plugin blocks of the original web services, `{ "plugin_switch", "parameters" }`.
//!
//! A disabled plugin's parameters are still read, so that `emstail check` shows mistakes
//! before the plugin is switched on, but its problems are only warnings.

use super::check::{self, Checker, Scope, Show};
use super::service::media_roots;
use super::{
    AutoRouterParams, Destination, LoadBalancerParams, Plugin, RecorderParams, UploadParams,
};
use crate::action::{ApiTarget, PluginId, Secret};
use serde_json::{Map, Value};

const BLOCK_KEYS: &[&str] = &["plugin_switch", "parameters"];

/// Reads plugin `id`'s block of `root`; `read` fills the parameters, starting from `default`.
pub(super) fn block<P>(
    ck: &mut Checker,
    id: PluginId,
    root: &Map<String, Value>,
    default: P,
    read: impl FnOnce(&mut Checker, &Scope, &Map<String, Value>, &mut P),
) -> Plugin<P> {
    let name = id.name();
    let value = root.get(name);
    let mut plugin = Plugin {
        enabled: false,
        params: default,
    };
    let Some(value) = value else {
        return plugin;
    };
    let Some(map) = value.as_object() else {
        ck.invalid(
            &Scope::fatal(name),
            "",
            &check::shown(value, Show::Value),
            "must be an object like { \"plugin_switch\": \"enabled\", \"parameters\": { … } }",
        );
        return plugin;
    };
    ck.unknown_keys(name, map, BLOCK_KEYS);
    plugin.enabled = match map.get("plugin_switch") {
        None => {
            ck.warn(format_args!(
                "{name}.plugin_switch is not set: the plugin is disabled"
            ));
            false
        }
        Some(switch) => ck
            .get(
                &Scope::fatal(name),
                "plugin_switch",
                Some(switch),
                Show::Value,
                plugin_switch,
            )
            .unwrap_or(false),
    };
    let scope = Scope::plugin(name, plugin.enabled);
    let empty = Map::new();
    let params = match map.get("parameters") {
        None => &empty,
        Some(Value::Object(params)) => params,
        Some(other) => {
            ck.invalid(
                &scope,
                "parameters",
                &check::shown(other, Show::Value),
                "must be an object of parameters",
            );
            &empty
        }
    };
    read(ck, &scope, params, &mut plugin.params);
    plugin
}

fn plugin_switch(value: &Value) -> Result<bool, String> {
    match value {
        Value::String(s) if s.trim().eq_ignore_ascii_case("enabled") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("disabled") => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err("must be \"enabled\" or \"disabled\"".to_string()),
    }
}

/// A `parameters.KEY` string that must be non-empty when the plugin is enabled.
fn required_string(
    ck: &mut Checker,
    scope: &Scope,
    map: &Map<String, Value>,
    key: &str,
    allowed: &str,
) -> String {
    let path = format!("parameters.{key}");
    let value = ck
        .get(scope, &path, map.get(key), Show::Value, check::string)
        .unwrap_or_default();
    if value.trim().is_empty() && scope.fatal && map.get(key).is_none_or(Value::is_string) {
        let shown = map
            .get(key)
            .map_or("(not set)".to_string(), |v| check::shown(v, Show::Value));
        ck.invalid(
            scope,
            &path,
            &shown,
            &format!("required when {} is enabled: {allowed}", scope.block),
        );
    }
    value
}

const AUTO_ROUTER_KEYS: &[&str] = &["token", "destination_uri"];
const DESTINATION_URI: &str = "must be a host, host:port or rtmp://host[:port]/app";

pub(super) fn auto_router(
    ck: &mut Checker,
    scope: &Scope,
    map: &Map<String, Value>,
    params: &mut AutoRouterParams,
) {
    ck.unknown_keys(
        &format!("{}.parameters", scope.block),
        map,
        AUTO_ROUTER_KEYS,
    );
    if let Some(token) = ck.get(
        scope,
        "parameters.token",
        map.get("token"),
        Show::Value,
        check::string,
    ) {
        params.token = token;
    }
    let uri = required_string(ck, scope, map, "destination_uri", DESTINATION_URI);
    if uri.trim().is_empty() {
        return;
    }
    match push_target(uri.trim()) {
        Ok((push_uri, host)) => {
            params.destination_uri = uri;
            params.push_uri = push_uri;
            params.destination_host = host;
        }
        Err(allowed) => ck.invalid(
            scope,
            "parameters.destination_uri",
            &check::shown(&Value::String(uri), Show::Value),
            &allowed,
        ),
    }
}

/// `(push_uri, destination_host)` for a `destination_uri`. A URI without an application gets
/// `/live`, as a bare host does.
fn push_target(uri: &str) -> Result<(String, String), String> {
    if let Some((scheme, rest)) = uri.split_once("://") {
        if !scheme.eq_ignore_ascii_case("rtmp") {
            return Err(DESTINATION_URI.to_string());
        }
        let (authority, app) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, _) = check::host_port(authority).map_err(|_| DESTINATION_URI.to_string())?;
        let app = app.trim_end_matches('/');
        let app = if app.is_empty() { "live" } else { app };
        if app.contains(char::is_whitespace) {
            return Err(DESTINATION_URI.to_string());
        }
        return Ok((format!("rtmp://{authority}/{app}"), host));
    }
    let (host, port) = check::host_port(uri).map_err(|_| DESTINATION_URI.to_string())?;
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok((
        format!("rtmp://{}{port}/live", check::url_host(&host)),
        host,
    ))
}

const RECORDER_KEYS: &[&str] = &["file_location", "period_time"];
const FILE_LOCATION: &str = "must be an absolute directory on the EMS host, \
     such as /var/evostreamms/media or C:\\\\EvoStream\\\\media";

pub(super) fn recorder(
    ck: &mut Checker,
    scope: &Scope,
    map: &Map<String, Value>,
    params: &mut RecorderParams,
) {
    ck.unknown_keys(&format!("{}.parameters", scope.block), map, RECORDER_KEYS);
    let location = required_string(ck, scope, map, "file_location", FILE_LOCATION);
    if !location.is_empty() {
        let valid = check::local_path(&location).is_ok() && is_absolute_anywhere(&location);
        if valid {
            params.file_location = location;
        } else {
            ck.invalid(
                scope,
                "parameters.file_location",
                &Value::String(location).to_string(),
                FILE_LOCATION,
            );
        }
    }
    if let Some(period) = ck.get(
        scope,
        "parameters.period_time",
        map.get("period_time"),
        Show::Value,
        |v| check::whole(v, 1, 86399, " of seconds"),
    ) {
        params.period_time =
            u32::try_from(period).expect("period_time was checked to be below 86400");
    }
}

/// Absolute on the EMS host, which may run Windows: `/…`, `X:\…`, `X:/…` or `\\server\…`.
fn is_absolute_anywhere(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        || path.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

const LOAD_BALANCER_KEYS: &[&str] = &[
    "destination_uri",
    "destination_ems_apiproxies",
    "origin_address",
];
const PROXY_KEYS: &[&str] = &[
    "enable",
    "authentication",
    "pseudoDomain",
    "address",
    "ewsPort",
    "userName",
    "password",
];
/// The EMS runtime API port, used for destinations given as a bare address.
const EMS_API_PORT: u16 = 7777;
/// The EMS web server (and API proxy) port of the original web services.
const EWS_PORT: u16 = 8888;

pub(super) fn load_balancer(
    ck: &mut Checker,
    scope: &Scope,
    map: &Map<String, Value>,
    params: &mut LoadBalancerParams,
) {
    let prefix = format!("{}.parameters", scope.block);
    ck.unknown_keys(&prefix, map, LOAD_BALANCER_KEYS);
    let errors_before = ck.errors.len();

    let key = "parameters.destination_uri";
    let addresses = ck
        .get(
            scope,
            key,
            map.get("destination_uri"),
            Show::Value,
            check::string_list,
        )
        .unwrap_or_default();
    for (i, address) in addresses.iter().enumerate() {
        match check::host_port(address) {
            Ok((host, port)) => {
                let port = port.unwrap_or(EMS_API_PORT);
                let api = ApiTarget::plain(&format!("http://{}:{port}/", check::url_host(&host)));
                params.destinations.push(Destination { address: host, api });
            }
            Err(allowed) => {
                let path = if map.get("destination_uri").is_some_and(Value::is_array) {
                    format!("{key}[{i}]")
                } else {
                    key.to_string()
                };
                ck.invalid(
                    scope,
                    &path,
                    &check::shown(&Value::String(address.clone()), Show::Value),
                    &allowed,
                );
            }
        }
    }

    let proxies_key = "parameters.destination_ems_apiproxies";
    match map.get("destination_ems_apiproxies") {
        None => {}
        // One entry without the list brackets is read as a list of one.
        Some(entry @ Value::Object(_)) => {
            if let Some(destination) = api_proxy(ck, scope, proxies_key, entry) {
                params.destinations.push(destination);
            }
        }
        Some(Value::Array(entries)) => {
            for (i, entry) in entries.iter().enumerate() {
                if let Some(destination) = api_proxy(ck, scope, &format!("{proxies_key}[{i}]"), entry) {
                    params.destinations.push(destination);
                }
            }
        }
        Some(other) => ck.invalid(
            scope,
            proxies_key,
            &check::shown(other, Show::Value),
            "must be a list of objects like { \"address\": \"192.168.2.193\", \"ewsPort\": 8888, … }",
        ),
    }

    let mut seen = std::collections::HashSet::new();
    params.destinations.retain(|d| {
        let first = seen.insert(d.api.base.clone());
        if !first {
            ck.warn(format_args!(
                "{prefix}: destination {} is listed twice: it is used once",
                d.api
            ));
        }
        first
    });

    if let Some(origin) = ck.get(
        scope,
        "parameters.origin_address",
        map.get("origin_address"),
        Show::Value,
        |v| {
            let s = check::string(v)?;
            check::host_port(&s)?;
            Ok(s.trim().to_string())
        },
    ) {
        params.origin_address = Some(origin);
    }

    if scope.fatal && params.destinations.is_empty() && ck.errors.len() == errors_before {
        let (key, shown) = match (
            map.get("destination_uri"),
            map.get("destination_ems_apiproxies"),
        ) {
            (Some(v), _) => (key, check::shown(v, Show::Value)),
            (None, Some(v)) => (proxies_key, check::shown(v, Show::Value)),
            (None, None) => (key, "(not set)".to_string()),
        };
        ck.invalid(
            scope,
            key,
            &shown,
            "at least one destination is required when StreamLoadBalancer is enabled: \
             destination_uri (a list of addresses) or destination_ems_apiproxies",
        );
    }
}

/// One `destination_ems_apiproxies` entry of the original web services. `enable` switches the
/// API proxy, not the destination, as the original read it: `enable: false` calls the
/// destination's API directly at `http://<address>:7777/`, `enable: true` goes through the proxy.
/// Without `enable`, the proxy is used when the entry names any of its settings.
fn api_proxy(ck: &mut Checker, scope: &Scope, path: &str, entry: &Value) -> Option<Destination> {
    let Some(map) = entry.as_object() else {
        ck.invalid(
            scope,
            path,
            &check::shown(entry, Show::Value),
            "must be an object like { \"address\": \"192.168.2.193\", \"ewsPort\": 8888, … }",
        );
        return None;
    };
    ck.unknown_keys(&format!("{}.{path}", scope.block), map, PROXY_KEYS);
    let key = |k: &str| format!("{path}.{k}");

    let names_proxy = [
        "authentication",
        "pseudoDomain",
        "ewsPort",
        "userName",
        "password",
    ]
    .iter()
    .any(|k| map.contains_key(*k));
    let is_proxy = ck
        .get(
            scope,
            &key("enable"),
            map.get("enable"),
            Show::Value,
            check::boolean,
        )
        .unwrap_or(names_proxy);

    let address = ck.get(
        scope,
        &key("address"),
        map.get("address"),
        Show::Value,
        |v| check::host_port(&check::string(v)?),
    );
    let Some((host, own_port)) = address else {
        if map.get("address").is_none() {
            ck.invalid(
                scope,
                &key("address"),
                "(not set)",
                "required: the destination's host or IP address",
            );
        }
        return None;
    };

    if !is_proxy {
        let port = own_port.unwrap_or(EMS_API_PORT);
        let api = ApiTarget::plain(&format!("http://{}:{port}/", check::url_host(&host)));
        return Some(Destination { address: host, api });
    }
    if own_port.is_some() {
        ck.invalid(
            scope,
            &key("address"),
            &map.get("address")
                .map_or(String::new(), |v| check::shown(v, Show::Value)),
            "must be a host without a port when the API proxy is used: put the port in ewsPort",
        );
        return None;
    }

    let user = ck.get(
        scope,
        &key("userName"),
        map.get("userName"),
        Show::Value,
        check::string,
    );
    let password = ck.get(
        scope,
        &key("password"),
        map.get("password"),
        Show::Secret,
        check::string,
    );
    let basic = ck
        .get(
            scope,
            &key("authentication"),
            map.get("authentication"),
            Show::Value,
            |v| match v.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                Some("basic") => Ok(true),
                Some("none") => Ok(false),
                _ => Err("must be \"basic\" or \"none\"".to_string()),
            },
        )
        .unwrap_or(user.is_some());
    let port = ck
        .get(
            scope,
            &key("ewsPort"),
            map.get("ewsPort"),
            Show::Value,
            |v| check::whole(v, 1, 65535, ""),
        )
        .unwrap_or(u64::from(EWS_PORT));
    let pseudo_domain = ck
        .get(
            scope,
            &key("pseudoDomain"),
            map.get("pseudoDomain"),
            Show::Value,
            |v| {
                let s = check::string(v)?;
                let s = s.trim().trim_matches('/').to_string();
                let valid = !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
                if valid {
                    Ok(s)
                } else {
                    Err("must be a name of letters, digits, - . _ ~ (default apiproxy)".to_string())
                }
            },
        )
        .unwrap_or_else(|| "apiproxy".to_string());

    let mut api = ApiTarget::plain(&format!(
        "http://{}:{port}/{pseudo_domain}/",
        check::url_host(&host)
    ));
    if basic {
        match user.filter(|u| !u.trim().is_empty()) {
            Some(user) => {
                api.user = Some(user);
                api.password = password.map(Secret::new);
            }
            None => {
                ck.invalid(
                    scope,
                    &key("userName"),
                    &map.get("userName")
                        .map_or("(not set)".to_string(), |v| check::shown(v, Show::Value)),
                    "required when authentication is \"basic\"",
                );
                return None;
            }
        }
    } else if user.is_some() || password.is_some() {
        ck.warn(format_args!(
            "{}.{path}: userName and password are ignored because authentication is \"none\"",
            scope.block
        ));
    }
    Some(Destination { address: host, api })
}

const ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// Reads the parameters of one of the three upload plugins; only HDS has `bootstrap`.
pub(super) fn upload(
    ck: &mut Checker,
    scope: &Scope,
    map: &Map<String, Value>,
    params: &mut UploadParams,
) {
    upload_at(ck, scope, "parameters", map, params);
}

/// [`upload`] for settings at `at` in `scope` (a rule's own `upload.s3`).
pub(super) fn upload_at(
    ck: &mut Checker,
    scope: &Scope,
    at: &str,
    map: &Map<String, Value>,
    params: &mut UploadParams,
) {
    let hds = scope.block == PluginId::AmazonHDSUpload.name();
    let mut keys = vec![
        "aws_access_key",
        "aws_secret_key",
        "default_bucket",
        "region",
        "endpoint",
        "key_prefix",
        "acl",
        "media_root",
    ];
    if hds {
        keys.push("bootstrap");
    }
    ck.unknown_keys(&format!("{}.{at}", scope.block), map, &keys);

    params.aws_access_key = ck
        .get(
            scope,
            &format!("{at}.aws_access_key"),
            map.get("aws_access_key"),
            Show::Value,
            check::string,
        )
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    params.aws_secret_key = ck
        .get(
            scope,
            &format!("{at}.aws_secret_key"),
            map.get("aws_secret_key"),
            Show::Secret,
            check::string,
        )
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    match (&params.aws_access_key, &params.aws_secret_key) {
        (Some(_), None) => ck.invalid(
            scope,
            &format!("{at}.aws_secret_key"),
            "\"\"",
            "must be set when aws_access_key is set (leave both empty to take credentials from the environment)",
        ),
        (None, Some(_)) => ck.invalid(
            scope,
            &format!("{at}.aws_access_key"),
            "\"\"",
            "must be set when aws_secret_key is set (leave both empty to take credentials from the environment)",
        ),
        _ => {}
    }

    // A rule's own settings need no default bucket when the rule names its bucket.
    let bucket = if at == "parameters" {
        required_string(ck, scope, map, "default_bucket", "an S3 bucket name")
    } else {
        let key = format!("{at}.default_bucket");
        let value = map.get("default_bucket");
        ck.get(scope, &key, value, Show::Value, check::string)
            .unwrap_or_default()
    };
    let bucket = bucket.trim().to_string();
    if !bucket.is_empty() {
        if bucket.contains(['/', '\\']) || bucket.chars().any(char::is_whitespace) {
            ck.invalid(
                scope,
                &format!("{at}.default_bucket"),
                &Value::String(bucket.clone()).to_string(),
                "must be a bucket name, without / or spaces (use key_prefix for a folder)",
            );
        } else {
            if scope.fatal && !is_dns_bucket_name(&bucket) {
                ck.warn(format_args!(
                    "{}.{at}.default_bucket = {}: not a valid S3 bucket name \
                     (3 to 63 lowercase letters, digits, dots and hyphens): AWS will refuse it, \
                     some S3-compatible stores accept it",
                    scope.block,
                    Value::String(bucket.clone())
                ));
            }
            params.default_bucket = bucket;
        }
    }

    if hds
        && let Some(bootstrap) = ck.get(
            scope,
            &format!("{at}.bootstrap"),
            map.get("bootstrap"),
            Show::Value,
            |v| {
                let s = check::string(v)?;
                let valid =
                    !s.trim().is_empty() && !s.contains(['/', '\\']) && s != "." && s != "..";
                if valid {
                    Ok(s)
                } else {
                    Err("must be a file name (default bootstrap)".to_string())
                }
            },
        )
    {
        params.bootstrap = bootstrap;
    }

    params.region = ck
        .get(
            scope,
            &format!("{at}.region"),
            map.get("region"),
            Show::Value,
            |v| {
                let s = check::string(v)?;
                if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    Ok(s)
                } else {
                    Err("must be a region name such as us-east-1".to_string())
                }
            },
        )
        .filter(|s| !s.is_empty());
    params.endpoint = ck
        .get(
            scope,
            &format!("{at}.endpoint"),
            map.get("endpoint"),
            Show::Value,
            |v| {
                let s = check::string(v)?;
                let url = check::http_url(&s)?;
                if url.user.is_some() || url.password.is_some() {
                    return Err(
                        "must be an http:// or https:// URL without user or password".to_string(),
                    );
                }
                Ok(s.trim().trim_end_matches('/').to_string())
            },
        )
        .filter(|s| !s.is_empty());
    if let Some(prefix) = ck.get(
        scope,
        &format!("{at}.key_prefix"),
        map.get("key_prefix"),
        Show::Value,
        |v| {
            let s = check::string(v)?;
            if s.split(['/', '\\']).any(|segment| segment.trim() == "..") {
                return Err(
                    "must not contain a `..` segment (a key prefix is a folder in the bucket)"
                        .to_string(),
                );
            }
            Ok(s)
        },
    ) {
        params.key_prefix = key_prefix(&prefix);
    }
    params.acl = ck.get(
        scope,
        &format!("{at}.acl"),
        map.get("acl"),
        Show::Value,
        |v| {
            let s = check::string(v)?;
            ACLS.iter()
                .find(|a| a.eq_ignore_ascii_case(s.trim()))
                .map(|a| (*a).to_string())
                .ok_or_else(|| format!("must be one of {}", ACLS.join(", ")))
        },
    );
    if let Some(roots) = media_roots(
        ck,
        scope,
        &format!("{at}.media_root"),
        map.get("media_root"),
    ) {
        params.media_root = roots;
    }
}

/// `""`, or `a/b/`: no leading `/`, no empty segments, a trailing `/`.
fn key_prefix(prefix: &str) -> String {
    let parts: Vec<&str> = prefix.split('/').filter(|p| !p.trim().is_empty()).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}/", parts.join("/"))
    }
}

/// The AWS rules for bucket names usable with virtual-hosted addressing.
fn is_dns_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let chars_ok = b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    let ends_ok = b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric);
    let looks_like_ip =
        name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    (3..=63).contains(&b.len()) && chars_ok && ends_ok && !name.contains("..") && !looks_like_ip
}
