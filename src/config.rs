//! `config.ini`: the users' plugin blocks plus emstail's own `Service` block, read leniently.
//!
//! This file holds the typed settings. Loading and validation live in `config/`: `lenient`
//! (comments, trailing commas, missing braces → strict JSON), `load` (the blocks), `check`
//! (messages and value conversions), `render` (what `emstail check` prints). Every error names
//! the file, block, key, value and what is allowed.

use crate::action::{ApiTarget, PluginId, Secret};
use std::path::{Path, PathBuf};

pub use rules::{
    Condition, EVENT_TYPES, FieldPath, Pattern, Piece, Rule, RuleAction, S3Rule, Template, Test,
};

mod check;
mod lenient;
mod load;
mod plugins;
mod render;
mod rules;
mod service;
#[cfg(test)]
mod tests;

/// The fully validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub service: ServiceConfig,
    pub auto_router: Plugin<AutoRouterParams>,
    pub recorder: Plugin<RecorderParams>,
    pub load_balancer: Plugin<LoadBalancerParams>,
    pub hls: Plugin<UploadParams>,
    pub hds: Plugin<UploadParams>,
    pub dash: Plugin<UploadParams>,
    /// The custom rules of the `Rules` block, in file order.
    pub rules: Vec<Rule>,
    /// Problems that did not stop start-up (unknown keys, errors in disabled plugins, …).
    pub warnings: Vec<String>,
}

/// A plugin block: its switch and its parameters (defaults when the block is missing).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plugin<P> {
    pub enabled: bool,
    pub params: P,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Auto,
    Json,
    Text,
}

/// EMS's standard web root, where its HLS, HDS and DASH output goes.
pub const DEFAULT_MEDIA_ROOT: &str = "/var/evostreamms/evo-webroot";
/// 1 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Local EMS runtime API (or its API proxy URL). Default `http://127.0.0.1:7777/`.
    pub ems_api: ApiTarget,
    /// A file, a directory, or a glob. Default `/var/evostreamms/logs/events*.txt`.
    pub event_log: String,
    pub log_format: LogFormat,
    /// Default `/var/lib/emstail`.
    pub state_dir: PathBuf,
    /// Uploads are confined to these roots. Default [`DEFAULT_MEDIA_ROOT`]; never empty when
    /// read from a file (an empty list is a config error, and the executor refuses every
    /// upload without a root).
    pub media_root: Vec<PathBuf>,
    /// Files larger than this are not uploaded. Default 1 GiB.
    pub max_upload_bytes: u64,
    /// EMS's working directory, against which relative paths in events are resolved.
    pub ems_working_dir: Option<PathBuf>,
    /// Parallel action lanes. Default 8, range 1–256.
    pub workers: usize,
    /// Limit for one EMS API request, connecting included. Default 10, range 1–600.
    pub request_timeout_secs: u64,
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// An operator's limit on attempts, range 1–100; none by default (the elapsed time
    /// decides). When set, whichever limit comes first ends the retries.
    pub max_attempts: Option<u32>,
    /// How long an action keeps being retried after its first transient failure (or after it
    /// started waiting for its target to come back). Default 86400 (one day), range
    /// 1–2592000 (30 days).
    pub max_elapsed_secs: u64,
    /// No single backoff is longer than this. Default 30, range 1–3600.
    pub max_backoff_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: None,
            max_elapsed_secs: 86_400,
            max_backoff_secs: 30,
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            ems_api: ApiTarget::plain("http://127.0.0.1:7777/"),
            event_log: "/var/evostreamms/logs/events*.txt".to_string(),
            log_format: LogFormat::Auto,
            state_dir: PathBuf::from("/var/lib/emstail"),
            media_root: vec![PathBuf::from(DEFAULT_MEDIA_ROOT)],
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            ems_working_dir: None,
            workers: 8,
            request_timeout_secs: 10,
            retry: RetryConfig::default(),
        }
    }
}

/// StreamAutoRouter: push new inbound streams to another EMS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AutoRouterParams {
    /// Only streams whose name contains this are forwarded; empty forwards all.
    pub token: String,
    /// `destination_uri` as written (bare host, `host:port`, or `rtmp://host[:port]/app`).
    pub destination_uri: String,
    /// The push target, `rtmp://host[:port]/app`.
    pub push_uri: String,
    /// The destination host, to recognise streams that come from it.
    pub destination_host: String,
}

/// StreamRecorder: record every inbound stream in pieces of `period_time` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderParams {
    /// Absolute directory, as written (Windows paths allowed).
    pub file_location: String,
    /// Seconds, 1–86399.
    pub period_time: u32,
}

impl Default for RecorderParams {
    fn default() -> Self {
        RecorderParams {
            file_location: String::new(),
            period_time: 3600,
        }
    }
}

/// StreamLoadBalancer: have every destination EMS pull each new inbound stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadBalancerParams {
    /// Every listed destination; `enable` only chose how its API is reached.
    pub destinations: Vec<Destination>,
    /// This EMS's address as the destinations can reach it; else the event's `nearIp`/`ip`.
    pub origin_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// The address as configured (to recognise this EMS itself).
    pub address: String,
    pub api: ApiTarget,
}

/// AmazonHLSUpload / AmazonHDSUpload / AmazonDASHUpload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UploadParams {
    pub aws_access_key: Option<String>,
    pub aws_secret_key: Option<Secret>,
    pub default_bucket: String,
    /// HDS only: the bootstrap file name next to the fragments. Default `bootstrap`.
    pub bootstrap: String,
    pub region: Option<String>,
    /// S3-compatible endpoint URL (path-style addressing).
    pub endpoint: Option<String>,
    /// Prepended to every object key (`""` or ending in `/`).
    pub key_prefix: String,
    /// Canned ACL, none by default.
    pub acl: Option<String>,
    /// Roots for this plugin; empty means `Service.media_root`.
    pub media_root: Vec<PathBuf>,
}

/// A configuration problem that stops start-up (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates `path`; also warns when the file holds a secret others can read.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        let mut config = Config::from_str(path, &text)?;
        load::warn_if_secret_readable(&mut config);
        Ok(config)
    }

    /// Validates `text` as if read from `path`: `path` names the file in messages, and
    /// relative paths in it are resolved against its directory.
    pub fn from_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
        load::from_text(path, text)
    }

    /// The effective configuration as `emstail check` prints it, one `Block.key = value` per
    /// line, secrets as `***`.
    pub fn render(&self) -> String {
        render::render(self)
    }

    /// Whether the block of `plugin` has its `plugin_switch` on (a rule: whether it is listed).
    pub fn is_enabled(&self, plugin: PluginId) -> bool {
        match plugin {
            PluginId::StreamAutoRouter => self.auto_router.enabled,
            PluginId::StreamRecorder => self.recorder.enabled,
            PluginId::StreamLoadBalancer => self.load_balancer.enabled,
            PluginId::AmazonHLSUpload => self.hls.enabled,
            PluginId::AmazonHDSUpload => self.hds.enabled,
            PluginId::AmazonDASHUpload => self.dash.enabled,
            PluginId::Rules(_) => self.rules.iter().any(|rule| rule.id() == plugin),
        }
    }
}
