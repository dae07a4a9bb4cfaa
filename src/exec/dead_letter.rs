//! The dead-letter file: one JSON line per action that failed for good, with the error and
//! where its event came from. Nothing is dropped silently; `emstail dead-letters --retry` runs
//! them again. Secrets are never written: an API target keeps its URL and user name, and the
//! password is taken from the config again on retry.

use crate::action::{Action, ApiTarget, Params, PlannedAction, PluginId};
use crate::config::Config;
use crate::event::Source;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const FILE_NAME: &str = "dead-letter.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// UTC seconds when it was written.
    pub time: u64,
    pub plugin: String,
    /// The custom rule's name, when `plugin` is `Rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub lane: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u64>,
    pub action: StoredAction,
    pub error: String,
    pub attempts: u32,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredAction {
    EmsCall {
        /// Shown with `***` for a password; for people.
        target: String,
        target_base: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_user: Option<String>,
        command: String,
        params: Vec<(String, String)>,
    },
    S3Put {
        bucket: String,
        key: String,
        path: PathBuf,
        content_type: String,
        cache_control: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acl: Option<String>,
        #[serde(default)]
        optional: bool,
    },
    S3Delete {
        bucket: String,
        key: String,
    },
}

impl DeadLetter {
    pub fn new(action: &PlannedAction, source: &Source, error: String, attempts: u32) -> Self {
        let stored = match &action.action {
            Action::EmsCall {
                target,
                command,
                params,
            } => StoredAction::EmsCall {
                target: target.to_string(),
                target_base: target.base.clone(),
                target_user: target.user.clone(),
                command: command.clone(),
                params: params.0.clone(),
            },
            Action::S3Put {
                bucket,
                key,
                path,
                content_type,
                cache_control,
                acl,
                optional,
            } => StoredAction::S3Put {
                bucket: bucket.clone(),
                key: key.clone(),
                path: path.clone(),
                content_type: content_type.clone(),
                cache_control: cache_control.clone(),
                acl: acl.clone(),
                optional: *optional,
            },
            Action::S3Delete { bucket, key } => StoredAction::S3Delete {
                bucket: bucket.clone(),
                key: key.clone(),
            },
        };
        DeadLetter {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            plugin: action.plugin.name().to_string(),
            rule: action.plugin.rule().map(str::to_string),
            lane: action.lane.clone(),
            stream: action.stream.clone(),
            stream_id: action.stream_id,
            action: stored,
            error,
            attempts,
            source: source.clone(),
        }
    }

    /// The action to run again, with the API password taken from `config` for the same
    /// URL and user. `None` when the plugin is not known to this version.
    pub fn to_planned(&self, config: &Config) -> Option<PlannedAction> {
        let plugin = PluginId::from_names(&self.plugin, self.rule.as_deref())?;
        let action = match &self.action {
            StoredAction::EmsCall {
                target_base,
                target_user,
                command,
                params,
                ..
            } => Action::EmsCall {
                target: known_target(config, target_base, target_user.as_deref()),
                command: command.clone(),
                params: Params(params.clone()),
            },
            StoredAction::S3Put {
                bucket,
                key,
                path,
                content_type,
                cache_control,
                acl,
                optional,
            } => Action::S3Put {
                bucket: bucket.clone(),
                key: key.clone(),
                path: path.clone(),
                content_type: content_type.clone(),
                cache_control: cache_control.clone(),
                acl: acl.clone(),
                optional: *optional,
            },
            StoredAction::S3Delete { bucket, key } => Action::S3Delete {
                bucket: bucket.clone(),
                key: key.clone(),
            },
        };
        Some(PlannedAction {
            plugin,
            lane: self.lane.clone(),
            stream: self.stream.clone(),
            stream_id: self.stream_id,
            action,
        })
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        let what = match &self.action {
            StoredAction::EmsCall {
                target,
                command,
                params,
                ..
            } => format!(
                "ems {target}{command} {}",
                Params(params.clone()).to_command_line()
            ),
            StoredAction::S3Put { bucket, key, .. } => format!("put s3://{bucket}/{key}"),
            StoredAction::S3Delete { bucket, key } => format!("delete s3://{bucket}/{key}"),
        };
        let plugin = match &self.rule {
            Some(rule) => format!("{}:{rule}", self.plugin),
            None => self.plugin.clone(),
        };
        format!(
            "{plugin} {what}: {} (after {} attempts; {}:{})",
            self.error, self.attempts, self.source.file, self.source.line
        )
    }
}

