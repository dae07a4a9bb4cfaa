//! emstail's own `Service` block. Its problems are always fatal: there is no switch to turn
//! it off.

use super::check::{self, Checker, Scope, Show};
use super::{LogFormat, RetryConfig, ServiceConfig};
use crate::action::{ApiTarget, Secret};
use serde_json::Value;
use std::path::PathBuf;

const KEYS: &[&str] = &[
    "ems_api",
    "event_log",
    "log_format",
    "state_dir",
    "media_root",
    "max_upload_bytes",
    "ems_working_dir",
    "workers",
    "request_timeout_secs",
    "retry",
];
const RETRY_KEYS: &[&str] = &["max_attempts", "max_elapsed_secs", "max_backoff_secs"];

pub(super) fn read(ck: &mut Checker, block: Option<&Value>) -> ServiceConfig {
    let mut service = ServiceConfig::default();
    let scope = Scope::fatal("Service");
    let Some(block) = block else {
        return service;
    };
    let Some(map) = block.as_object() else {
        ck.invalid(
            &scope,
            "",
            &check::shown(block, Show::Value),
            "must be an object of settings",
        );
        return service;
    };
    ck.unknown_keys("Service", map, KEYS);

    if let Some(api) = map.get("ems_api") {
        let shown = match api.as_str() {
            Some(s) => format!("\"{}\"", check::redact_url(s)),
            None => check::shown(api, Show::Value),
        };
        match api_target(api) {
            Ok(target) => service.ems_api = target,
            Err(allowed) => ck.invalid(&scope, "ems_api", &shown, &allowed),
        }
    }
    if let Some(log) = ck.get(
        &scope,
        "event_log",
        map.get("event_log"),
        Show::Value,
        |v| check::string(v).and_then(|s| check::local_path(&s).map(str::to_string)),
    ) {
        service.event_log = ck.resolve(&log).to_string_lossy().into_owned();
    }
    if let Some(format) = ck.get(
        &scope,
        "log_format",
        map.get("log_format"),
        Show::Value,
        |v| match v.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("auto") => Ok(LogFormat::Auto),
            Some("json") => Ok(LogFormat::Json),
            Some("text") => Ok(LogFormat::Text),
            _ => Err("must be \"auto\", \"json\" or \"text\"".to_string()),
        },
    ) {
        service.log_format = format;
    }
    if let Some(dir) = directory(ck, &scope, "state_dir", map.get("state_dir")) {
        service.state_dir = dir;
    }
    if let Some(dir) = directory(ck, &scope, "ems_working_dir", map.get("ems_working_dir")) {
        service.ems_working_dir = Some(dir);
    }
    if let Some(roots) = media_roots(ck, &scope, "media_root", map.get("media_root")) {
        service.media_root = roots;
    }
    if let Some(max) = ck.get(
        &scope,
        "max_upload_bytes",
        map.get("max_upload_bytes"),
        Show::Value,
        |v| check::whole(v, 1, u64::MAX, " of bytes"),
    ) {
        service.max_upload_bytes = max;
    }
    if let Some(workers) = ck.get(&scope, "workers", map.get("workers"), Show::Value, |v| {
        check::whole(v, 1, 256, "")
    }) {
        service.workers = usize::try_from(workers).expect("workers was checked to be at most 256");
    }
    if let Some(secs) = ck.get(
        &scope,
        "request_timeout_secs",
        map.get("request_timeout_secs"),
        Show::Value,
        |v| check::whole(v, 1, 600, ""),
    ) {
        service.request_timeout_secs = secs;
    }
    service.retry = retry(ck, &scope, map.get("retry"));
    service
}

fn retry(ck: &mut Checker, scope: &Scope, value: Option<&Value>) -> RetryConfig {
    let mut retry = RetryConfig::default();
    let Some(value) = value else {
        return retry;
    };
    let Some(map) = value.as_object() else {
        ck.invalid(
            scope,
            "retry",
            &check::shown(value, Show::Value),
            "must be an object like { \"max_elapsed_secs\": 86400, \"max_backoff_secs\": 30 }",
        );
        return retry;
    };
    ck.unknown_keys("Service.retry", map, RETRY_KEYS);
    if let Some(n) = ck.get(
        scope,
        "retry.max_attempts",
        map.get("max_attempts"),
        Show::Value,
        |v| check::whole(v, 1, 100, ""),
    ) {
        retry.max_attempts =
            Some(u32::try_from(n).expect("max_attempts was checked to be at most 100"));
    }
    if let Some(n) = ck.get(
        scope,
        "retry.max_elapsed_secs",
        map.get("max_elapsed_secs"),
        Show::Value,
        |v| check::whole(v, 1, 2_592_000, " of seconds"),
    ) {
        retry.max_elapsed_secs = n;
    }
    if let Some(n) = ck.get(
        scope,
        "retry.max_backoff_secs",
        map.get("max_backoff_secs"),
        Show::Value,
        |v| check::whole(v, 1, 3600, " of seconds"),
    ) {
        retry.max_backoff_secs = n;
    }
    retry
}

/// `ems_api`: the URL's user and password are kept apart so the URL can be shown anywhere.
pub(super) fn api_target(value: &Value) -> Result<ApiTarget, String> {
    let url = check::http_url(&check::string(value)?)?;
    let port = url.port.map(|p| format!(":{p}")).unwrap_or_default();
    let mut target = ApiTarget::plain(&format!(
        "{}://{}{port}/{}",
        url.scheme,
        check::url_host(&url.host),
        url.path
    ));
    target.user = url.user;
    target.password = url.password.map(Secret::new);
    Ok(target)
}

/// A directory setting; a relative one is resolved against the config file's directory.
fn directory(ck: &mut Checker, scope: &Scope, key: &str, value: Option<&Value>) -> Option<PathBuf> {
    let dir = ck.get(scope, key, value, Show::Value, |v| {
        check::string(v).and_then(|s| check::local_path(&s).map(str::to_string))
    })?;
    Some(ck.resolve(&dir))
}

/// `media_root`: one path or a list; relative ones are resolved against the config file's
/// directory. Shared by `Service` and the upload plugins. An empty list is an error: there is
/// no unconfined mode.
pub(super) fn media_roots(
    ck: &mut Checker,
    scope: &Scope,
    key: &str,
    value: Option<&Value>,
) -> Option<Vec<PathBuf>> {
    let roots = ck.get(scope, key, value, Show::Value, |v| {
        let roots = check::string_list(v)?;
        if roots.is_empty() {
            return Err(format!(
                "must name at least one directory (uploads are confined to the media roots; \
                 the default is {})",
                super::DEFAULT_MEDIA_ROOT
            ));
        }
        for root in &roots {
            check::local_path(root).map_err(|e| format!("every entry {e}"))?;
        }
        Ok(roots)
    })?;
    Some(roots.iter().map(|r| ck.resolve(r)).collect())
}
