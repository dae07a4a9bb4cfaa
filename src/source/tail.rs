//! Following the live log.
//!
//! Two parts, split where Vector's file source splits its `FileServer` from its `FileWatcher`:
//! [`Tailer`] is the scheduler over the log's files (scan, identify, order, decide where each
//! starts, notice rotations and copies, bound open descriptors), and `Tracked` is one followed
//! file (its descriptor, its position, the checks that it was not rewritten under us, its
//! lines). Never writes to a followed file or acts on what a line says.
//!
//! A periodic scan of the configured file, directory or glob is the source of truth; inotify
//! (through `notify`) only wakes the reader early, and an overflow (`need_rescan`) forces a scan.
//! Files are known by [`FileId`] ([`fingerprint::identify`]: device, inode, first-line hash),
//! never by path, and read one at a time, oldest first: a newer file starts only once the older
//! one is drained and has not grown for the grace period. Lines are framed by the same
//! [`Framer`] as replay's; a line is only handed out once its newline is on disk.

mod watch;
pub use watch::{Hook, Waiter};

use crate::action::PathEscaped;
use crate::fsutil::read_at_most;
pub use crate::source::checkpoint::FilePosition;
use crate::source::discover;
use crate::source::fingerprint::{self, FileId, tail_hash};
use crate::source::frame::{Frame, Framer};
use crate::source::read::{self, Packing};
use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What to follow and how eagerly.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// A file, a directory (its regular files), or a glob.
    pub log: String,
    /// How often the log's files are listed again, whatever inotify says.
    pub rescan: Duration,
    /// A newer file starts only after the older one has not grown for this long: EMS may still
    /// be finishing the old file when the new one appears.
    pub grace: Duration,
    /// Longer lines are reported as [`TailItem::Oversize`] and skipped.
    pub max_line: usize,
    /// No inotify at all: network filesystems send no events.
    pub poll_only: bool,
    /// Where the rest of a checkpointed file that logrotate compressed while emstail was
    /// stopped is decompressed to (an unnamed file, gone once read), to be read from there.
    /// `None`: such a file is named in a warning instead.
    pub spool: Option<PathBuf>,
}

/// Where reading starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// Resume: each file at its saved position; newer files from 0, older unknown ones skipped.
    FromCheckpoint(Saved),
    /// At the end of the newest file (the default without a checkpoint).
    FromEnd,
    /// From the beginning of the newest file (after a checkpoint that could not be read).
    FromBeginningOfNewest,
    /// Every file from 0.
    FromStart,
}

/// A checkpoint to resume from.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    pub positions: Vec<FilePosition>,
    /// When the checkpoint was last written, if known: a file with a rotated name of a
    /// checkpointed one (`events.txt.1`) that changed after that got its lines while emstail
    /// was stopped.
    pub written: Option<SystemTime>,
}

/// What the tailer hands out, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailItem {
    /// A complete line, without its `\n` or `\r\n`; `end` is the offset after the newline.
    Line {
        file: FileId,
        path: PathBuf,
        number: u64,
        offset: u64,
        end: u64,
        bytes: Vec<u8>,
    },
    /// A line longer than the cap (`len` bytes without its `\n` or `\r\n`), skipped.
    Oversize {
        file: FileId,
        path: PathBuf,
        number: u64,
        offset: u64,
        end: u64,
        len: u64,
    },
    /// Reading of this file starts at `offset`, with `line` lines before it.
    Opened {
        file: FileId,
        path: PathBuf,
        offset: u64,
        line: u64,
    },
    /// The file was truncated or rewritten under us; it is read again from 0 (under a new
    /// identity, announced by the next `Opened`).
    Truncated { file: FileId, path: PathBuf },
    /// Nothing more will come from this file: drained and not growing, and a newer file exists
    /// or it is gone. An unterminated last line was delivered just before.
    Finished { file: FileId },
}

/// Bytes kept from before the read position to notice a file rewritten under us.
const RECENT: usize = 64;
/// Bytes read per `read` call.
const CHUNK: usize = 256 << 10;
/// Bytes read per `poll` before returning, so that memory stays bounded in a burst (the lines
/// of one poll are held until the reader has planned them, and it waits on a full queue). A
/// framed line takes about 1.5 times its bytes; lines are read on two threads (see
/// [`Tailer::read_on_event`]), each keeping its own allocator arena.
const POLL_BUDGET: u64 = 256 << 10;
/// Files (not yet finished, still reachable by path) that may hold an open descriptor.
const MAX_OPEN: usize = 8;
/// Identities of files truncated under us, remembered to recognise a copy of the old content.
const HISTORY: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Open, but without a complete first line: no identity yet.
    Pending,
    Reading,
    /// Done: nothing is read any more (unless it grows with the same content before).
    Finished,
}

/// One followed file of the log (Vector's `FileWatcher`): what the [`Tailer`] knows of it and
/// the reading of it.
#[derive(Debug)]
struct Tracked {
    dev: u64,
    ino: u64,
    id: Option<FileId>,
    path: PathBuf,
    file: Option<File>,
    state: State,
    /// Seen in the latest scan under some path.
    found: bool,
    /// Found at start-up outside the log's path (a rotated file between): kept while it has
    /// its descriptor even before it has a whole first line.
    outside: bool,
    /// Where to start once identified: (offset, lines before it).
    start: (u64, u64),
    /// The bytes before `start` when it was decided: the file must still hold them when its
    /// turn comes, or it changed meanwhile and is read from 0.
    start_recent: Vec<u8>,
    /// The reader was put at `start` (and `Opened` handed out).
    positioned: bool,
    /// Lines framed so far: the end of the last complete line handed out (`offset()`), the
    /// lines before it (`line()`), and the bytes read (`read_pos()`), the unterminated line
    /// held included.
    framer: Framer,
    /// The last bytes before the read position, to notice the content was rewritten.
    recent: Vec<u8>,
    size: u64,
    mtime: SystemTime,
    /// When the file was last seen changing.
    changed_at: Instant,
    /// Check the bytes before the read position even if size and mtime look unchanged (a
    /// rewrite to the same length within one mtime tick); set by each scan.
    verify: bool,
    /// The first line of the file whose identity has this head hash, once read: the check at
    /// each change compares it instead of hashing it again.
    head_line: Option<(u64, Vec<u8>)>,
}

/// The follower: the scheduler over the log's `Tracked` files (Vector's `FileServer`). See
/// the module documentation.
pub struct Tailer {
    config: TailConfig,
    files: Vec<Tracked>,
    history: Vec<Prior>,
    /// Scan before reading on (a truncation was seen: a copy of the old content may be there).
    scan_now: bool,
    next_scan: Instant,
    wake: Option<watch::Wake>,
    /// The last read took the active file up to the size it had: until inotify says it
    /// changed (or the wait times out), there is nothing to look at.
    caught_up: bool,
    /// When the last read left a file waiting for its grace period to pass (a newer file
    /// waits behind it, or it never got a whole first line): when to look again, if no event
    /// comes before.
    grace_due: Option<Instant>,
}

