//! What the tailer and live-run tests do to a log directory, written once: the writes,
//! truncations and renames EMS and logrotate make, EMS's timestamped file names, and the
//! writer actions their model-based tests draw at random.

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The log line of stream `name`'s `inStreamCreated`, event `n` (its id and uniqueId), as
/// EMS's JSON sink writes it: StreamRecorder sends one `record` for it.
pub fn in_stream_created(n: u64, name: &str) -> String {
    let payload = serde_json::json!({
        "appName": "evostreamms", "name": name, "type": "INR", "uniqueId": n,
    });
    format!(
        r#"{{"_logEntry":"{n:05}","id":{n},"payload":{payload},"processId":7,"timestamp":1795947304,"type":"inStreamCreated"}},"#
    ) + "\n"
}

/// Appends as a logger does, creating the file on the first write.
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("test log opens for appending");
    f.write_all(bytes).expect("test log takes the write");
}

/// Empties the file in place (same inode), as copytruncate does; a missing file is created
/// empty, as a writer reopening it would.
pub fn truncate(path: &Path) {
    File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
}

pub fn rename(from: &Path, to: &Path) {
    std::fs::rename(from, to).expect("rename");
}

/// logrotate's copytruncate: the content copied to `copy`, then the log emptied in place.
pub fn copytruncate(log: &Path, copy: &Path) {
    std::fs::copy(log, copy).expect("copy");
    truncate(log);
}

/// EMS's log file started at `hhmmss` on one day: the names sort in the order EMS started
/// the files.
pub fn ems_file(dir: &Path, hhmmss: u32) -> PathBuf {
    dir.join(format!("events_20260301_{hhmmss:06}.txt"))
}

/// A temporary directory with the log path `events.txt` in it (not created); removed when
/// dropped.
pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Scenario {
    pub fn new() -> Scenario {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("events.txt");
        Scenario { dir, log }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// One thing the log's writer (or the follower's operator) does, in the model-based tests.
#[derive(Debug, Clone)]
pub enum WriterOp {
    /// Complete lines (finishing a held partial one first).
    Append(u8),
    /// The start of a line, no newline yet.
    AppendPartial,
    /// EMS starts a new timestamped file.
    Rotate,
    /// The current file is emptied in place and written again.
    Truncate(u8),
    /// The current file is deleted; writing goes on in a new one.
    Delete,
    /// The follower stops and starts again from its saved positions.
    Restart,
    /// The follower catches up.
    Sync,
}

/// How often each [`WriterOp`] is drawn, and how many lines an `Append` or `Truncate` writes
/// at most (exclusive bounds). A weight of 0 leaves the action out.
pub struct OpMix {
    pub append_below: u8,
    pub truncate_below: u8,
    pub partial_weight: u32,
    pub sync_weight: u32,
}

/// Writer actions drawn with the weights the model tests use: appends 4, rotations and
/// restarts 2, truncations and deletions 1, partial lines and syncs as `mix` says.
pub fn writer_op(mix: &OpMix) -> Union<BoxedStrategy<WriterOp>> {
    let options: Vec<(u32, BoxedStrategy<WriterOp>)> = vec![
        (4, (1..mix.append_below).prop_map(WriterOp::Append).boxed()),
        (mix.partial_weight, Just(WriterOp::AppendPartial).boxed()),
        (2, Just(WriterOp::Rotate).boxed()),
        (
            1,
            (1..mix.truncate_below).prop_map(WriterOp::Truncate).boxed(),
        ),
        (1, Just(WriterOp::Delete).boxed()),
        (2, Just(WriterOp::Restart).boxed()),
        (mix.sync_weight, Just(WriterOp::Sync).boxed()),
    ];
    Union::new_weighted(options.into_iter().filter(|(w, _)| *w > 0).collect())
}
