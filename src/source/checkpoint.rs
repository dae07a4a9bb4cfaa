//! Durable positions in the state directory, and the lock that keeps it to one instance.
//!
//! `checkpoints.json` is replaced whole ([`crate::fsutil::write_atomic`]), so a
//! crash leaves either the old or the new file, never a mix. A file that is still unreadable
//! (disk trouble, hand edits) is reported by [`load`], never silently read as "no positions".

use super::fingerprint::FileId;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The checkpoint file's name inside the state directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.json";
/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// The format on disk. A new format is a new variant, so an old emstail refuses a newer file
/// by name instead of misreading it.
#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum OnDisk {
    #[serde(rename = "1")]
    V1 { files: Vec<FilePosition> },
}

/// Where work on one file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub id: FileId,
    /// Where the file was last seen; a hint only, the id is what identifies it.
    pub path: PathBuf,
    /// The byte below which every line's actions have finished.
    pub offset: u64,
    /// The number of lines before `offset`, so line numbers stay right after a restart.
    pub line: u64,
    /// [`super::fingerprint::tail_hash`] at `offset`.
    pub tail_hash: u64,
}

/// What [`load`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub positions: Vec<FilePosition>,
    /// Why the checkpoint file could not be used (names the file), when it exists but is not
    /// readable, empty, torn or of an unknown version. The positions are then empty.
    pub problem: Option<String>,
}

/// Reads `<state_dir>/checkpoints.json`. No file is a first start (no positions, no problem).
pub fn load(state_dir: &Path) -> Loaded {
    let path = state_dir.join(CHECKPOINT_FILE);
    let trouble = |what: String| Loaded {
        positions: Vec::new(),
        problem: Some(format!("checkpoint file {}: {what}", path.display())),
    };
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::default(),
        Err(e) => return trouble(format!("cannot be read: {e}")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return trouble("is empty (likely a crash or a full disk while it was written)".into());
    }
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(e) => return trouble(format!("is not valid JSON, torn or corrupted ({e})")),
    };
    match value.get("version") {
        Some(serde_json::Value::String(v)) if v == "1" => {}
        Some(v) => {
            return trouble(format!(
                "has version {v}, which this emstail does not know (it reads version \"1\")"
            ));
        }
        None => return trouble("has no \"version\" field".into()),
    }
    match serde_json::from_value::<OnDisk>(value) {
        Ok(OnDisk::V1 { files }) => Loaded {
            positions: files,
            problem: None,
        },
        Err(e) => trouble(format!("does not hold version 1 positions ({e})")),
    }
}

/// Replaces `<state_dir>/checkpoints.json` with [`fsutil::write_atomic`] (through
/// `checkpoints.json.tmp`, mode 0600), creating the directory if needed.
pub fn store(state_dir: &Path, positions: &[FilePosition]) -> io::Result<()> {
    fsutil::create_private_dir(state_dir)?;
    let on_disk = OnDisk::V1 {
        files: positions.to_vec(),
    };
    let mut json = serde_json::to_vec_pretty(&on_disk).map_err(io::Error::other)?;
    json.push(b'\n');
    fsutil::write_atomic(&state_dir.join(CHECKPOINT_FILE), &json)
}

/// Writes checkpoints at most once per interval and only when they changed: an fsync per
/// acked line would cost more than the work it protects.
#[derive(Debug)]
pub struct Checkpointer {
    state_dir: PathBuf,
    min_interval: Duration,
    last_attempt: Option<Instant>,
    /// Sorted by id, to compare regardless of the order the caller lists files in.
    last_stored: Option<Vec<FilePosition>>,
}

impl Checkpointer {
    pub fn new(state_dir: &Path, min_interval: Duration) -> Self {
        Checkpointer {
            state_dir: state_dir.to_path_buf(),
            min_interval,
            last_attempt: None,
            last_stored: None,
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Stores the positions `positions()` gives if the interval has passed since the last
    /// attempt and they differ from what was last stored; `Ok(true)` when it wrote. The
    /// closure is not called inside the interval. After an error the next attempt waits for
    /// the interval too, so a failing disk is not hammered.
    pub fn maybe_store(
        &mut self,
        positions: impl FnOnce() -> Vec<FilePosition>,
    ) -> io::Result<bool> {
        let now = Instant::now();
        if self
            .last_attempt
            .is_some_and(|last| now.duration_since(last) < self.min_interval)
        {
            return Ok(false);
        }
        self.last_attempt = Some(now);
        let positions = positions();
        if self.last_stored.as_ref() == Some(&sorted(&positions)) {
            return Ok(false);
        }
        self.write(&positions)?;
        Ok(true)
    }

    /// Stores now, whatever the interval (at shutdown).
    pub fn store_now(&mut self, positions: &[FilePosition]) -> io::Result<()> {
        self.last_attempt = Some(Instant::now());
        self.write(positions)
    }

    fn write(&mut self, positions: &[FilePosition]) -> io::Result<()> {
        self.last_stored = None;
        store(&self.state_dir, positions)?;
        self.last_stored = Some(sorted(positions));
        Ok(())
    }
}

fn sorted(positions: &[FilePosition]) -> Vec<FilePosition> {
    let mut sorted = positions.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id).then(a.offset.cmp(&b.offset)));
    sorted
}

