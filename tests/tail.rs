//! The live-log tailer against real files in a temporary directory: every line delivered
//! exactly once and in order, across rotations, truncations, deletions and restarts.

mod support;

use emstail::source::tail::{Saved, Start, TailConfig, TailItem, Tailer, file_position};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use support::scenario::{Scenario, append, copytruncate, ems_file, ms, rename, truncate};

fn config(log: &Path) -> TailConfig {
    TailConfig {
        log: log.to_string_lossy().into_owned(),
        rescan: ms(20),
        grace: ms(50),
        max_line: 1 << 20,
        poll_only: false,
        spool: None,
    }
}

fn poll_only(log: &Path) -> TailConfig {
    TailConfig {
        poll_only: true,
        ..config(log)
    }
}

/// `count` lines `<tag>-<n>` numbered from `from`, as file content and as expected lines.
fn numbered(tag: &str, from: usize, count: usize) -> (Vec<u8>, Vec<String>) {
    let lines: Vec<String> = (from..from + count)
        .map(|n| format!("{tag}-{n:06}"))
        .collect();
    let bytes = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    (bytes, lines)
}

/// Appends [`numbered`] lines to `path` and returns them, to be expected.
fn append_numbered(path: &Path, tag: &str, from: usize, count: usize) -> Vec<String> {
    let (bytes, lines) = numbered(tag, from, count);
    append(path, &bytes);
    lines
}

/// Lines (lossy text) and oversize reports, in delivery order.
fn texts(items: &[TailItem]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            TailItem::Line { bytes, .. } => Some(String::from_utf8_lossy(bytes).into_owned()),
            TailItem::Oversize { len, .. } => Some(format!("<oversize {len}>")),
            _ => None,
        })
        .collect()
}

/// A tailer and everything it delivered.
struct Follow {
    tailer: Tailer,
    config: TailConfig,
    items: Vec<TailItem>,
}

impl Follow {
    fn new(config: TailConfig, start: Start) -> Follow {
        Follow {
            tailer: Tailer::new(config.clone(), start).expect("tailer starts"),
            config,
            items: Vec::new(),
        }
    }

    fn from_start(config: TailConfig) -> Follow {
        Follow::new(config, Start::FromStart)
    }

    /// Follows from the start and waits until the lines already written are delivered.
    fn caught_up(config: TailConfig, written: &[String]) -> Follow {
        let mut f = Follow::from_start(config);
        f.wait_lines(written.len());
        f
    }

    fn lines(&self) -> Vec<String> {
        texts(&self.items)
    }

    /// What `pick` takes from each delivered item it matches, in delivery order.
    fn pick<T>(&self, pick: impl Fn(&TailItem) -> Option<T>) -> Vec<T> {
        self.items.iter().filter_map(pick).collect()
    }

    /// How many truncations the tailer reported.
    fn truncated(&self) -> usize {
        self.pick(|i| matches!(i, TailItem::Truncated { .. }).then_some(()))
            .len()
    }

    /// How many files the tailer finished with (drained and closed).
    fn finished(&self) -> usize {
        self.pick(|i| matches!(i, TailItem::Finished { .. }).then_some(()))
            .len()
    }

    /// Polls until `n` lines have been delivered in all, or fails after a deadline.
    fn wait_lines(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines().len() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} lines, got {}: last {:?}",
                self.lines().len(),
                self.lines().iter().rev().take(5).collect::<Vec<_>>()
            );
            let got = self.tailer.poll(ms(20)).expect("poll");
            self.items.extend(got);
        }
    }

    /// Polls for `d` more, collecting anything (nothing more is expected by the caller).
    fn settle(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let got = self.tailer.poll(ms(10)).expect("poll");
            self.items.extend(got);
        }
    }

    /// Waits for exactly `expected` (in order), then checks nothing else arrives.
    fn expect_exactly<S: AsRef<str>>(&mut self, expected: &[S]) {
        let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
        self.wait_lines(expected.len());
        self.settle(ms(150));
        assert_eq!(self.lines(), expected);
    }

    /// Restarts from the checkpoint, appends two lines `tag` from `from` to `path`, and
    /// expects those alone: nothing read before is read again.
    fn restart_reads_only_new(&mut self, path: &Path, tag: &str, from: usize) {
        self.restart();
        let new = append_numbered(path, tag, from, 2);
        self.items.clear();
        self.expect_exactly(&new);
    }

    /// Stops and starts again from the positions the old tailer reports, as a checkpoint would.
    fn restart(&mut self) {
        let saved = checkpoint(&self.tailer);
        self.restart_from(saved);
    }

    /// Stops and starts again from `saved`.
    fn restart_from(&mut self, saved: Saved) {
        self.tailer = Tailer::new(self.config.clone(), Start::FromCheckpoint(saved))
            .expect("tailer restarts");
    }
}

/// The tailer's positions as checkpoint entries, as `run` writes them, written now.
fn checkpoint(tailer: &Tailer) -> Saved {
    let positions = tailer
        .positions()
        .into_iter()
        .filter_map(|(id, _, offset, line)| tailer.checkpoint_position(id, offset, line).ok())
        .collect();
    Saved {
        positions,
        written: Some(SystemTime::now()),
    }
}

#[test]
fn rename_and_create_rotation_drains_the_old_file_first() {
    let s = Scenario::new();
    let mut expected = append_numbered(&s.log, "a", 0, 50);
    let mut f = Follow::caught_up(config(&s.log), &expected);
    // Lines just before the rename, and late ones from a writer still holding the old file.
    expected.extend(append_numbered(&s.log, "a", 50, 10));
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.log)
        .expect("writer");
    rename(&s.log, &s.path("events.txt.1"));
    let (late, l) = numbered("a", 60, 5);
    expected.extend(l);
    writer.write_all(&late).expect("late write");
    expected.extend(append_numbered(&s.log, "b", 0, 20));
    f.expect_exactly(&expected);
    assert_eq!(f.finished(), 1);
    let opened = f.pick(|i| match i {
        TailItem::Opened { offset, .. } => Some(*offset),
        _ => None,
    });
    assert_eq!(opened, vec![0, 0], "both files are read from their start");
}

/// While emstail is stopped, `current` gets the line `two` and is renamed out of `log`'s
/// pattern, and a newer timestamped file gets `three`: a start from `saved` reads `two`, then
/// `three`, and nothing else.
fn two_then_three_after_a_rename_while_stopped(
    s: &Scenario,
    log: &Path,
    current: &Path,
    saved: Saved,
) {
    append(current, b"two\n");
    rename(current, &s.path("rotated.1"));
    append(&ems_file(s.dir.path(), 120000), b"three\n");
    let mut g = Follow::new(config(log), Start::FromCheckpoint(saved));
    g.expect_exactly(&["two", "three"]);
}

/// logrotate's rename while emstail is stopped: `events.txt` becomes `events.txt.1`, which
/// the pattern does not list, and a new `events.txt` comes. What the old file got after the
/// checkpoint is read from its new name, then the new file from its start.
#[test]
fn a_file_renamed_out_of_the_pattern_while_stopped_is_read_to_its_end_first() {
    let s = Scenario::new();
    let read = append_numbered(&s.log, "a", 0, 20);
    let f = Follow::caught_up(config(&s.log), &read);
    let saved = checkpoint(&f.tailer);
    drop(f);
    let mut expected = append_numbered(&s.log, "a", 20, 5);
    rename(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "b", 0, 3));
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
    let opened = g.pick(|i| match i {
        TailItem::Opened { path, line, .. } => Some((path.clone(), *line)),
        _ => None,
    });
    assert_eq!(
        opened,
        [(s.path("events.txt.1"), 20), (s.log.clone(), 0)],
        "the old file from its checkpoint, under its new name, then the new one from 0"
    );
    assert_eq!(g.finished(), 1, "the renamed file is finished and let go");
    // Done with: a restart reads none of it again.
    g.restart_reads_only_new(&s.log, "b", 3);
}

