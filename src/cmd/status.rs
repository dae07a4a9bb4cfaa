//! `emstail status`: what a running (or stopped) emstail has done, read from its state
//! directory. Reads only: never takes the lock, never writes there. With `--check`, also
//! what in it wants an operator, one `problem:` line each, for monitoring (exit 1).

use crate::cli::{Outcome, Usage};
use anyhow::Context as _;
use emstail::action::PathEscaped;
use emstail::exec::dead_letter;
use emstail::source::checkpoint;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// How long a running emstail may leave `status.json` unwritten before `--check` says it may
/// be hung: it writes one within a second of starting and rewrites it at least every minute
/// (`STATUS_REFRESH` of the run), so three minutes leave room for a slow disk or a reload's
/// drain without a false alarm.
const STATUS_STALE_AFTER_SECS: u64 = 180;

/// What `status --check` holds the state against, besides what is always a problem.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// More bytes than this behind the log at the checkpoint is a problem.
    pub max_lag: Option<u64>,
}

pub fn status(
    config_path: &Path,
    state_dir: Option<PathBuf>,
    check: Option<Check>,
) -> anyhow::Result<Outcome> {
    let state_dir = match state_dir {
        Some(d) => d,
        None => super::load_config(config_path)?.service.state_dir,
    };
    if !state_dir.is_dir() {
        return Err(Usage(format!("{}: no such state directory", state_dir.display())).into());
    }
    let mut out = std::io::stdout().lock();
    // Each says what is wrong and where to look; only `--check` prints them.
    let mut problems: Vec<String> = Vec::new();
    let holder = running(&mut out, &state_dir, &mut problems)?;
    let now = emstail::status::now_unix();
    let last = emstail::status::load(&state_dir);
    // A status another process wrote (a stopped emstail's) says nothing of the running one.
    let current = last.as_ref().filter(|s| Some(s.pid) == holder);
    if let Some(pid) = holder
        && let Some(problem) = unwritten(&state_dir, pid, current.map(|s| s.updated_unix), now)
    {
        problems.push(problem);
    }
    let loaded = checkpoint::load(&state_dir);
    if let Some(problem) = &loaded.problem {
        writeln!(out, "checkpoint: {problem}")?;
        problems.push(format!(
            "{problem}: a start now would read the newest log file again from its beginning; \
             see emstail's log (a full disk, a write cut short)"
        ));
    }
    let mut lag = 0u64;
    for p in &loaded.positions {
        // The rest of a file logrotate compressed, read from a decompressed copy: the offset is
        // in its content, which only decompressing it measures.
        if emstail::source::read::is_gzip(&p.path).unwrap_or(false) {
            writeln!(
                out,
                "file: {} offset {} (line {}) of its content, compressed: bytes behind not known",
                PathEscaped(&p.path),
                p.offset,
                p.line
            )?;
            continue;
        }
        let size = std::fs::metadata(&p.path).map(|m| m.len()).ok();
        let behind = size.map_or(0, |s| s.saturating_sub(p.offset));
        lag += behind;
        match size {
            Some(size) => writeln!(
                out,
                "file: {} offset {} of {} bytes (line {}), {} bytes behind",
                PathEscaped(&p.path),
                p.offset,
                size,
                p.line,
                behind
            )?,
            None => writeln!(
                out,
                "file: {} offset {} (line {}), gone",
                PathEscaped(&p.path),
                p.offset,
                p.line
            )?,
        }
    }
    writeln!(
        out,
        "lag: {lag} bytes behind the log at the last checkpoint"
    )?;
    if let Some(s) = &last {
        let age = now.saturating_sub(s.updated_unix);
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
    for target in current.iter().flat_map(|s| &s.targets) {
        if target.down_since_unix.is_some() {
            problems.push(format!(
                "target {}: see that it answers; emstail sends what waits for it once it does",
                target.describe(now)
            ));
        }
    }
    dead_letters(&mut out, &state_dir, &mut problems)?;
    if let Some(max) = check.and_then(|c| c.max_lag)
        && lag > max
    {
        problems.push(format!(
            "{lag} bytes behind the log, more than --max-lag {max}: see the targets above and \
             emstail's log (a target down or slow, or more events than it keeps up with)"
        ));
    }
    let outcome = match check {
        Some(_) => verdict(&mut out, &problems)?,
        None => Outcome::Success,
    };
    out.flush().context("writing the status")?;
    Ok(outcome)
}

/// The `running:` line, and the pid of the emstail holding the state directory, if one does;
/// none, or none known, is a problem.
fn running(
    out: &mut impl Write,
    state_dir: &Path,
    problems: &mut Vec<String>,
) -> std::io::Result<Option<u32>> {
    let lock_path = state_dir.join(checkpoint::LOCK_FILE);
    let holder = match checkpoint::holder(state_dir) {
        Ok(Some(pid)) => {
            writeln!(out, "running: yes (pid {pid})")?;
            Some(pid)
        }
        Ok(None) => {
            writeln!(out, "running: no")?;
            problems.push(format!(
                "emstail is not running (no process holds {}): start it, and see its log for \
                 why it stopped",
                lock_path.display()
            ));
            None
        }
        Err(e) => {
            writeln!(out, "running: unknown ({e})")?;
            problems.push(format!(
                "cannot tell whether emstail runs ({e}): run this as the daemon's user or root, \
                 and see to the state directory"
            ));
            None
        }
    };
    Ok(holder)
}

/// The `dead letters:` line: how many the file holds, and its size; any letter, or a file
/// that cannot be read, is a problem.
fn dead_letters(
    out: &mut impl Write,
    state_dir: &Path,
    problems: &mut Vec<String>,
) -> std::io::Result<()> {
    let path = state_dir.join(dead_letter::FILE_NAME);
    match dead_letter::count(&path) {
        Ok(dead) => {
            // The file has no cap: its size beside the count shows when it wants reviewing.
            match std::fs::metadata(&path) {
                Ok(meta) if dead > 0 => writeln!(
                    out,
                    "dead letters: {dead} ({}, {})",
                    path.display(),
                    file_size(meta.len())
                )?,
                _ => writeln!(out, "dead letters: {dead} ({})", path.display())?,
            }
            if dead > 0 {
                problems.push(format!(
                    "{} in {}: actions that failed for good; see them with `emstail \
                     dead-letters`, then --retry or --drop them",
                    emstail::status::counted(dead, "dead letter"),
                    path.display()
                ));
            }
        }
        Err(e) => {
            writeln!(out, "dead letters: unknown ({e})")?;
            problems.push(format!(
                "dead letters cannot be counted ({e}): emstail needs a regular file there that \
                 it can read and write (it creates one where there is none); see to it"
            ));
        }
    }
    Ok(())
}

/// `check: ok`, or how many problems and a `problem:` line each; exit 1 for any.
fn verdict(out: &mut impl Write, problems: &[String]) -> std::io::Result<Outcome> {
    if problems.is_empty() {
        writeln!(out, "check: ok")?;
        return Ok(Outcome::Success);
    }
    let n = problems.len() as u64;
    writeln!(out, "check: {}", emstail::status::counted(n, "problem"))?;
    for problem in problems {
        writeln!(out, "problem: {problem}")?;
    }
    Ok(Outcome::SomeFailed)
}

/// Why the running emstail `pid` may be hung, if its last sign of life is older than
/// [`STATUS_STALE_AFTER_SECS`]: `written`, when it wrote the status, or when it took the lock
/// (started, or reloaded), whichever came later.
fn unwritten(state_dir: &Path, pid: u32, written: Option<u64>, now: u64) -> Option<String> {
    let status_path = state_dir.join(emstail::status::FILE_NAME);
    let lock_path = state_dir.join(checkpoint::LOCK_FILE);
    // Taking the lock writes the pid into its file: the time of that write is when the run began.
    let locked = std::fs::metadata(&lock_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let Some(seen) = written.max(locked) else {
        return Some(format!(
            "emstail (pid {pid}) has written no readable {}, and since when it runs cannot be \
             told ({}): see its log",
            status_path.display(),
            lock_path.display()
        ));
    };
    let age = now.saturating_sub(seen);
    if age <= STATUS_STALE_AFTER_SECS {
        return None;
    }
    let what = match written {
        Some(at) if at >= locked.unwrap_or(0) => {
            format!("last wrote {} {age} s ago", status_path.display())
        }
        _ => format!(
            "started {age} s ago and has written no readable {} since",
            status_path.display()
        ),
    };
    Some(format!(
        "emstail (pid {pid}) {what}, which it rewrites at least every minute: it may be hung or \
         unable to write its state directory; see its log, and restart it if this stays so"
    ))
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
