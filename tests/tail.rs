//! The live-log tailer against real files in a temporary directory: every line delivered
//! exactly once and in order, across rotations, truncations, deletions and restarts.

use emstail::source::tail::{FilePosition, Start, TailConfig, TailItem, Tailer, file_position};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(log: &Path) -> TailConfig {
    TailConfig {
        log: log.to_string_lossy().into_owned(),
        rescan: ms(20),
        grace: ms(50),
        max_line: 1 << 20,
        poll_only: false,
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("test file opens for appending");
    f.write_all(bytes).expect("test file takes the write");
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

    fn lines(&self) -> Vec<String> {
        texts(&self.items)
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
    fn expect_exactly(&mut self, expected: &[String]) {
        self.wait_lines(expected.len());
        self.settle(ms(150));
        assert_eq!(self.lines(), expected);
    }

    /// Stops and starts again from the positions the old tailer reports, as a checkpoint would.
    fn restart(&mut self) {
        let saved = checkpoint(&self.tailer);
        self.tailer = Tailer::new(self.config.clone(), Start::FromCheckpoint(saved))
            .expect("tailer restarts");
    }
}

/// The tailer's positions as checkpoint entries (files whose path is gone are left out, as
/// they would be unreadable for the hash).
fn checkpoint(tailer: &Tailer) -> Vec<FilePosition> {
    tailer
        .positions()
        .into_iter()
        .filter_map(|(id, path, offset, line)| file_position(id, &path, offset, line).ok())
        .collect()
}

fn count(items: &[TailItem], pred: impl Fn(&TailItem) -> bool) -> usize {
    items.iter().filter(|i| pred(i)).count()
}

#[test]
fn rename_and_create_rotation_drains_the_old_file_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let (a, mut expected) = numbered("a", 0, 50);
    append(&log, &a);
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(50);

    // Lines just before the rename, and late ones from a writer still holding the old file.
    let (before, l) = numbered("a", 50, 10);
    expected.extend(l);
    append(&log, &before);
    let mut writer = OpenOptions::new().append(true).open(&log).expect("writer");
    std::fs::rename(&log, dir.path().join("events.txt.1")).expect("rename");
    let (late, l) = numbered("a", 60, 5);
    expected.extend(l);
    writer.write_all(&late).expect("late write");
    let (b, l) = numbered("b", 0, 20);
    expected.extend(l);
    append(&log, &b);
    f.expect_exactly(&expected);
    assert_eq!(
        count(&f.items, |i| matches!(i, TailItem::Finished { .. })),
        1
    );
    let opened: Vec<u64> = f
        .items
        .iter()
        .filter_map(|i| match i {
            TailItem::Opened { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(opened, vec![0, 0], "both files are read from their start");
}

#[test]
fn two_timestamped_rotations_between_scans() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = |t: &str| dir.path().join(format!("events_20260301_{t}.txt"));
    let mut cfg = config(&dir.path().join("events_*.txt"));
    cfg.poll_only = true;
    let (a, mut expected) = numbered("a", 0, 10);
    append(&name("100000"), &a);
    let mut f = Follow::new(cfg, Start::FromStart);
    f.wait_lines(10);
    // Nothing is read between polls: both new files appear in one scan.
    let (a2, l) = numbered("a", 10, 3);
    expected.extend(l);
    append(&name("100000"), &a2);
    let (c, lc) = numbered("c", 0, 10);
    let (b, lb) = numbered("b", 0, 10);
    append(&name("120000"), &c);
    append(&name("110000"), &b);
    expected.extend(lb);
    expected.extend(lc);
    f.expect_exactly(&expected);
}

#[test]
fn two_renames_between_scans_with_the_rotated_names_in_the_pattern() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let mut f = Follow::new(config(&dir.path().join("app.log*")), Start::FromStart);
    let (a, mut expected) = numbered("a", 0, 10);
    append(&log, &a);
    f.wait_lines(10);
    let (a2, l) = numbered("a", 10, 2);
    expected.extend(l);
    append(&log, &a2);
    std::fs::rename(&log, dir.path().join("app.log.1")).expect("rename");
    let (b, l) = numbered("b", 0, 5);
    expected.extend(l);
    append(&log, &b);
    std::thread::sleep(ms(10)); // distinct mtimes: the only order renamed files have
    std::fs::rename(dir.path().join("app.log.1"), dir.path().join("app.log.2")).expect("rename");
    std::fs::rename(&log, dir.path().join("app.log.1")).expect("rename");
    let (c, l) = numbered("c", 0, 5);
    expected.extend(l);
    append(&log, &c);
    f.expect_exactly(&expected);
}

#[test]
fn copytruncate_with_the_copy_outside_the_pattern() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let (a, mut expected) = numbered("a", 0, 20);
    append(&log, &a);
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(20);
    std::fs::copy(&log, dir.path().join("events.txt.1")).expect("copy");
    File::options()
        .write(true)
        .open(&log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    // Longer than what was read before, so the size alone does not show the truncation.
    let (b, l) = numbered("bbbbbbbb", 0, 40);
    expected.extend(l);
    append(&log, &b);
    f.expect_exactly(&expected);
    assert_eq!(
        count(&f.items, |i| matches!(i, TailItem::Truncated { .. })),
        1
    );
}

#[test]
fn copytruncate_with_the_copy_in_the_pattern_reads_the_copy_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let (a, mut expected) = numbered("a", 0, 20);
    append(&log, &a);
    let mut f = Follow::new(config(dir.path()), Start::FromStart);
    f.wait_lines(20);
    // Written after the last read, before the copy: only the copy still has them.
    let (a2, l) = numbered("a", 20, 5);
    expected.extend(l);
    append(&log, &a2);
    std::fs::copy(&log, dir.path().join("events.txt.1")).expect("copy");
    File::options()
        .write(true)
        .open(&log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    let (b, l) = numbered("b", 0, 40);
    expected.extend(l);
    append(&log, &b);
    f.expect_exactly(&expected);
}

#[test]
fn truncate_while_running_shorter_and_then_longer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let (a, mut expected) = numbered("a", 0, 10);
    append(&log, &a);
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(10);
    std::fs::write(&log, b"").expect("truncate");
    let (b, l) = numbered("b", 0, 3);
    expected.extend(l);
    append(&log, &b);
    f.wait_lines(13);
    // Truncated and rewritten longer before the tailer looks again.
    std::fs::write(&log, b"").expect("truncate");
    let (c, l) = numbered("c", 0, 30);
    expected.extend(l);
    append(&log, &c);
    f.expect_exactly(&expected);
    assert_eq!(
        count(&f.items, |i| matches!(i, TailItem::Truncated { .. })),
        2
    );
}

#[test]
fn truncate_and_rewrite_with_the_same_bytes_before_the_old_position() {
    // Lines that differ only at their start (as EMS JSON lines of one type do at their end):
    // the bytes just before the old position match, only the first line tells the rewrite.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let line = |n: usize| format!("{n:04}{}", "-same tail-".repeat(8));
    let lines =
        |from: usize, count: usize| -> Vec<String> { (from..from + count).map(line).collect() };
    let text = |l: &[String]| l.iter().map(|l| format!("{l}\n")).collect::<String>();
    let mut expected = lines(0, 3);
    append(&log, text(&expected).as_bytes());
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(3);
    let again = lines(3, 10);
    std::fs::write(&log, text(&again)).expect("rewrite in place, longer");
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
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("events.txt");
        let (a, mut expected) = numbered("a", 0, 10);
        append(&log, &a);
        let mut f = Follow::new(config(&log), Start::FromStart);
        f.wait_lines(10);
        let saved = checkpoint(&f.tailer);
        std::fs::write(&log, &bytes).expect("rewrite");
        expected.extend(lines);
        f.tailer = Tailer::new(f.config.clone(), Start::FromCheckpoint(saved)).expect("restart");
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
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let (a, mut expected) = numbered("a", 0, 10);
    append(&log, &a);
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(10);
    let (a2, l) = numbered("a", 10, 10);
    expected.extend(l);
    append(&log, &a2);
    append(&log, b"unterminated");
    expected.push("unterminated".into());
    std::fs::remove_file(&log).expect("delete");
    f.expect_exactly(&expected);
    assert_eq!(
        count(&f.items, |i| matches!(i, TailItem::Finished { .. })),
        1
    );
    assert!(
        !holds_deleted(dir.path()),
        "the deleted file's descriptor is closed"
    );
    // A new file under the same name is followed from its start.
    let (b, l) = numbered("b", 0, 5);
    expected.extend(l);
    append(&log, &b);
    f.expect_exactly(&expected);
}

#[test]
fn partial_last_line_is_held_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    append(&log, b"L1\nL2\npar");
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(2);
    f.settle(ms(100));
    assert_eq!(f.lines(), ["L1", "L2"]);
    assert_eq!(
        f.tailer.positions()[0].2,
        6,
        "the restart offset is the partial line's start"
    );
    f.restart();
    append(&log, b"tial\nL4\n");
    f.expect_exactly(&["L1".into(), "L2".into(), "partial".into(), "L4".into()]);
}

