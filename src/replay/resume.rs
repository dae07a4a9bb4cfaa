//! A replay's own checkpoint, so that an interrupted backfill can go on where it stopped.
//!
//! A replay is deterministic: the same bytes of the same files, the same window and plugins
//! give the same actions in the same order. So each action is known by its place in that
//! order (its sequence number), and the checkpoint is the set of sequence numbers finished,
//! with the length of every input as it was when the replay began. A resumed replay reads
//! exactly those bytes again, runs the same pipeline and hands on only the actions not
//! finished: a lane's held uploads, issued late, keep their places too.
//!
//! The file is `replay-<key>.json` in the state directory, the key a hash of the inputs,
//! window, plugins and `--all-actions`; `replay-<key>.lock` keeps a second replay of the
//! same key out while one runs. Neither touches the daemon's own checkpoint or lock.

use crate::action::PathEscaped;
use crate::action::PluginId;
use crate::fsutil::write_atomic;
use crate::replay::Window;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// What makes two replays the same replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The files, in the order they are read.
    pub files: Vec<PathBuf>,
    pub window: Window,
    /// Sorted; empty for every enabled plugin.
    pub plugins: Vec<PluginId>,
    pub all_actions: bool,
}

impl Identity {
    /// 16 hex digits naming the checkpoint and lock files of this replay.
    pub fn key(&self) -> String {
        let digest = crc::Crc::<u64>::new(&crc::CRC_64_ECMA_182);
        let mut d = digest.digest();
        for file in &self.files {
            d.update(file.as_os_str().as_encoded_bytes());
            d.update(b"\0");
        }
        let end = |t: Option<i64>| t.map_or_else(|| "-".to_string(), |t| t.to_string());
        let mut plugins: Vec<&str> = self.plugins.iter().map(|p| p.name()).collect();
        plugins.sort_unstable();
        d.update(
            format!(
                "{} {} {} {}",
                end(self.window.since),
                end(self.window.until),
                plugins.join(","),
                self.all_actions
            )
            .as_bytes(),
        );
        format!("{:016x}", d.finalize())
    }

    pub fn checkpoint_path(&self, state_dir: &Path) -> PathBuf {
        state_dir.join(format!("replay-{}.json", self.key()))
    }

    fn lock_path(&self, state_dir: &Path) -> PathBuf {
        state_dir.join(format!("replay-{}.lock", self.key()))
    }
}

/// Sequence numbers, as ranges `start..end` keyed by `start`: the finished actions of a
/// replay are nearly one run from 0, with a few gaps where actions were still in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    ranges: BTreeMap<u64, u64>,
}

impl Finished {
    pub fn insert(&mut self, n: u64) {
        if self.contains(n) {
            return;
        }
        let mut start = n;
        let mut end = n + 1;
        if let Some((&s, &e)) = self.ranges.range(..=n).next_back()
            && e == n
        {
            start = s;
        }
        if let Some(&e) = self.ranges.get(&(n + 1)) {
            self.ranges.remove(&(n + 1));
            end = e;
        }
        self.ranges.insert(start, end);
    }

    pub fn contains(&self, n: u64) -> bool {
        self.ranges
            .range(..=n)
            .next_back()
            .is_some_and(|(_, &end)| n < end)
    }

    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    fn to_pairs(&self) -> Vec<[u64; 2]> {
        self.ranges.iter().map(|(&s, &e)| [s, e]).collect()
    }

    fn from_pairs(pairs: &[[u64; 2]]) -> Finished {
        let mut finished = Finished::default();
        for &[start, end] in pairs {
            if start < end {
                merge_range(&mut finished, start, end);
            }
        }
        finished
    }
}

fn merge_range(finished: &mut Finished, start: u64, end: u64) {
    // Ranges come from a file we wrote, sorted and apart; merging keeps a hand-edited one
    // sound without trusting it.
    let mut start = start;
    let mut end = end;
    let overlapping: Vec<(u64, u64)> = finished
        .ranges
        .range(..=end)
        .filter(|(_, e)| **e >= start)
        .map(|(s, e)| (*s, *e))
        .collect();
    for (s, e) in overlapping {
        finished.ranges.remove(&s);
        start = start.min(s);
        end = end.max(e);
    }
    finished.ranges.insert(start, end);
}

/// What numbers a replay's actions: the release, and the version of its planning within it.
/// A checkpoint names actions by their place in the order a replay plans them, so it can only
/// be resumed by a build that plans the same actions in the same order from the same bytes.
/// [`PLAN`] goes up with every change that makes a replay plan other actions, or the same ones
/// in another order (a plugin's planning, the net effect, what backfill leaves out).
pub const PLANNER: &str = concat!(env!("CARGO_PKG_VERSION"), "+plan", "2");

