//! `emstail status`: what a running (or stopped) emstail has done, read from its state
//! directory. Reads only: never takes the lock, never writes there.

use crate::cli::{Outcome, Usage};
use anyhow::Context as _;
use emstail::exec::dead_letter;
use emstail::source::checkpoint;
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn status(config_path: &Path, state_dir: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let state_dir = match state_dir {
        Some(d) => d,
        None => super::load_config(config_path)?.service.state_dir,
    };
    if !state_dir.is_dir() {
        return Err(Usage(format!("{}: no such state directory", state_dir.display())).into());
    }
    let mut out = std::io::stdout().lock();
    match checkpoint::holder(&state_dir) {
        Ok(Some(pid)) => writeln!(out, "running: yes (pid {pid})")?,
        Ok(None) => writeln!(out, "running: no")?,
        Err(e) => writeln!(
            out,
            "running: unknown ({}: {e})",
            state_dir.join(checkpoint::LOCK_FILE).display()
        )?,
    }
    let loaded = checkpoint::load(&state_dir);
    if let Some(problem) = &loaded.problem {
        writeln!(out, "checkpoint: {problem}")?;
    }
    let mut lag = 0u64;
    for p in &loaded.positions {
        let size = std::fs::metadata(&p.path).map(|m| m.len()).ok();
        let behind = size.map_or(0, |s| s.saturating_sub(p.offset));
        lag += behind;
        match size {
            Some(size) => writeln!(
                out,
                "file: {} offset {} of {} bytes (line {}), {} bytes behind",
                p.path.display(),
                p.offset,
                size,
                p.line,
                behind
            )?,
            None => writeln!(
                out,
                "file: {} offset {} (line {}), gone",
                p.path.display(),
                p.offset,
                p.line
            )?,
        }
    }
    writeln!(
        out,
        "lag: {lag} bytes behind the log at the last checkpoint"
    )?;
    if let Some(s) = emstail::status::load(&state_dir) {
        let age = emstail::status::now_unix().saturating_sub(s.updated_unix);
        writeln!(
            out,
            "last status ({age} s ago, pid {}): {} events, {} malformed, {} refused; actions {} done, {} already done, {} skipped, {} dead; {} retrying, {} in flight; lag {} bytes",
            s.pid,
            s.events,
            s.malformed,
            s.refused,
            s.actions_done,
            s.actions_already_done,
            s.actions_skipped,
            s.actions_dead,
            s.retrying,
            s.in_flight,
            s.lag_bytes
        )?;
        for target in &s.targets {
            writeln!(out, "target: {}", target.describe(s.updated_unix))?;
        }
    }
    let path = state_dir.join(dead_letter::FILE_NAME);
    // The file has no cap: its size beside the count shows when it wants reviewing.
    match dead_letter::count(&path) {
        Ok(dead) => match std::fs::metadata(&path) {
            Ok(meta) if dead > 0 => writeln!(
                out,
                "dead letters: {dead} ({}, {})",
                path.display(),
                file_size(meta.len())
            )?,
            _ => writeln!(out, "dead letters: {dead} ({})", path.display())?,
        },
        // A FIFO or a device there, refused: the rest of the status is still worth seeing.
        Err(e) => writeln!(out, "dead letters: unknown ({e})")?,
    }
    out.flush().context("writing the status")?;
    Ok(Outcome::Success)
}

/// `n` bytes for a person: bytes, KiB, MiB or GiB with one decimal.
fn file_size(n: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut size = n as f64 / 1024.0;
    let mut unit = 0;
    // 1023.95 and above would show as "1024.0": the next unit's "1.0" then.
    while size >= 1023.95 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}