impl Tailer {
    /// Lists the log's files and decides where each starts according to `start`.
    pub fn new(config: TailConfig, start: Start) -> io::Result<Tailer> {
        let wake = if config.poll_only {
            None
        } else {
            match watch::Wake::new() {
                Ok(w) => Some(w),
                Err(e) => {
                    log::warn!("no inotify ({e}); following the log by polling only");
                    None
                }
            }
        };
        let mut tailer = Tailer {
            config,
            files: Vec::new(),
            history: Vec::new(),
            scan_now: false,
            next_scan: Instant::now(),
            grace_due: None,
            wake,
            caught_up: false,
        };
        let mut fresh = tailer.scan()?;
        if let Start::FromCheckpoint(saved) = &start {
            tailer.find_renamed(&mut fresh, saved)?;
        }
        tailer.place_initial(fresh, start)?;
        tailer.limit_open();
        Ok(tailer)
    }

    /// Waits up to `timeout` for data; returns what is available (possibly nothing), in order:
    /// all of an older file before any of a newer one. Never returns an unterminated last line
    /// of a file that may still grow.
    pub fn poll(&mut self, timeout: Duration) -> io::Result<Vec<TailItem>> {
        let deadline = Instant::now() + timeout;
        let mut items = Vec::new();
        // Straight to the wait when the last poll read everything there was and inotify
        // watches the log: a write since then has woken it already.
        let mut wait_first = std::mem::take(&mut self.caught_up)
            && self.wake.as_ref().is_some_and(watch::Wake::watching);
        loop {
            if self.scan_due() {
                self.rescan()?;
                wait_first = false;
            }
            if !std::mem::take(&mut wait_first) {
                self.read(&mut items)?;
                if !items.is_empty() {
                    return Ok(items);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(items);
            }
            let until = deadline.min(self.next_scan);
            let wait = until.saturating_duration_since(now);
            match &self.wake {
                Some(w) => w.wait(wait),
                None => std::thread::sleep(wait),
            }
        }
    }

    /// Has `hook` run on inotify's own thread at each event (it would typically take the
    /// tailer's lock and call [`Self::read_woken`]), and returns the wake-ups the hook did not
    /// deal with, to wait on instead of [`Self::poll`]. Reading on the thread that received
    /// the event saves a thread wake-up per append, which is most of what following costs.
    /// `None` when the log is followed by polling only.
    pub fn read_on_event(&mut self, hook: Hook) -> Option<Waiter> {
        self.wake.as_mut()?.hook(hook)
    }

    /// Whether an event naming `paths` may concern a file being followed: one of them has
    /// the name of such a file (or it names none). Other files in the log's directory (EMS's
    /// own log, say) change too, and a read for each of their writes would find nothing. A
    /// file that gets a followed file's name by a rename is found by the scan the rename asks
    /// for.
    pub fn concerns(&self, paths: &[PathBuf]) -> bool {
        paths.is_empty()
            || paths.iter().any(|p| {
                let name = p.file_name();
                self.files
                    .iter()
                    .any(|t| t.state != State::Finished && t.path.file_name() == name)
            })
    }

    /// What is available now, without waiting: [`Self::poll`] with the wait left to the
    /// caller. With `may_scan` false (on inotify's thread, where changing a watch would
    /// deadlock), returns `None` instead of listing the log's files when that is due.
    pub fn read_woken(&mut self, may_scan: bool) -> io::Result<Option<Vec<TailItem>>> {
        if self.scan_due() {
            if !may_scan {
                return Ok(None);
            }
            self.rescan()?;
        }
        let mut items = Vec::new();
        self.read(&mut items)?;
        Ok(Some(items))
    }

    /// When to read again if no event comes before: the log's files are next listed then, or
    /// a file's grace period ends. A thread that waits for inotify's wake-ups need not wake
    /// before then to keep up.
    pub fn next_due(&self) -> Instant {
        self.grace_due
            .map_or(self.next_scan, |due| due.min(self.next_scan))
    }

    /// Whether the last read took the active file up to the size it had then: until inotify
    /// reports another change (a write after that look is reported), reading again finds
    /// nothing.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Whether the log's files must be listed before reading on: an event asked for it, a
    /// truncation was seen, or the rescan period is over.
    fn scan_due(&self) -> bool {
        self.wake.as_ref().is_some_and(watch::Wake::scan_asked)
            || self.scan_now
            || Instant::now() >= self.next_scan
    }

    /// Lists the log's files and takes the new ones in; clears what asked for it.
    fn rescan(&mut self) -> io::Result<()> {
        if let Some(w) = &self.wake {
            w.take_scan();
        }
        self.scan_now = false;
        let fresh = self.scan()?;
        self.place_new(fresh);
        self.limit_open();
        self.next_scan = Instant::now() + self.config.rescan;
        Ok(())
    }

    /// Every identified file and its size as last seen (at start-up: what it held before
    /// this process came).
    pub fn sizes(&self) -> Vec<(FileId, u64)> {
        self.files
            .iter()
            .filter_map(|t| Some((t.id?, t.size)))
            .collect()
    }

    /// Every identified file: identity, path, offset read up to (end of the last complete
    /// line), lines before it. Fed back as [`FilePosition`]s on restart.
    pub fn positions(&self) -> Vec<(FileId, PathBuf, u64, u64)> {
        self.files
            .iter()
            .filter_map(|t| {
                let (offset, line) = t.stands_at();
                Some((t.id?, t.path.clone(), offset, line))
            })
            .collect()
    }

    /// Every identified file still to be read (not skipped or finished): identity, where its
    /// reading starts or stands, lines before it.
    pub fn unfinished(&self) -> Vec<(FileId, u64, u64)> {
        self.files
            .iter()
            .filter(|t| t.state != State::Finished)
            .filter_map(|t| {
                let (offset, line) = t.stands_at();
                Some((t.id?, offset, line))
            })
            .collect()
    }

    /// The checkpoint entry of `id` at `offset` (with `line` lines before it). The hash of the
    /// bytes before `offset` is read through the descriptor already open: by path, a rename
    /// and a new file between scans would hash the new file (or fail, dropping the entry),
    /// and after a crash the old file would be read again from 0.
    pub fn checkpoint_position(
        &self,
        id: FileId,
        offset: u64,
        line: u64,
    ) -> io::Result<FilePosition> {
        let t = self
            .files
            .iter()
            .find(|t| t.id == Some(id))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not followed any more"))?;
        let opened;
        let file = match &t.file {
            Some(file) => file,
            None => {
                // Not open (finished, or not started yet): by path, if it still holds the file.
                opened = File::open(&t.path)?;
                let meta = opened.metadata()?;
                if (meta.dev(), meta.ino()) != (t.dev, t.ino) {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} holds another file now", PathEscaped(&t.path)),
                    ));
                }
                &opened
            }
        };
        Ok(FilePosition {
            id,
            path: t.path.clone(),
            offset,
            line,
            tail_hash: tail_hash(file, offset)?,
            done: t.state == State::Finished && (offset, line) == t.stands_at(),
        })
    }

    /// Bytes on disk not yet read, over the files being followed (as of the last look).
    pub fn lag_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|t| t.state != State::Finished)
            .map(|t| t.size.saturating_sub(t.stands_at().0))
            .sum()
    }

    /// Lists the log's files, matches them to the ones known, and returns the new ones
    /// (identified when possible, ordered oldest first among themselves).
    fn scan(&mut self) -> io::Result<Vec<Tracked>> {
        if let Some(w) = &mut self.wake {
            w.watch(discover::watch_root(&self.config.log));
        }
        let paths = discover::live_files(&self.config.log)?;
        for t in &mut self.files {
            t.found = false;
            t.verify = true;
        }
        let now = Instant::now();
        let mut fresh: Vec<Tracked> = Vec::new();
        // Lookups by device and inode: with thousands of files in the log's directory, a
        // linear search per path made every idle rescan quadratic.
        let mut known: HashMap<(u64, u64), usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.dev, t.ino), i))
            .collect();
        let mut fresh_ids: HashSet<(u64, u64)> = HashSet::new();
        let mut replaced: HashSet<usize> = HashSet::new();
        for (path, meta) in paths {
            let (dev, ino) = (meta.dev(), meta.ino());
            if fresh_ids.contains(&(dev, ino)) {
                continue;
            }
            if let Some(&i) = known.get(&(dev, ino)) {
                if self.known_again(i, &path, &meta)? {
                    continue;
                }
                // The inode holds another file now: the entry goes (after the loop, so
                // that the indices in `known` stay valid).
                known.remove(&(dev, ino));
                replaced.insert(i);
            }
            match Tracked::open(&path, now, self.config.max_line) {
                Ok(Some(t)) => {
                    fresh_ids.insert((t.dev, t.ino));
                    fresh.push(t);
                }
                Ok(None) => {}
                Err(e) => log::warn!("cannot open {}: {e}", PathEscaped(&path)),
            }
        }
        if !replaced.is_empty() {
            let mut index = 0;
            self.files.retain(|_| {
                let keep = !replaced.contains(&index);
                index += 1;
                keep
            });
        }
        // Files no longer listed: finished or never identified ones are forgotten (but a file
        // between found outside the path); one being read keeps its descriptor until drained.
        for t in self.files.iter().filter(|t| !t.found) {
            if t.state == State::Reading && t.file.is_none() && t.size > t.framer.offset() {
                log::warn!(
                    "{} went away before its turn came; {} bytes not read",
                    PathEscaped(&t.path),
                    t.size - t.framer.offset()
                );
            }
        }
        self.files.retain(|t| {
            t.found
                || (t.file.is_some()
                    && (t.state == State::Reading || (t.state == State::Pending && t.outside)))
        });
        for t in &mut self.files {
            if t.state == State::Pending && t.file.is_none() {
                t.identify()?;
            }
        }
        fresh.sort_by_cached_key(|t| (discover::order_key(&t.path), t.mtime, t.path.clone()));
        Ok(fresh)
    }

    /// `files[i]` has the device and inode of `path`: is it the same file? Updates its path.
    /// Returns false when the inode now holds other content (the entry must be replaced).
    fn known_again(&mut self, i: usize, path: &Path, meta: &Metadata) -> io::Result<bool> {
        let t = &mut self.files[i];
        t.found = true;
        t.path = path.to_path_buf();
        // An open descriptor pins the inode: nothing else can have it.
        if t.file.is_some() || t.state != State::Finished {
            return Ok(true);
        }
        let mtime = meta.modified()?;
        if meta.len() == t.size && mtime == t.mtime {
            return Ok(true);
        }
        // A finished file changed: grown with the same content before (read the rest), or a
        // new file on a reused inode (read it as new).
        let file = File::open(path)?;
        let same_id = t.id.is_some() && fingerprint::identify(&file).ok().flatten() == t.id;
        let offset = t.framer.offset();
        if same_id && meta.len() >= offset && recent_at(&file, offset)? == t.recent {
            log::warn!(
                "{} grew after it was finished; reading the rest",
                PathEscaped(path)
            );
            t.file = Some(file);
            t.state = State::Reading;
            t.framer.restart_at(offset, t.framer.line());
            t.changed_at = Instant::now();
            return Ok(true);
        }
        Ok(false)
    }

    /// Files of the checkpoint that the pattern no longer lists, and the log's files rotated
    /// away after them while emstail was stopped.
    ///
    /// One renamed (logrotate's `events.txt` to `events.txt.1`) keeps its inode: found by it
    /// in the folder it was in, it joins `fresh` after the older files and before the newer
    /// ones, so that what it got after the checkpoint is read before the file that took its
    /// name. Without it, a copy of it there under a rotated name (logrotate's `copytruncate`)
    /// that holds what was read of it is read from the checkpoint on instead. One that is
    /// gone, or no longer holds what was read of it, is named, with where its reading stood:
    /// what it got after that point was not read. One read to its end and done with is let go
    /// without a word (old files cleaned up).
    ///
    /// After several rotations during the stop, the files between (`events.txt.1` when the
    /// checkpointed file is now `events.txt.2`) were never read at all: a file with a rotated
    /// name of the checkpointed one that changed after the checkpoint was written is read from
    /// its start after it, and one compressed meanwhile is named.
    fn find_renamed(&self, fresh: &mut Vec<Tracked>, saved: &Saved) -> io::Result<()> {
        let now = Instant::now();
        // Where the files found for the entries before went: the checkpoint lists its files in
        // the order they are read, which a gzip copy's mtime (when it was compressed) need not
        // keep.
        let mut after = 0;
        for p in &saved.positions {
            // Nothing of it is left to read, under any name.
            if p.done {
                continue;
            }
            // As `place_initial` matches them: the same file, or a copy of it.
            if fresh
                .iter()
                .any(|t| t.id.is_some_and(|id| id.head == p.id.head))
            {
                continue;
            }
            let places = places_of(&p.path);
            // Listed once for the three searches below.
            let rotated: Vec<Rotated> = places
                .iter()
                .flat_map(|place| rotated_names(place))
                .collect();
            let rest = self.rest_of(p, &places, &rotated, now);
            match &rest {
                Some(t) => log::info!(
                    "{} is now {}, which the log's path does not list; reading the rest of it first",
                    PathEscaped(&p.path),
                    PathEscaped(&t.path)
                ),
                None => log::warn!(
                    "{} is gone (the checkpoint had read it up to byte {}, line {}): lines \
                     written to it after that, if any, were not read",
                    PathEscaped(&p.path),
                    p.offset,
                    p.line
                ),
            }
            let later = self.rotated_since(&places, &rotated, fresh, saved, &rest, now);
            for t in &later {
                log::info!(
                    "{} has a rotated name of {} and changed after the checkpoint was written; \
                     reading it from its start before the file that has that name now",
                    PathEscaped(&t.path),
                    PathEscaped(&p.path)
                );
            }
            // Where its old name puts it in the scan's order (the name's timestamp, then the
            // mtime): before the file that took its name, and before one changed in the same
            // clock tick. Placed after a newer file, it would have that file skipped as read
            // already, while placed before an older one it has that one read again. By mtime
            // alone, a newer timestamped file EMS began before it wrote this one's last line
            // came first, and was skipped. The files rotated after it follow it.
            let Some(first) = rest.as_ref().or(later.first()) else {
                continue;
            };
            let key = (discover::order_key(&p.path), first.mtime);
            let at = fresh
                .iter()
                .position(|f| f.path == p.path || (discover::order_key(&f.path), f.mtime) >= key)
                .unwrap_or(fresh.len())
                .max(after);
            after = at;
            for t in rest.into_iter().chain(later) {
                fresh.insert(after, t);
                after += 1;
            }
        }
        Ok(())
    }

    /// The file of checkpoint entry `p` under another name in one of `places`' folders, still
    /// holding what was read of it: the same inode renamed, else a copy with a rotated name
    /// (one of `rotated`).
    fn rest_of(
        &self,
        p: &FilePosition,
        places: &[PathBuf],
        rotated: &[Rotated],
        now: Instant,
    ) -> Option<Tracked> {
        let open = |path: &Path| {
            Tracked::open(path, now, self.config.max_line)
                .ok()
                .flatten()
        };
        // With its content up to the checkpoint too: out of the pattern, one rewritten since
        // (or a reused inode with the same first line) is not the log's, and is not read
        // from its start as a file the pattern lists would be.
        let renamed = places.iter().find_map(|place| {
            let name = with_inode(&folder_of(place), p.id)?;
            open(&place.with_file_name(name)).filter(|t| t.id == Some(p.id))
        });
        let copies = || {
            rotated
                .iter()
                .filter(|r| !r.compressed)
                .filter_map(|r| open(&r.path))
                .filter(|t| t.id.is_some_and(|id| id.head == p.id.head))
        };
        let mut rest = renamed
            .into_iter()
            .chain(copies())
            .find_map(|mut t| t.resumable(p).unwrap_or(false).then_some(t))
            .or_else(|| self.compressed_rest(p, rotated, now))?;
        // Not listed: `limit_open` must leave it its descriptor, or the first scan lets it go
        // unread (only the descriptor or its new name reaches it).
        rest.found = false;
        Some(rest)
    }

    /// The rest of checkpoint entry `p` from a gzip copy of it (logrotate's `compress`): its
    /// own path (a restart while that rest was read) or one of `rotated`. Decompressed into
    /// the spool, where it is read as the file was, from the checkpoint on.
    fn compressed_rest(
        &self,
        p: &FilePosition,
        rotated: &[Rotated],
        now: Instant,
    ) -> Option<Tracked> {
        let spool = self.config.spool.as_deref()?;
        let own = read::is_gzip(&p.path)
            .unwrap_or(false)
            .then(|| p.path.clone());
        let rotated = rotated.iter().filter(|r| r.gzip).map(|r| r.path.clone());
        own.into_iter().chain(rotated).find_map(|gz| {
            let file = match spool_gzip_rest(&gz, p, spool) {
                Ok(file) => file?,
                Err(e) => {
                    log::warn!("cannot decompress {}: {e}", PathEscaped(&gz));
                    return None;
                }
            };
            let modified = std::fs::metadata(&gz).and_then(|m| m.modified()).ok()?;
            let mut t = Tracked::with_file(file, &gz, now, self.config.max_line)
                .ok()
                .flatten()?;
            // Ordered by when the log's file was last written, not by when it was decompressed.
            t.mtime = modified;
            t.resumable(p).unwrap_or(false).then_some(t)
        })
    }

    /// The files of `rotated` (the rotated names of one of `places`) that changed after the
    /// checkpoint `saved` was written (none when that is not known) and that no one knows: not listed (`fresh`), not checkpointed (by inode or
    /// first line), not `rest`. Oldest first, to be read from their start. Compressed ones are named in a
    /// warning instead: only a checkpointed file's rest is decompressed, not whole files.
    fn rotated_since(
        &self,
        places: &[PathBuf],
        rotated: &[Rotated],
        fresh: &[Tracked],
        saved: &Saved,
        rest: &Option<Tracked>,
        now: Instant,
    ) -> Vec<Tracked> {
        let Some(written) = saved.written else {
            return Vec::new();
        };
        let known_inode = |path: &Path, dev: u64, ino: u64| {
            // A compressed file read through the spool is known by its path.
            fresh
                .iter()
                .chain(rest)
                .any(|t| (t.dev, t.ino) == (dev, ino) || t.path == path)
                || saved
                    .positions
                    .iter()
                    .any(|p| (p.id.dev, p.id.ino) == (dev, ino))
        };
        let known_head = |head: u64| {
            fresh
                .iter()
                .chain(rest)
                .any(|t| t.id.is_some_and(|id| id.head == head))
                || saved.positions.iter().any(|p| p.id.head == head)
        };
        // With a glob, the rotated copies of the other files it matches too: EMS may have
        // begun a newer file before logrotate renamed them all.
        let in_pattern = discover::is_glob(&self.config.log)
            .then(|| glob::Pattern::new(&self.config.log).ok())
            .flatten()
            .map(|pattern| rotated_in_pattern(&folder_of(&places[0]), &pattern))
            .unwrap_or_default();
        let mut later: Vec<(Tracked, Option<u64>)> = Vec::new();
        for r in rotated.iter().chain(&in_pattern) {
            if r.modified <= written || known_inode(&r.path, r.dev, r.ino) {
                continue;
            }
            // Written while the clock was ahead: when is not known, and read from its start an
            // old file would be acted on again whole.
            if r.modified > SystemTime::now() {
                log::warn!(
                    "{} has a rotated name of the log's file {} and a modification time in the \
                     future: not read (replay it if it holds lines not acted on)",
                    PathEscaped(&r.path),
                    PathEscaped(&places[0])
                );
                continue;
            }
            if r.compressed {
                log::warn!(
                    "{} has a rotated name of the log's file {}, changed after the checkpoint \
                     was written and is compressed: its lines were not read (replay it to act \
                     on them)",
                    PathEscaped(&r.path),
                    PathEscaped(&places[0])
                );
                continue;
            }
            let Some(mut t) = Tracked::open(&r.path, now, self.config.max_line)
                .ok()
                .flatten()
            else {
                continue;
            };
            match t.id {
                // A copy of content known already.
                Some(id)
                    if known_head(id.head)
                        || later
                            .iter()
                            .any(|(l, _)| l.id.is_some_and(|lid| lid.head == id.head)) =>
                {
                    continue;
                }
                Some(_) => {}
                // Empty: nothing to read.
                None if t.size == 0 => continue,
                // Without a whole first line yet: its writer may still hold it (EMS writes a
                // renamed file until it reopens its log). Read once it has one, or named when
                // its grace period passes without.
                None => {}
            }
            t.found = false;
            t.outside = true;
            later.push((t, r.count));
        }
        // As the scan orders files (the names' timestamps, then the mtime); of two written in
        // the same clock tick, the higher count is the older file.
        later.sort_by_cached_key(|(t, count)| {
            (
                discover::order_key(&t.path),
                t.mtime,
                std::cmp::Reverse(*count),
                t.path.clone(),
            )
        });
        later.into_iter().map(|(t, _)| t).collect()
    }

    /// Start positions of the files found when starting.
    fn place_initial(&mut self, mut fresh: Vec<Tracked>, start: Start) -> io::Result<()> {
        let newest = fresh.len().checked_sub(1);
        match start {
            Start::FromStart => {}
            Start::FromEnd => {
                for (i, t) in fresh.iter_mut().enumerate() {
                    if Some(i) == newest {
                        if t.id.is_some() {
                            let (offset, line) = t.last_newline()?;
                            t.set_start(offset, line)?;
                        }
                    } else {
                        t.skip()?;
                    }
                }
            }
            Start::FromBeginningOfNewest => {
                for (i, t) in fresh.iter_mut().enumerate() {
                    if Some(i) != newest {
                        t.skip()?;
                    }
                }
            }
            Start::FromCheckpoint(Saved {
                positions: saved, ..
            }) => {
                let mut newest_saved = None;
                for (i, t) in fresh.iter_mut().enumerate() {
                    let Some(id) = t.id else { continue };
                    let p = saved.iter().find(|p| p.id == id).or_else(|| {
                        saved.iter().find(|p| {
                            p.id.head == id.head && (p.id.dev, p.id.ino) != (id.dev, id.ino)
                        })
                    });
                    let Some(p) = p else { continue };
                    newest_saved = Some(i);
                    if t.resumable(p)? {
                        t.set_start(p.offset, p.line)?;
                    } else {
                        log::warn!(
                            "{} changed since the checkpoint (truncated or rewritten); reading it from the start",
                            PathEscaped(&t.path)
                        );
                        t.start = (0, 0);
                    }
                }
                if let Some(last) = newest_saved {
                    for (i, t) in fresh.iter_mut().enumerate() {
                        let matched =
                            t.id.is_some_and(|id| saved.iter().any(|p| p.id.head == id.head));
                        if i < last && !matched {
                            t.skip()?;
                        }
                    }
                } else if !saved.is_empty() {
                    log::warn!(
                        "none of the checkpointed files is there any more; reading every file from the start"
                    );
                }
            }
        }
        self.files.append(&mut fresh);
        Ok(())
    }

    /// New files found while running start at 0, unless one is a copy of content already read
    /// (copytruncate with the copy in the log's pattern): it then continues where that stopped.
    fn place_new(&mut self, fresh: Vec<Tracked>) {
        for mut t in fresh {
            let Some(id) = t.id else {
                self.files.push(t);
                continue;
            };
            let known = self.files.iter().position(|k| {
                k.id.is_some_and(|kid| kid.head == id.head) && (k.dev, k.ino) != (t.dev, t.ino)
            });
            let copy_of = known
                .filter(|&k| self.files[k].positioned)
                .map(|k| {
                    let k = &self.files[k];
                    let (offset, line) = (k.framer.offset(), k.framer.line());
                    (offset, line, k.recent.clone(), (k.dev, k.ino))
                })
                .or_else(|| {
                    self.history
                        .iter()
                        .rev()
                        .find(|h| h.head == id.head)
                        .map(|h| (h.offset, h.line, h.recent.clone(), (h.dev, h.ino)))
                });
            if let Some((offset, line, recent, original)) = copy_of {
                let continues = t.size >= offset
                    && t.file
                        .as_ref()
                        .is_some_and(|f| recent_at(f, offset).is_ok_and(|r| r == recent));
                if continues {
                    log::info!(
                        "{} is a copy of content already read; continuing it at byte {offset}",
                        PathEscaped(&t.path)
                    );
                    t.start = (offset, line);
                    t.start_recent = recent;
                    // Before the file it was copied from, if that is still being read: the
                    // copy's lines came first.
                    let at = self
                        .files
                        .iter()
                        .position(|k| (k.dev, k.ino) == original && k.state != State::Finished)
                        .unwrap_or(self.files.len());
                    self.files.insert(at, t);
                    continue;
                }
            }
            self.files.push(t);
        }
    }

    /// Closes descriptors of files waiting their turn beyond the first few; they are reopened
    /// by path when their turn comes. Files only reachable through their descriptor keep it.
    fn limit_open(&mut self) {
        let mut open = 0;
        for t in &mut self.files {
            if t.state == State::Finished {
                t.file = None;
                continue;
            }
            if t.file.is_some() && t.found {
                open += 1;
                if open > MAX_OPEN {
                    t.file = None;
                }
            }
        }
    }

    /// Reads the oldest unfinished file, moving on to the next when it is done, until nothing
    /// more is available or the budget is spent.
    fn read(&mut self, items: &mut Vec<TailItem>) -> io::Result<()> {
        self.caught_up = false;
        self.grace_due = None;
        let mut budget = POLL_BUDGET;
        let now = Instant::now();
        while budget > 0 {
            let Some(i) = self.files.iter().position(|t| t.state != State::Finished) else {
                return Ok(());
            };
            let newer = i + 1 < self.files.len();
            let grace = self.config.grace;
            let t = &mut self.files[i];
            if t.file.is_none() && !t.reopen()? {
                log::warn!(
                    "{} went away before it was read to the end",
                    PathEscaped(&t.path)
                );
                self.files.remove(i);
                continue;
            }
            if t.state == State::Pending && !t.identify()? {
                t.note_change(now)?;
                let quiet = now.saturating_duration_since(t.changed_at) >= grace;
                if (newer || !t.found) && quiet {
                    log::warn!(
                        "{} never got a complete first line; moving on",
                        PathEscaped(&t.path)
                    );
                    self.files.remove(i);
                    continue;
                }
                if newer || !t.found {
                    self.grace_due = Some(t.changed_at + grace);
                }
                return Ok(());
            }
            if !t.positioned {
                let id = t.id.expect("identify() set the identity");
                if !t.position()? {
                    items.push(TailItem::Truncated {
                        file: id,
                        path: t.path.clone(),
                    });
                    continue;
                }
                items.push(TailItem::Opened {
                    file: t.id.expect("identify() set the identity"),
                    path: t.path.clone(),
                    offset: t.framer.offset(),
                    line: t.framer.line(),
                });
            }
            match t.advance(items, &mut budget, now)? {
                Advance::Read => continue,
                Advance::Truncated(old) => {
                    self.history.push(old);
                    if self.history.len() > HISTORY {
                        self.history.remove(0);
                    }
                    self.scan_now = true;
                    return Ok(());
                }
                advance @ (Advance::Drained | Advance::Caught) => {
                    let quiet = now.saturating_duration_since(t.changed_at) >= grace;
                    if (newer || !t.found) && quiet {
                        t.finish(items);
                        if !t.found {
                            self.files.remove(i);
                        }
                        continue;
                    }
                    self.caught_up = matches!(advance, Advance::Caught);
                    if newer || !t.found {
                        self.grace_due = Some(t.changed_at + grace);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// If the gzip file `gz` holds the content of checkpoint entry `p` (the same first line, and
/// the bytes before `p.offset` the ones read), an unnamed file in `spool` with what the
/// follower reads of it at the same offsets: the first line, the bytes just before the offset
/// and everything after it. The bytes between are a hole, never read: the file takes only the
/// space of what is left to read. A file cut short or damaged after the checkpoint gives its
/// whole lines up to the break, as `replay` reads it.
fn spool_gzip_rest(gz: &Path, p: &FilePosition, spool: &Path) -> io::Result<Option<File>> {
    use std::io::Read;
    let keep_from = p
        .offset
        .saturating_sub(RECENT.max(fingerprint::TAIL_BYTES as usize) as u64);
    let mut reader = flate2::read::MultiGzDecoder::new(io::BufReader::new(File::open(gz)?));
    let mut out: Option<File> = None;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = 0u64;
    // The end of the last whole line decompressed.
    let mut line_end = 0u64;
    let mut checked = false;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if out.is_some() && pos >= p.offset => {
                log::warn!(
                    "{} breaks off after byte {pos} of its content ({e}); reading its lines up \
                     to there",
                    PathEscaped(gz)
                );
                pos = line_end.max(p.offset);
                break;
            }
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        if out.is_none() {
            // The first line decides, before anything is written.
            let want = fingerprint::HEAD_BYTES - head.len();
            head.extend_from_slice(&chunk[..n.min(want)]);
            let line = match memchr::memchr(b'\n', &head) {
                Some(end) => &head[..end],
                None if head.len() == fingerprint::HEAD_BYTES => &head[..],
                None => {
                    pos += n as u64;
                    continue;
                }
            };
            if fingerprint::head_hash(line) != p.id.head {
                return Ok(None);
            }
            let file = tempfile::tempfile_in(spool)?;
            file.write_all_at(&head, 0)?;
            out = Some(file);
        }
        let file = out.as_ref().expect("created above");
        let end = pos + n as u64;
        if end > keep_from {
            let from = keep_from.saturating_sub(pos) as usize;
            file.write_all_at(&chunk[from..], pos + from as u64)?;
        }
        if let Some(newline) = memchr::memrchr(b'\n', chunk) {
            line_end = pos + newline as u64 + 1;
        }
        pos = end;
        // The bytes before the checkpoint are all in: a copy of other content is let go
        // before the rest of it takes space.
        if !checked && pos >= p.offset {
            if tail_hash(file, p.offset)? != p.tail_hash {
                return Ok(None);
            }
            checked = true;
        }
    }
    let Some(file) = out else { return Ok(None) };
    // As long as the content: the hole before the kept bytes counts.
    file.set_len(pos)?;
    if pos < p.offset || tail_hash(&file, p.offset)? != p.tail_hash {
        return Ok(None);
    }
    Ok(Some(file))
}

/// Where a checkpointed file may be found renamed or rotated: beside its path, and beside
/// the file its path links to (a symlinked log's file is rotated in the target's folder).
fn places_of(path: &Path) -> Vec<PathBuf> {
    let mut places = vec![path.to_path_buf()];
    if let Ok(target) = std::fs::read_link(path) {
        let target = folder_of(path).join(target);
        if target.file_name().is_some() {
            places.push(target);
        }
    }
    places
}

/// The folder `path` is in: `.` for a bare file name (`--log events.txt`).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A regular file whose name is a rotated one of a log file's name.
struct Rotated {
    path: PathBuf,
    dev: u64,
    ino: u64,
    modified: SystemTime,
    /// By its name's suffix or its first bytes.
    compressed: bool,
    /// By its first bytes: a gzip file, which a checkpointed file's rest may be read from.
    gzip: bool,
    /// logrotate's count (`events.txt.2`: 2), not a date: the higher, the older the file.
    count: Option<u64>,
}

/// Whether `body` is what logrotate puts after a name: `.`, `-` or `_`, then digits and
/// separators (a count or a date).
fn rotation(body: &[u8]) -> bool {
    body.len() > 1
        && matches!(body[0], b'.' | b'-' | b'_')
        && body.iter().any(u8::is_ascii_digit)
        && body
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
}

/// The regular files beside `place` named as logrotate names its rotated copies: the name,
/// then `.`, `-` or `_` and a number or date (`events.txt.1`, `events.txt-20261205`), or with
/// its `extension` kept last (`events.1.txt`, `events-20261205.txt`), maybe with a compression
/// suffix (`events.txt.2.gz`, `events.2.txt.gz`). Other names there (`events.txt.bak`, an
/// editor's swap file) are not the log's.
fn rotated_names(place: &Path) -> Vec<Rotated> {
    use std::os::unix::ffi::OsStrExt;
    let Some(name) = place.file_name().map(|n| n.as_bytes().to_vec()) else {
        return Vec::new();
    };
    // `events` and `.txt` of `events.txt`, for the names that keep the extension last.
    let split = memchr::memrchr(b'.', &name)
        .filter(|&dot| dot > 0)
        .map(|dot| name.split_at(dot));
    rotations_in(&folder_of(place), |plain| {
        let after_name = name.len()..plain.len();
        if plain.starts_with(&name) && rotation(&plain[after_name.clone()]) {
            return Some(after_name);
        }
        let (stem, extension) = split?;
        let between = stem.len()..plain.len().checked_sub(extension.len())?;
        (plain.starts_with(stem)
            && plain.ends_with(extension)
            && between.start < between.end
            && rotation(&plain[between.clone()]))
        .then_some(between)
    })
}

/// The regular files in `dir` named as logrotate names the rotated copies of files that the
/// log's glob `pattern` matches (`events_20261205_120000.txt.1` for `events_*.txt`).
fn rotated_in_pattern(dir: &Path, pattern: &glob::Pattern) -> Vec<Rotated> {
    use std::os::unix::ffi::OsStrExt;
    rotations_in(dir, |plain| {
        let run = plain
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
            .count();
        let tail = &plain[plain.len() - run..];
        let body = &tail[tail.iter().position(|b| matches!(b, b'.' | b'-' | b'_'))?..];
        let base = &plain[..plain.len() - body.len()];
        let matched =
            !base.is_empty() && pattern.matches_path(&dir.join(std::ffi::OsStr::from_bytes(base)));
        (rotation(body) && matched).then_some(plain.len() - body.len()..plain.len())
    })
}

/// The regular files in `dir` whose name, without a compression suffix, `body_of` takes for a
/// rotated one: it gives where the rotation's part is in it (`.1` of `events.txt.1` and of
/// `events.1.txt`).
fn rotations_in(
    dir: &Path,
    body_of: impl Fn(&[u8]) -> Option<std::ops::Range<usize>>,
) -> Vec<Rotated> {
    use std::os::unix::ffi::OsStrExt;
    const COMPRESSED: [&[u8]; 5] = [b".gz", b".bz2", b".xz", b".zst", b".lz4"];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.as_bytes();
        let ext = COMPRESSED.iter().find(|ext| file_name.ends_with(ext));
        let plain = &file_name[..file_name.len() - ext.map_or(0, |ext| ext.len())];
        let Some(at) = body_of(plain) else {
            continue;
        };
        let body = &plain[at];
        // Eight digits and more are a date or a time.
        let count = std::str::from_utf8(&body[1..])
            .ok()
            .filter(|digits| digits.len() < 8)
            .and_then(|digits| digits.parse().ok());
        let path = entry.path();
        // Followed as the scan follows them: a link to a file counts as that file.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let Ok(modified) = meta.modified() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let packing = File::open(&path)
            .and_then(|f| read::packing(&f))
            .unwrap_or(Packing::Plain);
        found.push(Rotated {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            modified,
            compressed: ext.is_some() || packing != Packing::Plain,
            gzip: packing == Packing::Gzip,
            count,
        });
    }
    found
}

/// The name of the regular file in `dir` with `id`'s device and inode, whatever it is now.
fn with_inode(dir: &Path, id: FileId) -> Option<std::ffi::OsString> {
    use std::os::unix::fs::DirEntryExt;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        // The inode from the directory itself: a stat only for the one that matches.
        if entry.ino() != id.ino {
            return None;
        }
        let meta = entry.metadata().ok()?;
        (meta.is_file() && meta.dev() == id.dev).then(|| entry.file_name())
    })
}

/// What one look at the active file gave.
enum Advance {
    Read,
    /// Read up to the size the file had when looked at.
    Caught,
    Drained,
    /// Rewritten under us: where reading of the content that was stopped.
    Truncated(Prior),
}

/// Where reading of a file's former content stopped, to continue it in a copy.
#[derive(Debug)]
struct Prior {
    head: u64,
    dev: u64,
    ino: u64,
    offset: u64,
    line: u64,
    recent: Vec<u8>,
}

impl Tracked {
    /// Where reading stands (offset, lines before it): up to the last complete line read,
    /// or where it is to start while the file is not positioned yet.
    fn stands_at(&self) -> (u64, u64) {
        if self.positioned {
            (self.framer.offset(), self.framer.line())
        } else {
            self.start
        }
    }

    /// Opens and stats a newly listed file, and identifies it if its first line is complete.
    /// A gzip file (logrotate's `compress` in the log's folder, listed by a directory or a
    /// broad glob) is known but not followed: it is marked read, and its compressed bytes
    /// never reach the parser as lines.
    fn open(path: &Path, now: Instant, max_line: usize) -> io::Result<Option<Tracked>> {
        let file = File::open(path)?;
        let compressed = read::packing(&file)? != Packing::Plain;
        let mut t = Tracked::with_file(file, path, now, max_line)?;
        if compressed && let Some(t) = &mut t {
            log::debug!(
                "{} is compressed: not followed (replay reads gzip files)",
                PathEscaped(path)
            );
            t.mark_read()?;
        }
        Ok(t)
    }

    /// [`Tracked::open`] of a file already open, shown as `path`.
    fn with_file(
        file: File,
        path: &Path,
        now: Instant,
        max_line: usize,
    ) -> io::Result<Option<Tracked>> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        let mtime = meta.modified()?;
        let age = SystemTime::now().duration_since(mtime).unwrap_or_default();
        let mut t = Tracked {
            dev: meta.dev(),
            ino: meta.ino(),
            id: None,
            path: path.to_path_buf(),
            file: Some(file),
            state: State::Pending,
            found: true,
            outside: false,
            start: (0, 0),
            start_recent: Vec::new(),
            positioned: false,
            framer: Framer::new(max_line),
            recent: Vec::new(),
            size: meta.len(),
            mtime,
            // A file that has not changed for a while is already quiet: old files of a
            // backlog need not each wait out the grace period.
            changed_at: now.checked_sub(age).unwrap_or(now),
            verify: false,
            head_line: None,
        };
        t.identify()?;
        Ok(Some(t))
    }

    /// Takes the identity once the first line is complete.
    fn identify(&mut self) -> io::Result<bool> {
        if self.state != State::Pending {
            return Ok(true);
        }
        let opened_here;
        let file = match &self.file {
            Some(f) => f,
            None => {
                let Ok(f) = File::open(&self.path) else {
                    return Ok(false);
                };
                let meta = f.metadata()?;
                if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
                    return Ok(false);
                }
                opened_here = f;
                &opened_here
            }
        };
        let Some(id) = fingerprint::identify(file)? else {
            return Ok(false);
        };
        self.id = Some(id);
        self.state = State::Reading;
        Ok(true)
    }

    /// Puts the reader at `start` when the file's turn comes (the start may have been decided
    /// after identification: resume, skip, copy).
    /// Returns false when the file was rewritten since its start was decided: it is then
    /// identified again and read from 0.
    fn position(&mut self) -> io::Result<bool> {
        let file = self.file.as_ref().expect("the active file is open");
        let (offset, line) = self.start;
        self.recent = recent_at(file, offset)?;
        if self.recent != self.start_recent {
            log::warn!(
                "{} changed before its turn came; reading it from the start",
                PathEscaped(&self.path)
            );
            self.id = None;
            self.state = State::Pending;
            self.start = (0, 0);
            self.start_recent.clear();
            self.recent.clear();
            return Ok(false);
        }
        self.framer.restart_at(offset, line);
        self.positioned = true;
        Ok(true)
    }

    /// Decides where reading starts, remembering the bytes before that point.
    fn set_start(&mut self, offset: u64, line: u64) -> io::Result<()> {
        let file = self.file.as_ref().expect("a file given a start is open");
        self.start_recent = recent_at(file, offset)?;
        self.start = (offset, line);
        Ok(())
    }

    /// Reopens a file whose descriptor was closed while it waited; false if the path no
    /// longer holds it.
    fn reopen(&mut self) -> io::Result<bool> {
        let Ok(file) = File::open(&self.path) else {
            return Ok(false);
        };
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
            return Ok(false);
        }
        self.file = Some(file);
        Ok(true)
    }

    /// Marks a file as read already (older than where reading starts).
    fn skip(&mut self) -> io::Result<()> {
        self.mark_read()?;
        self.file = None;
        Ok(())
    }

    /// [`Tracked::skip`], with the descriptor left open for the checks made at start-up.
    fn mark_read(&mut self) -> io::Result<()> {
        if let Some(f) = &self.file {
            self.recent = recent_at(f, self.size)?;
        }
        self.framer.restart_at(self.size, self.framer.line());
        self.state = State::Finished;
        self.positioned = true;
        Ok(())
    }

    /// Where the last complete line ends, and how many lines come before it.
    fn last_newline(&self) -> io::Result<(u64, u64)> {
        let file = self.file.as_ref().expect("a file found at start is open");
        let mut buf = vec![0; CHUNK];
        let (mut pos, mut lines, mut last) = (0u64, 0u64, 0u64);
        while pos < self.size {
            let n = file.read_at(&mut buf, pos)?;
            if n == 0 {
                break;
            }
            for i in memchr::memchr_iter(b'\n', &buf[..n]) {
                lines += 1;
                last = pos + i as u64 + 1;
            }
            pos += n as u64;
        }
        Ok((last, lines))
    }

    /// Whether a saved position is still valid for this file: the file is at least that long
    /// and the bytes before the offset are the ones read then.
    fn resumable(&mut self, p: &FilePosition) -> io::Result<bool> {
        if self.size < p.offset {
            return Ok(false);
        }
        let file = self.file.as_mut().expect("a file found at start is open");
        Ok(tail_hash(file, p.offset)? == p.tail_hash)
    }

    /// Reads what is new in the active file and frames it into lines.
    fn advance(
        &mut self,
        items: &mut Vec<TailItem>,
        budget: &mut u64,
        now: Instant,
    ) -> io::Result<Advance> {
        let changed = self.note_change(now)?;
        let file = self.file.as_ref().expect("the active file is open");
        let size = self.size;
        let check = std::mem::take(&mut self.verify) || changed;
        // The bytes before the read position alone can match after a rewrite (EMS lines of one
        // type end alike), so a change also re-checks the first line, which EMS makes unique.
        // When the file grew, the bytes before the read position come in the same read as the
        // new ones: the first `back` bytes of `buf` (up to RECENT, fewer near the start).
        let read_pos = self.framer.read_pos();
        let grew = size > read_pos;
        let back = if grew { self.recent.len() } else { 0 };
        let mut buf = Vec::new();
        let mut n = 0;
        if grew {
            let want = (size - read_pos).min(CHUNK as u64).min(*budget) as usize;
            buf.resize(back + want, 0);
            n = read_at_most(file, &mut buf, read_pos - back as u64)?;
        }
        let recent_changed = |file: &File| -> io::Result<bool> {
            Ok(if grew {
                n < back || buf[..back] != self.recent[..]
            } else {
                recent_at(file, read_pos)? != self.recent
            })
        };
        let rewritten = size < read_pos
            || (check
                && read_pos > 0
                && (recent_changed(file)? || !same_head(file, self.id, &mut self.head_line)?));
        if rewritten {
            let id = self.id.expect("a file being read is identified");
            items.push(TailItem::Truncated {
                file: id,
                path: self.path.clone(),
            });
            let old = Prior {
                head: id.head,
                dev: self.dev,
                ino: self.ino,
                offset: self.framer.offset(),
                line: self.framer.line(),
                recent: self.recent.clone(),
            };
            self.id = None;
            self.state = State::Pending;
            self.positioned = false;
            self.start = (0, 0);
            self.start_recent.clear();
            self.framer.restart_at(0, 0);
            self.recent.clear();
            return Ok(Advance::Truncated(old));
        }
        if n <= back {
            return Ok(Advance::Drained);
        }
        let data = &buf[back..n];
        *budget = budget.saturating_sub(data.len() as u64);
        self.remember(data);
        let (id, path) = (self.framed_id(), &self.path);
        self.framer
            .push(data, |frame| items.push(tail_item(id, path, frame)));
        // Read up to the size just seen: nothing more until the file changes again, so the
        // reader need not look (and stat) once more before it waits.
        if self.framer.read_pos() == size {
            Ok(Advance::Caught)
        } else {
            Ok(Advance::Read)
        }
    }

    /// Stats the open file; records when its size or mtime last changed. Returns whether
    /// they did now.
    fn note_change(&mut self, now: Instant) -> io::Result<bool> {
        let file = self.file.as_ref().expect("the active file is open");
        let meta = file.metadata()?;
        let (size, mtime) = (meta.len(), meta.modified()?);
        let changed = size != self.size || mtime != self.mtime;
        if changed {
            self.changed_at = now;
            self.size = size;
            self.mtime = mtime;
        }
        Ok(changed)
    }

    /// Keeps the last bytes read for [`Self::advance`]'s rewrite check.
    fn remember(&mut self, data: &[u8]) {
        if data.len() >= RECENT {
            self.recent.clear();
            self.recent.extend_from_slice(&data[data.len() - RECENT..]);
        } else {
            self.recent.extend_from_slice(data);
            let extra = self.recent.len().saturating_sub(RECENT);
            self.recent.drain(..extra);
        }
    }

    /// The identity of a file whose lines are being framed.
    fn framed_id(&self) -> FileId {
        self.id.expect("a file being read is identified")
    }

    /// Ends a file: an unterminated last line is handed out (nothing will complete it), the
    /// descriptor is closed.
    fn finish(&mut self, items: &mut Vec<TailItem>) {
        let (id, path) = (self.framed_id(), &self.path);
        self.framer
            .finish(|frame| items.push(tail_item(id, path, frame)));
        items.push(TailItem::Finished { file: id });
        self.file = None;
        self.state = State::Finished;
    }
}