#[test]
fn lines_split_across_writes_and_crlf_split_between_cr_and_lf() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    append(&log, b"first\n");
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(1);
    for piece in [&b"sec"[..], b"ond li", b"ne\r", b"\nthi", b"rd\n"] {
        append(&log, piece);
        f.settle(ms(30));
    }
    f.expect_exactly(&["first".into(), "second line".into(), "third".into()]);
}

#[test]
fn crlf_mixed_endings_empty_lines_and_a_blank_first_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    append(&log, b"\r\na\r\nb\n\nc\r\n");
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.expect_exactly(&["", "a", "b", "", "c"].map(String::from));
    let ends: Vec<u64> = f
        .items
        .iter()
        .filter_map(|i| match i {
            TailItem::Line { end, .. } => Some(*end),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![2, 5, 7, 8, 11]);
}

#[test]
fn lines_over_the_cap_are_reported_and_skipped_keeping_framing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let at_cap = "y".repeat(100);
    append(&log, format!("{at_cap}\n{}\n", "z".repeat(101)).as_bytes());
    let mut cfg = config(&log);
    cfg.max_line = 100;
    let mut f = Follow::new(cfg, Start::FromStart);
    f.wait_lines(2);
    // A long line arriving over several polls.
    for _ in 0..5 {
        append(&log, &[b'q'; 1000]);
        f.settle(ms(30));
    }
    append(&log, b"\nok\n");
    f.expect_exactly(&[
        at_cap,
        "<oversize 101>".into(),
        "<oversize 5000>".into(),
        "ok".into(),
    ]);
    let numbered: Vec<(u64, u64)> =
        f.items
            .iter()
            .filter_map(|i| match i {
                TailItem::Line { number, offset, .. }
                | TailItem::Oversize { number, offset, .. } => Some((*number, *offset)),
                _ => None,
            })
            .collect();
    assert_eq!(numbered, vec![(1, 0), (2, 101), (3, 203), (4, 5204)]);
}

