//! `emstail dead-letters`: the actions that failed for good; with `--retry`, run them again
//! and keep only those that still fail (and any the daemon added meanwhile).

use crate::cli::{Outcome, Usage};
use anyhow::Context as _;
use emstail::action::ControlEscaped;
use emstail::exec::dead_letter;
use emstail::exec::dispatch::Executor;
use emstail::exec::pool::Execute;
use emstail::exec::retry::RetryPolicy;
use emstail::exec::{Done, Failure};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn dead_letters(
    config_path: &Path,
    state_dir: Option<PathBuf>,
    retry: bool,
) -> anyhow::Result<Outcome> {
    let config = super::load_config(config_path)?;
    let state_dir = state_dir.unwrap_or_else(|| config.service.state_dir.clone());
    let path = state_dir.join(dead_letter::FILE_NAME);
    if !retry {
        // One letter at a time: a file of any size is listed in constant memory.
        let mut out = std::io::stdout().lock();
        let mut listed = 0u64;
        dead_letter::for_each(&path, |entry| {
            listed += 1;
            match &entry.letter {
                Ok(l) => writeln!(out, "{}", l.summary()),
                Err(e) => writeln!(out, "{}:{}: unreadable: {e}", path.display(), entry.line),
            }
        })?;
        out.flush()?;
        eprintln!("emstail: {listed} dead letters in {}", path.display());
        return Ok(Outcome::Success);
    }
    let letters = dead_letter::read(&path)?;
    let executor =
        Executor::new(&config).map_err(|e| Usage(format!("{}: {e}", config.path.display())))?;
    let policy = RetryPolicy::from_config(&config.service.retry);
    let mut done: Vec<&[u8]> = Vec::new();
    let (mut succeeded, mut failed) = (0u64, 0u64);
    for entry in &letters {
        let planned = match &entry.letter {
            Ok(l) => l.to_planned(&config),
            Err(_) => None,
        };
        let Some(planned) = planned else {
            log::warn!(
                "{}:{}: kept: cannot be run again by this version",
                path.display(),
                entry.line
            );
            failed += 1;
            continue;
        };
        // A dead letter was sent before and may have reached EMS (a lost answer): every
        // attempt here is a re-send, so a record or push already configured is not made twice.
        let attempt = |n: u32| executor.execute_sending(&planned, n, true);
        match policy.run(attempt, std::thread::sleep) {
            Ok(Done::Stale(why) | Done::NotOurRecording(why) | Done::StillListed(why)) => {
                log::info!("not sent ({}): {planned}", ControlEscaped(&why));
                succeeded += 1;
                done.push(&entry.raw);
            }
            Ok(_) | Err(Failure::Missing(_)) => {
                succeeded += 1;
                done.push(&entry.raw);
            }
            Err(e) => {
                log::error!("still failing: {planned}: {e}");
                failed += 1;
            }
        }
    }
    // Letters a running daemon appended meanwhile stay: only the ones done are taken out.
    dead_letter::remove_done(&state_dir, &done).with_context(|| path.display().to_string())?;
    eprintln!(
        "emstail: dead letters: {succeeded} done and removed, {failed} still failing (kept in {})",
        path.display()
    );
    Ok(if failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}
