//! The test fake of the EMS HTTP API as a process, for benchmarks and manual tests.
//!
//! `cargo run --example fake_ems -- --port 0 --delay-ms 1 --log /tmp/calls.jsonl` prints
//! `listening on http://127.0.0.1:PORT/`, appends one JSON line per request
//! (`{"command", "params", "received_unix_ns"}`) to the log, and exits on stdin EOF, after
//! `--max-secs`, or on SIGTERM (the default action; each log line is written whole at once, so
//! nothing is lost). Started in the background without a terminal, pass `--ignore-stdin`,
//! since stdin is then usually /dev/null. A line `restart` on stdin makes it act as EMS after a
//! restart: its armed timers and streams are forgotten and timer ids start again from 1. A line
//! `stream {"uniqueId":15,"name":"cam1","recordSettings":{"_localStreamName":"cam1"}}` adds a
//! stream that `listStreams` lists (stream stats, as EMS writes them) until it is shut down.

#[path = "../tests/support/fake_ems.rs"]
mod fake_ems;
// What the fake's `start()` picks its port with; this program takes `--port` instead.
#[allow(dead_code)]
#[path = "../tests/support/ports.rs"]
mod ports;

use clap::Parser;
use fake_ems::FakeEms;
use serde_json::{Map, Value, json};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "A fake EMS HTTP API on 127.0.0.1 that records every call")]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Delay before every answer, in milliseconds (at most 60000).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
    /// Do not exit when stdin reaches EOF.
    #[arg(long)]
    ignore_stdin: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("fake_ems: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> io::Result<()> {
    let max = Duration::from_secs(args.max_secs);
    let fake = Arc::new(FakeEms::try_start(args.port, max + Duration::from_secs(1))?);
    fake.set_delay(Duration::from_millis(args.delay_ms));
    if let Some(path) = &args.log {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let file = Mutex::new(file);
        fake.on_call(move |call| write_log_line(&file, call));
    }

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {}", fake.base_url())?;
    stdout.flush()?;
    drop(stdout);

    let (stop_tx, stop_rx) = mpsc::channel::<&'static str>();
    if !args.ignore_stdin {
        let restarts = Arc::clone(&fake);
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
                match line {
                    Ok(line) if line.trim() == "restart" => {
                        restarts.restart();
                        eprintln!(
                            "fake_ems: restarted: timers and streams forgotten, ids from 1 again"
                        );
                    }
                    Ok(line) if line.trim_start().starts_with("stream ") => {
                        let stats = line.trim_start()["stream ".len()..].trim();
                        match serde_json::from_str::<Value>(stats) {
                            Ok(stats @ Value::Object(_)) => restarts.add_stream(stats),
                            _ => {
                                eprintln!("fake_ems: not a stream's stats (a JSON object): {stats}")
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = stop_tx.send("stdin closed");
        });
    }
    let reason = stop_rx.recv_timeout(max).unwrap_or("--max-secs reached");
    eprintln!("fake_ems: {reason}, {} calls recorded", fake.calls().len());
    fake.shutdown();
    Ok(())
}

fn write_log_line(file: &Mutex<File>, call: &fake_ems::RecordedCall) {
    let params: Map<String, Value> = call
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let line = json!({
        "command": call.command,
        "params": params,
        "received_unix_ns": u64::try_from(call.received_unix_ns).unwrap_or(u64::MAX),
    });
    let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
    // One write per line: O_APPEND keeps lines whole even if the process is killed.
    if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
        eprintln!("fake_ems: cannot write the call log: {e}");
    }
}