#[test]
fn non_utf8_bytes_are_delivered_as_they_are() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    append(&log, b"bad \xff\xfe bytes\nnext\n");
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(2);
    let raw: Vec<Vec<u8>> = f
        .items
        .iter()
        .filter_map(|i| match i {
            TailItem::Line { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(raw, vec![b"bad \xff\xfe bytes".to_vec(), b"next".to_vec()]);
}

#[test]
fn a_file_that_appears_later_is_read_from_its_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let mut f = Follow::new(config(&log), Start::FromEnd);
    f.settle(ms(60));
    let (a, expected) = numbered("a", 0, 10);
    append(&log, &a);
    f.expect_exactly(&expected);
}

#[test]
fn a_directory_that_appears_later_is_followed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let mut f = Follow::new(config(&logs.join("events_*.txt")), Start::FromEnd);
    f.settle(ms(60));
    std::fs::create_dir(&logs).expect("mkdir");
    let (a, mut expected) = numbered("a", 0, 10);
    append(&logs.join("events_20260101_000000.txt"), &a);
    f.wait_lines(10);
    let (b, l) = numbered("b", 0, 10);
    expected.extend(l);
    append(&logs.join("events_20260101_010000.txt"), &b);
    f.expect_exactly(&expected);
    // And as a plain directory path.
    let other = dir.path().join("other");
    let mut g = Follow::new(config(&other), Start::FromEnd);
    g.settle(ms(60));
    std::fs::create_dir(&other).expect("mkdir");
    let (c, expected) = numbered("c", 0, 5);
    append(&other.join("events.txt"), &c);
    g.expect_exactly(&expected);
}

#[test]
fn restart_mid_file_from_a_checkpoint_behind_the_reader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let (a, expected) = numbered("a", 0, 1000);
    append(&log, &a);
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(1000);
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
    let saved = vec![file_position(id, &log, end, 250).expect("position")];
    let mut g = Follow::new(f.config.clone(), Start::FromCheckpoint(saved));
    g.expect_exactly(&expected[250..]);
    let first = g.items.iter().find_map(|i| match i {
        TailItem::Line { number, .. } => Some(*number),
        _ => None,
    });
    assert_eq!(first, Some(251), "line numbers continue");
    // And a restart at the reader's own position delivers nothing again, then new lines.
    g.restart();
    let (b, l) = numbered("b", 0, 5);
    append(&log, &b);
    let mut all = expected[250..].to_vec();
    all.extend(l);
    g.expect_exactly(&all);
}

