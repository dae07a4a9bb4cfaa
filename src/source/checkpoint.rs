//! Durable positions in the state directory, and the lock that keeps it to one instance.
//!
//! The checkpoint is written to three files, each overwritten in place: a header line with a
//! sequence number, the body's length and its CRC-32C, then the positions as JSON. At most once
//! per [`SYNC_EVERY`] a write is made durable with `fdatasync`, and goes to whichever of
//! `checkpoints.0` and `checkpoints.1` does not hold the newest durable checkpoint, so a crash
//! or power loss in the middle of one leaves the other whole. The writes between (while work
//! finishes, up to ten a second) go to `checkpoints.2` without a sync: a process that dies,
//! even by SIGKILL, leaves that write in the page cache, and only a power loss or a kernel crash
//! can lose it, which then costs at most [`SYNC_EVERY`] of checkpoint. [`load`] takes the newest
//! file whose CRC holds. The files keep their size (at least [`SLOT_SIZE`]), so a write needs
//! no new block and no metadata: it costs about a seventh of the CPU of a replace through a
//! temp file, a rename and two fsyncs, and it still works on a full disk.
//!
//! `checkpoints.json`, which older emstails replaced whole, is read when no file holds a
//! checkpoint, and removed after the first write. A checkpoint that is there but unreadable
//! (disk trouble, hand edits) is reported by [`load`], never silently read as "no positions".

use super::fingerprint::FileId;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The checkpoint's files inside the state directory: the first two take turns holding the
/// durable checkpoint; the third holds the writes between, not synced.
pub const SLOT_FILES: [&str; 3] = ["checkpoints.0", "checkpoints.1", "checkpoints.2"];
/// The slot of the writes that are not synced.
const UNSYNCED: usize = 2;
/// How often a checkpoint write is made durable at most; the newest checkpoint is durable at
/// most this long after it was written (see [`Checkpointer::unsynced`]).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// The checkpoint file of older emstails (replaced whole), read when no slot holds one.
pub const OLD_CHECKPOINT_FILE: &str = "checkpoints.json";
/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";
/// The size a slot file is padded to: checkpoints up to it are written without growing the
/// file (a few dozen log files' positions fit).
pub const SLOT_SIZE: usize = 4096;
/// What a slot's header line starts with.
const SLOT_MAGIC: &str = "emstail-checkpoint";
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
/// Why a checkpoint file with nothing in it is refused.
const EMPTY: &str = "is empty (likely a crash or a full disk while it was written)";

/// The format of the positions. A new format is a new variant, so an old emstail refuses a
/// newer file by name instead of misreading it.
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
    /// Read to its end, a newer file begun, and every action of it finished: nothing of it is
    /// left to do, so its going away (a clean-up of old files) loses nothing. Absent (false)
    /// in the checkpoints of earlier versions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// What [`load`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub positions: Vec<FilePosition>,
    /// Why the checkpoint could not be used (names the files), when one is there but is not
    /// readable, empty, torn or of an unknown version. The positions are then empty.
    pub problem: Option<String>,
    /// Whether a checkpoint file is there, whole or not: an earlier run may have acted.
    pub found: bool,
}

/// What one slot file holds.
#[derive(Debug, PartialEq)]
enum Slot {
    Missing,
    /// Created, never written whole: a crash during the first write, or the second slot
    /// before its first turn.
    Empty,
    Torn(String),
    Whole {
        seq: u64,
        positions: Vec<FilePosition>,
    },
}