/// One input as the replay found it when it began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub path: PathBuf,
    /// Bytes on disk (compressed, for gzip) that the replay reads.
    pub len: u64,
}

/// The checkpoint of one replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub inputs: Vec<Input>,
    /// Actions handed on to be carried out: the sequence numbers below this one.
    pub submitted: u64,
    pub finished: Finished,
    /// The command line that started it, to say how to resume it.
    pub command: Vec<String>,
    /// [`PLANNER`] of the build that wrote it; `None` from one before such stamps.
    pub planner: Option<String>,
}

/// The file format: a new version is a new variant, never a silent change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum OnDisk {
    #[serde(rename = "1")]
    V1 {
        inputs: Vec<Input>,
        submitted: u64,
        finished: Vec<[u64; 2]>,
        command: Vec<String>,
    },
    /// Version 1 and the [`PLANNER`] that numbered its actions.
    #[serde(rename = "2")]
    V2 {
        inputs: Vec<Input>,
        submitted: u64,
        finished: Vec<[u64; 2]>,
        command: Vec<String>,
        planner: String,
    },
}

impl Checkpoint {
    /// The inputs as they are now.
    pub fn measure(files: &[PathBuf]) -> io::Result<Vec<Input>> {
        files
            .iter()
            .map(|path| {
                let len = std::fs::metadata(path)
                    .map_err(crate::fsutil::naming(path))?
                    .len();
                Ok(Input {
                    path: path.clone(),
                    len,
                })
            })
            .collect()
    }

    /// Whether this build numbers the actions as the one that wrote the checkpoint did: else
    /// resuming would take other actions for the finished ones, repeating some and leaving
    /// others out.
    pub fn check_planner(&self) -> Result<(), String> {
        match &self.planner {
            Some(planner) if planner == PLANNER => Ok(()),
            then => Err(format!(
                "the interrupted replay was run by emstail {}, which plans a replay's actions \
                 otherwise than this one ({PLANNER})",
                then.as_deref().unwrap_or("of an earlier version")
            )),
        }
    }

    /// Whether every input still holds the bytes this checkpoint's replay read: a file may
    /// have grown (the live log) but not shrunk or gone. The message names the first that
    /// changed.
    pub fn check_inputs(&self, now: &[Input]) -> Result<(), String> {
        for (then, now) in self.inputs.iter().zip(now) {
            if then.path != now.path {
                return Err(format!(
                    "the inputs are not those of the interrupted replay: {} instead of {}",
                    PathEscaped(&now.path),
                    PathEscaped(&then.path)
                ));
            }
            if now.len < then.len {
                return Err(format!(
                    "{} is shorter than when the interrupted replay read it ({} bytes, was {})",
                    PathEscaped(&now.path),
                    now.len,
                    then.len
                ));
            }
        }
        if self.inputs.len() != now.len() {
            return Err(format!(
                "the interrupted replay read {} files, now there are {}",
                self.inputs.len(),
                now.len()
            ));
        }
        Ok(())
    }

    pub fn store(&self, path: &Path) -> io::Result<()> {
        let on_disk = OnDisk::V2 {
            inputs: self.inputs.clone(),
            submitted: self.submitted,
            finished: self.finished.to_pairs(),
            command: self.command.clone(),
            // This build numbered the actions it stores as finished.
            planner: PLANNER.to_string(),
        };
        let bytes = serde_json::to_vec(&on_disk).map_err(io::Error::other)?;
        write_atomic(path, &bytes)
    }

    /// The checkpoint at `path`; `Ok(None)` when there is none. A file that cannot be read
    /// as one is an error naming it: resuming from a guess could repeat or drop work.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, String> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let on_disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a replay checkpoint ({e}); remove it to start over",
                path.display()
            )
        })?;
        let (inputs, submitted, finished, command, planner) = match on_disk {
            OnDisk::V1 {
                inputs,
                submitted,
                finished,
                command,
            } => (inputs, submitted, finished, command, None),
            OnDisk::V2 {
                inputs,
                submitted,
                finished,
                command,
                planner,
            } => (inputs, submitted, finished, command, Some(planner)),
        };
        Ok(Some(Checkpoint {
            inputs,
            submitted,
            finished: Finished::from_pairs(&finished),
            command,
            planner,
        }))
    }
}

/// Held while a replay carries its actions out; a second replay of the same identity is
/// refused while it is.
#[derive(Debug)]
pub struct ReplayLock {
    _file: File,
}