/// The same with EMS's timestamped names: the older file the pattern still lists, read
/// before the checkpoint and left out of it, is not read again, and the renamed file comes
/// before the newer one, though both may bear the same modification time.
#[test]
fn a_file_renamed_while_stopped_comes_after_older_listed_files_and_before_newer_ones() {
    let s = Scenario::new();
    let log = s.path("events*.txt");
    let old = ems_file(s.dir.path(), 100000);
    append(&old, b"old\n");
    let current = ems_file(s.dir.path(), 110000);
    append(&current, b"one\n");
    // The old file is older than the current one, whatever the clock's granularity.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .append(true)
        .open(&old)
        .and_then(|f| f.set_modified(an_hour_ago))
        .expect("set the old file's mtime");
    let mut f = Follow::from_start(config(&log));
    f.wait_lines(2);
    let mut saved = checkpoint(&f.tailer);
    saved.positions.retain(|p| p.path == current);
    assert_eq!(saved.positions.len(), 1);
    drop(f);
    two_then_three_after_a_rename_while_stopped(&s, &log, &current, saved);
}

/// EMS starts the next timestamped file while it finishes the current one: the newer file's
/// last write may come before the older one's. Renamed out of the pattern while stopped, the
/// older file still goes before the newer, as the names order them, and the newer is read.
#[test]
fn a_renamed_file_goes_before_a_newer_name_written_before_its_last_line() {
    let s = Scenario::new();
    let log = s.path("events_*.txt");
    let current = ems_file(s.dir.path(), 110000);
    append(&current, b"one\n");
    let mut f = Follow::from_start(config(&log));
    f.wait_lines(1);
    let saved = checkpoint(&f.tailer);
    drop(f);
    let next = ems_file(s.dir.path(), 120000);
    append(&next, b"n1\n");
    let a_minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .append(true)
        .open(&next)
        .and_then(|f| f.set_modified(a_minute_ago))
        .expect("set the newer file's mtime");
    append(&current, b"two\n");
    rename(&current, &s.path("rotated.1"));
    let mut g = Follow::new(config(&log), Start::FromCheckpoint(saved));
    g.expect_exactly(&["two", "n1"]);
}

/// The inode of a checkpointed file, renamed out of the pattern, holds other content with
/// the same first line by the restart (rewritten in place, or the inode reused): that file is
/// not the log's, and nothing of it is read.
#[test]
fn a_renamed_file_rewritten_while_stopped_is_not_read() {
    let s = Scenario::new();
    let mut read = append_numbered(&s.log, "head", 0, 1);
    read.extend(append_numbered(&s.log, "a", 0, 10));
    let f = Follow::caught_up(config(&s.log), &read);
    let saved = checkpoint(&f.tailer);
    drop(f);
    let moved = s.path("events.txt.1");
    rename(&s.log, &moved);
    let (mut other, _) = numbered("head", 0, 1);
    other.extend(numbered("other", 0, 20).0);
    std::fs::write(&moved, other).expect("rewrite the renamed file");
    let expected = append_numbered(&s.log, "b", 0, 3);
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// A renamed file waits behind more older files than keep a descriptor open: its
/// descriptor is closed meanwhile, and the pattern does not list it, so only its new name can
/// reopen it. The scans before its turn must not let it go with its lines unread.
#[test]
fn a_file_renamed_while_stopped_behind_many_older_files_is_still_read() {
    let s = Scenario::new();
    let log = s.path("events_*.txt");
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for n in 0..12 {
        let old = ems_file(s.dir.path(), 100000 + n);
        append(&old, format!("old-{n}\n").as_bytes());
        std::fs::File::options()
            .append(true)
            .open(&old)
            .and_then(|f| f.set_modified(an_hour_ago))
            .expect("set an old file's mtime");
    }
    let current = ems_file(s.dir.path(), 110000);
    append(&current, b"one\n");
    let mut f = Follow::from_start(config(&log));
    f.wait_lines(13);
    let saved = checkpoint(&f.tailer);
    assert_eq!(saved.positions.len(), 13, "every file is in the checkpoint");
    drop(f);
    two_then_three_after_a_rename_while_stopped(&s, &log, &current, saved);
}

/// Sets `path`'s modification time an hour back: a file rotated long before the checkpoint.
fn an_hour_old(path: &Path) {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(an_hour_ago))
        .expect("set an old file's mtime");
}

/// Follows `events.txt` until `read` is delivered, with an old rotated `events.txt.3` and an
/// operator's `events.txt.bak` beside it, and returns its checkpoint. The file times the
/// kernel gives lag its clock by up to a tick: the scenario's changes come after that.
fn checkpoint_beside_old_rotations(s: &Scenario, read: &[String]) -> Saved {
    append(&s.path("events.txt.3"), b"rotated long ago\n");
    an_hour_old(&s.path("events.txt.3"));
    let f = Follow::caught_up(config(&s.log), read);
    let saved = checkpoint(&f.tailer);
    drop(f);
    std::thread::sleep(ms(30));
    append(&s.path("events.txt.bak"), b"not the log's\n");
    saved
}

/// Two of logrotate's rotations while emstail is stopped, each `rotate` of `events.txt` to
/// `events.txt.1` after `.1` became `.2`, with lines before each and after the last: a tailer
/// started from the checkpoint taken before them, and the lines it must give.
fn after_two_rotations_while_stopped(
    s: &Scenario,
    rotate: fn(&Path, &Path),
) -> (Follow, Vec<String>) {
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(s, &read);
    let mut expected = append_numbered(&s.log, "a", 20, 5);
    rotate(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "b", 0, 4));
    std::thread::sleep(ms(10)); // distinct mtimes: the only order rotated files have
    rename(&s.path("events.txt.1"), &s.path("events.txt.2"));
    rotate(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "c", 0, 3));
    (
        Follow::new(config(&s.log), Start::FromCheckpoint(saved)),
        expected,
    )
}

/// Two of logrotate's rotations while emstail is stopped: the checkpointed `events.txt` is
/// now `events.txt.2`, and `events.txt.1` was a whole file of the log that emstail never saw.
/// Both are read, oldest first, then the new `events.txt`; the older rotated file and a file
/// that is not a rotation are not.
#[test]
fn two_rotations_while_stopped_read_the_file_between() {
    let s = Scenario::new();
    let (mut g, expected) = after_two_rotations_while_stopped(&s, rename);
    g.expect_exactly(&expected);
    let opened = g.pick(|i| match i {
        TailItem::Opened { path, line, .. } => Some((path.clone(), *line)),
        _ => None,
    });
    assert_eq!(
        opened,
        [
            (s.path("events.txt.2"), 20),
            (s.path("events.txt.1"), 0),
            (s.log.clone(), 0)
        ]
    );
    // Done with: a restart reads none of it again.
    g.restart_reads_only_new(&s.log, "c", 3);
}