/// Reads the checkpoint: the newest whole slot file, else `checkpoints.json` of an older
/// emstail. No file is a first start (no positions, no problem).
pub fn load(state_dir: &Path) -> Loaded {
    let slots = SLOT_FILES.map(|name| read_slot(&state_dir.join(name)));
    if let Some((_, _, positions)) = newest(&slots) {
        return Loaded {
            positions: positions.clone(),
            problem: None,
            found: true,
        };
    }
    let old = state_dir.join(OLD_CHECKPOINT_FILE);
    match fs::read(&old) {
        Ok(bytes) => {
            return match positions_from_json(&bytes) {
                Ok(positions) => Loaded {
                    positions,
                    problem: None,
                    found: true,
                },
                Err(e) => Loaded {
                    positions: Vec::new(),
                    problem: Some(format!("checkpoint file {}: {e}", old.display())),
                    found: true,
                },
            };
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Loaded {
                positions: Vec::new(),
                problem: Some(format!(
                    "checkpoint file {}: cannot be read: {e}",
                    old.display()
                )),
                found: true,
            };
        }
    }
    let mut problems = Vec::new();
    for (name, slot) in SLOT_FILES.iter().zip(&slots) {
        let path = state_dir.join(name);
        match slot {
            Slot::Missing | Slot::Whole { .. } => {}
            Slot::Empty => problems.push(format!("checkpoint file {}: {EMPTY}", path.display())),
            Slot::Torn(why) => problems.push(format!("checkpoint file {}: {why}", path.display())),
        }
    }
    Loaded {
        positions: Vec::new(),
        found: !problems.is_empty(),
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// When a checkpoint was last written in `state_dir`: the newest modification time of its
/// files. Files of the log that changed after it got their lines while emstail was stopped.
pub fn last_written(state_dir: &Path) -> Option<std::time::SystemTime> {
    SLOT_FILES
        .iter()
        .chain([&OLD_CHECKPOINT_FILE])
        .filter_map(|name| fs::metadata(state_dir.join(name)).ok()?.modified().ok())
        .max()
}

/// The index, sequence number and positions of the newest whole slot.
fn newest(slots: &[Slot]) -> Option<(usize, u64, &Vec<FilePosition>)> {
    let mut best: Option<(usize, u64, &Vec<FilePosition>)> = None;
    for (index, slot) in slots.iter().enumerate() {
        if let Slot::Whole { seq, positions } = slot
            && best.is_none_or(|(_, b, _)| *seq > b)
        {
            best = Some((index, *seq, positions));
        }
    }
    best
}

fn read_slot(path: &Path) -> Slot {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Slot::Torn("is not a regular file".into()),
        _ => {}
    }
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Slot::Missing,
        Err(e) => return Slot::Torn(format!("cannot be read: {e}")),
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return Slot::Empty;
    }
    match parse_slot(&bytes) {
        Ok((seq, positions)) => Slot::Whole { seq, positions },
        Err(why) => Slot::Torn(why),
    }
}

/// A slot's content: `emstail-checkpoint seq=N bytes=L crc32c=H`, a newline, then `L` bytes
/// of JSON; `H` is [`crc_of`] `N` and them. Anything after them is padding.
fn parse_slot(bytes: &[u8]) -> Result<(u64, Vec<FilePosition>), String> {
    let torn = |what: &str| format!("is torn or corrupted ({what})");
    let end = memchr::memchr(b'\n', bytes).ok_or_else(|| torn("no header line"))?;
    let header = std::str::from_utf8(&bytes[..end]).map_err(|_| torn("header is not text"))?;
    let mut fields = header.split(' ');
    if fields.next() != Some(SLOT_MAGIC) {
        return Err(torn("header does not start with emstail-checkpoint"));
    }
    let mut field = |name: &str| {
        fields
            .next()
            .and_then(|f| f.strip_prefix(name))
            .and_then(|f| f.strip_prefix('='))
            .ok_or_else(|| torn(&format!("no {name} in the header")))
    };
    let seq = field("seq")?.parse::<u64>().map_err(|_| torn("bad seq"))?;
    let len = field("bytes")?
        .parse::<usize>()
        .map_err(|_| torn("bad length"))?;
    let crc = u32::from_str_radix(field("crc32c")?, 16).map_err(|_| torn("bad crc32c"))?;
    let body = bytes
        .get(end + 1..)
        .and_then(|rest| rest.get(..len))
        .ok_or_else(|| torn("shorter than its header says"))?;
    if crc_of(seq, body) != crc {
        return Err(torn("its CRC does not match"));
    }
    Ok((seq, positions_from_json(body)?))
}