#[test]
fn inode_reuse_with_the_same_first_line_is_a_new_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let (a, _) = numbered("a", 0, 10);
    append(&log, b"#Version: 1.0\n");
    append(&log, &a);
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(11);
    let saved = checkpoint(&f.tailer);
    drop(f);
    std::fs::remove_file(&log).expect("delete");
    // Same header, other content, longer: only the bytes before the offset tell them apart.
    let (b, lb) = numbered("b", 0, 30);
    append(&log, b"#Version: 1.0\n");
    append(&log, &b);
    let mut expected = vec!["#Version: 1.0".to_string()];
    expected.extend(lb);
    let cfg = config(&log);
    let mut g = Follow::new(cfg, Start::FromCheckpoint(saved));
    g.expect_exactly(&expected);
}

#[test]
fn burst_of_100k_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    append(&log, b"start\n");
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(1);
    let (a, l) = numbered("burst", 0, 100_000);
    // Written in 8 KiB pieces, as a buffered logger flushes: lines split across writes.
    for piece in a.chunks(8192) {
        append(&log, piece);
    }
    let mut expected = vec!["start".to_string()];
    expected.extend(l);
    f.wait_lines(expected.len());
    f.settle(ms(60));
    assert_eq!(f.lines(), expected);
}

#[test]
fn ems_timestamped_files_oldest_first_with_the_grace_period() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = |t: &str| dir.path().join(format!("events_0237_20260301_{t}.txt"));
    // Created newest first: the names decide the order, not creation.
    let (c, lc) = numbered("c", 0, 5);
    let (b, lb) = numbered("b", 0, 5);
    let (a, la) = numbered("a", 0, 5);
    append(&name("120000"), &c);
    append(&name("110000"), &b);
    append(&name("100000"), &a);
    let mut cfg = config(&dir.path().join("events_*_*.txt"));
    cfg.grace = ms(400);
    let mut f = Follow::new(cfg, Start::FromStart);
    f.wait_lines(15);
    let mut expected: Vec<String> = [la, lb, lc].concat();
    assert_eq!(f.lines(), expected);
    // The newest file is still being written when a newer one appears: the newer file waits
    // until the older has been quiet for the grace period, and late lines come first.
    let (c2, lc2) = numbered("c", 5, 5);
    append(&name("120000"), &c2);
    expected.extend(lc2);
    let (d, ld) = numbered("d", 0, 5);
    append(&name("130000"), &d);
    f.wait_lines(expected.len());
    f.settle(ms(100));
    assert_eq!(
        f.lines(),
        expected,
        "the newer file waits out the grace period"
    );
    let (c3, lc3) = numbered("c", 10, 5);
    append(&name("120000"), &c3);
    expected.extend(lc3);
    expected.extend(ld);
    f.expect_exactly(&expected);
}

#[test]
fn poll_mode_follows_a_rename_rotation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    let mut cfg = config(&log);
    cfg.poll_only = true;
    let (a, mut expected) = numbered("a", 0, 10);
    append(&log, &a);
    let mut f = Follow::new(cfg, Start::FromStart);
    f.wait_lines(10);
    let (a2, l) = numbered("a", 10, 5);
    expected.extend(l);
    append(&log, &a2);
    std::fs::rename(&log, dir.path().join("events.txt.1")).expect("rename");
    let (b, l) = numbered("b", 0, 10);
    expected.extend(l);
    append(&log, &b);
    f.expect_exactly(&expected);
}

#[test]
fn from_end_starts_after_the_last_complete_line_of_the_newest_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    append(&dir.path().join("events_20260101_000000.txt"), b"old\n");
    let newest = dir.path().join("events_20260102_000000.txt");
    append(&newest, b"seen before\nhalf");
    let mut f = Follow::new(config(dir.path()), Start::FromEnd);
    append(&newest, b" line\nnew\n");
    f.expect_exactly(&["half line".into(), "new".into()]);
    let numbers: Vec<u64> = f
        .items
        .iter()
        .filter_map(|i| match i {
            TailItem::Line { number, .. } => Some(*number),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, vec![2, 3]);
}

#[test]
fn from_beginning_of_newest_skips_older_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    append(&dir.path().join("events_20260101_000000.txt"), b"old\n");
    append(&dir.path().join("events_20260102_000000.txt"), b"n1\nn2\n");
    let mut f = Follow::new(config(dir.path()), Start::FromBeginningOfNewest);
    f.expect_exactly(&["n1".into(), "n2".into()]);
}

