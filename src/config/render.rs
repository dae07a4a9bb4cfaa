//! The effective configuration, one `Block.key = value` per line, in block order. Strings are
//! JSON-quoted so that empty values and spaces are visible; secrets are `***`.

use super::{Config, Plugin, UploadParams};
use crate::action::{ApiTarget, PluginId, Secret};
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub(super) fn render(config: &Config) -> String {
    let mut out = Lines(String::new());
    let _ = writeln!(
        out.0,
        "# effective configuration from {}",
        config.path.display()
    );

    let s = &config.service;
    out.line("Service.ems_api", api(&s.ems_api));
    out.line("Service.event_log", quoted(&s.event_log));
    out.line(
        "Service.log_format",
        format!("{:?}", s.log_format).to_lowercase(),
    );
    out.line("Service.state_dir", path(&s.state_dir));
    out.line("Service.media_root", paths(&s.media_root));
    out.line("Service.max_upload_bytes", s.max_upload_bytes.to_string());
    out.line(
        "Service.ems_working_dir",
        s.ems_working_dir
            .as_deref()
            .map_or("none".to_string(), path),
    );
    out.line("Service.workers", s.workers.to_string());
    out.line(
        "Service.request_timeout_secs",
        s.request_timeout_secs.to_string(),
    );
    out.line(
        "Service.retry.max_attempts",
        s.retry
            .max_attempts
            .map_or("none (max_elapsed_secs decides)".to_string(), |n| {
                n.to_string()
            }),
    );
    out.line(
        "Service.retry.max_elapsed_secs",
        s.retry.max_elapsed_secs.to_string(),
    );
    out.line(
        "Service.retry.max_backoff_secs",
        s.retry.max_backoff_secs.to_string(),
    );

    let r = &config.auto_router;
    out.switch(PluginId::StreamAutoRouter.name(), r.enabled);
    out.line("StreamAutoRouter.token", quoted(&r.params.token));
    out.line(
        "StreamAutoRouter.destination_uri",
        quoted(&r.params.destination_uri),
    );
    out.line("StreamAutoRouter.push_uri", quoted(&r.params.push_uri));
    out.line(
        "StreamAutoRouter.destination_host",
        quoted(&r.params.destination_host),
    );

    let r = &config.recorder;
    out.switch(PluginId::StreamRecorder.name(), r.enabled);
    out.line(
        "StreamRecorder.file_location",
        quoted(&r.params.file_location),
    );
    out.line(
        "StreamRecorder.period_time",
        r.params.period_time.to_string(),
    );

    let lb = &config.load_balancer;
    out.switch(PluginId::StreamLoadBalancer.name(), lb.enabled);
    if lb.params.destinations.is_empty() {
        out.line("StreamLoadBalancer.destinations", "none".to_string());
    }
    for (i, d) in lb.params.destinations.iter().enumerate() {
        out.line(
            &format!("StreamLoadBalancer.destinations[{i}]"),
            format!("{} via {}", quoted(&d.address), api(&d.api)),
        );
    }
    out.line(
        "StreamLoadBalancer.origin_address",
        lb.params
            .origin_address
            .as_deref()
            .map_or("none".to_string(), quoted),
    );

    upload(&mut out, PluginId::AmazonHLSUpload, &config.hls);
    upload(&mut out, PluginId::AmazonHDSUpload, &config.hds);
    upload(&mut out, PluginId::AmazonDASHUpload, &config.dash);
    for rule in &config.rules {
        rule_lines(&mut out, rule);
    }
    out.0
}

