//! `emstail replay`: old files through the plugins, the actions printed (`--dry-run`) or
//! carried out with a dead-letter file.

use crate::cli::{Outcome, ReplayArgs, Usage};
use anyhow::Context as _;
use emstail::config::{Config, LogFormat};
use emstail::exec::dead_letter;
use emstail::exec::dispatch::Executor;
use emstail::exec::dry_run::Printer;
use emstail::exec::live::{LiveReport, Submitter};
use emstail::exec::pool::Pool;
use emstail::replay::{self, Options};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub fn replay(config_path: &Path, how: &ReplayArgs, inputs: &[PathBuf]) -> anyhow::Result<Outcome> {
    let config = super::load_config(config_path)?;
    let files = replay::files_in_order(inputs).map_err(Usage::new)?;
    let options = Options {
        format: how
            .format
            .map_or(config.service.log_format, LogFormat::from),
        all_actions: how.all_actions,
        window: replay::Window {
            since: how.since,
            until: how.until,
        },
        plugins: (!how.plugins.is_empty()).then(|| how.plugins.clone()),
        explain: how.explain,
        ..Options::default()
    };
    if how.dry_run {
        dry_run(&config, &files, &options, how.json)
    } else {
        let state_dir = how
            .state_dir
            .clone()
            .unwrap_or_else(|| config.service.state_dir.clone());
        carry_out(&config, &files, &options, &state_dir)
    }
}

fn dry_run(
    config: &Config,
    files: &[PathBuf],
    options: &Options,
    json: bool,
) -> anyhow::Result<Outcome> {
    let stdout = std::io::stdout().lock();
    let mut printer = Printer::new(std::io::BufWriter::with_capacity(1 << 16, stdout), json)
        .explaining(options.explain);
    let summary = replay::replay(config, files, options, &mut printer)?;
    let written = printer.finish();
    // Said even when stdout was closed early (`| head`): the replay itself went to its end.
    eprintln!("emstail: replay (dry run): {summary}");
    written.context("writing the actions")?;
    Ok(Outcome::Success)
}

/// The executor, the pool and the dead-letter file for carrying a replay's actions out.
/// Backfill may cover what the daemon, or an earlier replay, already did: records and pushes
/// EMS already holds are not configured a second time.
fn start_pool(config: &Config, state_dir: &Path) -> anyhow::Result<(Pool, Arc<LiveReport>)> {
    let executor = Executor::new(config)
        .map_err(|e| Usage(format!("{}: {e}", config.path.display())))?
        .skipping_configured();
    let writer = dead_letter::Writer::open(state_dir).context("state directory")?;
    let report = Arc::new(LiveReport::new(writer));
    let pool = emstail::exec::live::pool(config, executor, report.clone());
    Ok((pool, report))
}

fn carry_out(
    config: &Config,
    files: &[PathBuf],
    options: &Options,
    state_dir: &Path,
) -> anyhow::Result<Outcome> {
    let (pool, report) = start_pool(config, state_dir)?;
    let result = replay::replay(config, files, options, &mut Submitter { pool: &pool });
    pool.close();
    let summary = result?;
    let c = &report.counters;
    let dead = c.dead.load(Relaxed);
    eprintln!(
        "emstail: replay: {summary}; carried out: {} done, {} already done, {} skipped (file gone), {} failed, {} retries",
        c.done.load(Relaxed),
        c.already_done.load(Relaxed),
        c.skipped.load(Relaxed),
        dead,
        c.retries.load(Relaxed),
    );
    if dead > 0 {
        eprintln!(
            "emstail: {dead} actions failed and were written to {}; `emstail dead-letters --retry` runs them again",
            report.dead_letter_path().display()
        );
        return Ok(Outcome::SomeFailed);
    }
    Ok(Outcome::Success)
}
