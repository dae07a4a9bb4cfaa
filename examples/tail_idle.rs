//! The cost of an idle rescan: `cargo run --release --example tail_idle -- [FILES] [SCANS]`
//! creates FILES log files (default 20,000) in a temp dir, follows them from their end, and
//! times SCANS rescans (default 20) with nothing new to read. Prints the time per scan and
//! per file.

use emstail::source::tail::{Start, TailConfig, Tailer};
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let files: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let scans: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir()?;
    for i in 0..files {
        std::fs::write(
            dir.path().join(format!("events_{i:06}.txt")),
            b"{\"id\":1}\n",
        )?;
    }
    let config = TailConfig {
        log: dir
            .path()
            .join("events_*.txt")
            .to_string_lossy()
            .into_owned(),
        rescan: Duration::ZERO,
        grace: Duration::from_millis(500),
        max_line: 1 << 20,
        poll_only: true,
        spool: None,
    };
    let mut tailer = Tailer::new(config, Start::FromEnd)?;
    // Settle: the first polls may still hand out or finish files.
    for _ in 0..3 {
        tailer.poll(Duration::ZERO)?;
    }
    let started = Instant::now();
    for _ in 0..scans {
        tailer.poll(Duration::ZERO)?;
    }
    let per_scan = started.elapsed() / scans;
    println!(
        "{files} files: {per_scan:?} per idle rescan, {:?} per file",
        per_scan / u32::try_from(files).unwrap_or(u32::MAX).max(1)
    );
    Ok(())
}
