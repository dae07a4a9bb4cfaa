//! The dead-letter file: one JSON line per action that failed for good, with the error and
//! where its event came from. Nothing is dropped silently; `emstail dead-letters --retry` runs
//! them again. Secrets are never written: an API target keeps its URL and user name, and the
//! password is taken from the config again on retry.

use crate::action::{
    Action, ApiTarget, CallShown, ControlEscaped, Params, PlannedAction, PluginId, S3Put,
    StreamCheck, TimerGuard,
};
use crate::config::Config;
use crate::event::Source;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const FILE_NAME: &str = "dead-letter.jsonl";

/// Every change to the dead-letter file is made holding this lock (beside it in the state
/// directory): the daemon's appends, and `dead-letters --retry` and `--drop` replacing the file. Without
/// it a letter appended while the file was replaced went to the replaced, deleted file.
pub const LOCK_NAME: &str = "dead-letter.lock";

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
        /// A rotation's guard, kept so that a retry of the letter is guarded too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only_if_armed: Option<TimerGuard>,
    },
    S3Put(S3Put),
    S3Delete {
        bucket: String,
        key: String,
    },
}

/// A stored rotation guard as this version runs it: a rotation's shutdown written by a version
/// that checked only the timer is checked for the recording too (what the flag says is read
/// from the command, the only call the recorder guards that way).
fn stored_guard(command: &str, guard: Option<TimerGuard>) -> Option<TimerGuard> {
    guard.map(|g| match g.stream {
        StreamCheck::Unchecked if command.eq_ignore_ascii_case("shutdownStream") => TimerGuard {
            stream: StreamCheck::OurRecording,
            ..g
        },
        _ => g,
    })
}

