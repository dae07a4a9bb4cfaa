//! The floor of any notify-based follower, for `bench/follow.sh`: a notify watch on one file;
//! on each event, read what was appended and split it into lines; nothing else (no parse, no
//! stat, no checkpoint, no rotation). Reads on notify's own thread, so no thread hop either.
//!
//! `cargo run --release --example follow_floor -- --log events.txt --lines 1000` starts at the
//! end of the file, prints `watching` once the watch is in place, and exits after 1,000 lines
//! (or `--secs`), printing the count.

use clap::Parser;
use notify::{RecursiveMode, Watcher};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Follows a file with notify and counts its new lines, nothing else")]
struct Args {
    /// The file to follow (from its current end).
    #[arg(long)]
    log: PathBuf,
    /// Exit after this many lines (0: never).
    #[arg(long, default_value_t = 0)]
    lines: u64,
    /// Exit after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    secs: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut file = File::open(&args.log)?;
    file.seek(SeekFrom::End(0))?;
    let count = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = sync_channel::<()>(1);
    let want = args.lines;
    let seen = Arc::clone(&count);
    let mut buf = vec![0u8; 64 << 10];
    let mut watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let mut lines = 0;
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        }
        let total = seen.fetch_add(lines, Ordering::Relaxed) + lines;
        if want > 0 && total >= want {
            let _ = done_tx.try_send(());
        }
    })?;
    watcher.watch(&args.log, RecursiveMode::NonRecursive)?;
    println!("watching");
    std::io::stdout().flush()?;
    let deadline = (args.secs > 0).then(|| Instant::now() + Duration::from_secs(args.secs));
    loop {
        let wait = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match done_rx.recv_timeout(wait) {
            Ok(()) => break,
            Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => break,
            Err(_) => {}
        }
    }
    println!("{} lines", count.load(Ordering::Relaxed));
    Ok(())
}