/// The configured API target with this URL and user (so that its password is used), or a
/// target without a password.
fn known_target(config: &Config, base: &str, user: Option<&str>) -> ApiTarget {
    std::iter::once(&config.service.ems_api)
        .chain(
            config
                .load_balancer
                .params
                .destinations
                .iter()
                .map(|d| &d.api),
        )
        .chain(config.rules.iter().filter_map(|rule| match &rule.action {
            crate::config::RuleAction::Call { target, .. } => Some(target),
            _ => None,
        }))
        .find(|t| t.base == base && t.user.as_deref() == user)
        .cloned()
        .unwrap_or_else(|| ApiTarget {
            base: base.to_string(),
            user: user.map(str::to_string),
            password: None,
        })
}

/// Appends dead letters to `<state_dir>/dead-letter.jsonl`, each line flushed and synced.
pub struct Writer {
    path: PathBuf,
    file: Mutex<File>,
}

impl Writer {
    pub fn open(state_dir: &Path) -> io::Result<Writer> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(fsutil::PRIVATE)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Writer {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, letter: &DeadLetter) -> io::Result<()> {
        let mut line = serde_json::to_string(letter).map_err(io::Error::other)?;
        line.push('\n');
        let mut file = self
            .file
            .lock()
            .expect("dead-letter lock is never poisoned");
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }
}

/// Every readable dead letter of `path` with its line number; unreadable lines (a torn last
/// line after a crash) are returned as errors with their line number, not dropped.
pub fn read(path: &Path) -> io::Result<Vec<Entry>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push(Entry {
            line: i as u64 + 1,
            letter: serde_json::from_slice(&line).map_err(|e| e.to_string()),
            raw: line,
        });
    }
    Ok(out)
}

/// One line of the dead-letter file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// 1-based line number.
    pub line: u64,
    pub letter: Result<DeadLetter, String>,
    /// The line as it is on disk, to keep it unchanged when it stays.
    pub raw: Vec<u8>,
}

/// Replaces the file with `lines` (raw JSON lines) with [`fsutil::write_atomic`].
pub fn rewrite(path: &Path, lines: &[&[u8]]) -> io::Result<()> {
    let mut content = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        content.extend_from_slice(l);
        content.push(b'\n');
    }
    fsutil::write_atomic(path, &content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Secret;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("emstail-dl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_proxy_call_is_stored_without_its_password_and_gets_it_back_from_the_config() {
        let target = ApiTarget {
            base: "http://127.0.0.1:8888/apiproxy/".into(),
            user: Some("admin".into()),
            password: Some(Secret::new("s3cret")),
        };
        let mut config = crate::plugins::test_support::config();
        config.load_balancer.params.destinations = vec![crate::config::Destination {
            address: "127.0.0.1".into(),
            api: target.clone(),
        }];
        let action = PlannedAction {
            plugin: PluginId::StreamLoadBalancer,
            lane: "127.0.0.1/cam 1".into(),
            stream: Some("cam 1".into()),
            stream_id: None,
            action: Action::EmsCall {
                target,
                command: "pullStream".into(),
                params: Params::new().with("localStreamName", "cam 1"),
            },
        };
        let source = Source {
            file: "events.txt".into(),
            line: 7,
        };
        let dir = temp_dir("proxy");
        let writer = Writer::open(&dir).unwrap();
        writer
            .append(&DeadLetter::new(&action, &source, "FAIL".into(), 3))
            .unwrap();
        let text = std::fs::read_to_string(writer.path()).unwrap();
        assert!(
            !text.contains("s3cret"),
            "the password reached the disk: {text}"
        );
        assert!(text.contains("admin:***@"));
        let letters = read(writer.path()).unwrap();
        let letter = letters[0].letter.as_ref().unwrap();
        assert_eq!(letter.source, source);
        assert_eq!(letter.to_planned(&config), Some(action));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_line_is_reported_with_its_number_and_rewrite_keeps_the_rest() {
        let dir = temp_dir("torn");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let ok = serde_json::to_string(&DeadLetter::new(
            &PlannedAction {
                plugin: PluginId::AmazonHLSUpload,
                lane: "l".into(),
                stream: None,
                stream_id: None,
                action: Action::S3Delete {
                    bucket: "b".into(),
                    key: "k".into(),
                },
            },
            &Source {
                file: "f".into(),
                line: 1,
            },
            "boom".into(),
            1,
        ))
        .unwrap();
        std::fs::write(&path, format!("{ok}\n{{\"time\":1,\"plu")).unwrap();
        let letters = read(&path).unwrap();
        assert_eq!(letters.len(), 2);
        assert!(letters[0].letter.is_ok());
        assert_eq!(letters[0].raw, ok.as_bytes());
        assert_eq!(letters[1].line, 2);
        assert!(letters[1].letter.is_err());
        rewrite(&path, &[ok.as_bytes()]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{ok}\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