/// Exclusive use of a state directory. The lock is a `flock` on `<state_dir>/lock`, held by the
/// open file: the kernel drops it when the process dies, even by SIGKILL, so a leftover lock
/// file never blocks a restart. Dropping this releases it.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Still locked here: clear the pid so `holder` readers never see a stale one.
        let _ = self.file.set_len(0);
    }
}

/// Creates `state_dir` if needed and locks it for this process, writing its pid into the lock
/// file. Another holder (another process, or another open in this one) makes this fail with a
/// message naming the directory and the holder's pid.
pub fn lock(state_dir: &Path) -> Result<StateLock, String> {
    fsutil::create_private_dir(state_dir)
        .map_err(|e| format!("cannot create state directory {}: {e}", state_dir.display()))?;
    let path = state_dir.join(LOCK_FILE);
    // Not truncated on open: until the lock is ours, the pid in it belongs to the holder.
    let mut file = fsutil::open_lock_file(&path)
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_pid(&mut file)
                .map_or_else(|| "pid unknown".to_string(), |pid| format!("pid {pid}"));
            return Err(format!(
                "state directory {} is in use by another emstail ({holder}; lock file {})",
                state_dir.display(),
                path.display()
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    let write_pid = |file: &mut File| -> io::Result<()> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())
    };
    write_pid(&mut file)
        .map_err(|e| format!("cannot write pid to lock file {}: {e}", path.display()))?;
    Ok(StateLock { file, path })
}

