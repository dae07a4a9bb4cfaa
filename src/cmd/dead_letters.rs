//! `emstail dead-letters`: the actions that failed for good; with `--retry`, run them again
//! and keep only those that still fail (and any the daemon added meanwhile); with `--drop`,
//! discard them. Selectors narrow each to the letters that match.

use crate::cli::{Outcome, Usage};
use anyhow::Context as _;
use emstail::action::ControlEscaped;
use emstail::exec::dead_letter::{self, Entry, Selection};
use emstail::exec::dispatch::Executor;
use emstail::exec::pool::Execute;
use emstail::exec::retry::RetryPolicy;
use emstail::exec::{Done, Failure};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `dead-letters` does with the selected letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    List,
    Retry,
    /// With `all`, no selector is needed to drop every letter.
    Drop {
        all: bool,
    },
}

pub fn dead_letters(
    config_path: &Path,
    state_dir: Option<PathBuf>,
    work: Work,
    select: Selection,
) -> anyhow::Result<Outcome> {
    if work == (Work::Drop { all: false }) && select.is_everything() {
        return Err(Usage::new(
            "--drop needs a selector (--plugin, --rule, --stream, --before, --unrunnable), \
             or --all to drop every dead letter",
        )
        .into());
    }
    let config = super::load_config(config_path)?;
    let state_dir = state_dir.unwrap_or_else(|| config.service.state_dir.clone());
    let path = state_dir.join(dead_letter::FILE_NAME);
    let selected = |entry: &Entry| select.matches(entry, &config);
    match work {
        Work::List => list(&path, &select, selected),
        Work::Drop { .. } => {
            let dropped = dead_letter::drop_where(&state_dir, |entry| {
                let drop = selected(entry);
                if drop {
                    log::info!("dropped: {}", shown(&path, entry));
                }
                drop
            })?;
            eprintln!(
                "emstail: dead letters: {} dropped, {} left in {}",
                dropped.dropped,
                dropped.kept,
                path.display()
            );
            Ok(Outcome::Success)
        }
        Work::Retry => retry(&config, &state_dir, &path, selected),
    }
}

/// A letter's summary, or where its unreadable line is and why: serde's reason may quote the
/// line (an unknown variant), so it is shown escaped.
fn shown(path: &Path, entry: &Entry) -> String {
    match &entry.letter {
        Ok(l) => l.summary(),
        Err(e) => format!(
            "{}:{}: unreadable: {}",
            path.display(),
            entry.line,
            ControlEscaped(e)
        ),
    }
}

/// One letter at a time: a file of any size is listed in constant memory.
fn list(
    path: &Path,
    select: &Selection,
    selected: impl Fn(&Entry) -> bool,
) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let (mut listed, mut all) = (0u64, 0u64);
    dead_letter::for_each(path, |entry| {
        all += 1;
        if !selected(&entry) {
            return Ok(());
        }
        listed += 1;
        writeln!(out, "{}", shown(path, &entry))
    })?;
    out.flush()?;
    if select.is_everything() {
        eprintln!(
            "emstail: {} in {}",
            emstail::status::counted(listed, "dead letter"),
            path.display()
        );
    } else {
        eprintln!(
            "emstail: {listed} of {all} dead letters selected in {}",
            path.display()
        );
    }
    Ok(Outcome::Success)
}

fn retry(
    config: &emstail::config::Config,
    state_dir: &Path,
    path: &Path,
    selected: impl Fn(&Entry) -> bool,
) -> anyhow::Result<Outcome> {
    let executor =
        Executor::new(config).map_err(|e| Usage(format!("{}: {e}", config.path.display())))?;
    let policy = RetryPolicy::from_config(&config.service.retry);
    let mut done: Vec<Vec<u8>> = Vec::new();
    let (mut succeeded, mut failed) = (0u64, 0u64);
    dead_letter::for_each(path, |entry| {
        if !selected(&entry) {
            return Ok(());
        }
        let planned = match &entry.letter {
            Ok(l) => l.to_planned(config),
            Err(_) => None,
        };
        let Some(planned) = planned else {
            let why = entry
                .letter
                .as_ref()
                .ok()
                .and_then(emstail::exec::dead_letter::DeadLetter::refused)
                .map_or_else(
                    || "cannot be run again by this version".to_string(),
                    |why| format!("not sent again: {why}"),
                );
            log::warn!("{}:{}: kept: {why}", path.display(), entry.line);
            failed += 1;
            return Ok(());
        };
        // A dead letter was sent before and may have reached EMS (a lost answer): every
        // attempt here is a re-send, so a record or push already configured is not made twice.
        let attempt = |n: u32| executor.execute_sending(&planned, n, true);
        match policy.run(attempt, std::thread::sleep) {
            Ok(Done::Stale(why) | Done::NotOurRecording(why) | Done::StillListed(why)) => {
                log::info!("not sent ({}): {planned}", ControlEscaped(&why));
                succeeded += 1;
                done.push(entry.raw);
            }
            Ok(_) | Err(Failure::Missing(_)) => {
                succeeded += 1;
                done.push(entry.raw);
            }
            Err(e) => {
                log::error!("still failing: {planned}: {e}");
                failed += 1;
            }
        }
        Ok(())
    })?;
    // Letters a running daemon appended meanwhile stay: only the ones done are taken out.
    let done: Vec<&[u8]> = done.iter().map(Vec::as_slice).collect();
    dead_letter::remove_done(state_dir, &done).with_context(|| path.display().to_string())?;
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