/// Whether the open `file` still has the first line of identity `id` (see [`Tracked::advance`]).
/// `cache` keeps the line once read, for the identity it was read for.
fn same_head(
    file: &File,
    id: Option<FileId>,
    cache: &mut Option<(u64, Vec<u8>)>,
) -> io::Result<bool> {
    let Some(id) = id else {
        return Ok(false);
    };
    if let Some((head, line)) = cache.as_ref()
        && *head == id.head
    {
        return fingerprint::starts_with_line(file, line);
    }
    match fingerprint::first_line(file)? {
        Some(line) if fingerprint::head_hash(&line) == id.head => {
            *cache = Some((id.head, line));
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A framed line of file `id` at `path`, as the tailer hands it out.
fn tail_item(id: FileId, path: &Path, frame: Frame<'_>) -> TailItem {
    match frame {
        Frame::Line {
            number,
            offset,
            end,
            bytes,
        } => TailItem::Line {
            file: id,
            path: path.to_path_buf(),
            number,
            offset,
            end,
            bytes: bytes.to_vec(),
        },
        Frame::Oversize {
            number,
            offset,
            end,
            len,
        } => TailItem::Oversize {
            file: id,
            path: path.to_path_buf(),
            number,
            offset,
            end,
            len,
        },
    }
}

/// The up to [`RECENT`] bytes before `offset` (fewer if the file is shorter).
fn recent_at(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let start = offset.saturating_sub(RECENT as u64);
    let mut buf = vec![0; (offset - start) as usize];
    let filled = read_at_most(file, &mut buf, start)?;
    buf.truncate(filled);
    Ok(buf)
}

/// A checkpoint entry for the file at `path`: its position with the hash of the bytes before
/// it. For a file followed now, [`Tailer::checkpoint_position`] (by its descriptor) is right;
/// this is for a path known to hold the file (tests, tools).
pub fn file_position(id: FileId, path: &Path, offset: u64, line: u64) -> io::Result<FilePosition> {
    let file = File::open(path)?;
    Ok(FilePosition {
        id,
        path: path.to_path_buf(),
        offset,
        line,
        tail_hash: tail_hash(&file, offset)?,
        done: false,
    })
}
