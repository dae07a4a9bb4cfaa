//! From text to [`Config`]: the lenient reader, then each block, then the checks that span
//! blocks.

use super::check::Checker;
use super::lenient::{self, BLOCKS};
use super::{
    AutoRouterParams, Config, ConfigError, LoadBalancerParams, RecorderParams, UploadParams,
    plugins, rules, service,
};
use crate::action::PluginId;
use serde_json::Value;
use std::path::Path;

pub(super) fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut ck = Checker::new(path);
    let parsed = lenient::parse(&ck.file, text)?;
    let Value::Object(root) = parsed.value else {
        return Err(ConfigError(format!(
            "{}: must be an object of blocks, such as {{ \"StreamRecorder\": {{ \"plugin_switch\": \"enabled\", … }} }}",
            ck.file
        )));
    };
    ck.unknown_keys("", &root, &BLOCKS);

    let service = service::read(&mut ck, root.get("Service"));
    let auto_router = plugins::block(
        &mut ck,
        PluginId::StreamAutoRouter,
        &root,
        AutoRouterParams::default(),
        plugins::auto_router,
    );
    let recorder = plugins::block(
        &mut ck,
        PluginId::StreamRecorder,
        &root,
        RecorderParams::default(),
        plugins::recorder,
    );
    let load_balancer = plugins::block(
        &mut ck,
        PluginId::StreamLoadBalancer,
        &root,
        LoadBalancerParams::default(),
        plugins::load_balancer,
    );
    let hls = plugins::block(
        &mut ck,
        PluginId::AmazonHLSUpload,
        &root,
        UploadParams::default(),
        plugins::upload,
    );
    let hds = plugins::block(
        &mut ck,
        PluginId::AmazonHDSUpload,
        &root,
        UploadParams {
            bootstrap: "bootstrap".to_string(),
            ..UploadParams::default()
        },
        plugins::upload,
    );
    let dash = plugins::block(
        &mut ck,
        PluginId::AmazonDASHUpload,
        &root,
        UploadParams::default(),
        plugins::upload,
    );

    let rules = rules::read(
        &mut ck,
        root.get("Rules"),
        &service.ems_api,
        &rules::UploadBlocks {
            hls: &hls,
            hds: &hds,
            dash: &dash,
        },
    );

    if !ck.errors.is_empty() {
        return Err(ConfigError(ck.errors.join("\n")));
    }
    let mut warnings = parsed.warnings;
    warnings.append(&mut ck.warnings);
    Ok(Config {
        path: path.to_path_buf(),
        service,
        auto_router,
        recorder,
        load_balancer,
        hls,
        hds,
        dash,
        rules,
        warnings,
    })
}

/// True when the file gave any secret: an S3 secret key or an API password.
pub(super) fn holds_secret(config: &Config) -> bool {
    let api_password =
        |p: &Option<crate::action::Secret>| p.as_ref().is_some_and(|s| !s.is_empty());
    api_password(&config.service.ems_api.password)
        || config
            .load_balancer
            .params
            .destinations
            .iter()
            .any(|d| api_password(&d.api.password))
        || [&config.hls, &config.hds, &config.dash]
            .iter()
            .any(|u| u.params.aws_secret_key.is_some())
}

/// Others reading a file that holds secrets deserve a warning, not a refusal: many installs
/// keep `/etc` files world-readable.
pub(super) fn warn_if_secret_readable(config: &mut Config) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if !holds_secret(config) {
            return;
        }
        let Ok(meta) = std::fs::metadata(&config.path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            config.warnings.push(format!(
                "{}: holds a secret and is readable by every user (mode {mode:o}); \
                 chmod 600 it or take credentials from the environment",
                config.path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = config;
}
