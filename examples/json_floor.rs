//! Baseline for the replay benchmark: how fast serde_json alone reads every line of an EMS JSON
//! log into the fields the plugins look at (`type`, `payload.name`, `payload.file`, borrowed
//! where no escape forces a copy), on every core, doing nothing else — no engine, no output.
//! Any replay that reads each event with serde_json is bounded by this rate.
//!
//!   cargo run --release --example json_floor -- bench/data/events_20261129_101500.txt
//!
//! Prints lines, seconds and MB/s.

use serde::Deserialize;
use std::borrow::Cow;
use std::io::Read;
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

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: json_floor FILE");
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let mut data = Vec::new();
    if let Err(e) = std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut data)) {
        eprintln!("json_floor: {path}: {e}");
        return ExitCode::FAILURE;
    }
    // One piece per core, cut after a newline.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pieces = Vec::with_capacity(threads);
    let mut from = 0;
    for i in 1..=threads {
        let mut to = data.len() * i / threads;
        if i < threads {
            to = memchr::memchr(b'\n', &data[to..]).map_or(data.len(), |j| to + j + 1);
        }
        pieces.push(&data[from..to.max(from)]);
        from = to.max(from);
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
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{lines} lines ({bad} not parsed, checksum {sum}) in {secs:.3} s on {threads} threads: {:.1} MB/s",
        data.len() as f64 / secs / 1e6
    );
    ExitCode::SUCCESS
}