/// A rotated file whose modification time is in the future (written while the clock was
/// ahead) cannot be placed against the checkpoint: after a rotation during the stop it is not
/// read, though it is newer than the checkpoint by its time.
#[test]
fn a_rotated_file_with_an_mtime_in_the_future_is_not_read() {
    let s = Scenario::new();
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    let skewed = s.path("events.txt.4");
    append_numbered(&skewed, "old", 0, 5);
    std::fs::File::options()
        .append(true)
        .open(&skewed)
        .and_then(|f| f.set_modified(SystemTime::now() + Duration::from_secs(3600)))
        .expect("set the mtime");
    let mut expected = append_numbered(&s.log, "a", 20, 3);
    rename(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "b", 0, 3));
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// Two rotations while stopped, the file between holding only the start of its first line
/// when emstail starts: EMS, which still writes it through the descriptor it opened before the
/// rename, finishes the line just after. It is read once whole, after the checkpointed file's
/// rest and before the new file.
#[test]
fn a_file_between_without_a_whole_first_line_yet_is_read_once_it_has_one() {
    let s = Scenario::new();
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    let mut expected = append_numbered(&s.log, "a", 20, 5);
    rename(&s.log, &s.path("events.txt.1"));
    append(&s.log, b"b-00");
    rename(&s.path("events.txt.1"), &s.path("events.txt.2"));
    rename(&s.log, &s.path("events.txt.1"));
    let new = append_numbered(&s.log, "c", 0, 3);
    let config = TailConfig {
        grace: ms(1000),
        ..config(&s.log)
    };
    let mut g = Follow::new(config, Start::FromCheckpoint(saved));
    g.wait_lines(expected.len());
    append(&s.path("events.txt.1"), b"0000\n");
    expected.push("b-000000".to_string());
    expected.extend(append_numbered(&s.path("events.txt.1"), "b", 1, 3));
    expected.extend(new);
    g.expect_exactly(&expected);
}

/// logrotate's `compress` with `delaycompress`, three rotations while stopped: the
/// checkpointed file was compressed (gone under its inode), as was the first file after it;
/// the second, `events.txt.1`, is not compressed yet. It is read from its start, then the
/// new `events.txt`. The compressed files are not read: files between are not decompressed,
/// and the one that was the checkpointed file's holds other bytes than its content here.
#[test]
fn rotations_with_delayed_compression_while_stopped_read_what_is_not_compressed() {
    let s = Scenario::new();
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    append_numbered(&s.log, "a", 20, 5);
    std::fs::remove_file(&s.log).expect("compress the checkpointed file away");
    // What gzip leaves: the magic bytes first, whatever follows.
    std::fs::write(s.path("events.txt.3.gz"), b"\x1f\x8b\x08\0a\n").expect("write gz");
    std::fs::write(s.path("events.txt.2.gz"), b"\x1f\x8b\x08\0b\n").expect("write gz");
    let mut expected = append_numbered(&s.path("events.txt.1"), "c", 0, 4);
    expected.extend(append_numbered(&s.log, "d", 0, 3));
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// logrotate's `compress`: `log` gzipped into `gz`, and removed.
fn compress(log: &Path, gz: &Path) {
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(gz).expect("create gz"),
        flate2::Compression::default(),
    );
    encoder
        .write_all(&std::fs::read(log).expect("read the log"))
        .expect("compress");
    encoder.finish().expect("finish gz");
    std::fs::remove_file(log).expect("remove the compressed file");
}

/// logrotate's `compress` while emstail is stopped: the checkpointed `events.txt` is now only
/// `events.txt.1.gz`. What it got after the checkpoint is read from a decompressed copy in
/// the spool, then the new `events.txt`; the copy takes no name there and is gone once read.
#[test]
fn a_file_compressed_while_stopped_is_read_from_the_checkpoint_on() {
    let s = Scenario::new();
    let spool = tempfile::tempdir().expect("spool dir");
    let config = |log: &Path| TailConfig {
        spool: Some(spool.path().to_path_buf()),
        ..config(log)
    };
    let read = append_numbered(&s.log, "a", 0, 2000);
    let f = Follow::caught_up(config(&s.log), &read);
    let saved = checkpoint(&f.tailer);
    drop(f);
    let mut expected = append_numbered(&s.log, "a", 2000, 5);
    let gz = s.path("events.txt.1.gz");
    compress(&s.log, &gz);
    expected.extend(append_numbered(&s.log, "b", 0, 3));
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
    let opened = g.pick(|i| match i {
        TailItem::Opened { path, line, .. } => Some((path.clone(), *line)),
        _ => None,
    });
    assert_eq!(opened, [(gz, 2000), (s.log.clone(), 0)]);
    assert_eq!(
        std::fs::read_dir(spool.path()).expect("spool").count(),
        0,
        "nothing named is left in the spool"
    );
    // Done with: a restart reads none of it again.
    g.restart_reads_only_new(&s.log, "b", 3);
}