/// A rule as it takes effect: templates as written, the call's target with `***`.
fn rule_lines(out: &mut Lines, rule: &super::Rule) {
    use super::RuleAction;
    let key = |k: &str| format!("Rules[{}].{k}", quoted(&rule.name));
    out.line(&key("on"), rule.on.join(", "));
    for condition in &rule.when {
        out.line(
            &key(&format!("when.{}", condition.path)),
            format!("{} {}", condition.test.operator(), condition.test.operand()),
        );
    }
    out.line(&key("include_own"), rule.include_own.to_string());
    match &rule.action {
        RuleAction::Call {
            target,
            command,
            params,
        } => {
            out.line(&key("call.target"), api(target));
            out.line(&key("call.command"), quoted(command));
            for (name, template) in params {
                out.line(
                    &key(&format!("call.params.{name}")),
                    quoted(&template.to_string()),
                );
            }
        }
        RuleAction::Upload(s3) | RuleAction::Delete(s3) => {
            let kind = if matches!(rule.action, RuleAction::Upload(_)) {
                "upload"
            } else {
                "delete"
            };
            let kind = |k: &str| key(&format!("{kind}.{k}"));
            out.line(&kind("file"), quoted(&s3.file.to_string()));
            let default = |what: &str| format!("none ({what})");
            out.line(
                &kind("bucket"),
                s3.bucket.as_ref().map_or_else(
                    || default(&quoted(&s3.settings.default_bucket)),
                    |t| quoted(&t.to_string()),
                ),
            );
            out.line(
                &kind("key"),
                s3.key.as_ref().map_or_else(
                    || default("the uploader's key for the file"),
                    |t| quoted(&t.to_string()),
                ),
            );
            match s3.settings_from {
                Some(from) => out.line(&kind("s3"), quoted(from.name())),
                None => {
                    let own = Plugin {
                        enabled: true,
                        params: s3.settings.clone(),
                    };
                    let mut settings = Lines(String::new());
                    upload(&mut settings, PluginId::AmazonHLSUpload, &own);
                    // The settings' lines, named after the rule.
                    for line in settings.0.lines().skip(1) {
                        let line = line.split_once('.').map_or(line, |(_, rest)| rest);
                        let _ = writeln!(out.0, "{}", kind(&format!("s3.{line}")));
                    }
                }
            }
        }
    }
}

fn upload(out: &mut Lines, id: PluginId, plugin: &Plugin<UploadParams>) {
    let (name, hds) = (id.name(), id == PluginId::AmazonHDSUpload);
    let p = &plugin.params;
    let key = |k: &str| format!("{name}.{k}");
    out.switch(name, plugin.enabled);
    out.line(
        &key("aws_access_key"),
        p.aws_access_key
            .as_deref()
            .map_or("none (from the environment)".to_string(), quoted),
    );
    out.line(
        &key("aws_secret_key"),
        p.aws_secret_key
            .as_ref()
            .map_or("none (from the environment)".to_string(), secret),
    );
    out.line(&key("default_bucket"), quoted(&p.default_bucket));
    if hds {
        out.line(&key("bootstrap"), quoted(&p.bootstrap));
    }
    let none = || "none".to_string();
    out.line(
        &key("region"),
        p.region.as_deref().map_or_else(none, quoted),
    );
    out.line(
        &key("endpoint"),
        p.endpoint.as_deref().map_or_else(none, quoted),
    );
    out.line(&key("key_prefix"), quoted(&p.key_prefix));
    out.line(&key("acl"), p.acl.as_deref().map_or_else(none, quoted));
    let roots = if p.media_root.is_empty() {
        "[] (Service.media_root)".to_string()
    } else {
        paths(&p.media_root)
    };
    out.line(&key("media_root"), roots);
}

struct Lines(String);

impl Lines {
    fn line(&mut self, key: &str, value: String) {
        let _ = writeln!(self.0, "{key} = {value}");
    }

    fn switch(&mut self, block: &str, enabled: bool) {
        let state = if enabled { "enabled" } else { "disabled" };
        self.line(&format!("{block}.plugin_switch"), quoted(state));
    }
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn path(p: &Path) -> String {
    quoted(&p.to_string_lossy())
}

fn paths(ps: &[PathBuf]) -> String {
    let items: Vec<String> = ps.iter().map(|p| path(p)).collect();
    format!("[{}]", items.join(", "))
}

/// `ApiTarget`'s `Display` already shows the password as `***`.
fn api(target: &ApiTarget) -> String {
    target.to_string()
}

fn secret(s: &Secret) -> String {
    s.to_string()
}
