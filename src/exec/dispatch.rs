//! The real executor: EMS calls through the API client, uploads through S3, each upload
//! confined to its plugin's media roots once more at the moment it runs (symlinks resolved).

use crate::action::{Action, PlannedAction, PluginId, S3Put};
use crate::config::{Config, UploadParams};
use crate::exec::confine::{Roots, open_upload};
use crate::exec::ems::{EmsClient, EmsClientConfig};
use crate::exec::pool::{Execute, action_target};
use crate::exec::s3::S3Target;
use crate::exec::{Done, Failure};
use std::collections::HashMap;
use std::path::PathBuf;

pub struct Executor {
    ems: EmsClient,
    /// Per upload plugin: where its objects go and which roots its files must lie in.
    uploads: HashMap<PluginId, Upload>,
    /// `Service.max_upload_bytes`.
    max_upload_bytes: u64,
}

struct Upload {
    s3: S3Target,
    roots: Vec<PathBuf>,
    /// The roots resolved at start-up; `None` when one did not resolve then (it is tried again
    /// at each upload, so a root created later is picked up).
    resolved: Option<Roots>,
}

impl Upload {
    fn new(config: &Config, params: &UploadParams) -> Result<Upload, String> {
        let s3 = S3Target::new(params)?;
        let roots = if params.media_root.is_empty() {
            config.service.media_root.clone()
        } else {
            params.media_root.clone()
        };
        let resolved = Roots::resolve(&roots).ok();
        Ok(Upload {
            s3,
            roots,
            resolved,
        })
    }
}

impl Executor {
    /// Sets up a client for every enabled plugin; an S3 setting that cannot work (no
    /// credentials anywhere, a bad endpoint) is an error naming the plugin.
    pub fn new(config: &Config) -> Result<Executor, String> {
        let ems = EmsClient::new(EmsClientConfig::of(&config.service));
        let mut uploads = HashMap::new();
        let blocks: [(PluginId, bool, &UploadParams); 3] = [
            (
                PluginId::AmazonHLSUpload,
                config.hls.enabled,
                &config.hls.params,
            ),
            (
                PluginId::AmazonHDSUpload,
                config.hds.enabled,
                &config.hds.params,
            ),
            (
                PluginId::AmazonDASHUpload,
                config.dash.enabled,
                &config.dash.params,
            ),
        ];
        for (name, enabled, params) in blocks {
            if !enabled {
                continue;
            }
            uploads.insert(
                name,
                Upload::new(config, params).map_err(|e| format!("{name}: {e}"))?,
            );
        }
        // A rule's uploads and deletes use the S3 settings it names (enabled or not) or its own.
        for rule in &config.rules {
            if let Some(s3) = rule.action.s3() {
                let upload =
                    Upload::new(config, &s3.settings).map_err(|e| match s3.settings_from {
                        Some(from) => format!("{} (settings of {from}): {e}", rule.id()),
                        None => format!("{}: {e}", rule.id()),
                    })?;
                uploads.insert(rule.id(), upload);
            }
        }
        Ok(Executor {
            ems,
            uploads,
            max_upload_bytes: config.service.max_upload_bytes,
        })
    }

    /// For backfill: a `record` or keepAlive `pushStream` EMS held before the first one went
    /// out is not sent again (see [`EmsClient::skipping_configured`]).
    pub fn skipping_configured(mut self) -> Executor {
        self.ems = self.ems.skipping_configured();
        self
    }

    fn upload(&self, plugin: PluginId) -> Result<&Upload, Failure> {
        self.uploads.get(&plugin).ok_or_else(|| {
            Failure::Permanent(format!("{plugin} is not enabled in this configuration"))
        })
    }
}

impl Execute for Executor {
    fn execute(&self, planned: &PlannedAction) -> Result<Done, Failure> {
        self.execute_sending(planned, 1, false)
    }

    /// An upload's target is its plugin's S3 endpoint and the bucket: one circuit per place
    /// objects go, so a down bucket host does not hold up another.
    fn target(&self, planned: &PlannedAction) -> String {
        match (&planned.action, self.uploads.get(&planned.plugin)) {
            (
                Action::S3Put(S3Put { bucket, .. }) | Action::S3Delete { bucket, .. },
                Some(upload),
            ) => {
                format!("{}/{bucket}", upload.s3.endpoint())
            }
            _ => action_target(planned),
        }
    }

    /// EMS calls learn whether this is a retry or a re-send ([`EmsClient::execute_sending`]
    /// checks then whether an earlier attempt already took effect); uploads are the same on
    /// every attempt.
    fn execute_sending(
        &self,
        planned: &PlannedAction,
        attempt: u32,
        resend: bool,
    ) -> Result<Done, Failure> {
        match &planned.action {
            Action::EmsCall {
                target,
                command,
                params,
                only_if_armed: None,
            } => self
                .ems
                .execute_sending(target, command, params, attempt, resend),
            Action::EmsCall {
                target,
                command,
                params,
                only_if_armed: Some(guard),
            } => self
                .ems
                .execute_if_armed(target, command, params, guard, attempt, resend),
            Action::S3Put(put) => {
                let upload = self.upload(planned.plugin)?;
                let max = self.max_upload_bytes;
                let file = match &upload.resolved {
                    Some(roots) => open_upload(&put.path, roots, max)?,
                    None => open_upload(&put.path, &Roots::resolve(&upload.roots)?, max)?,
                };
                upload.s3.put_upload(
                    &put.bucket,
                    &put.key,
                    file,
                    &put.content_type,
                    &put.cache_control,
                    put.acl.as_deref(),
                )
            }
            Action::S3Delete { bucket, key } => self.upload(planned.plugin)?.s3.delete(bucket, key),
        }
    }
}
