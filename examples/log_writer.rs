//! Appends EMS `inStreamCreated` events to a log at a steady rate, one write per line as EMS's
//! file sink does, and records when each write returned, for `bench/follow.sh`.
//!
//! `cargo run --release --example log_writer -- --log events.txt --rate 100 --secs 10
//! --prefix r100_ --stamps stamps.txt` writes streams `r100_1`, `r100_2`, … and then one line
//! `NAME UNIX_NS` per event to the stamps file.

use clap::Parser;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(about = "Appends EMS events at a steady rate and records each append time")]
struct Args {
    /// The log to append to (created if missing).
    #[arg(long)]
    log: PathBuf,
    /// Events per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// How long to write.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Stream names are this prefix and a counter from 1.
    #[arg(long, default_value = "s")]
    prefix: String,
    /// Append events no plugin acts on (`inStreamCodecsUpdated`, the same payload) instead of
    /// `inStreamCreated`: measures following and parsing alone.
    #[arg(long)]
    idle_events: bool,
    /// Where the `NAME UNIX_NS` lines go.
    #[arg(long)]
    stamps: PathBuf,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("log_writer: {e}");
        std::process::exit(1);
    }
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn run(args: &Args) -> io::Result<()> {
    let rate = args.rate.max(1);
    let total = rate * args.secs;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)?;
    let mut stamps = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let started = Instant::now();
    let mut late = 0u64;
    for n in 1..=total {
        let due = started + Duration::from_nanos(n * 1_000_000_000 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(1) {
            late += 1;
        }
        let name = format!("{}{n}", args.prefix);
        let kind = if args.idle_events {
            "inStreamCodecsUpdated"
        } else {
            "inStreamCreated"
        };
        let line = format!(
            r#"{{"_logEntry":"{n:05}","id":{n},"payload":{{"appName":"evostreamms","farIp":"10.0.0.5","ip":"10.0.0.2","name":"{name}","nearIp":"10.0.0.2","type":"INR","uniqueId":{n}}},"processId":2593,"timestamp":1795947304,"type":"{kind}"}},"#
        ) + "\n";
        log.write_all(line.as_bytes())?;
        stamps.push((name, unix_ns()));
    }
    let took = started.elapsed();
    let mut out = BufWriter::new(std::fs::File::create(&args.stamps)?);
    for (name, ns) in &stamps {
        writeln!(out, "{name} {ns}")?;
    }
    out.flush()?;
    eprintln!(
        "log_writer: {total} events in {:.2} s ({:.0}/s), {late} written over 1 ms late",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    Ok(())
}