#[test]
fn checkpoint_resume_skips_older_files_and_reads_newer_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = |d: &str| dir.path().join(format!("events_202601{d}_000000.txt"));
    append(&name("01"), b"one\n");
    append(&name("02"), b"two\n");
    let mut f = Follow::new(config(dir.path()), Start::FromStart);
    f.wait_lines(2);
    // Only the newest file's position is kept (as after the older one was forgotten).
    let saved: Vec<FilePosition> = checkpoint(&f.tailer)
        .into_iter()
        .filter(|p| p.path == name("02"))
        .collect();
    assert_eq!(saved.len(), 1);
    drop(f);
    append(&name("02"), b"two more\n");
    append(&name("03"), b"three\n");
    let mut g = Follow::new(config(dir.path()), Start::FromCheckpoint(saved));
    g.expect_exactly(&["two more".into(), "three".into()]);
}

#[test]
fn lag_counts_bytes_not_yet_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.txt");
    append(&log, b"a\n");
    let mut f = Follow::new(config(&log), Start::FromStart);
    f.wait_lines(1);
    assert_eq!(f.tailer.lag_bytes(), 0);
    append(&log, b"partial");
    f.settle(ms(60));
    assert_eq!(
        f.tailer.lag_bytes(),
        7,
        "an unterminated line is not yet consumed"
    );
}

#[test]
fn many_files_are_read_oldest_first_with_few_descriptors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut expected = Vec::new();
    for n in 0..60 {
        let (bytes, lines) = numbered(&format!("f{n:02}"), 0, 3);
        append(
            &dir.path()
                .join(format!("events_20260101_{:06}.txt", 100_000 + n)),
            &bytes,
        );
        expected.extend(lines);
    }
    let mut f = Follow::new(config(dir.path()), Start::FromStart);
    let open = std::fs::read_dir("/proc/self/fd")
        .expect("/proc is mounted")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| t.starts_with(dir.path()))
        .count();
    assert!(open <= 9, "{open} descriptors open for 60 files");
    f.expect_exactly(&expected);
}

mod model {
    //! Random sequences of writer actions and restarts against an in-memory model of the
    //! lines that must come out.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
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
        /// The tailer stops and starts again from its positions.
        Restart,
        /// The tailer catches up.
        Sync,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..20).prop_map(Op::Append),
            2 => Just(Op::AppendPartial),
            2 => Just(Op::Rotate),
            1 => (1u8..5).prop_map(Op::Truncate),
            1 => Just(Op::Delete),
            2 => Just(Op::Restart),
            1 => Just(Op::Sync),
        ]
    }

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
            self.dir
                .join(format!("events_20260301_{:06}.txt", 100_000 + self.file))
        }

        fn line(&mut self) -> String {
            self.next += 1;
            // Lengths vary so that rewrites rarely match sizes.
            format!("{}-{}", self.next, "x".repeat((self.next % 7) as usize))
        }

        fn finish_partial(&mut self) {
            if let Some(p) = self.partial.take() {
                append(&self.path(), b"-end\n");
                self.expected.push(format!("{p}-end"));
            }
        }
    }

    fn run(ops: &[Op], poll_only: bool) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = TailConfig {
            log: dir
                .path()
                .join("events_*.txt")
                .to_string_lossy()
                .into_owned(),
            rescan: ms(5),
            grace: ms(10),
            max_line: 1 << 20,
            poll_only,
        };
        let mut w = World {
            dir: dir.path().to_path_buf(),
            file: 0,
            next: 0,
            partial: None,
            expected: Vec::new(),
        };
        let mut f = Follow::new(cfg, Start::FromStart);
        for op in ops {
            match op {
                Op::Append(n) => {
                    w.finish_partial();
                    let mut bytes = Vec::new();
                    for _ in 0..*n {
                        let l = w.line();
                        bytes.extend(format!("{l}\n").into_bytes());
                        w.expected.push(l);
                    }
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
                    let mut bytes = Vec::new();
                    for _ in 0..*n {
                        let l = w.line();
                        bytes.extend(format!("{l}\n").into_bytes());
                        w.expected.push(l);
                    }
                    std::fs::write(w.path(), b"").expect("truncate");
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
            ops in proptest::collection::vec(op(), 1..14),
            poll_only in any::<bool>(),
        ) {
            run(&ops, poll_only)?;
        }
    }
}