/// The pid of the process holding `state_dir`, if one does (for `emstail status`). It probes
/// with a shared lock for an instant, so an instance starting at that very moment may be
/// refused and must be started again.
pub fn holder(state_dir: &Path) -> io::Result<Option<u32>> {
    let mut file = match File::open(state_dir.join(LOCK_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(read_pid(&mut file)),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a crash between the write and the rename leaves the new content.
    const CHECKPOINT_TMP: &str = "checkpoints.json.tmp";
    use std::process::{Command, Stdio};

    fn position(ino: u64, offset: u64) -> FilePosition {
        FilePosition {
            id: FileId {
                dev: 2049,
                ino,
                head: 0xfeed_0000 + ino,
            },
            path: PathBuf::from(format!("/var/log/ems/events_{ino}.txt")),
            offset,
            line: offset / 100,
            tail_hash: u64::MAX - ino,
        }
    }

    #[test]
    fn round_trip_and_no_temp_file_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let positions = vec![position(7, 1234), position(8, 0)];
        store(dir.path(), &positions).expect("store");
        assert_eq!(
            load(dir.path()),
            Loaded {
                positions: positions.clone(),
                problem: None
            }
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![CHECKPOINT_FILE]);

        // A second store replaces the first whole.
        store(dir.path(), &positions[1..]).expect("store");
        assert_eq!(load(dir.path()).positions, positions[1..].to_vec());
    }

    #[test]
    fn temp_file_left_by_a_crash_is_ignored_then_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        store(dir.path(), &[position(7, 1234)]).expect("store");
        // A crash between writing the temp file and the rename: the old file still counts.
        fs::write(dir.path().join(CHECKPOINT_TMP), b"{\"version\":\"1\",\"fi").expect("write");
        assert_eq!(load(dir.path()).positions, vec![position(7, 1234)]);
        assert_eq!(load(dir.path()).problem, None);
        store(dir.path(), &[position(7, 2000)]).expect("store");
        assert!(!dir.path().join(CHECKPOINT_TMP).exists());
        assert_eq!(load(dir.path()).positions, vec![position(7, 2000)]);
    }

    #[test]
    fn format_on_disk_is_versioned() {
        let dir = tempfile::tempdir().expect("temp dir");
        store(dir.path(), &[position(7, 1234)]).expect("store");
        let text = fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value["version"], "1");
        assert_eq!(value["files"][0]["offset"], 1234);
        assert_eq!(value["files"][0]["id"]["ino"], 7);
        // u64 hashes above 2^53 survive (serde_json keeps integers exact).
        assert_eq!(load(dir.path()).positions[0].tail_hash, u64::MAX - 7);
    }

    #[test]
    fn no_file_is_a_first_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(load(dir.path()), Loaded::default());
        assert_eq!(load(&dir.path().join("not-yet")), Loaded::default());
    }

    fn problem_with(content: &[u8]) -> Loaded {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(CHECKPOINT_FILE), content).expect("write");
        let loaded = load(dir.path());
        let problem = loaded.problem.as_deref().expect("a problem is reported");
        assert!(
            problem.contains(&dir.path().join(CHECKPOINT_FILE).display().to_string()),
            "names the file: {problem}"
        );
        loaded
    }

    #[test]
    fn torn_empty_and_unknown_version_files_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        store(dir.path(), &[position(7, 1234), position(8, 99)]).expect("store");
        let whole = fs::read(dir.path().join(CHECKPOINT_FILE)).expect("read");

        let torn = problem_with(&whole[..whole.len() / 2]);
        assert!(torn.positions.is_empty());
        assert!(
            torn.problem
                .as_deref()
                .is_some_and(|p| p.contains("not valid JSON"))
        );

        let empty = problem_with(b"");
        assert!(empty.positions.is_empty());
        assert!(
            empty
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("empty"))
        );

        let newer = problem_with(br#"{"version":"2","files":[],"extra":1}"#);
        assert!(newer.positions.is_empty());
        assert!(
            newer
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("version \"2\""))
        );

        let unversioned = problem_with(br#"{"files":[]}"#);
        assert!(
            unversioned
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("no \"version\""))
        );

        let wrong_shape = problem_with(br#"{"version":"1","files":[{"offset":"x"}]}"#);
        assert!(wrong_shape.positions.is_empty());
    }

    #[test]
    fn store_creates_a_missing_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("a").join("state");
        store(&state, &[position(1, 10)]).expect("store creates the directory");
        assert_eq!(load(&state).positions, vec![position(1, 10)]);
    }

    #[test]
    fn checkpointer_stores_at_most_once_per_interval() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ckpt = Checkpointer::new(dir.path(), Duration::from_secs(3600));
        assert!(ckpt.maybe_store(|| vec![position(1, 10)]).expect("store"));
        assert_eq!(load(dir.path()).positions, vec![position(1, 10)]);

        // Inside the interval the positions are not even asked for.
        let stored = ckpt
            .maybe_store(|| panic!("not called within the interval"))
            .expect("no store");
        assert!(!stored);
        assert_eq!(load(dir.path()).positions, vec![position(1, 10)]);

        // Shutdown writes at once.
        ckpt.store_now(&[position(1, 30), position(2, 5)])
            .expect("store");
        assert_eq!(
            load(dir.path()).positions,
            vec![position(1, 30), position(2, 5)]
        );
    }

    #[test]
    fn checkpointer_stores_only_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ckpt = Checkpointer::new(dir.path(), Duration::ZERO);
        let both = vec![position(1, 10), position(2, 20)];
        assert!(ckpt.maybe_store(|| both.clone()).expect("first store"));
        // Removed so that any write would show.
        fs::remove_file(dir.path().join(CHECKPOINT_FILE)).expect("remove");
        // Same positions, listed in another order: nothing to write.
        assert!(
            !ckpt
                .maybe_store(|| vec![position(2, 20), position(1, 10)])
                .expect("unchanged")
        );
        assert!(!dir.path().join(CHECKPOINT_FILE).exists());
        assert!(
            ckpt.maybe_store(|| vec![position(1, 11), position(2, 20)])
                .expect("changed")
        );
        assert_eq!(
            load(dir.path()).positions,
            vec![position(1, 11), position(2, 20)]
        );
    }

    #[test]
    fn second_lock_in_this_process_fails_with_the_pid_and_drop_releases() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state");
        let held = lock(&state).expect("first lock");
        assert_eq!(held.path(), state.join(LOCK_FILE));
        let err = lock(&state).expect_err("second lock on its own open file fails");
        let pid = std::process::id().to_string();
        assert!(err.contains(&pid), "names the holder's pid: {err}");
        assert!(
            err.contains(&state.display().to_string()),
            "names the dir: {err}"
        );
        assert_eq!(holder(&state).expect("probe"), Some(std::process::id()));

        drop(held);
        assert_eq!(holder(&state).expect("probe"), None);
        let again = lock(&state).expect("lock is free after drop");
        drop(again);
    }

    #[test]
    fn lock_held_by_another_process_and_freed_by_its_sigkill() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock_path = dir.path().join(LOCK_FILE);
        // util-linux flock(1) takes flock(2) on the file, then runs a shell that writes the
        // holder's pid (flock's, the shell's parent) and waits on its stdin. `-o`: only the
        // flock process holds the lock, so killing it must free the directory.
        let mut child = Command::new("flock")
            .args(["-o", "-x"])
            .arg(&lock_path)
            .args([
                "sh",
                "-c",
                "echo $PPID > \"$0\"; read _",
                &lock_path.to_string_lossy(),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("util-linux flock(1) runs");
        let pid = child.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&lock_path).map_or(true, |t| t.trim() != pid) {
            assert!(
                Instant::now() < deadline,
                "the helper took the lock in time"
            );
            std::thread::sleep(Duration::from_millis(10));
        }

        let err = lock(dir.path()).expect_err("held by another process");
        assert!(
            err.contains(&format!("pid {pid}")),
            "names the holder's pid: {err}"
        );

        child.kill().expect("SIGKILL the holder");
        // `wait` also closes the pipe, which lets the shell flock started exit.
        child.wait().expect("reap the holder");
        let ours = lock(dir.path()).expect("a killed holder leaves no stale lock");
        assert_eq!(
            fs::read_to_string(ours.path()).expect("read").trim(),
            std::process::id().to_string()
        );
    }
}
