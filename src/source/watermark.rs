//! Which byte of each file every earlier line's actions have finished below.
//!
//! Actions of different lanes finish in any order; a checkpoint may only move past a line once
//! all its actions (and those of every line before it) are done, so a restart never skips work.
//! The reader registers each line before handing its actions to the pool; workers `ack` tokens.
//!
//! Line numbers: `line` and `hold` take the 1-based number of the line starting at `offset`
//! (as [`crate::parse::Line::number`]); `consumed`, `start` and the results of `safe`/`files`
//! use the count of lines before the offset, which is what a restart resumes numbering from.

use super::fingerprint::FileId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Per-file watermarks, shared via `Arc` between the reader and the pool's workers.
#[derive(Debug, Default)]
pub struct Watermarks {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    files: BTreeMap<FileId, FileMarks>,
    /// Unacked token → the file and start offset of its line.
    tokens: HashMap<u64, (FileId, u64)>,
    next_token: u64,
}

#[derive(Debug, Default)]
struct FileMarks {
    /// Lines with unacked actions, by start offset: (lines before the offset, actions left).
    pending: BTreeMap<u64, (u64, usize)>,
    /// A record still open in the parser: (offset, lines before it).
    held: Option<(u64, u64)>,
    /// The end of everything registered, and the count of lines before it.
    end: u64,
    lines: u64,
}

impl FileMarks {
    fn reach(&mut self, end: u64, lines: u64) {
        if end >= self.end {
            self.end = end;
            self.lines = self.lines.max(lines);
        }
    }

    fn safe(&self) -> (u64, u64) {
        let pending = self
            .pending
            .iter()
            .next()
            .map(|(&off, &(lines, _))| (off, lines));
        match (pending, self.held) {
            (Some(p), Some(h)) => p.min(h),
            (Some(m), None) | (None, Some(m)) => m,
            (None, None) => (self.end, self.lines),
        }
    }
}

impl Watermarks {
    pub fn new() -> Self {
        Self::default()
    }

    /// A panic elsewhere cannot leave these maps half-updated (no user code runs under the
    /// lock), so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A line (or a text record) starting at `offset` and ending at `end` (after its newline)
    /// with `actions` actions submitted or about to be; returns a token per action to hand back
    /// in [`ack`](Self::ack). `actions == 0` → done at once. `line_no` is the 1-based number of
    /// the line at `offset`; the record is taken to end at line `line_no` unless later calls
    /// say more.
    pub fn line(
        &self,
        file: FileId,
        line_no: u64,
        offset: u64,
        end: u64,
        actions: usize,
    ) -> Vec<u64> {
        let mut inner = self.lock();
        let lines_before = line_no.saturating_sub(1);
        let mut tokens = Vec::with_capacity(actions);
        for _ in 0..actions {
            inner.next_token += 1;
            let token = inner.next_token;
            inner.tokens.insert(token, (file, offset));
            tokens.push(token);
        }
        let marks = inner.files.entry(file).or_default();
        if actions > 0 {
            let slot = marks.pending.entry(offset).or_insert((lines_before, 0));
            slot.1 += actions;
        }
        marks.reach(end, line_no);
        tokens
    }

    /// Bytes consumed with no actions at all (blank lines, malformed lines, events no plugin
    /// wants): everything up to `end`, with `line_no_after` lines before it.
    pub fn consumed(&self, file: FileId, line_no_after: u64, end: u64) {
        self.lock()
            .files
            .entry(file)
            .or_default()
            .reach(end, line_no_after);
    }

    /// Holds the watermark of `file` at `offset` (a text record still open in the parser, whose
    /// first line is number `line_no`), or releases it (`None`; `line_no` is then unused).
    pub fn hold(&self, file: FileId, offset: Option<u64>, line_no: u64) {
        let mut inner = self.lock();
        let marks = inner.files.entry(file).or_default();
        marks.held = offset.map(|off| (off, line_no.saturating_sub(1)));
    }

    /// One action finished (done, or dead-lettered). An unknown or repeated token is ignored:
    /// acking twice must not release a line whose other actions are still running.
    pub fn ack(&self, token: u64) {
        let mut inner = self.lock();
        let Some((file, offset)) = inner.tokens.remove(&token) else {
            return;
        };
        let Some(marks) = inner.files.get_mut(&file) else {
            return;
        };
        if let Some(slot) = marks.pending.get_mut(&offset) {
            slot.1 = slot.1.saturating_sub(1);
            if slot.1 == 0 {
                marks.pending.remove(&offset);
            }
        }
    }

    /// (offset, lines before it) below which everything is finished, per file seen: the
    /// earliest line with unacked actions or the held record, whichever is earlier, else the
    /// end of everything consumed.
    pub fn safe(&self, file: FileId) -> Option<(u64, u64)> {
        self.lock().files.get(&file).map(FileMarks::safe)
    }

    /// [`safe`](Self::safe) for every file seen, ordered by file id.
    pub fn files(&self) -> Vec<(FileId, u64, u64)> {
        self.lock()
            .files
            .iter()
            .map(|(&id, marks)| {
                let (offset, lines) = marks.safe();
                (id, offset, lines)
            })
            .collect()
    }