pub fn lock(state_dir: &Path, identity: &Identity) -> Result<ReplayLock, String> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("cannot create state directory {}: {e}", state_dir.display()))?;
    let path = identity.lock_path(state_dir);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(ReplayLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(format!(
            "a replay of the same inputs, window and plugins is already running (lock file {})",
            path.display()
        )),
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_merges_neighbours_and_keeps_gaps() {
        let mut f = Finished::default();
        for n in [0, 1, 2, 5, 4, 7, 3] {
            f.insert(n);
        }
        assert_eq!(f.to_pairs(), vec![[0, 6], [7, 8]]);
        assert!(f.contains(5) && !f.contains(6) && f.contains(7) && !f.contains(8));
        assert_eq!(f.count(), 7);
        f.insert(6);
        assert_eq!(f.to_pairs(), vec![[0, 8]]);
        let overlapping = Finished::from_pairs(&[[0, 3], [2, 5], [9, 9], [7, 8]]);
        assert_eq!(overlapping.to_pairs(), vec![[0, 5], [7, 8]]);
    }

    #[test]
    fn checkpoint_round_trips_and_a_torn_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("replay-x.json");
        assert_eq!(Checkpoint::load(&path), Ok(None));
        let mut finished = Finished::default();
        finished.insert(0);
        finished.insert(2);
        let checkpoint = Checkpoint {
            inputs: vec![Input {
                path: "/var/log/events.txt.gz".into(),
                len: 42,
            }],
            submitted: 3,
            finished,
            command: vec!["emstail".into(), "replay".into()],
            planner: Some(PLANNER.into()),
        };
        checkpoint.store(&path).expect("store");
        assert_eq!(Checkpoint::load(&path), Ok(Some(checkpoint)));
        std::fs::write(&path, b"{\"version\":\"1\",\"inp").expect("write");
        let e = Checkpoint::load(&path).expect_err("torn");
        assert!(
            e.contains("replay-x.json") && e.contains("start over"),
            "{e}"
        );
    }

    /// A checkpoint names actions by their place in the plan: one written by a build that
    /// plans otherwise (or before builds said which they are) is not resumed.
    #[test]
    fn only_a_build_that_plans_alike_resumes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("replay-x.json");
        let v1 = r#"{"version":"1","inputs":[],"submitted":2,"finished":[[0,2]],"command":[]}"#;
        std::fs::write(&path, v1).expect("write");
        let old = Checkpoint::load(&path).expect("readable").expect("there");
        let e = old.check_planner().expect_err("no planner");
        assert!(
            e.contains("an earlier version") && e.contains(PLANNER),
            "{e}"
        );
        let other = v1
            .replace(r#""version":"1""#, r#""version":"2""#)
            .replace('}', r#","planner":"0.0.9+plan1"}"#);
        std::fs::write(&path, other).expect("write");
        let e = Checkpoint::load(&path)
            .expect("readable")
            .expect("there")
            .check_planner()
            .expect_err("another planner");
        assert!(e.contains("emstail 0.0.9+plan1"), "{e}");
        old.store(&path).expect("store");
        let stored = Checkpoint::load(&path).expect("readable").expect("there");
        assert_eq!(stored.check_planner(), Ok(()), "stored by this build");
    }

    #[test]
    fn grown_inputs_resume_and_shrunk_or_other_ones_do_not() {
        let input = |p: &str, len| Input {
            path: p.into(),
            len,
        };
        let checkpoint = Checkpoint {
            inputs: vec![input("a", 10), input("b", 20)],
            submitted: 0,
            finished: Finished::default(),
            command: Vec::new(),
            planner: Some(PLANNER.into()),
        };
        assert!(
            checkpoint
                .check_inputs(&[input("a", 10), input("b", 25)])
                .is_ok()
        );
        let e = checkpoint
            .check_inputs(&[input("a", 9), input("b", 20)])
            .expect_err("shrunk");
        assert!(e.contains("a is shorter"), "{e}");
        assert!(checkpoint.check_inputs(&[input("a", 10)]).is_err());
        assert!(
            checkpoint
                .check_inputs(&[input("a", 10), input("c", 20)])
                .is_err()
        );
    }

    #[test]
    fn a_second_lock_of_the_same_replay_is_refused_another_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = |until| Identity {
            files: vec!["/logs/events_1.txt".into()],
            window: Window { since: None, until },
            plugins: vec![PluginId::AmazonHLSUpload],
            all_actions: false,
        };
        let held = lock(dir.path(), &identity(Some(1))).expect("first");
        let e = lock(dir.path(), &identity(Some(1))).expect_err("second");
        assert!(e.contains("already running"), "{e}");
        let other = lock(dir.path(), &identity(Some(2)));
        assert!(other.is_ok(), "another window is another replay");
        drop(held);
        assert!(lock(dir.path(), &identity(Some(1))).is_ok());
    }
}