impl DeadLetter {
    pub fn new(action: &PlannedAction, source: &Source, error: String, attempts: u32) -> Self {
        let stored = match &action.action {
            Action::EmsCall {
                target,
                command,
                params,
                only_if_armed,
            } => StoredAction::EmsCall {
                target: target.to_string(),
                target_base: target.base.clone(),
                target_user: target.user.clone(),
                command: command.clone(),
                params: params.0.clone(),
                only_if_armed: *only_if_armed,
            },
            Action::S3Put(put) => StoredAction::S3Put(put.clone()),
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
    /// URL and user. `None` when the plugin is not known to this version, and for a
    /// StreamRecorder `shutdownStream` or `removeTimer` without the guard every such call has
    /// had since the rotation checks (a letter of a build before them): EMS hands stream and
    /// timer ids out again from 1 after a restart, so sent unchecked it could shut down or
    /// disarm another stream. `None` too for a letter [`DeadLetter::refused`] names.
    pub fn to_planned(&self, config: &Config) -> Option<PlannedAction> {
        let plugin = PluginId::from_names(&self.plugin, self.rule.as_deref())?;
        if self.refused().is_some() {
            return None;
        }
        if let StoredAction::EmsCall {
            command,
            only_if_armed: None,
            ..
        } = &self.action
            && plugin == PluginId::StreamRecorder
            && ["shutdownStream", "removeTimer"]
                .iter()
                .any(|c| command.eq_ignore_ascii_case(c))
        {
            return None;
        }
        let action = match &self.action {
            StoredAction::EmsCall {
                target_base,
                target_user,
                command,
                params,
                only_if_armed,
                ..
            } => Action::EmsCall {
                target: known_target(config, target_base, target_user.as_deref()),
                command: command.clone(),
                params: Params(params.clone()),
                only_if_armed: stored_guard(command, *only_if_armed),
            },
            StoredAction::S3Put(put) => Action::S3Put(put.clone()),
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

    /// Why this version would not send the letter's action, planned today: a stream name the
    /// stream plugins refuse (see [`crate::plugins::names`]), or a control character in a
    /// value it sends (no object key and no EMS parameter gets one). A letter written before
    /// those checks may hold either, from a name whoever published the stream chose.
    pub fn refused(&self) -> Option<String> {
        let names_checked = ["StreamRecorder", "StreamAutoRouter", "StreamLoadBalancer"];
        if names_checked.contains(&self.plugin.as_str())
            && let Some(stream) = &self.stream
            && let Some(why) = crate::plugins::names::unsafe_reason(stream)
        {
            return Some(format!(
                "stream name {} refused: {why}",
                crate::plugins::names::shown(stream)
            ));
        }
        let control = |text: &str| text.chars().any(char::is_control);
        let held = match &self.action {
            StoredAction::EmsCall { params, .. } => params
                .iter()
                .find(|(key, value)| control(key) || control(value))
                .map(|(key, _)| format!("parameter {}", crate::plugins::names::shown(key))),
            StoredAction::S3Put(S3Put { key, .. }) | StoredAction::S3Delete { key, .. } => {
                control(key).then(|| format!("object key {}", crate::plugins::names::shown(key)))
            }
        };
        held.map(|what| format!("{what} holds a control character"))
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        let what = match &self.action {
            StoredAction::EmsCall {
                target,
                command,
                params,
                only_if_armed,
                ..
            } => {
                let guard = stored_guard(command, *only_if_armed);
                let shown = CallShown {
                    params: &Params(params.clone()),
                    guard: guard.as_ref(),
                };
                format!("ems {target}{command}{shown}")
            }
            // A key holds the names of the stream's folders: one line, whatever they hold.
            StoredAction::S3Put(S3Put { bucket, key, .. }) => {
                format!("put s3://{bucket}/{}", ControlEscaped(key))
            }
            StoredAction::S3Delete { bucket, key } => {
                format!("delete s3://{bucket}/{}", ControlEscaped(key))
            }
        };
        let plugin = match &self.rule {
            Some(rule) => format!("{}:{rule}", self.plugin),
            None => self.plugin.clone(),
        };
        // The stream, which `--stream` selects by and a call by id does not name.
        let stream = match &self.stream {
            Some(name) => format!("stream {}; ", ControlEscaped(name)),
            None => String::new(),
        };
        // The error is written escaped, but a letter of an earlier version, or one written by
        // hand, may hold a control character anywhere.
        format!(
            "{plugin} {what}: {} ({stream}after {} attempts; {})",
            ControlEscaped(&self.error),
            self.attempts,
            self.source
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

/// An exclusive `flock` on [`LOCK_NAME`], held until dropped.
struct FileLock(File);

impl FileLock {
    fn acquire(state_dir: &Path) -> io::Result<FileLock> {
        let path = state_dir.join(LOCK_NAME);
        let file = fsutil::open_lock_file(&path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(fsutil::naming(&path))?;
        Ok(FileLock(file))
    }

    /// [`acquire`](FileLock::acquire), saying so first when another process holds the lock:
    /// a command that waits on a busy daemon does not look hung.
    fn acquire_waiting(state_dir: &Path) -> io::Result<FileLock> {
        let path = state_dir.join(LOCK_NAME);
        let with_path = fsutil::naming(&path);
        let file = fsutil::open_lock_file(&path).map_err(&with_path)?;
        match file.try_lock() {
            Ok(()) => return Ok(FileLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                log::info!("{}: waiting for the lock", path.display());
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(with_path(e)),
        }
        file.lock().map_err(with_path)?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Appends dead letters to `<state_dir>/dead-letter.jsonl`, each line synced.
///
/// Each append holds [`LOCK_NAME`], writes to the file the path names at that moment
/// (`dead-letters --retry` may have replaced it), first cuts off a torn last line (a write
/// cut short by a crash or a full disk), and takes back what it wrote if the write fails.
pub struct Writer {
    state_dir: PathBuf,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

fn open_for_append(path: &Path) -> io::Result<File> {
    fsutil::open_private(
        path,
        OpenOptions::new().read(true).create(true).append(true),
    )
    .map_err(fsutil::naming(path))
}

impl Writer {
    pub fn open(state_dir: &Path) -> io::Result<Writer> {
        fsutil::create_private_dir(state_dir)?;
        let path = state_dir.join(FILE_NAME);
        let file = open_for_append(&path)?;
        Ok(Writer {
            state_dir: state_dir.to_path_buf(),
            path,
            file: Mutex::new(Some(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, letter: &DeadLetter) -> io::Result<()> {
        // Escaped as the dry run's JSON is: an operator who looks at the file with `tail` or
        // `less` sees no stream name drive the terminal or reverse the line.
        let mut line = Vec::with_capacity(512);
        crate::action::write_json_escaped(&mut line, letter)?;
        line.push(b'\n');
        let mut slot = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _lock = FileLock::acquire(&self.state_dir)?;
        let file = self.current(&mut slot)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return write_synced(file, &line);
        }
        let len = cut_torn_tail(file, meta.len(), &self.path)?;
        write_synced(file, &line).inspect_err(|_| {
            // Nothing half-written stays behind; should this fail too, the next append cuts it.
            let _ = file.set_len(len);
        })
    }

    /// The open file, opened again when the path names another file now (or none).
    fn current<'a>(&self, slot: &'a mut Option<File>) -> io::Result<&'a mut File> {
        let on_disk = std::fs::metadata(&self.path).ok();
        let same = match (slot.as_ref(), on_disk) {
            (Some(file), Some(disk)) => file
                .metadata()
                .is_ok_and(|open| (open.dev(), open.ino()) == (disk.dev(), disk.ino())),
            _ => false,
        };
        if !same {
            *slot = None;
            *slot = Some(open_for_append(&self.path)?);
        }
        Ok(slot.as_mut().expect("the slot was filled just above"))
    }
}

fn write_synced(mut file: &File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_data()
}

/// Cuts `file` (of `len` bytes) back to the end of its last complete line; returns its length
/// afterwards. Only a torn line is ever cut: one that a crash or a full disk cut short, which
/// cannot be read as a letter (its action was never acknowledged, and runs again).
fn cut_torn_tail(file: &File, len: u64, path: &Path) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut last = [0u8; 1];
    if len == 0 || (file.read_at(&mut last, len - 1)? == 1 && last[0] == b'\n') {
        return Ok(len);
    }
    let mut buf = vec![0u8; CHUNK as usize];
    let keep = loop {
        let start = end.saturating_sub(CHUNK);
        let n = fsutil::read_at_most(file, &mut buf[..(end - start) as usize], start)?;
        if let Some(i) = memchr::memrchr(b'\n', &buf[..n]) {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    file.set_len(keep)?;
    file.sync_data()?;
    log::warn!(
        "{}: cut off a torn last line of {} bytes (a write cut short by a crash or a full disk)",
        path.display(),
        len - keep
    );
    Ok(keep)
}

/// Removes from the dead-letter file of `state_dir` one line for each of `done` (raw lines
/// as [`for_each`] handed them out), holding the append lock: letters appended since they were
/// read, and letters another retry already removed, come out right.
pub fn remove_done(state_dir: &Path, done: &[&[u8]]) -> io::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let mut left: HashMap<&[u8], usize> = HashMap::new();
    for raw in done {
        *left.entry(raw).or_default() += 1;
    }
    drop_where(state_dir, |entry| {
        match left.get_mut(entry.raw.as_slice()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    })?;
    Ok(())
}

/// What [`drop_where`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub dropped: u64,
    /// The letters left, readable or not.
    pub kept: u64,
}

/// Replaces the dead-letter file of `state_dir` with its lines for which `drop` is false,
/// holding the append lock from the reading to the rename: a letter the daemon appends
/// meanwhile waits for the lock and goes to the new file. Read a line at a time and written
/// through a temp file ([`fsutil::write_atomic_with`]), so a file of any size is rewritten
/// in constant memory; every line kept, blank or torn ones too, is kept byte for byte.
pub fn drop_where(state_dir: &Path, mut drop: impl FnMut(&Entry) -> bool) -> io::Result<Dropped> {
    let path = state_dir.join(FILE_NAME);
    if !path.exists() {
        // Nothing to drop, and no lock file to leave in a state directory that may not exist.
        return Ok(Dropped::default());
    }
    let _lock = FileLock::acquire_waiting(state_dir)?;
    // Never waiting for a writer (a FIFO) while the daemon's appends wait for the lock, and
    // only a regular file is rewritten: a FIFO or a device (a link to /dev/null that discards
    // letters) would be replaced by a regular file.
    let Some(file) = fsutil::open_regular(&path)? else {
        return Ok(Dropped::default());
    };
    let with_path = fsutil::naming(&path);
    let reader = BufReader::with_capacity(64 << 10, file);
    let mut counts = Dropped::default();
    fsutil::write_atomic_with(&path, |out| {
        each_line(reader, |line, entry| {
            if let Some(entry) = entry {
                if drop(&entry) {
                    counts.dropped += 1;
                    return Ok(());
                }
                counts.kept += 1;
            }
            out.write_all(line)
        })
    })
    .map_err(with_path)?;
    Ok(counts)
}

/// Each line of a dead-letter file read from `reader`, as it is (its newline kept), with the
/// letter it holds: `None` for a blank line. The one reading of the file's lines, so that the
/// letters a listing or a retry saw are the very ones a drop finds.
fn each_line(
    mut reader: impl BufRead,
    mut f: impl FnMut(&[u8], Option<Entry>) -> io::Result<()>,
) -> io::Result<()> {
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let entry = (!body.iter().all(u8::is_ascii_whitespace)).then(|| Entry {
            line: number,
            letter: serde_json::from_slice(body).map_err(|e| e.to_string()),
            raw: body.to_vec(),
        });
        f(&line, entry)?;
    }
}

/// Which letters a command works on: those that match every selector given (any of the
/// names, for one repeated), or all of them when none is given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// `DeadLetter::plugin`: the config block name, `Rules` for a custom rule.
    pub plugins: Vec<String>,
    /// `DeadLetter::rule`: the custom rule's name.
    pub rules: Vec<String>,
    /// `DeadLetter::stream`, exactly.
    pub streams: Vec<String>,
    /// Written before this time (UTC seconds).
    pub before: Option<i64>,
    /// Unreadable, or one [`DeadLetter::to_planned`] gives `None` for (a plugin this version
    /// does not know, a recorder shutdown or timer removal without its rotation guard): what
    /// `--retry` keeps as "cannot be run again by this version".
    pub unrunnable: bool,
}

impl Selection {
    /// Whether no selector is given: every letter is selected.
    pub fn is_everything(&self) -> bool {
        *self == Selection::default()
    }

    pub fn matches(&self, entry: &Entry, config: &Config) -> bool {
        let Ok(letter) = &entry.letter else {
            // Nothing is known of an unreadable line but that it cannot be run: no other
            // selector can match it.
            return self.plugins.is_empty()
                && self.rules.is_empty()
                && self.streams.is_empty()
                && self.before.is_none();
        };
        let any = |names: &[String], value: Option<&str>| {
            names.is_empty() || value.is_some_and(|v| names.iter().any(|n| n == v))
        };
        any(&self.plugins, Some(&letter.plugin))
            && any(&self.rules, letter.rule.as_deref())
            && any(&self.streams, letter.stream.as_deref())
            && self
                .before
                .is_none_or(|t| i64::try_from(letter.time).is_ok_and(|time| time < t))
            && (!self.unrunnable || letter.to_planned(config).is_none())
    }
}

/// Every readable dead letter of `path` with its line number; unreadable lines (a torn last
/// line after a crash) are returned as errors with their line number, not dropped.
#[cfg(test)]
pub fn read(path: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for_each(path, |entry| {
        out.push(entry);
        Ok(())
    })?;
    Ok(out)
}

/// The entries of `path` handed to `f` one at a time, as they are read, so that a listing holds
/// one letter at a time whatever the file's size. An error of `f` ends the reading. Only the
/// letters the file held when it was opened are read: a retry that runs for long does not
/// also take up the letters the daemon appends meanwhile. A file that is not a regular one is
/// refused without waiting ([`fsutil::open_regular`]).
pub fn for_each(path: &Path, mut f: impl FnMut(Entry) -> io::Result<()>) -> io::Result<()> {
    let Some(file) = fsutil::open_regular(path)? else {
        return Ok(());
    };
    let len = file.metadata().map_err(fsutil::naming(path))?.len();
    each_line(BufReader::new(io::Read::take(file, len)), |_, entry| {
        entry.map_or(Ok(()), &mut f)
    })
}

/// How many letters `path` holds, as [`for_each`] would hand them out (every line that is not blank,
/// readable or not), read a block at a time: `emstail status` counts a file of any size in
/// constant memory rather than parsing every letter. Refuses what [`fsutil::open_regular`] refuses.
pub fn count(path: &Path) -> io::Result<u64> {
    let Some(mut file) = fsutil::open_regular(path)? else {
        return Ok(0);
    };
    let mut buf = vec![0u8; 64 << 10];
    let (mut letters, mut in_letter) = (0, false);
    loop {
        let n = match io::Read::read(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fsutil::naming(path)(e)),
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                letters += u64::from(in_letter);
                in_letter = false;
            } else if !b.is_ascii_whitespace() {
                in_letter = true;
            }
        }
    }
    Ok(letters + u64::from(in_letter))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Secret;

    #[test]
    fn count_agrees_with_read_whatever_the_lines_hold() {
        let dir = temp_dir("count");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        assert_eq!(count(&path).unwrap(), 0, "no file");
        for content in [
            &b""[..],
            b"\n\n  \n",
            b"{\"a\":1}\n",
            b"{\"a\":1}\n\n \t\n{not json}\n{\"torn\":",
            b"{}\r\n{}",
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(
                count(&path).unwrap(),
                read(&path).unwrap().len() as u64,
                "{}",
                String::from_utf8_lossy(content)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

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
                only_if_armed: None,
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

    /// A stream name that would drive a terminal (U+009B is a CSI) or reverse the line
    /// (U+202E) is written as JSON escapes, and the letter reads back as it was. No plugin
    /// sends such a name now (a letter of a build before that), so it is not run again.
    #[test]
    fn a_hostile_name_is_written_escaped_and_reads_back_whole() {
        let name = "cam\u{9b}2J\u{202e}1\u{7f}";
        let action = PlannedAction {
            plugin: PluginId::StreamLoadBalancer,
            lane: name.into(),
            stream: Some(name.into()),
            stream_id: None,
            action: Action::EmsCall {
                target: ApiTarget::plain("http://127.0.0.1:7777/"),
                command: "pullStream".into(),
                params: Params::new().with("localStreamName", name),
                only_if_armed: None,
            },
        };
        let source = Source {
            file: format!("events{name}.txt"),
            line: 7,
        };
        let dir = temp_dir("hostile");
        let writer = Writer::open(&dir).unwrap();
        writer
            .append(&DeadLetter::new(
                &action,
                &source,
                format!("FAIL {name}"),
                3,
            ))
            .unwrap();
        let text = std::fs::read_to_string(writer.path()).unwrap();
        for raw in ['\u{9b}', '\u{202e}', '\u{7f}'] {
            assert!(!text.contains(raw), "{raw:?} written raw: {text:?}");
        }
        assert!(text.contains(r"cam\u009b2J\u202e1\u007f"), "{text}");
        let letters = read(writer.path()).unwrap();
        let letter = letters[0].letter.as_ref().unwrap();
        assert_eq!(letter.source, source);
        assert_eq!(letter.error, format!("FAIL {name}"));
        assert_eq!(letter.stream.as_deref(), Some(name));
        let StoredAction::EmsCall { params, .. } = &letter.action else {
            panic!("an EMS call: {letter:?}");
        };
        assert_eq!(params, &[("localStreamName".to_string(), name.to_string())]);
        let config = crate::plugins::test_support::config();
        assert_eq!(letter.to_planned(&config), None);
        assert_eq!(
            letter.refused().as_deref(),
            Some(
                r"stream name cam\u{9b}2J\u{202e}1\u{7f} refused: it contains a control character"
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A call of `plugin` about recording 15 of stream cam1, as the recorder makes them.
    fn call_about_cam1(
        plugin: PluginId,
        command: &str,
        params: Params,
        guard: Option<TimerGuard>,
    ) -> PlannedAction {
        PlannedAction {
            plugin,
            lane: "cam1".into(),
            stream: Some("cam1".into()),
            stream_id: Some(15),
            action: Action::EmsCall {
                target: crate::plugins::test_support::config().service.ems_api,
                command: command.into(),
                params,
                only_if_armed: guard,
            },
        }
    }

    /// `action`'s dead letter as the file holds it, and as read back from there.
    fn through_a_letter(action: &PlannedAction) -> (String, DeadLetter) {
        let source = Source {
            file: "events.txt".into(),
            line: 9,
        };
        let text = serde_json::to_string(&DeadLetter::new(action, &source, "x".into(), 1))
            .expect("a letter");
        let back = serde_json::from_str(&text).expect("read back");
        (text, back)
    }

    /// A rotation's call that failed for good keeps its guard: `dead-letters --retry` sends it
    /// only while its timer is armed (and, the shutdown, its stream is our recording) too. A
    /// shutdown letter of the version that checked only the timer is checked for the
    /// recording as well; a letter of an earlier version has no guard, and is not run again.
    #[test]
    fn a_rotation_letter_keeps_its_guard_and_an_old_letter_has_none() {
        let config = crate::plugins::test_support::config();
        let guard = TimerGuard::rotation(4, 15, StreamCheck::OurRecording);
        let rotation = |command: &str, guard: TimerGuard| {
            let params = Params::new().with("id", "15").with("permanently", "0");
            call_about_cam1(PluginId::StreamRecorder, command, params, Some(guard))
        };
        let action = rotation("shutdownStream", guard);
        let (text, back) = through_a_letter(&action);
        let stored = r#","only_if_armed":{"timer_id":4,"unique_id":15,"recording":true}"#;
        assert!(text.contains(stored), "{text}");
        assert_eq!(back.to_planned(&config), Some(action.clone()));
        assert!(
            back.summary().contains(
                "shutdownStream id=15 permanently=0 [only while timer 4 armed for _uniqueId 15 \
                 and stream 15 is our recording]"
            ),
            "{}",
            back.summary()
        );

        let timer_only = r#","only_if_armed":{"timer_id":4,"unique_id":15}"#;
        let older: DeadLetter = serde_json::from_str(&text.replace(stored, timer_only)).unwrap();
        assert_eq!(older.to_planned(&config), Some(action));
        let removal = rotation("removeTimer", guard.timer_only());
        let (removal_text, back) = through_a_letter(&removal);
        assert!(removal_text.contains(timer_only), "{removal_text}");
        assert_eq!(back.to_planned(&config), Some(removal));

        let old: DeadLetter = serde_json::from_str(&text.replace(stored, "")).unwrap();
        assert_eq!(old.to_planned(&config), None, "unguarded: not run again");
    }

    /// A closed recording's timer removal keeps its guard, without a timer id, through a
    /// letter; a guard that claims both stream checks is not read.
    #[test]
    fn a_closed_recordings_removal_letter_keeps_its_guard() {
        let config = crate::plugins::test_support::config();
        let guard = Some(TimerGuard::closed(15));
        let removal = call_about_cam1(
            PluginId::StreamRecorder,
            "removeTimer",
            Params::new(),
            guard,
        );
        let (text, back) = through_a_letter(&removal);
        let stored = r#""params":[],"only_if_armed":{"unique_id":15,"closed":true}"#;
        assert!(text.contains(stored), "{text}");
        assert_eq!(back.to_planned(&config), Some(removal));
        assert!(
            back.summary().contains(
                "removeTimer id=<its timerId> [only while a timer is armed for _uniqueId 15 \
                 and EMS lists no stream 15]"
            ),
            "{}",
            back.summary()
        );
        let both = text.replace(r#""closed":true"#, r#""closed":true,"recording":true"#);
        assert!(serde_json::from_str::<DeadLetter>(&both).is_err());
    }

    /// The removal a replay issues for a recording that rotated, then closed, in its window:
    /// its rotation's timer, only while EMS lists no stream with its id. Both parts of the
    /// guard read back, and the letter's summary shows them.
    #[test]
    fn a_rotated_then_closed_recordings_removal_letter_keeps_its_timer_and_its_check() {
        let config = crate::plugins::test_support::config();
        let guard = TimerGuard {
            timer_id: Some(4),
            unique_id: 15,
            stream: StreamCheck::NotListed,
        };
        let params = Params::new().with("id", "4");
        let removal = call_about_cam1(PluginId::StreamRecorder, "removeTimer", params, Some(guard));
        let (text, back) = through_a_letter(&removal);
        let stored = r#","only_if_armed":{"timer_id":4,"unique_id":15,"closed":true}"#;
        assert!(text.contains(stored), "{text}");
        assert_eq!(back.to_planned(&config), Some(removal));
        assert!(
            back.summary().contains(
                "removeTimer id=4 [only while timer 4 armed for _uniqueId 15 and EMS lists no \
                 stream 15]"
            ),
            "{}",
            back.summary()
        );
    }

    /// The upload form of the file is read as earlier versions wrote it, and written the same.
    #[test]
    fn an_upload_dead_letter_keeps_its_on_disk_form() {
        let written = r#"{"time":1700000000,"plugin":"AmazonHLSUpload","lane":"AmazonHLSUpload:G","action":{"kind":"s3_put","bucket":"media","key":"G/S/seg_1.ts","path":"/var/www/G/S/seg_1.ts","content_type":"video/mp2t","cache_control":"max-age=86400","acl":"public-read","optional":false},"error":"403 Forbidden","attempts":3,"source":{"file":"events.txt","line":7}}"#;
        let planned = PlannedAction {
            plugin: PluginId::AmazonHLSUpload,
            lane: "AmazonHLSUpload:G".into(),
            stream: None,
            stream_id: None,
            action: Action::S3Put(S3Put {
                bucket: "media".into(),
                key: "G/S/seg_1.ts".into(),
                path: "/var/www/G/S/seg_1.ts".into(),
                content_type: "video/mp2t".into(),
                cache_control: "max-age=86400".into(),
                acl: Some("public-read".into()),
                optional: false,
            }),
        };
        let read: DeadLetter = serde_json::from_str(written).expect("an earlier version's line");
        let config = crate::plugins::test_support::config();
        assert_eq!(read.to_planned(&config), Some(planned.clone()));
        let source = Source {
            file: "events.txt".into(),
            line: 7,
        };
        let mut again = DeadLetter::new(&planned, &source, "403 Forbidden".into(), 3);
        again.time = 1_700_000_000;
        assert_eq!(serde_json::to_string(&again).unwrap(), written);
        // Without an ACL and from a version before `optional`: both fields are optional.
        let older = written.replace(r#","acl":"public-read","optional":false"#, "");
        let read: DeadLetter = serde_json::from_str(&older).expect("a line without acl");
        let Some(PlannedAction {
            action: Action::S3Put(S3Put { acl, optional, .. }),
            ..
        }) = read.to_planned(&config)
        else {
            panic!("an upload reads back as an upload");
        };
        assert_eq!((acl, optional), (None, false));
    }

    #[test]
    fn a_torn_line_is_reported_with_its_number_and_a_drop_of_it_keeps_the_rest() {
        let dir = temp_dir("torn");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let ok = serde_json::to_string(&letter("k")).unwrap();
        std::fs::write(&path, format!("{ok}\n{{\"time\":1,\"plu")).unwrap();
        let letters = read(&path).unwrap();
        assert_eq!(letters.len(), 2);
        assert!(letters[0].letter.is_ok());
        assert_eq!(letters[0].raw, ok.as_bytes());
        assert_eq!(letters[1].line, 2);
        assert!(letters[1].letter.is_err());
        drop_where(&dir, |e| e.letter.is_err()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{ok}\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn letter(key: &str) -> DeadLetter {
        DeadLetter::new(
            &PlannedAction {
                plugin: PluginId::AmazonHLSUpload,
                lane: "l".into(),
                stream: None,
                stream_id: None,
                action: Action::S3Delete {
                    bucket: "b".into(),
                    key: key.into(),
                },
            },
            &Source {
                file: "f".into(),
                line: 1,
            },
            "boom".into(),
            1,
        )
    }

    /// A rotation's shutdown or timer removal written before those calls were guarded names
    /// ids EMS may have handed to another stream since: it is kept, not run again, and shows
    /// as unrunnable. A custom rule's unguarded shutdown runs as it always did.
    #[test]
    fn an_unguarded_recorder_shutdown_or_timer_removal_is_not_run_again() {
        let config = crate::plugins::test_support::config();
        let call = |plugin: PluginId, command: &str, guard: Option<TimerGuard>| {
            let action = call_about_cam1(plugin, command, Params::new().with("id", "15"), guard);
            through_a_letter(&action).1.to_planned(&config)
        };
        let guard = TimerGuard::rotation(4, 15, StreamCheck::OurRecording);
        for command in ["shutdownStream", "removeTimer", "SHUTDOWNSTREAM"] {
            assert_eq!(
                call(PluginId::StreamRecorder, command, None),
                None,
                "{command}"
            );
            assert!(call(PluginId::StreamRecorder, command, Some(guard)).is_some());
        }
        assert!(call(PluginId::StreamRecorder, "record", None).is_some());
        let rule = PluginId::from_names("Rules", Some("stop")).expect("a rule's id");
        assert!(call(rule, "shutdownStream", None).is_some());
    }

    /// `emstail dead-letters` prints one line per letter to a terminal: an object key holds
    /// the stream folder's name, which whoever publishes the stream chooses.
    #[test]
    fn a_summary_is_one_line_whatever_the_key_or_params_hold() {
        let key = "hls/cam\n2026-12-05 forged line\u{1b}]0;title\u{7}/seg_1.ts";
        let shown = letter(key).summary();
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(
            shown.contains("hls/cam\\n2026-12-05 forged line"),
            "{shown}"
        );
        let mut call = letter("k");
        call.action = StoredAction::EmsCall {
            target: "http://127.0.0.1:7777/".into(),
            target_base: "http://127.0.0.1:7777/".into(),
            target_user: None,
            command: "shutdownStream".into(),
            params: vec![("id".into(), "5\r\nforged".into())],
            only_if_armed: None,
        };
        call.stream = Some("cam\n1\u{200b}".into());
        let shown = call.summary();
        assert!(!shown.chars().any(char::is_control), "{shown}");
        // The stream it is about, which a call by id does not name: `--stream` selects by it.
        assert!(
            shown.contains("(stream cam\\n1\\u{200b}; after 1 attempts;"),
            "{shown}"
        );
        // The error and the source as a letter written before errors were escaped holds them:
        // a path from the event in the error, a log file named anyhow.
        let old = r#"{"time":1,"plugin":"AmazonHLSUpload","lane":"l","action":{"kind":"s3_delete","bucket":"b","key":"k"},"error":"permanent: /var/www/cam\n2026-12-05 forged\u001b[2J: refused","attempts":1,"source":{"file":"events\u009b1m.log","line":1}}"#;
        let old: DeadLetter = serde_json::from_str(old).expect("a letter of an earlier version");
        let shown = old.summary();
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(
            shown.contains("cam\\n2026-12-05 forged\\u{1b}[2J"),
            "{shown}"
        );
    }

    fn keys(path: &Path) -> Vec<String> {
        read(path)
            .unwrap()
            .into_iter()
            .map(|e| match e.letter {
                Ok(DeadLetter {
                    action: StoredAction::S3Delete { key, .. },
                    ..
                }) => key,
                other => panic!("line {}: {other:?}", e.line),
            })
            .collect()
    }

    #[test]
    fn a_letter_written_after_a_retry_replaced_the_file_is_in_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Writer::open(dir.path()).unwrap();
        daemon.append(&letter("a")).unwrap();
        let done = read(daemon.path()).unwrap();
        // `dead-letters --retry` ran "a" again with success and replaced the file.
        remove_done(dir.path(), &[done[0].raw.as_slice()]).unwrap();
        daemon.append(&letter("b")).unwrap();
        assert_eq!(keys(daemon.path()), ["b"]);
    }

    #[test]
    fn letters_written_while_a_retry_ran_are_kept_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Writer::open(dir.path()).unwrap();
        daemon.append(&letter("a")).unwrap();
        daemon.append(&letter("b")).unwrap();
        let read_by_retry = read(daemon.path()).unwrap();
        daemon.append(&letter("c")).unwrap();
        // The retry ran "a" with success; "b" still fails; "c" it never saw.
        remove_done(dir.path(), &[read_by_retry[0].raw.as_slice()]).unwrap();
        assert_eq!(keys(daemon.path()), ["b", "c"]);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_before_the_next_letter_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let whole = serde_json::to_string(&letter("a")).unwrap();
        std::fs::write(&path, format!("{whole}\n{{\"time\":1,\"plu")).unwrap();
        let writer = Writer::open(dir.path()).unwrap();
        writer.append(&letter("b")).unwrap();
        assert_eq!(keys(&path), ["a", "b"]);
        // A file that is nothing but a torn line.
        std::fs::write(&path, "{\"time\":1,\"plu").unwrap();
        writer.append(&letter("c")).unwrap();
        assert_eq!(keys(&path), ["c"]);
    }

    /// A letter of `plugin` (and `rule`) for `stream`, written at `time`.
    fn letter_of(plugin: &str, rule: Option<&str>, stream: Option<&str>, time: u64) -> String {
        let mut l = letter("k");
        l.plugin = plugin.into();
        l.rule = rule.map(str::to_string);
        l.stream = stream.map(str::to_string);
        l.time = time;
        serde_json::to_string(&l).unwrap()
    }

    /// The file the selection and drop tests work on, line by line: a recorder letter of
    /// cam1, a router letter of cam2, a rule's letter of cam1, one of a plugin this version
    /// does not know, and an unreadable line.
    fn mixed() -> Vec<String> {
        vec![
            letter_of("StreamRecorder", None, Some("cam1"), 100),
            letter_of("StreamAutoRouter", None, Some("cam2"), 200),
            letter_of("Rules", Some("r1"), Some("cam1"), 300),
            letter_of("StreamTranscoder", None, Some("cam1"), 50),
            "{\"time\":1,\"plu".into(),
        ]
    }

    #[test]
    fn a_selection_takes_the_letters_that_match_every_selector_given() {
        let config = crate::plugins::test_support::config();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, mixed().join("\n")).unwrap();
        let entries = read(&path).unwrap();
        let chosen = |select: Selection| -> Vec<u64> {
            entries
                .iter()
                .filter(|e| select.matches(e, &config))
                .map(|e| e.line)
                .collect()
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(chosen(Selection::default()), [1, 2, 3, 4, 5]);
        let plugins = |n: &[&str]| Selection {
            plugins: names(n),
            ..Selection::default()
        };
        assert_eq!(chosen(plugins(&["StreamRecorder"])), [1]);
        assert_eq!(chosen(plugins(&["StreamRecorder", "Rules"])), [1, 3]);
        let rules = Selection {
            rules: names(&["r1"]),
            ..Selection::default()
        };
        assert_eq!(chosen(rules), [3]);
        let streams = Selection {
            streams: names(&["cam1"]),
            ..Selection::default()
        };
        assert_eq!(chosen(streams.clone()), [1, 3, 4]);
        let before = Selection {
            before: Some(200),
            ..Selection::default()
        };
        assert_eq!(chosen(before), [1, 4], "strictly before");
        let unrunnable = Selection {
            unrunnable: true,
            ..Selection::default()
        };
        assert_eq!(chosen(unrunnable.clone()), [4, 5]);
        let old_unrunnable = Selection {
            before: Some(100),
            ..unrunnable
        };
        assert_eq!(
            chosen(old_unrunnable),
            [4],
            "the unreadable line has no time"
        );
        let all_of = Selection {
            before: Some(301),
            unrunnable: false,
            plugins: names(&["Rules", "StreamAutoRouter"]),
            ..streams
        };
        assert_eq!(chosen(all_of), [3]);
    }

    #[test]
    fn a_drop_removes_the_lines_chosen_and_keeps_every_other_byte_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let lines = mixed();
        // CRLF, a blank line and a torn last line without its newline stay as they are.
        let before = format!(
            "{}\r\n{}\n\n{}\n{}\n{}",
            lines[0], lines[1], lines[2], lines[3], lines[4]
        );
        std::fs::write(&path, &before).unwrap();
        // Line numbers count the blank line, as a listing shows them.
        let dropped = drop_where(dir.path(), |e| e.line == 2 || e.line == 6).unwrap();
        assert_eq!(
            dropped,
            Dropped {
                dropped: 2,
                kept: 3
            }
        );
        let after = format!("{}\r\n\n{}\n{}\n", lines[0], lines[2], lines[3]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(!fsutil::temp_path(&path).exists());
        // Nothing chosen, no file: nothing changes.
        assert_eq!(drop_where(dir.path(), |_| false).unwrap().dropped, 0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            drop_where(empty.path(), |_| true).unwrap(),
            Dropped::default()
        );
        assert!(!empty.path().join(FILE_NAME).exists());
    }

    /// Waits (at most 10 s) until a process waits for the `flock` of the file `path`.
    fn wait_for_a_waiter(path: &Path) {
        let ino = std::fs::metadata(path).unwrap().ino();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let locks = std::fs::read_to_string("/proc/locks").unwrap();
            if locks
                .lines()
                .any(|l| l.contains("-> FLOCK") && l.contains(&format!(":{ino} ")))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("nobody waits for the lock of {}", path.display());
    }

    /// The daemon appends while `--drop` rewrites the file: the letter waits for the lock and
    /// goes to the new file, not to the one replaced.
    #[test]
    fn a_letter_appended_while_a_drop_runs_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Writer::open(dir.path()).unwrap();
        daemon.append(&letter("a")).unwrap();
        daemon.append(&letter("b")).unwrap();
        std::thread::scope(|scope| {
            let mut appending = None;
            drop_where(dir.path(), |entry| {
                if appending.is_none() {
                    appending = Some(scope.spawn(|| daemon.append(&letter("c"))));
                    wait_for_a_waiter(&dir.path().join(LOCK_NAME));
                }
                entry.line == 1
            })
            .unwrap();
            appending.unwrap().join().unwrap().unwrap();
        });
        assert_eq!(keys(daemon.path()), ["b", "c"]);
    }

    /// A dead-letter file that is not a regular file (a FIFO; a link to `/dev/null` that
    /// discards letters) is left as it is: a drop says so, rather than waiting for a writer
    /// while it holds the lock the daemon appends under, or putting a regular file in its
    /// place.
    #[test]
    fn a_drop_leaves_a_file_that_is_not_a_regular_one_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let state_dir = dir.path().to_path_buf();
        std::thread::spawn(move || tx.send(drop_where(&state_dir, |_| true)));
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the drop waits for a writer to the FIFO")
            .expect_err("a FIFO is refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&kind));
        assert!(!fsutil::temp_path(&path).exists());
        drop(FileLock::acquire(dir.path()).expect("the lock is free again"));

        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/null", &path).unwrap();
        let e = drop_where(dir.path(), |_| true).expect_err("a device is refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    /// A FIFO in the dead-letter file's place, with no reader: the daemon's appends fail once
    /// its buffer is full (the letters wait in memory, as on a full disk) rather than hang
    /// the writer, and with it every command that takes the append lock.
    #[test]
    fn appends_to_a_fifo_without_a_reader_fail_rather_than_hang() {
        let dir = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join(FILE_NAME))
            .status()
            .unwrap();
        assert!(made.success());
        let writer = Writer::open(dir.path()).expect("a FIFO opens for reading and writing");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // 200 letters are more than a pipe's 64 KiB buffer.
            let failed = (0..200)
                .filter(|i| writer.append(&letter(&format!("{i:0>400}"))).is_err())
                .count();
            tx.send(failed)
        });
        let failed = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the appends hang on the FIFO");
        assert!(failed > 0, "every letter went into a FIFO nobody reads");
        drop(FileLock::acquire(dir.path()).expect("the lock is free again"));
    }
}
