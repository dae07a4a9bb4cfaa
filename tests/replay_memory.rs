//! `replay` holds what is in flight between its reader thread and the engine, not a number of
//! lines whatever their size: a log of 1 MiB lines is replayed in a few MiB. Measured by a
//! counting allocator of this test binary (bytes allocated and not yet freed, every thread).

use emstail::action::PlannedAction;
use emstail::config::Config;
use emstail::event::Source;
use emstail::replay::{Options, Problem, Sink, replay};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    let now = LIVE.fetch_add(delta, Relaxed) + delta;
    PEAK.fetch_max(now, Relaxed);
}

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        count(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, size) };
        if !q.is_null() {
            count(size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counts what the replay hands on.
#[derive(Default)]
struct Counted {
    actions: usize,
    problems: usize,
}

impl Sink for Counted {
    fn action(&mut self, _: &PlannedAction, _: &Source) {
        self.actions += 1;
    }
    fn problem(&mut self, _: &Problem) {
        self.problems += 1;
    }
}

const MIB: usize = 1 << 20;

/// Replays `log` with StreamRecorder on; what it read, what it handed on, and the most bytes
/// held at once above what was held before.
fn replay_with_recorder(log: std::path::PathBuf) -> (emstail::replay::Summary, Counted, isize) {
    let config = Config::from_str(
        Path::new("config.ini"),
        r#"{ "Service": { "ems_api": "http://127.0.0.1:7777" },
             "StreamRecorder": { "plugin_switch": "enabled",
                 "parameters": { "file_location": "/var/evostreamms/media" } } }"#,
    )
    .expect("a valid config");
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let mut sink = Counted::default();
    let summary = replay(&config, &[log], &Options::default(), &mut sink).expect("replay runs");
    let peak = PEAK.load(Relaxed) - before;
    eprintln!("peak: {:.1} MiB", peak as f64 / MIB as f64);
    (summary, sink, peak)
}

#[test]
fn a_replay_of_1_mib_lines_holds_a_few_mib_not_a_thousand_lines() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("events_20261129_101500.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&log).expect("create the log"));
    // 150 events of just under 1 MiB each (the default line cap is 1 MiB): 150 MiB of log.
    let pad = "x".repeat(MIB - 400);
    for n in 0..150 {
        writeln!(
            file,
            r#"{{"_logEntry":"{n:05}","id":{n},"payload":{{"appName":"evostreamms","name":"s{n}","type":"INR","uniqueId":{n},"note":"{pad}"}},"processId":7,"timestamp":1795947304,"type":"inStreamCodecsUpdated"}},"#
        )
        .expect("write the log");
    }
    file.flush().expect("flush the log");
    drop(file);
    let (summary, sink, peak) = replay_with_recorder(log);

    assert_eq!(summary.events, 150, "every line was read as an event");
    assert_eq!(sink.problems, 0);
    assert!(
        peak < 64 * MIB as isize,
        "replay held {} MiB at its peak for a log of 1 MiB lines",
        peak / MIB as isize
    );
}

/// Follows, as the replay hands on each action, how many fragment uploads it holds back: the
/// events read so far (each puts one fragment) less the fragments handed on.
struct Holding {
    progress: std::sync::Arc<emstail::replay::Progress>,
    fragments: std::collections::BTreeSet<String>,
    most_held: u64,
}

impl Sink for Holding {
    fn action(&mut self, action: &PlannedAction, _: &Source) {
        if let emstail::action::Action::S3Put(put) = &action.action
            && put.key.contains("-Frag")
        {
            assert!(
                self.fragments.insert(put.key.clone()),
                "{} put twice",
                put.key
            );
        }
        let read = self.progress.events.load(Relaxed);
        self.most_held = self.most_held.max(read - self.fragments.len() as u64);
    }
    fn problem(&mut self, problem: &Problem) {
        panic!("no problem expected: {problem}");
    }
}

#[test]
fn held_chunk_uploads_never_exceed_the_cap_and_every_one_still_goes_out() {
    use emstail::replay::HELD_CHUNKS;
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("events_20261129_101500.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&log).expect("create the log"));
    // 40 streams whose HDS fragments are never deleted, taking turns: more fragments than the
    // cap in all, fewer than a lane's own cap in each.
    let (streams, rounds) = (40, HELD_CHUNKS / 40 + 50);
    for round in 0..rounds {
        for stream in 0..streams {
            writeln!(
                file,
                r#"{{"payload":{{"file":"\/w\/hds\/cam{stream}\/f4vSeg1-Frag{round}"}},"timestamp":1795947304,"type":"hdsChunkClosed"}},"#
            )
            .expect("write the log");
        }
    }
    file.flush().expect("flush the log");
    drop(file);
    let config = Config::from_str(
        Path::new("config.ini"),
        r#"{ "Service": { "ems_api": "http://127.0.0.1:7777", "media_root": ["/w"] },
             "AmazonHDSUpload": { "plugin_switch": "enabled", "parameters": {
                 "aws_access_key": "k", "aws_secret_key": "s", "default_bucket": "hds" } } }"#,
    )
    .expect("a valid config");

    let options = Options::default();
    let mut sink = Holding {
        progress: options.progress.clone(),
        fragments: Default::default(),
        most_held: 0,
    };
    let summary = replay(&config, &[log], &options, &mut sink).expect("replay runs");

    let total = (streams * rounds) as u64;
    assert!(total > HELD_CHUNKS as u64);
    assert_eq!(summary.events, total);
    assert_eq!(
        sink.fragments.len() as u64,
        total,
        "every fragment was put once"
    );
    assert_eq!(
        sink.most_held, HELD_CHUNKS as u64,
        "the replay held back as many fragments as the cap lets it, and no more"
    );
}

/// A window in which 100,000 publishers came and went, each under a name of 200 bytes: the
/// first pass must remember every one (a stream that ended is not re-created), but not its
/// name. Held as the names, that was 25 MiB; as 16-byte keys it is 6.4 MiB.
#[test]
fn a_window_of_many_streams_that_came_and_went_holds_keys_not_names() {
    const STREAMS: u64 = 100_000;
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("events_20261129_101500.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&log).expect("create the log"));
    let pad = "n".repeat(190);
    for n in 0..STREAMS {
        for kind in ["inStreamCreated", "inStreamClosed"] {
            writeln!(
                file,
                r#"{{"payload":{{"name":"{pad}{n:010}","type":"INR","uniqueId":{n}}},"processId":7,"timestamp":1795947304,"type":"{kind}"}},"#
            )
            .expect("write the log");
        }
    }
    file.flush().expect("flush the log");
    drop(file);
    let (summary, sink, peak) = replay_with_recorder(log);

    assert_eq!(summary.events, 2 * STREAMS);
    assert_eq!(
        sink.actions, 0,
        "every stream ended in the window: nothing to re-create"
    );
    assert!(
        peak < 12 * MIB as isize,
        "replay held {:.1} MiB at its peak for {STREAMS} streams",
        peak as f64 / MIB as f64
    );
}