/// The CRC-32C of a slot's sequence number (8 bytes, little-endian) and body: a flipped bit
/// in either makes the slot torn, never newer than it is.
fn crc_of(seq: u64, body: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(&seq.to_le_bytes());
    digest.update(body);
    digest.finalize()
}

/// The positions of a version 1 JSON document, or why there are none.
fn positions_from_json(bytes: &[u8]) -> Result<Vec<FilePosition>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(EMPTY.into());
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("is not valid JSON, torn or corrupted ({e})"))?;
    match value.get("version") {
        Some(serde_json::Value::String(v)) if v == "1" => {}
        Some(v) => {
            return Err(format!(
                "has version {v}, which this emstail does not know (it reads version \"1\")"
            ));
        }
        None => return Err("has no \"version\" field".into()),
    }
    match serde_json::from_value::<OnDisk>(value) {
        Ok(OnDisk::V1 { files }) => Ok(files),
        Err(e) => Err(format!("does not hold version 1 positions ({e})")),
    }
}

/// The slot files, and which one the next write goes to.
#[derive(Debug)]
struct Slots {
    /// Each slot's file, opened at its first write and again after a write to it failed (it
    /// may have been replaced meanwhile).
    files: [Option<File>; 3],
    /// Each file's size, which writes keep (shorter content is padded).
    sizes: [usize; 3],
    /// The durable slot (0 or 1) that does not hold the newest durable checkpoint. It changes
    /// only after a write to it was made durable: after a failed write the same slot is
    /// written again, the other one being the only checkpoint known to be on disk.
    next: usize,
    seq: u64,
    /// A slot file was created and the directory has not been synced since.
    dir_unsynced: bool,
    /// When a write was last made durable; `None` before the first.
    synced_at: Option<Instant>,
    /// The newest checkpoint is in the unsynced slot only.
    unsynced: bool,
}

impl Slots {
    /// Finds where the checkpoints in `state_dir` stand; creates the directory if need be.
    fn find(state_dir: &Path) -> io::Result<Slots> {
        fsutil::create_private_dir(state_dir)?;
        let held = SLOT_FILES.map(|name| read_slot(&state_dir.join(name)));
        let seq = newest(&held).map_or(1, |(_, seq, _)| seq + 1);
        let next = newest(&held[..UNSYNCED]).map_or(0, |(index, _, _)| 1 - index);
        Ok(Slots {
            files: [None, None, None],
            sizes: [0; 3],
            next,
            seq,
            dir_unsynced: false,
            synced_at: None,
            unsynced: false,
        })
    }

    /// Whether the next write is to be made durable: the first one, and then one per
    /// [`SYNC_EVERY`].
    fn sync_due(&self, now: Instant) -> bool {
        self.synced_at
            .is_none_or(|at| now.saturating_duration_since(at) >= SYNC_EVERY)
    }

    /// Opens slot `index` if it is not open. A slot file created here gets [`SLOT_SIZE`]
    /// bytes of padding at once, so that its writes need no new block later (on a full disk).
    fn open(&mut self, state_dir: &Path, index: usize) -> io::Result<()> {
        if self.files[index].is_none() {
            let file = fsutil::open_private(
                &state_dir.join(SLOT_FILES[index]),
                OpenOptions::new().write(true).create(true).truncate(false),
            )?;
            let meta = file.metadata()?;
            let mut size = meta.len() as usize;
            if size == 0 && meta.is_file() {
                file.write_all_at(&[b' '; SLOT_SIZE], 0)?;
                size = SLOT_SIZE;
                self.dir_unsynced = true;
            }
            self.sizes[index] = size;
            self.files[index] = Some(file);
        }
        Ok(())
    }