/// logrotate's `compress` with `delaycompress`, two rotations while stopped, then a restart
/// before anything was read: the checkpoint holds the rest of the first file (now
/// `events.txt.2.gz`), the file between and the new file. The gzip file was written at the
/// second rotation, after the last line of the file between, yet its rest is read first.
#[test]
fn a_restart_before_a_compressed_rest_was_read_keeps_it_before_the_file_between() {
    let s = Scenario::new();
    let spool = tempfile::tempdir().expect("spool dir");
    let config = |log: &Path| TailConfig {
        spool: Some(spool.path().to_path_buf()),
        ..config(log)
    };
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    let mut expected = append_numbered(&s.log, "a", 20, 5);
    rename(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "b", 0, 4));
    std::thread::sleep(ms(10)); // distinct mtimes: the gzip file is the newer
    compress(&s.path("events.txt.1"), &s.path("events.txt.2.gz"));
    rename(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "c", 0, 3));
    let g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    let saved = checkpoint(&g.tailer);
    drop(g);
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// The gzip copy of the checkpointed file is cut short (its last blocks and trailer lost):
/// what it holds after the checkpoint up to the break is read, whole lines only, then the new
/// `events.txt`, as `replay` reads such a file.
#[test]
fn a_compressed_copy_cut_short_is_read_up_to_the_break() {
    let s = Scenario::new();
    let spool = tempfile::tempdir().expect("spool dir");
    let config = TailConfig {
        spool: Some(spool.path().to_path_buf()),
        ..config(&s.log)
    };
    let read = append_numbered(&s.log, "a", 0, 200);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    // Numbers that do not compress to nothing: the break falls well after the checkpoint.
    let rest: Vec<String> = (0..3000u64)
        .map(|n| format!("a-{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    append(
        &s.log,
        rest.iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .as_bytes(),
    );
    let gz = s.path("events.txt.1.gz");
    compress(&s.log, &gz);
    let whole = std::fs::read(&gz).expect("read gz");
    std::fs::write(&gz, &whole[..whole.len() - 100]).expect("cut the gz short");
    let new = append_numbered(&s.log, "b", 0, 3);
    let mut g = Follow::new(config, Start::FromCheckpoint(saved));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !g.lines().ends_with(&new) {
        assert!(Instant::now() < deadline, "got {:?}", g.lines().len());
        g.items.extend(g.tailer.poll(ms(20)).expect("poll"));
    }
    let got = g.lines();
    let from_gz = &got[..got.len() - new.len()];
    assert!(
        from_gz.len() > 2000 && from_gz.len() < rest.len(),
        "{} of {} lines up to the break",
        from_gz.len(),
        rest.len()
    );
    assert_eq!(from_gz, &rest[..from_gz.len()]);
}

/// A gzip file with the checkpointed file's first line but other content before the
/// checkpoint (the log rewritten, then compressed) is not the rest of it: none of it is read.
#[test]
fn a_compressed_copy_of_other_content_is_not_read() {
    let s = Scenario::new();
    let spool = tempfile::tempdir().expect("spool dir");
    let config = |log: &Path| TailConfig {
        spool: Some(spool.path().to_path_buf()),
        ..config(log)
    };
    let mut read = append_numbered(&s.log, "head", 0, 1);
    read.extend(append_numbered(&s.log, "a", 0, 20));
    let f = Follow::caught_up(config(&s.log), &read);
    let saved = checkpoint(&f.tailer);
    drop(f);
    let (mut other, _) = numbered("head", 0, 1);
    other.extend(numbered("other", 0, 3000).0);
    std::fs::write(&s.log, other).expect("rewrite the log");
    compress(&s.log, &s.path("events.txt.1.gz"));
    let expected = append_numbered(&s.log, "b", 0, 3);
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// A restart while the rest of a compressed file was being read: the checkpoint names the
/// gzip file and the spool's unnamed copy, gone with the process. The rest is decompressed
/// again and read from that checkpoint on.
#[test]
fn a_restart_while_a_compressed_files_rest_is_read_goes_on_from_its_checkpoint() {
    let s = Scenario::new();
    let spool = tempfile::tempdir().expect("spool dir");
    let (content, lines) = numbered("a", 0, 30);
    append(&s.log, &content);
    // As the checkpoint had it: line 20 read from the spool's copy, whose inode is gone.
    let first_line = &content[..content.iter().position(|b| *b == b'\n').expect("a line")];
    let id = emstail::source::fingerprint::FileId {
        dev: 0,
        ino: 0,
        head: emstail::source::fingerprint::head_hash(first_line),
    };
    let offset = 20 * lines[0].len() as u64 + 20;
    let gz = s.path("events.txt.1.gz");
    let mut position = file_position(id, &s.log, offset, 20).expect("position");
    position.path = gz.clone();
    compress(&s.log, &gz);
    let mut expected = lines[20..].to_vec();
    expected.extend(append_numbered(&s.log, "b", 0, 3));
    let saved = Saved {
        positions: vec![position],
        written: Some(SystemTime::now()),
    };
    let config = TailConfig {
        spool: Some(spool.path().to_path_buf()),
        ..config(&s.log)
    };
    let mut g = Follow::new(config, Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// logrotate's `copytruncate` twice while stopped: the copy of the checkpointed content is
/// now `events.txt.2` and goes on from the checkpoint; `events.txt.1` holds what the log got
/// between the two rotations and is read from its start; then what `events.txt` has now.
#[test]
fn two_copytruncates_while_stopped_go_on_in_the_copies() {
    let s = Scenario::new();
    let (mut g, expected) = after_two_rotations_while_stopped(&s, copytruncate);
    g.expect_exactly(&expected);
}

/// logrotate's `extension .txt` keeps the log's extension last: with `dateext` the
/// `copytruncate` copy is `events-20261205.txt`, and a compressed one `events.1.txt.gz`. The
/// log's path `events.txt` lists neither; what the checkpointed file got after the checkpoint
/// is read from them all the same.
#[test]
fn rotated_names_that_keep_the_extension_last_are_searched_too() {
    let s = Scenario::new();
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    let mut expected = append_numbered(&s.log, "a", 20, 5);
    copytruncate(&s.log, &s.path("events-20261205.txt"));
    expected.extend(append_numbered(&s.log, "b", 0, 3));
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);

    let s = Scenario::new();
    let spool = tempfile::tempdir().expect("spool dir");
    let config = TailConfig {
        spool: Some(spool.path().to_path_buf()),
        ..config(&s.log)
    };
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    let mut expected = append_numbered(&s.log, "a", 20, 5);
    compress(&s.log, &s.path("events.1.txt.gz"));
    expected.extend(append_numbered(&s.log, "b", 0, 3));
    let mut g = Follow::new(config, Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// Three rotations while stopped, the two files between last written in the same clock tick
/// (a coarse file system, or a rotation by size within one tick): the higher number is the
/// older file, and is read first.
#[test]
fn files_between_with_equal_mtimes_are_read_oldest_number_first() {
    files_between_with_equal_mtimes(|n| format!("events.txt.{n}"));
    // logrotate's `extension .txt`.
    files_between_with_equal_mtimes(|n| format!("events.{n}.txt"));
}

fn files_between_with_equal_mtimes(rotated: impl Fn(u32) -> String) {
    let s = Scenario::new();
    let at = |n: u32| s.path(&rotated(n));
    let read = append_numbered(&s.log, "a", 0, 20);
    let saved = checkpoint_beside_old_rotations(&s, &read);
    let mut expected = append_numbered(&s.log, "a", 20, 5);
    rename(&s.log, &at(1));
    expected.extend(append_numbered(&s.log, "b", 0, 4));
    rename(&at(1), &at(2));
    rename(&s.log, &at(1));
    expected.extend(append_numbered(&s.log, "c", 0, 4));
    rename(&at(2), &at(3));
    rename(&at(1), &at(2));
    rename(&s.log, &at(1));
    expected.extend(append_numbered(&s.log, "d", 0, 3));
    let tick = SystemTime::now();
    for n in [2, 1] {
        std::fs::File::options()
            .append(true)
            .open(at(n))
            .and_then(|f| f.set_modified(tick))
            .expect("set the mtime");
    }
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// EMS's timestamped files, which logrotate rotates too (`events_*.txt` in its config):
/// while stopped, the checkpointed file got lines, EMS began a newer file, and both were
/// renamed out of the pattern. The newer one is a file between too: read after the
/// checkpointed file's rest and before the file EMS began after the rotation.
#[test]
fn a_newer_timestamped_file_rotated_while_stopped_is_read() {
    let s = Scenario::new();
    let pattern = s.path("events_*.txt");
    let name = |t: u32| ems_file(s.dir.path(), t);
    let rotated = |t: u32| PathBuf::from(format!("{}.1", name(t).display()));
    let read = append_numbered(&name(100_000), "a", 0, 20);
    let f = Follow::caught_up(config(&pattern), &read);
    let saved = checkpoint(&f.tailer);
    drop(f);
    std::thread::sleep(ms(30));
    let mut expected = append_numbered(&name(100_000), "a", 20, 5);
    expected.extend(append_numbered(&name(110_000), "b", 0, 4));
    rename(&name(100_000), &rotated(100_000));
    rename(&name(110_000), &rotated(110_000));
    expected.extend(append_numbered(&name(120_000), "c", 0, 3));
    let mut g = Follow::new(config(&pattern), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

/// A log path that is a symlink to the file EMS writes: logrotate renames the target in its
/// own folder, and that is where the renamed file is found.
#[test]
fn a_symlinked_log_whose_target_was_renamed_while_stopped_is_read_to_its_end_first() {
    let s = Scenario::new();
    let target_dir = s.path("ems");
    std::fs::create_dir(&target_dir).expect("target dir");
    let target = target_dir.join("events.txt");
    std::os::unix::fs::symlink(&target, &s.log).expect("symlink");
    let read = append_numbered(&target, "a", 0, 20);
    let f = Follow::caught_up(config(&s.log), &read);
    let saved = checkpoint(&f.tailer);
    drop(f);
    let mut expected = append_numbered(&target, "a", 20, 5);
    rename(&target, &target_dir.join("events.txt.1"));
    expected.extend(append_numbered(&target, "b", 0, 3));
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

#[test]
fn two_timestamped_rotations_between_scans() {
    let s = Scenario::new();
    let name = |t: u32| ems_file(s.dir.path(), t);
    let mut expected = append_numbered(&name(100_000), "a", 0, 10);
    let mut f = Follow::caught_up(poll_only(&s.path("events_*.txt")), &expected);
    // Nothing is read between polls: both new files appear in one scan.
    expected.extend(append_numbered(&name(100_000), "a", 10, 3));
    let lc = append_numbered(&name(120_000), "c", 0, 10);
    let lb = append_numbered(&name(110_000), "b", 0, 10);
    expected.extend(lb);
    expected.extend(lc);
    f.expect_exactly(&expected);
}

#[test]
fn two_renames_between_scans_with_the_rotated_names_in_the_pattern() {
    let s = Scenario::new();
    let log = s.path("app.log");
    let mut f = Follow::from_start(config(&s.path("app.log*")));
    let mut expected = append_numbered(&log, "a", 0, 10);
    f.wait_lines(10);
    expected.extend(append_numbered(&log, "a", 10, 2));
    rename(&log, &s.path("app.log.1"));
    expected.extend(append_numbered(&log, "b", 0, 5));
    std::thread::sleep(ms(10)); // distinct mtimes: the only order renamed files have
    rename(&s.path("app.log.1"), &s.path("app.log.2"));
    rename(&log, &s.path("app.log.1"));
    expected.extend(append_numbered(&log, "c", 0, 5));
    f.expect_exactly(&expected);
}

#[test]
fn copytruncate_with_the_copy_outside_the_pattern() {
    let s = Scenario::new();
    let mut expected = append_numbered(&s.log, "a", 0, 20);
    let mut f = Follow::caught_up(config(&s.log), &expected);
    copytruncate(&s.log, &s.path("events.txt.1"));
    // Longer than what was read before, so the size alone does not show the truncation.
    expected.extend(append_numbered(&s.log, "bbbbbbbb", 0, 40));
    f.expect_exactly(&expected);
    assert_eq!(f.truncated(), 1);
}

#[test]
fn copytruncate_with_the_copy_in_the_pattern_reads_the_copy_once() {
    let s = Scenario::new();
    let mut expected = append_numbered(&s.log, "a", 0, 20);
    let mut f = Follow::caught_up(config(s.dir.path()), &expected);
    // Written after the last read, before the copy: only the copy still has them.
    expected.extend(append_numbered(&s.log, "a", 20, 5));
    copytruncate(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "b", 0, 40));
    f.expect_exactly(&expected);
}

#[test]
fn truncate_while_running_shorter_and_then_longer() {
    let s = Scenario::new();
    let mut expected = append_numbered(&s.log, "a", 0, 10);
    let mut f = Follow::caught_up(config(&s.log), &expected);
    truncate(&s.log);
    expected.extend(append_numbered(&s.log, "b", 0, 3));
    f.wait_lines(expected.len());
    // Truncated and rewritten longer before the tailer looks again.
    truncate(&s.log);
    expected.extend(append_numbered(&s.log, "c", 0, 30));
    f.expect_exactly(&expected);
    assert_eq!(f.truncated(), 2);
}

#[test]
fn truncate_and_rewrite_with_the_same_bytes_before_the_old_position() {
    // Lines that differ only at their start (as EMS JSON lines of one type do at their end):
    // the bytes just before the old position match, only the first line tells the rewrite.
    let s = Scenario::new();
    let line = |n: usize| format!("{n:04}{}", "-same tail-".repeat(8));
    let lines =
        |from: usize, count: usize| -> Vec<String> { (from..from + count).map(line).collect() };
    let text = |l: &[String]| l.iter().map(|l| format!("{l}\n")).collect::<String>();
    let mut expected = lines(0, 3);
    append(&s.log, text(&expected).as_bytes());
    let mut f = Follow::caught_up(config(&s.log), &expected);
    let again = lines(3, 10);
    std::fs::write(&s.log, text(&again)).expect("rewrite in place, longer");
    expected.extend(again);
    f.expect_exactly(&expected);
}

#[test]
fn truncate_while_stopped_below_at_and_above_the_saved_offset() {
    // The rewritten content: shorter, the same length, longer, and longer with the same first line.
    let same_first_line = {
        let (mut bytes, mut lines) = numbered("a", 0, 1);
        let (more, l) = numbered("d", 0, 20);
        bytes.extend(more);
        lines.extend(l);
        (bytes, lines)
    };
    let cases = [
        ("below", numbered("x", 0, 3)),
        ("equal", numbered("b", 0, 10)),
        ("above", numbered("c", 0, 25)),
        ("same first line", same_first_line),
    ];
    for (name, (bytes, lines)) in cases {
        let s = Scenario::new();
        let mut expected = append_numbered(&s.log, "a", 0, 10);
        let mut f = Follow::caught_up(config(&s.log), &expected);
        let saved = checkpoint(&f.tailer);
        std::fs::write(&s.log, &bytes).expect("rewrite");
        expected.extend(lines);
        f.restart_from(saved);
        f.wait_lines(expected.len());
        f.settle(ms(100));
        assert_eq!(f.lines(), expected, "case {name}");
    }
}

/// Whether this process still holds a descriptor on a deleted file under `dir`.
fn holds_deleted(dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|target| {
            let t = target.to_string_lossy();
            t.starts_with(&*dir.to_string_lossy()) && t.ends_with(" (deleted)")
        })
}

#[test]
fn file_deleted_while_open_is_drained_then_released() {
    let s = Scenario::new();
    let mut expected = append_numbered(&s.log, "a", 0, 10);
    let mut f = Follow::caught_up(config(&s.log), &expected);
    expected.extend(append_numbered(&s.log, "a", 10, 10));
    append(&s.log, b"unterminated");
    expected.push("unterminated".into());
    std::fs::remove_file(&s.log).expect("delete");
    f.expect_exactly(&expected);
    assert_eq!(f.finished(), 1);
    assert!(
        !holds_deleted(s.dir.path()),
        "the deleted file's descriptor is closed"
    );
    // A new file under the same name is followed from its start.
    expected.extend(append_numbered(&s.log, "b", 0, 5));
    f.expect_exactly(&expected);
}

#[test]
fn partial_last_line_is_held_and_survives_a_restart() {
    let s = Scenario::new();
    append(&s.log, b"L1\nL2\npar");
    let mut f = Follow::from_start(config(&s.log));
    f.wait_lines(2);
    f.settle(ms(100));
    assert_eq!(f.lines(), ["L1", "L2"]);
    assert_eq!(
        f.tailer.positions()[0].2,
        6,
        "the restart offset is the partial line's start"
    );
    f.restart();
    append(&s.log, b"tial\nL4\n");
    f.expect_exactly(&["L1", "L2", "partial", "L4"]);
}

#[test]
fn lines_split_across_writes_and_crlf_split_between_cr_and_lf() {
    let s = Scenario::new();
    append(&s.log, b"first\n");
    let mut f = Follow::from_start(config(&s.log));
    f.wait_lines(1);
    for piece in [&b"sec"[..], b"ond li", b"ne\r", b"\nthi", b"rd\n"] {
        append(&s.log, piece);
        f.settle(ms(30));
    }
    f.expect_exactly(&["first", "second line", "third"]);
}

#[test]
fn crlf_mixed_endings_empty_lines_and_a_blank_first_line() {
    let s = Scenario::new();
    append(&s.log, b"\r\na\r\nb\n\nc\r\n");
    let mut f = Follow::from_start(config(&s.log));
    f.expect_exactly(&["", "a", "b", "", "c"]);
    let ends = f.pick(|i| match i {
        TailItem::Line { end, .. } => Some(*end),
        _ => None,
    });
    assert_eq!(ends, vec![2, 5, 7, 8, 11]);
}

#[test]
fn lines_over_the_cap_are_reported_and_skipped_keeping_framing() {
    let s = Scenario::new();
    let at_cap = "y".repeat(100);
    append(
        &s.log,
        format!("{at_cap}\n{}\n", "z".repeat(101)).as_bytes(),
    );
    let mut f = Follow::from_start(TailConfig {
        max_line: 100,
        ..config(&s.log)
    });
    f.wait_lines(2);
    // A long line arriving over several polls.
    for _ in 0..5 {
        append(&s.log, &[b'q'; 1000]);
        f.settle(ms(30));
    }
    append(&s.log, b"\nok\n");
    f.expect_exactly(&[at_cap.as_str(), "<oversize 101>", "<oversize 5000>", "ok"]);
    let numbered = f.pick(|i| match i {
        TailItem::Line { number, offset, .. } | TailItem::Oversize { number, offset, .. } => {
            Some((*number, *offset))
        }
        _ => None,
    });
    assert_eq!(numbered, vec![(1, 0), (2, 101), (3, 203), (4, 5204)]);
}

#[test]
fn non_utf8_bytes_are_delivered_as_they_are() {
    let s = Scenario::new();
    append(&s.log, b"bad \xff\xfe bytes\nnext\n");
    let mut f = Follow::from_start(config(&s.log));
    f.wait_lines(2);
    let raw = f.pick(|i| match i {
        TailItem::Line { bytes, .. } => Some(bytes.clone()),
        _ => None,
    });
    assert_eq!(raw, vec![b"bad \xff\xfe bytes".to_vec(), b"next".to_vec()]);
}

#[test]
fn a_file_that_appears_later_is_read_from_its_start() {
    let s = Scenario::new();
    let mut f = Follow::new(config(&s.log), Start::FromEnd);
    f.settle(ms(60));
    let expected = append_numbered(&s.log, "a", 0, 10);
    f.expect_exactly(&expected);
}

#[test]
fn a_directory_that_appears_later_is_followed() {
    let s = Scenario::new();
    let logs = s.path("logs");
    let mut f = Follow::new(config(&logs.join("events_*.txt")), Start::FromEnd);
    f.settle(ms(60));
    std::fs::create_dir(&logs).expect("mkdir");
    let mut expected = append_numbered(&logs.join("events_20260101_000000.txt"), "a", 0, 10);
    f.wait_lines(10);
    expected.extend(append_numbered(
        &logs.join("events_20260101_010000.txt"),
        "b",
        0,
        10,
    ));
    f.expect_exactly(&expected);
    // And as a plain directory path.
    let other = s.path("other");
    let mut g = Follow::new(config(&other), Start::FromEnd);
    g.settle(ms(60));
    std::fs::create_dir(&other).expect("mkdir");
    let expected = append_numbered(&other.join("events.txt"), "c", 0, 5);
    g.expect_exactly(&expected);
}

#[test]
fn restart_mid_file_from_a_checkpoint_behind_the_reader() {
    let s = Scenario::new();
    let expected = append_numbered(&s.log, "a", 0, 1000);
    let f = Follow::caught_up(config(&s.log), &expected);
    // Actions finished only up to line 250: the checkpoint says so, not the reader.
    let (id, end) = f
        .items
        .iter()
        .find_map(|i| match i {
            TailItem::Line {
                file,
                number: 250,
                end,
                ..
            } => Some((*file, *end)),
            _ => None,
        })
        .expect("line 250 was delivered");
    let saved = Saved {
        positions: vec![file_position(id, &s.log, end, 250).expect("position")],
        written: Some(SystemTime::now()),
    };
    let mut g = Follow::new(f.config.clone(), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected[250..]);
    let numbers = g.pick(|i| match i {
        TailItem::Line { number, .. } => Some(*number),
        _ => None,
    });
    assert_eq!(numbers.first(), Some(&251), "line numbers continue");
    // And a restart at the reader's own position delivers nothing again, then new lines.
    g.restart();
    let mut all = expected[250..].to_vec();
    all.extend(append_numbered(&s.log, "b", 0, 5));
    g.expect_exactly(&all);
}

#[test]
fn inode_reuse_with_the_same_first_line_is_a_new_file() {
    let s = Scenario::new();
    append(&s.log, b"#Version: 1.0\n");
    append_numbered(&s.log, "a", 0, 10);
    let mut f = Follow::from_start(config(&s.log));
    f.wait_lines(11);
    let saved = checkpoint(&f.tailer);
    drop(f);
    std::fs::remove_file(&s.log).expect("delete");
    // Same header, other content, longer: only the bytes before the offset tell them apart.
    append(&s.log, b"#Version: 1.0\n");
    let mut expected = vec!["#Version: 1.0".to_string()];
    expected.extend(append_numbered(&s.log, "b", 0, 30));
    let mut g = Follow::new(config(&s.log), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

#[test]
fn burst_of_100k_lines() {
    let s = Scenario::new();
    append(&s.log, b"start\n");
    let mut f = Follow::from_start(config(&s.log));
    f.wait_lines(1);
    let (a, l) = numbered("burst", 0, 100_000);
    // Written in 8 KiB pieces, as a buffered logger flushes: lines split across writes.
    for piece in a.chunks(8192) {
        append(&s.log, piece);
    }
    let mut expected = vec!["start".to_string()];
    expected.extend(l);
    f.wait_lines(expected.len());
    f.settle(ms(60));
    assert_eq!(f.lines(), expected);
}

#[test]
fn ems_timestamped_files_oldest_first_with_the_grace_period() {
    let s = Scenario::new();
    let name = |t: &str| s.path(&format!("events_0237_20260301_{t}.txt"));
    // Created newest first: the names decide the order, not creation.
    let lc = append_numbered(&name("120000"), "c", 0, 5);
    let lb = append_numbered(&name("110000"), "b", 0, 5);
    let la = append_numbered(&name("100000"), "a", 0, 5);
    let mut f = Follow::from_start(TailConfig {
        grace: ms(400),
        ..config(&s.path("events_*_*.txt"))
    });
    f.wait_lines(15);
    let mut expected: Vec<String> = [la, lb, lc].concat();
    assert_eq!(f.lines(), expected);
    // The newest file is still being written when a newer one appears: the newer file waits
    // until the older has been quiet for the grace period, and late lines come first.
    expected.extend(append_numbered(&name("120000"), "c", 5, 5));
    let ld = append_numbered(&name("130000"), "d", 0, 5);
    f.wait_lines(expected.len());
    f.settle(ms(100));
    assert_eq!(
        f.lines(),
        expected,
        "the newer file waits out the grace period"
    );
    expected.extend(append_numbered(&name("120000"), "c", 10, 5));
    expected.extend(ld);
    f.expect_exactly(&expected);
}

#[test]
fn poll_mode_follows_a_rename_rotation() {
    let s = Scenario::new();
    let mut expected = append_numbered(&s.log, "a", 0, 10);
    let mut f = Follow::caught_up(poll_only(&s.log), &expected);
    expected.extend(append_numbered(&s.log, "a", 10, 5));
    rename(&s.log, &s.path("events.txt.1"));
    expected.extend(append_numbered(&s.log, "b", 0, 10));
    f.expect_exactly(&expected);
}

/// `current.log`, a symlink to the file being written, retargeted at rotation (`ln -sfn`):
/// the old file is drained first, late lines from a writer still holding it included, then
/// the new one from its start; and after a restart nothing is read again.
#[test]
fn a_symlink_retargeted_at_rotation_reads_each_line_once() {
    let s = Scenario::new();
    let link = s.path("current.log");
    let (one, two) = (s.path("events-1.log"), s.path("events-2.log"));
    std::os::unix::fs::symlink(&one, &link).expect("symlink");
    let mut expected = append_numbered(&one, "a", 0, 10);
    let mut f = Follow::caught_up(config(&link), &expected);
    expected.extend(append_numbered(&one, "a", 10, 5));
    // Retargeted as `ln -sfn` does it: a new link renamed over the old one.
    let next = s.path(".current.log.tmp");
    std::os::unix::fs::symlink(&two, &next).expect("symlink");
    rename(&next, &link);
    expected.extend(append_numbered(&one, "a", 15, 2));
    expected.extend(append_numbered(&two, "b", 0, 10));
    f.expect_exactly(&expected);
    f.restart_reads_only_new(&two, "b", 10);
}

/// The hard-link style (`rotatelogs -L`): `current.log` is a second name of the file being
/// written, linked anew at rotation, and the folder followed lists both names. Each line is
/// read once, through whichever name. So with a symlink in the folder.
#[test]
fn a_second_name_of_the_file_being_written_reads_each_line_once() {
    for hard in [true, false] {
        second_name_of_the_file_being_written(hard);
    }
}

fn second_name_of_the_file_being_written(hard: bool) {
    let s = Scenario::new();
    let link = s.path("current.log");
    let one = ems_file(s.dir.path(), 100000);
    let relink = |to: &Path| {
        if hard {
            std::fs::hard_link(to, &link).expect("hard link");
        } else {
            std::os::unix::fs::symlink(to, &link).expect("symlink");
        }
    };
    let mut expected = append_numbered(&one, "a", 0, 10);
    relink(&one);
    let mut f = Follow::caught_up(config(s.dir.path()), &expected);
    expected.extend(append_numbered(&one, "a", 10, 5));
    let two = ems_file(s.dir.path(), 110000);
    expected.extend(append_numbered(&two, "b", 0, 5));
    std::fs::remove_file(&link).expect("unlink");
    relink(&two);
    expected.extend(append_numbered(&two, "b", 5, 5));
    f.expect_exactly(&expected);
    f.restart_reads_only_new(&two, "b", 10);
}

#[test]
fn from_end_starts_after_the_last_complete_line_of_the_newest_file() {
    let s = Scenario::new();
    append(&s.path("events_20260101_000000.txt"), b"old\n");
    let newest = s.path("events_20260102_000000.txt");
    append(&newest, b"seen before\nhalf");
    let mut f = Follow::new(config(s.dir.path()), Start::FromEnd);
    append(&newest, b" line\nnew\n");
    f.expect_exactly(&["half line", "new"]);
    let numbers = f.pick(|i| match i {
        TailItem::Line { number, .. } => Some(*number),
        _ => None,
    });
    assert_eq!(numbers, vec![2, 3]);
}

#[test]
fn from_beginning_of_newest_skips_older_files() {
    let s = Scenario::new();
    append(&s.path("events_20260101_000000.txt"), b"old\n");
    append(&s.path("events_20260102_000000.txt"), b"n1\nn2\n");
    let mut f = Follow::new(config(s.dir.path()), Start::FromBeginningOfNewest);
    f.expect_exactly(&["n1", "n2"]);
}

#[test]
fn checkpoint_resume_skips_older_files_and_reads_newer_ones() {
    let s = Scenario::new();
    let name = |d: &str| s.path(&format!("events_202601{d}_000000.txt"));
    append(&name("01"), b"one\n");
    append(&name("02"), b"two\n");
    let mut f = Follow::from_start(config(s.dir.path()));
    f.wait_lines(2);
    // Only the newest file's position is kept (as after the older one was forgotten).
    let mut saved = checkpoint(&f.tailer);
    saved.positions.retain(|p| p.path == name("02"));
    assert_eq!(saved.positions.len(), 1);
    drop(f);
    append(&name("02"), b"two more\n");
    append(&name("03"), b"three\n");
    let mut g = Follow::new(config(s.dir.path()), Start::FromCheckpoint(saved));
    g.expect_exactly(&["two more", "three"]);
}

#[test]
fn lag_counts_bytes_not_yet_read() {
    let s = Scenario::new();
    append(&s.log, b"a\n");
    let mut f = Follow::from_start(config(&s.log));
    f.wait_lines(1);
    assert_eq!(f.tailer.lag_bytes(), 0);
    append(&s.log, b"partial");
    f.settle(ms(60));
    assert_eq!(
        f.tailer.lag_bytes(),
        7,
        "an unterminated line is not yet consumed"
    );
}

#[test]
fn many_files_are_read_oldest_first_with_few_descriptors() {
    let s = Scenario::new();
    let mut expected = Vec::new();
    for n in 0..60 {
        let file = s.path(&format!("events_20260101_{:06}.txt", 100_000 + n));
        expected.extend(append_numbered(&file, &format!("f{n:02}"), 0, 3));
    }
    let mut f = Follow::from_start(config(s.dir.path()));
    let open = std::fs::read_dir("/proc/self/fd")
        .expect("/proc is mounted")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| t.starts_with(s.dir.path()))
        .count();
    assert!(open <= 9, "{open} descriptors open for 60 files");
    f.expect_exactly(&expected);
}

mod model {
    //! Random sequences of writer actions and restarts against an in-memory model of the
    //! lines that must come out.

    use super::*;
    use proptest::prelude::*;
    use support::scenario::{OpMix, WriterOp as Op, writer_op};

    struct World {
        dir: PathBuf,
        file: u32,
        next: u64,
        partial: Option<String>,
        expected: Vec<String>,
    }

    impl World {
        fn path(&self) -> PathBuf {
            // EMS names: the timestamp orders the files.
            ems_file(&self.dir, 100_000 + self.file)
        }

        fn line(&mut self) -> String {
            self.next += 1;
            // Lengths vary so that rewrites rarely match sizes.
            format!("{}-{}", self.next, "x".repeat((self.next % 7) as usize))
        }

        /// `n` new complete lines, as file content; they are expected.
        fn lines(&mut self, n: u8) -> Vec<u8> {
            let mut bytes = Vec::new();
            for _ in 0..n {
                let l = self.line();
                bytes.extend(format!("{l}\n").into_bytes());
                self.expected.push(l);
            }
            bytes
        }

        fn finish_partial(&mut self) {
            if let Some(p) = self.partial.take() {
                append(&self.path(), b"-end\n");
                self.expected.push(format!("{p}-end"));
            }
        }
    }

    fn run(ops: &[Op], poll_only: bool) -> Result<(), TestCaseError> {
        let s = Scenario::new();
        let cfg = TailConfig {
            rescan: ms(5),
            grace: ms(10),
            poll_only,
            ..config(&s.path("events_*.txt"))
        };
        let mut w = World {
            dir: s.dir.path().to_path_buf(),
            file: 0,
            next: 0,
            partial: None,
            expected: Vec::new(),
        };
        let mut f = Follow::from_start(cfg);
        for op in ops {
            match op {
                Op::Append(n) => {
                    w.finish_partial();
                    let bytes = w.lines(*n);
                    append(&w.path(), &bytes);
                }
                Op::AppendPartial => {
                    if w.partial.is_none() {
                        let l = w.line();
                        append(&w.path(), l.as_bytes());
                        w.partial = Some(l);
                    }
                }
                Op::Rotate => {
                    w.finish_partial();
                    w.file += 1;
                }
                Op::Truncate(n) => {
                    // The tailer has seen everything complete; the held partial line is lost
                    // with the old content.
                    f.wait_lines(w.expected.len());
                    w.partial = None;
                    let bytes = w.lines(*n);
                    truncate(&w.path());
                    append(&w.path(), &bytes);
                    f.wait_lines(w.expected.len());
                }
                Op::Delete => {
                    w.finish_partial();
                    // Deleted after the tailer found it (a file gone before any scan is lost
                    // to every tailer).
                    f.wait_lines(w.expected.len());
                    let _ = std::fs::remove_file(w.path());
                    w.file += 1;
                }
                Op::Restart => f.restart(),
                Op::Sync => f.wait_lines(w.expected.len()),
            }
        }
        f.wait_lines(w.expected.len());
        f.settle(ms(30));
        prop_assert_eq!(f.lines(), w.expected);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 200,
            max_shrink_iters: 200,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn random_writer_actions_and_restarts_match_the_model(
            ops in proptest::collection::vec(writer_op(&OpMix {
                append_below: 20,
                truncate_below: 5,
                partial_weight: 2,
                sync_weight: 1,
            }), 1..14),
            poll_only in any::<bool>(),
        ) {
            run(&ops, poll_only)?;
        }
    }
}

mod same_framing_as_replay {
    //! The same bytes, written in random pieces and followed live, give exactly the lines
    //! replay reads from the finished file: one framer serves both modes.

    use super::*;
    use emstail::source::read::{Item, for_each_line};
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// (number, offset, bytes) of a line; an oversize one as `<len>` in the bytes' place.
    type Framed = (u64, u64, Vec<u8>);

    fn oversize(len: u64) -> Vec<u8> {
        format!("<oversize {len}>").into_bytes()
    }

    fn replayed(path: &Path, max_line: usize) -> Vec<Framed> {
        let mut out = Vec::new();
        for_each_line(path, max_line, |item| {
            out.push(match item {
                Item::Line(l) => (l.number, l.offset, l.bytes.to_vec()),
                Item::Oversize { line, offset, len } => (line, offset, oversize(len)),
            })
        })
        .expect("the finished file is readable");
        out
    }

    /// Writes `pieces` one by one with a poll after each, then deletes the file and follows
    /// it until the tailer has finished it (its unterminated last line included).
    fn followed(s: &Scenario, pieces: &[&[u8]], max_line: usize) -> Vec<Framed> {
        append(&s.log, pieces[0]);
        let cfg = TailConfig {
            rescan: ms(0),
            grace: ms(0),
            max_line,
            ..poll_only(&s.log)
        };
        let mut tailer = Tailer::new(cfg, Start::FromStart).expect("tailer starts");
        let mut items = Vec::new();
        for piece in &pieces[1..] {
            append(&s.log, piece);
            items.extend(tailer.poll(Duration::ZERO).expect("poll"));
        }
        // Identified by now (its first line is on disk and was polled): a file deleted before
        // that would be lost to any tailer.
        std::fs::remove_file(&s.log).expect("delete");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !items.iter().any(|i| matches!(i, TailItem::Finished { .. })) {
            assert!(
                Instant::now() < deadline,
                "the deleted file was never finished"
            );
            items.extend(tailer.poll(ms(5)).expect("poll"));
        }
        items
            .into_iter()
            .filter_map(|i| match i {
                TailItem::Line {
                    number,
                    offset,
                    bytes,
                    ..
                } => Some((number, offset, bytes)),
                TailItem::Oversize {
                    number,
                    offset,
                    len,
                    ..
                } => Some((number, offset, oversize(len))),
                _ => None,
            })
            .collect()
    }

    /// Bytes rich in what framing can get wrong: `\r` and `\n` in every order, runs long enough
    /// to pass a small cap, bytes that are not UTF-8, and often no newline at the end.
    fn log_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(vec![0xff, 0xfe, 0x80]),
            proptest::collection::vec(b'a'..=b'e', 0..40),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn random_write_splits_give_the_lines_replay_reads(
            body in log_bytes(),
            cuts in proptest::collection::vec(any::<Index>(), 0..12),
            max_line in 1usize..48,
        ) {
            // The tailer knows a file by its first line, so the file starts with one (EMS's
            // always do); everything after it is random.
            let mut data = b"{\"entry\":1}\n".to_vec();
            data.extend(body);
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for cut in at {
                pieces.push(&data[from..cut]);
                from = cut;
            }
            pieces.push(&data[from..]);

            let s = Scenario::new();
            let live = followed(&s, &pieces, max_line);
            let finished = s.path("finished.txt");
            std::fs::write(&finished, &data).expect("write");
            prop_assert_eq!(live, replayed(&finished, max_line));
        }
    }
}

#[test]
fn a_rotation_between_scans_keeps_the_old_file_in_the_checkpoint() {
    let s = Scenario::new();
    let expected = append_numbered(&s.log, "a", 0, 50);
    // No scan after the rotation: the tailer still knows the old file by its old path.
    let rotating = TailConfig {
        log: s.path("events*.txt").to_string_lossy().into_owned(),
        rescan: Duration::from_secs(3600),
        ..poll_only(&s.log)
    };
    let f = Follow::caught_up(rotating, &expected);
    rename(&s.log, &s.path("events_1.txt"));
    append_numbered(&s.log, "b", 0, 1);
    let saved = checkpoint(&f.tailer);
    let old_len = std::fs::metadata(s.path("events_1.txt"))
        .expect("old file")
        .len();
    assert_eq!(
        saved
            .positions
            .iter()
            .map(|p| (p.offset, p.line))
            .collect::<Vec<_>>(),
        [(old_len, 50)],
        "{saved:?}"
    );
    // After a crash, only the new file's line is read: the old file is not read again.
    let mut g = Follow::new(f.config.clone(), Start::FromCheckpoint(saved));
    g.expect_exactly(&["b-000000"]);
}

/// Following a folder where logrotate compresses the files read: a gzip file is not followed,
/// while running nor after a restart; its compressed bytes never come out as lines.
#[test]
fn a_compressed_file_in_the_logs_folder_is_not_followed() {
    let s = Scenario::new();
    let old = ems_file(s.dir.path(), 100000);
    // Long enough for its compressed bytes to hold newlines.
    let mut expected = append_numbered(&old, "a", 0, 20000);
    let mut f = Follow::caught_up(config(s.dir.path()), &expected);
    let new = ems_file(s.dir.path(), 110000);
    expected.extend(append_numbered(&new, "b", 0, 3));
    f.wait_lines(expected.len());
    compress(&old, &s.path("events_20260301_100000.txt.gz"));
    compress(&new, &s.path("events_20260301_110000.txt.gz"));
    // xz's magic bytes, and lines after them: not a log either.
    append(
        &s.path("events_20260301_105000.txt.xz"),
        b"\xfd7zXZ\0\nx\ny\n",
    );
    let current = ems_file(s.dir.path(), 120000);
    expected.extend(append_numbered(&current, "c", 0, 3));
    f.expect_exactly(&expected);
    f.restart();
    expected.extend(append_numbered(&current, "c", 3, 3));
    f.expect_exactly(&expected);
}
