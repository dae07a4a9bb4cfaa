//! Baseline for the replay benchmark: how fast serde_json alone reads every line of an EMS JSON
//! log into the fields the plugins look at (`type`, `payload.name`, `payload.file`, borrowed
//! where no escape forces a copy), the file already in memory, doing nothing else — no engine,
//! no output. It runs on one thread and on every core and counts the faster. Any replay that
//! reads each event with serde_json is bounded by this rate.
//!
//!   cargo run --release --example json_floor -- bench/data/events_20261129_101500.txt
//!
//! Prints seconds and MB/s of each run, then `best: SECONDS s`.

use serde::Deserialize;
use std::borrow::Cow;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    file: Option<Cow<'a, str>>,
}

/// Parses every line of `data`; returns (lines, lines that did not parse, a checksum of the
/// fields read so that nothing is optimised away).
fn parse_all(data: &[u8]) -> (u64, u64, u64) {
    let (mut lines, mut bad, mut sum) = (0u64, 0u64, 0u64);
    for raw in data.split(|&b| b == b'\n') {
        let mut line = raw;
        while let Some((b',' | b' ' | b'\r' | b'\t', rest)) = line.split_last() {
            line = rest;
        }
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let parsed = std::str::from_utf8(line)
            .map_err(|_| ())
            .and_then(|text| serde_json::from_str::<Line<'_>>(text).map_err(|_| ()));
        match parsed {
            Ok(l) => {
                sum += l.kind.map_or(0, |k| k.len() as u64);
                if let Some(p) = l.payload {
                    sum += p.name.map_or(0, |n| n.len() as u64);
                    sum += p.file.map_or(0, |f| f.len() as u64);
                }
            }
            Err(_) => bad += 1,
        }
    }
    (lines, bad, sum)
}

/// Parses `data` on `threads` threads, each a piece cut after a newline; the seconds taken.
fn timed(data: &[u8], threads: usize) -> (f64, u64, u64) {
    let started = Instant::now();
    let mut pieces = Vec::with_capacity(threads);
    let mut from = 0;
    for i in 1..=threads {
        // The i-th share of the bytes, extended to the end of the line it cuts.
        let at = (data.len() * i / threads).max(from);
        let to = match memchr::memchr(b'\n', &data[at..]) {
            Some(j) if i < threads => at + j + 1,
            _ => data.len(),
        };
        pieces.push(&data[from..to]);
        from = to;
    }
    let (mut lines, mut bad, mut sum) = (0, 0, 0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|piece| scope.spawn(|| parse_all(piece)))
            .collect();
        for h in handles {
            let (l, b, s) = h.join().expect("a parsing thread does not panic");
            lines += l;
            bad += b;
            sum += s;
        }
    });
    std::hint::black_box(sum);
    (started.elapsed().as_secs_f64(), lines, bad)
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: json_floor FILE");
        return ExitCode::from(2);
    };
    // Read first, untimed: the floor is the parsing alone, which only flatters it.
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("json_floor: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One thread and every core: on a small VM the second core may not help (allocation in
    // two threads at once can cost more than it gains), so the faster one is the floor.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut best: Option<(f64, usize)> = None;
    for threads in [1, cores] {
        let (secs, lines, bad) = timed(&data, threads);
        println!(
            "{threads} thread(s): {lines} lines ({bad} not parsed) in {secs:.3} s: {:.1} MB/s",
            data.len() as f64 / secs / 1e6
        );
        if best.is_none_or(|(b, _)| secs < b) {
            best = Some((secs, threads));
        }
    }
    let (secs, threads) = best.expect("at least one run");
    println!("best: {secs:.3} s ({threads} thread(s))");
    ExitCode::SUCCESS
}