    /// Writes `body` (JSON) with a header, padded to the slot's size: to the unsynced slot
    /// unless `sync` or a sync is due; else (or when that write fails) to the next durable
    /// slot, made durable.
    fn write(&mut self, state_dir: &Path, body: &[u8], sync: bool, now: Instant) -> io::Result<()> {
        if !sync && !self.sync_due(now) {
            match self.write_slot(state_dir, UNSYNCED, body, false) {
                Ok(()) => {
                    self.seq += 1;
                    self.unsynced = true;
                    return Ok(());
                }
                // A durable write instead: it is the one that counts.
                Err(_) => self.files[UNSYNCED] = None,
            }
        }
        let slot = self.next;
        let written = self.write_slot(state_dir, slot, body, true);
        if written.is_err() {
            self.files[slot] = None;
        }
        written?;
        if self.dir_unsynced {
            File::open(state_dir)?.sync_all()?;
            self.dir_unsynced = false;
        }
        if self.synced_at.is_none() {
            // The other slots' space, while there is some (each file is synced at its turn,
            // and opened again then).
            for other in [1 - slot, UNSYNCED] {
                let _ = self.open(state_dir, other);
                self.files[other] = None;
            }
            match fs::remove_file(state_dir.join(OLD_CHECKPOINT_FILE)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.next = 1 - slot;
        self.seq += 1;
        self.synced_at = Some(now);
        self.unsynced = false;
        Ok(())
    }

    fn write_slot(
        &mut self,
        state_dir: &Path,
        slot: usize,
        body: &[u8],
        sync: bool,
    ) -> io::Result<()> {
        let mut content = format!(
            "{SLOT_MAGIC} seq={} bytes={} crc32c={:08x}\n",
            self.seq,
            body.len(),
            crc_of(self.seq, body)
        )
        .into_bytes();
        content.extend_from_slice(body);
        self.open(state_dir, slot)?;
        let size = content.len().max(self.sizes[slot]).max(SLOT_SIZE);
        content.resize(size, b' ');
        let file = self.files[slot].as_ref().expect("opened above");
        file.write_all_at(&content, 0)?;
        if sync {
            file.sync_data()?;
        }
        self.sizes[slot] = size;
        Ok(())
    }
}

/// Writes checkpoints at most once per interval and only when they changed: a sync per
/// acked line would cost more than the work it protects.
#[derive(Debug)]
pub struct Checkpointer {
    state_dir: PathBuf,
    min_interval: Duration,
    last_attempt: Option<Instant>,
    /// Sorted by id, to compare regardless of the order the caller lists files in.
    last_stored: Option<Vec<FilePosition>>,
    /// Opened at the first write.
    slots: Option<Slots>,
}

impl Checkpointer {
    pub fn new(state_dir: &Path, min_interval: Duration) -> Self {
        Checkpointer {
            state_dir: state_dir.to_path_buf(),
            min_interval,
            last_attempt: None,
            last_stored: None,
            slots: None,
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Whether the newest checkpoint is not durable yet: [`Checkpointer::maybe_store`] makes
    /// it so once [`SYNC_EVERY`] has passed since the last durable write, unchanged or not.
    pub fn unsynced(&self) -> bool {
        self.slots.as_ref().is_some_and(|slots| slots.unsynced)
    }

    /// Stores the positions `positions()` gives if the interval has passed since the last
    /// attempt and they differ from what was last stored, or the last store is still to be
    /// made durable and that is due; `Ok(true)` when it wrote. The closure is not called
    /// inside the interval. After an error the next attempt waits for the interval too, so a
    /// failing disk is not hammered.
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
        let sync_due = self
            .slots
            .as_ref()
            .is_some_and(|slots| slots.unsynced && slots.sync_due(now));
        if !sync_due && self.last_stored.as_ref() == Some(&sorted(&positions)) {
            return Ok(false);
        }
        self.write(&positions, false, now)?;
        Ok(true)
    }

    /// Stores now, whatever the interval, and makes it durable (at shutdown).
    pub fn store_now(&mut self, positions: &[FilePosition]) -> io::Result<()> {
        let now = Instant::now();
        self.last_attempt = Some(now);
        self.write(positions, true, now)
    }

    fn write(&mut self, positions: &[FilePosition], sync: bool, now: Instant) -> io::Result<()> {
        self.last_stored = None;
        let on_disk = OnDisk::V1 {
            files: positions.to_vec(),
        };
        let mut json = serde_json::to_vec_pretty(&on_disk).map_err(io::Error::other)?;
        json.push(b'\n');
        let slots = match &mut self.slots {
            Some(slots) => slots,
            empty => empty.insert(Slots::find(&self.state_dir)?),
        };
        slots.write(&self.state_dir, &json, sync, now)?;
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

/// The pid of the process holding `state_dir`, if one does (for `emstail status`); an error
/// names the lock file. It probes
/// with a shared lock for an instant, so an instance starting at that very moment may be
/// refused and must be started again.
pub fn holder(state_dir: &Path) -> io::Result<Option<u32>> {
    let path = state_dir.join(LOCK_FILE);
    // Not waiting on a FIFO put there: `status --check` runs from cron and monitoring.
    let Some(mut file) = crate::fsutil::open_regular(&path)? else {
        return Ok(None);
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(read_pid(&mut file)),
        Err(TryLockError::Error(e)) => Err(crate::fsutil::naming(&path)(e)),
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
            done: false,
        }
    }

    fn store(state_dir: &Path, positions: &[FilePosition]) {
        Checkpointer::new(state_dir, Duration::ZERO)
            .store_now(positions)
            .expect("store");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The slot holding the newest checkpoint.
    fn newest_slot(dir: &Path) -> PathBuf {
        let held = SLOT_FILES.map(|name| read_slot(&dir.join(name)));
        let (index, _, _) = newest(&held).expect("a whole slot");
        dir.join(SLOT_FILES[index])
    }

    fn loaded(positions: Vec<FilePosition>) -> Loaded {
        Loaded {
            positions,
            problem: None,
            found: true,
        }
    }

    #[test]
    fn round_trip_through_two_slots_of_a_constant_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let positions = vec![position(7, 1234), position(8, 0)];
        let mut ckpt = Checkpointer::new(dir.path(), Duration::ZERO);
        ckpt.store_now(&positions).expect("store");
        assert_eq!(load(dir.path()), loaded(positions.clone()));
        assert_eq!(names(dir.path()), SLOT_FILES);
        let first = newest_slot(dir.path());

        // Each store goes to the other slot and replaces the checkpoint whole.
        ckpt.store_now(&positions[1..]).expect("store");
        assert_eq!(load(dir.path()), loaded(positions[1..].to_vec()));
        assert_ne!(newest_slot(dir.path()), first);
        ckpt.store_now(&positions).expect("store");
        assert_eq!(newest_slot(dir.path()), first);
        assert_eq!(load(dir.path()).positions, positions);
        for name in SLOT_FILES {
            let size = fs::metadata(dir.path().join(name)).expect("slot").len();
            assert_eq!(size, SLOT_SIZE as u64, "{name} keeps its size");
        }
    }

    #[test]
    fn a_torn_newest_slot_leaves_the_one_before() {
        for damage in [
            "cut in the middle of the positions",
            "its offset changed",
            "its sequence number changed",
            "zeroed",
        ] {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut ckpt = Checkpointer::new(dir.path(), Duration::ZERO);
            ckpt.store_now(&[position(7, 1000)]).expect("store");
            ckpt.store_now(&[position(7, 2000)]).expect("store");
            let newest = newest_slot(dir.path());
            let mut bytes = fs::read(&newest).expect("read");
            match damage {
                "cut in the middle of the positions" => bytes.truncate(120),
                "its offset changed" => bytes = swap_once(&bytes, "2000", "2900"),
                "its sequence number changed" => bytes = swap_once(&bytes, "seq=2", "seq=9"),
                _ => bytes.fill(0),
            }
            fs::write(&newest, &bytes).expect("damage");
            assert_eq!(
                load(dir.path()),
                loaded(vec![position(7, 1000)]),
                "{damage}: the older checkpoint counts"
            );
        }
    }

    fn swap_once(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = String::from_utf8(bytes.to_vec()).expect("text");
        assert!(text.contains(from), "{from} in {text}");
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn a_new_checkpointer_writes_over_the_older_slot() {
        let dir = tempfile::tempdir().expect("temp dir");
        store(dir.path(), &[position(7, 1000)]);
        store(dir.path(), &[position(7, 2000)]);
        store(dir.path(), &[position(7, 3000)]);
        assert_eq!(load(dir.path()).positions, vec![position(7, 3000)]);
        // The write before stays whole beside it: a torn newest slot falls back to it.
        fs::write(newest_slot(dir.path()), b"emstail-checkpoint seq=9").expect("tear");
        assert_eq!(load(dir.path()).positions, vec![position(7, 2000)]);
    }

    #[test]
    fn a_failed_write_is_made_again_to_the_same_slot_and_never_to_the_newest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ckpt = Checkpointer::new(dir.path(), Duration::ZERO);
        ckpt.store_now(&[position(7, 1000)]).expect("store");
        let newest = newest_slot(dir.path());
        let other = SLOT_FILES[..UNSYNCED]
            .iter()
            .map(|name| dir.path().join(name))
            .find(|path| *path != newest)
            .expect("the other slot");
        fs::remove_file(&other).expect("remove");
        std::os::unix::fs::symlink("/dev/full", &other).expect("symlink");
        for _ in 0..2 {
            let err = ckpt
                .store_now(&[position(7, 2000)])
                .expect_err("a full device");
            assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
            assert_eq!(load(dir.path()).positions, vec![position(7, 1000)]);
        }
        // The slot is opened again: the next write goes to the new file there.
        fs::remove_file(&other).expect("remove the symlink");
        ckpt.store_now(&[position(7, 3000)]).expect("store");
        assert_eq!(newest_slot(dir.path()), other);
        assert_eq!(load(dir.path()).positions, vec![position(7, 3000)]);
        fs::write(&other, b"").expect("tear");
        assert_eq!(load(dir.path()).positions, vec![position(7, 1000)]);
    }

    #[test]
    fn format_on_disk_is_a_header_line_then_versioned_json() {
        let dir = tempfile::tempdir().expect("temp dir");
        store(dir.path(), &[position(7, 1234)]);
        let bytes = fs::read(newest_slot(dir.path())).expect("read");
        let text = String::from_utf8(bytes).expect("text");
        let (header, rest) = text.split_once('\n').expect("a header line");
        let fields: Vec<_> = header.split(' ').collect();
        assert_eq!(fields[0], "emstail-checkpoint");
        assert_eq!(fields[1], "seq=1");
        let len: usize = fields[2]
            .strip_prefix("bytes=")
            .expect("bytes=")
            .parse()
            .expect("a length");
        let body = &rest[..len];
        assert!(
            rest[len..].bytes().all(|b| b == b' '),
            "padding only after it"
        );
        let crc = u32::from_str_radix(fields[3].strip_prefix("crc32c=").expect("crc"), 16);
        assert_eq!(crc, Ok(crc_of(1, body.as_bytes())));
        let value: serde_json::Value = serde_json::from_str(body).expect("valid JSON");
        assert_eq!(value["version"], "1");
        assert_eq!(value["files"][0]["offset"], 1234);
        assert_eq!(value["files"][0]["id"]["ino"], 7);
        // u64 hashes above 2^53 survive (serde_json keeps integers exact).
        assert_eq!(load(dir.path()).positions[0].tail_hash, u64::MAX - 7);
    }

    #[test]
    fn a_checkpoint_larger_than_a_slot_grows_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let many: Vec<_> = (1..=40).map(|ino| position(ino, ino * 1000)).collect();
        store(dir.path(), &many);
        assert_eq!(load(dir.path()).positions, many);
        assert!(fs::metadata(newest_slot(dir.path())).expect("slot").len() > SLOT_SIZE as u64);
        store(dir.path(), &many[..1]);
        assert_eq!(load(dir.path()).positions, many[..1]);
    }

    #[test]
    fn no_file_is_a_first_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(load(dir.path()), Loaded::default());
        assert_eq!(load(&dir.path().join("not-yet")), Loaded::default());
    }

    #[test]
    fn the_file_of_older_emstails_is_read_then_removed_by_the_first_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = dir.path().join(OLD_CHECKPOINT_FILE);
        let json = serde_json::to_vec_pretty(&OnDisk::V1 {
            files: vec![position(7, 1234)],
        })
        .expect("json");
        fs::write(&old, json).expect("write");
        assert_eq!(load(dir.path()), loaded(vec![position(7, 1234)]));
        store(dir.path(), &[position(7, 2000)]);
        assert!(!old.exists(), "removed once a slot holds the checkpoint");
        assert_eq!(load(dir.path()), loaded(vec![position(7, 2000)]));
    }

    fn problem_with(name: &str, content: &[u8]) -> Loaded {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(name), content).expect("write");
        let loaded = load(dir.path());
        let problem = loaded.problem.as_deref().expect("a problem is reported");
        assert!(
            problem.contains(&dir.path().join(name).display().to_string()),
            "names the file: {problem}"
        );
        assert!(loaded.positions.is_empty());
        assert!(loaded.found);
        loaded
    }