    /// Actions submitted and not yet acked (for status).
    pub fn in_flight(&self) -> usize {
        self.lock().tokens.len()
    }

    /// Drops a file that is finished or rotated away and fully acked. Tokens still out for it
    /// are dropped too; acking them later does nothing.
    pub fn forget(&self, file: FileId) {
        let mut inner = self.lock();
        if let Some(marks) = inner.files.remove(&file)
            && !marks.pending.is_empty()
        {
            inner.tokens.retain(|_, (f, _)| *f != file);
        }
    }

    /// Drops every file that `followed` says is no longer followed and that has nothing in
    /// flight (no unacked action, no open record): the map holds what is alive, not every
    /// file ever read. A file dropped and read again later starts afresh from its next line.
    pub fn retain_followed(&self, followed: impl Fn(&FileId) -> bool) {
        self.lock()
            .files
            .retain(|id, marks| followed(id) || !marks.pending.is_empty() || marks.held.is_some());
    }

    /// The resume point after a restart: `offset` with `line` lines before it. Call before any
    /// line of `file` is registered; it replaces whatever was known of the file.
    pub fn start(&self, file: FileId, offset: u64, line: u64) {
        let mut inner = self.lock();
        inner.tokens.retain(|_, (f, _)| *f != file);
        inner.files.insert(
            file,
            FileMarks {
                end: offset,
                lines: line,
                ..FileMarks::default()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    const A: FileId = FileId {
        dev: 1,
        ino: 10,
        head: 100,
    };
    const B: FileId = FileId {
        dev: 1,
        ino: 11,
        head: 101,
    };

    #[test]
    fn unknown_file_has_no_mark_and_lines_without_actions_pass_at_once() {
        let w = Watermarks::new();
        assert_eq!(w.safe(A), None);
        assert!(w.line(A, 1, 0, 10, 0).is_empty());
        w.consumed(A, 2, 11);
        assert_eq!(w.safe(A), Some((11, 2)));
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn acks_in_any_order_and_a_gap_holds_the_mark() {
        let w = Watermarks::new();
        let l1 = w.line(A, 1, 0, 10, 2);
        let l2 = w.line(A, 2, 10, 20, 1);
        let l3 = w.line(A, 3, 20, 30, 1);
        assert_eq!(w.in_flight(), 4);
        assert_eq!(w.safe(A), Some((0, 0)));

        // Later lines finish first: the unfinished first line is a gap the mark stays behind.
        w.ack(l3[0]);
        w.ack(l2[0]);
        w.ack(l1[1]);
        assert_eq!(w.safe(A), Some((0, 0)));
        // A repeated ack must not finish the line's other action.
        w.ack(l1[1]);
        assert_eq!(w.safe(A), Some((0, 0)));
        assert_eq!(w.in_flight(), 1);

        w.ack(l1[0]);
        assert_eq!(w.safe(A), Some((30, 3)));
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn mark_stops_at_the_earliest_unfinished_line() {
        let w = Watermarks::new();
        let l1 = w.line(A, 1, 0, 10, 1);
        let l2 = w.line(A, 2, 10, 20, 1);
        w.consumed(A, 3, 25);
        let _l4 = w.line(A, 4, 25, 40, 1);
        w.ack(l1[0]);
        assert_eq!(w.safe(A), Some((10, 1)));
        w.ack(l2[0]);
        assert_eq!(w.safe(A), Some((25, 3)));
    }

    #[test]
    fn hold_keeps_the_mark_at_an_open_record_until_released() {
        let w = Watermarks::new();
        let l1 = w.line(A, 1, 0, 10, 1);
        // A text record starts at line 2 and is still open while lines 3 and 4 are read.
        w.hold(A, Some(10), 2);
        w.consumed(A, 4, 40);
        w.ack(l1[0]);
        assert_eq!(w.safe(A), Some((10, 1)));
        // The record completes with one action; the hold is released.
        let rec = w.line(A, 2, 10, 40, 1);
        w.hold(A, None, 0);
        assert_eq!(w.safe(A), Some((10, 1)));
        w.ack(rec[0]);
        assert_eq!(w.safe(A), Some((40, 4)));
    }

    #[test]
    fn hold_below_a_pending_line_wins() {
        let w = Watermarks::new();
        w.hold(A, Some(5), 2);
        let l = w.line(A, 3, 20, 30, 1);
        assert_eq!(w.safe(A), Some((5, 1)));
        w.hold(A, None, 0);
        assert_eq!(w.safe(A), Some((20, 2)));
        w.ack(l[0]);
        assert_eq!(w.safe(A), Some((30, 3)));
    }

    #[test]
    fn many_files_are_independent() {
        let w = Watermarks::new();
        let a = w.line(A, 1, 0, 10, 1);
        let b = w.line(B, 1, 0, 7, 1);
        w.line(B, 2, 7, 9, 0);
        w.ack(b[0]);
        assert_eq!(w.files(), vec![(A, 0, 0), (B, 9, 2)]);
        w.ack(a[0]);
        assert_eq!(w.safe(A), Some((10, 1)));
        w.forget(A);
        assert_eq!(w.safe(A), None);
        assert_eq!(w.files(), vec![(B, 9, 2)]);
    }

    #[test]
    fn start_resumes_line_numbers_and_forget_drops_outstanding_tokens() {
        let w = Watermarks::new();
        w.start(A, 1000, 42);
        assert_eq!(w.safe(A), Some((1000, 42)));
        let t = w.line(A, 43, 1000, 1010, 2);
        assert_eq!(w.safe(A), Some((1000, 42)));
        w.ack(t[0]);
        w.ack(t[1]);
        assert_eq!(w.safe(A), Some((1010, 43)));

        let t = w.line(A, 44, 1010, 1020, 1);
        w.forget(A);
        assert_eq!(w.in_flight(), 0);
        w.ack(t[0]);
        assert_eq!(w.safe(A), None);
    }

    #[test]
    fn files_no_longer_followed_go_once_nothing_is_in_flight() {
        let w = Watermarks::new();
        let files: Vec<FileId> = (0..100)
            .map(|ino| FileId {
                dev: 1,
                ino,
                head: ino * 3,
            })
            .collect();
        for &file in &files {
            w.consumed(file, 1, 10);
        }
        let out = w.line(files[1], 2, 10, 20, 1);
        w.hold(files[2], Some(10), 2);
        assert_eq!(w.files().len(), 100);

        // Only the last file is followed now: the rest go, but for the one with an action
        // out and the one with a record open.
        let followed = |id: &FileId| *id == files[99];
        w.retain_followed(followed);
        assert_eq!(
            w.files(),
            vec![(files[1], 10, 1), (files[2], 10, 1), (files[99], 10, 1)]
        );
        w.ack(out[0]);
        w.hold(files[2], None, 0);
        w.retain_followed(followed);
        assert_eq!(w.files(), vec![(files[99], 10, 1)]);
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn acks_from_worker_threads() {
        let w = Arc::new(Watermarks::new());
        let mut tokens = Vec::new();
        for i in 0..100u64 {
            tokens.extend(w.line(A, i + 1, i * 10, i * 10 + 10, 3));
        }
        let workers: Vec<_> = tokens
            .chunks(37)
            .map(|chunk| {
                let w = Arc::clone(&w);
                let chunk = chunk.to_vec();
                std::thread::spawn(move || chunk.into_iter().rev().for_each(|t| w.ack(t)))
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker thread does not panic");
        }
        assert_eq!(w.safe(A), Some((1000, 100)));
        assert_eq!(w.in_flight(), 0);
    }

    /// A random interleaving: `lines[i]` actions for line i; `order` picks, at each step, either
    /// the next line to register or one outstanding token to ack.
    fn run_model(actions: &[usize], picks: &[usize]) -> Result<(), TestCaseError> {
        let w = Watermarks::new();
        let len = |i: usize| 5 + (i as u64 * 7) % 13;
        let mut starts = vec![0u64];
        for i in 0..actions.len() {
            let next = starts[i] + len(i);
            starts.push(next);
        }
        let mut outstanding: Vec<(u64, usize)> = Vec::new(); // (token, line index)
        let mut left = vec![0usize; actions.len()];
        let mut registered = 0;
        let mut last_safe = 0;
        let mut picks = picks.iter().copied().cycle();
        while registered < actions.len() || !outstanding.is_empty() {
            let pick = picks.next().unwrap_or(0);
            if registered < actions.len() && (outstanding.is_empty() || pick % 3 == 0) {
                let i = registered;
                let t = w.line(A, i as u64 + 1, starts[i], starts[i + 1], actions[i]);
                prop_assert_eq!(t.len(), actions[i]);
                left[i] = actions[i];
                outstanding.extend(t.into_iter().map(|t| (t, i)));
                registered += 1;
            } else {
                let (token, i) = outstanding.swap_remove(pick % outstanding.len());
                w.ack(token);
                left[i] -= 1;
            }
            let (safe, lines) = w.safe(A).expect("a line was registered");
            let first_unfinished = (0..registered).find(|&i| left[i] > 0);
            let expected = first_unfinished.unwrap_or(registered);
            prop_assert_eq!(
                safe,
                starts[expected],
                "never past an unacked line, never behind"
            );
            prop_assert_eq!(lines, expected as u64);
            prop_assert!(safe >= last_safe, "the mark never moves back");
            last_safe = safe;
            prop_assert_eq!(w.in_flight(), outstanding.len());
        }
        prop_assert_eq!(
            w.safe(A),
            Some((starts[actions.len()], actions.len() as u64))
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn safe_offset_never_passes_an_unacked_line(
            actions in proptest::collection::vec(0usize..4, 1..40),
            picks in proptest::collection::vec(any::<usize>(), 1..200),
        ) {
            run_model(&actions, &picks)?;
        }
    }
}