    fn says(loaded: &Loaded, what: &str) -> bool {
        loaded.problem.as_deref().is_some_and(|p| p.contains(what))
    }

    #[test]
    fn torn_empty_and_unknown_version_checkpoints_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        store(dir.path(), &[position(7, 1234), position(8, 99)]);
        let whole = fs::read(newest_slot(dir.path())).expect("read");
        let torn = problem_with(SLOT_FILES[0], &whole[..120]);
        assert!(says(&torn, "torn or corrupted"), "{torn:?}");
        assert!(says(&problem_with(SLOT_FILES[1], b""), "empty"));
        let body = br#"{"version":"2","files":[],"extra":1}"#;
        let mut newer = format!(
            "emstail-checkpoint seq=4 bytes={} crc32c={:08x}\n",
            body.len(),
            crc_of(4, body)
        )
        .into_bytes();
        newer.extend_from_slice(body);
        assert!(says(&problem_with(SLOT_FILES[0], &newer), "version \"2\""));

        // The same reasons for the file of older emstails.
        let old = |content: &[u8]| problem_with(OLD_CHECKPOINT_FILE, content);
        assert!(says(&old(br#"{"version":"1","fi"#), "not valid JSON"));
        assert!(says(&old(b"\n"), "empty"));
        assert!(says(
            &old(br#"{"version":"2","files":[]}"#),
            "version \"2\""
        ));
        assert!(says(&old(br#"{"files":[]}"#), "no \"version\""));
        assert!(says(
            &old(br#"{"version":"1","files":[{"offset":"x"}]}"#),
            "version 1 positions"
        ));
    }

    #[test]
    fn both_slots_torn_are_reported_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        store(dir.path(), &[position(7, 1)]);
        store(dir.path(), &[position(7, 2)]);
        for name in SLOT_FILES {
            fs::write(dir.path().join(name), b"emstail-checkpoint seq=").expect("tear");
        }
        let loaded = load(dir.path());
        assert!(loaded.positions.is_empty() && loaded.found);
        for name in SLOT_FILES {
            let path = dir.path().join(name).display().to_string();
            assert!(says(&loaded, &path), "{loaded:?}");
        }
    }

    #[test]
    fn store_creates_a_missing_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("a").join("state");
        store(&state, &[position(1, 10)]);
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
        let on_disk = || SLOT_FILES.map(|name| fs::read(dir.path().join(name)).expect("slot"));
        let before = on_disk();
        // Same positions, listed in another order: nothing to write.
        assert!(
            !ckpt
                .maybe_store(|| vec![position(2, 20), position(1, 10)])
                .expect("unchanged")
        );
        assert_eq!(on_disk(), before);
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
    fn writes_between_syncs_go_to_the_unsynced_slot_which_a_power_loss_may_cost() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ckpt = Checkpointer::new(dir.path(), Duration::ZERO);
        assert!(ckpt.maybe_store(|| vec![position(7, 1000)]).expect("store"));
        assert!(!ckpt.unsynced(), "the first write is durable");
        let durable = newest_slot(dir.path());
        assert_ne!(durable, dir.path().join(SLOT_FILES[UNSYNCED]));
        let unsynced = dir.path().join(SLOT_FILES[UNSYNCED]);
        for offset in [2000, 3000] {
            assert!(
                ckpt.maybe_store(|| vec![position(7, offset)])
                    .expect("store")
            );
            assert!(ckpt.unsynced(), "{offset}: within a second of the sync");
            assert_eq!(newest_slot(dir.path()), unsynced, "{offset}");
            assert_eq!(load(dir.path()).positions, vec![position(7, offset)]);
        }
        // What a power loss can leave of it: nothing, or a torn write. The durable one counts.
        for lost in [&b""[..], &b"emstail-checkpoint seq=9"[..]] {
            fs::write(&unsynced, lost).expect("lose the unsynced write");
            assert_eq!(load(dir.path()), loaded(vec![position(7, 1000)]));
        }
    }

    #[test]
    fn an_unsynced_checkpoint_is_made_durable_when_a_sync_is_due_even_unchanged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ckpt = Checkpointer::new(dir.path(), Duration::ZERO);
        ckpt.maybe_store(|| vec![position(7, 1000)]).expect("store");
        ckpt.maybe_store(|| vec![position(7, 2000)]).expect("store");
        assert!(ckpt.unsynced());
        assert!(
            !ckpt.maybe_store(|| vec![position(7, 2000)]).expect("store"),
            "unchanged, and no sync due yet"
        );
        std::thread::sleep(SYNC_EVERY + Duration::from_millis(50));
        assert!(ckpt.maybe_store(|| vec![position(7, 2000)]).expect("store"));
        assert!(!ckpt.unsynced());
        fs::write(dir.path().join(SLOT_FILES[UNSYNCED]), b"").expect("lose it");
        assert_eq!(load(dir.path()).positions, vec![position(7, 2000)]);
        // At shutdown the checkpoint is made durable at once.
        ckpt.maybe_store(|| vec![position(7, 3000)]).expect("store");
        assert!(ckpt.unsynced());
        ckpt.store_now(&[position(7, 4000)]).expect("store");
        assert!(!ckpt.unsynced());
        fs::write(dir.path().join(SLOT_FILES[UNSYNCED]), b"").expect("lose it");
        assert_eq!(load(dir.path()).positions, vec![position(7, 4000)]);
    }

    #[test]
    fn an_unsynced_slot_that_cannot_be_written_gives_way_to_a_durable_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let unsynced = dir.path().join(SLOT_FILES[UNSYNCED]);
        std::os::unix::fs::symlink("/dev/full", &unsynced).expect("symlink");
        let mut ckpt = Checkpointer::new(dir.path(), Duration::ZERO);
        ckpt.maybe_store(|| vec![position(7, 1000)]).expect("store");
        assert!(
            ckpt.maybe_store(|| vec![position(7, 2000)])
                .expect("written to a durable slot instead")
        );
        assert!(!ckpt.unsynced());
        assert_ne!(newest_slot(dir.path()), unsynced);
        assert_eq!(load(dir.path()).positions, vec![position(7, 2000)]);
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
