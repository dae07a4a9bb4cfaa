//! `emstail run`: the daemon, with the command line's overrides of the configuration. SIGHUP
//! reads the configuration again: the run stops as on SIGTERM (drain, checkpoint) and starts
//! again from its checkpoint with the new configuration, or with the one it had when the
//! file does not load. A dry run keeps its checkpoint in a private temporary directory, so a
//! reload goes on from where it was without touching the state of an emstail that acts.

use crate::cli::{Outcome, RunArgs, Usage};
use anyhow::Context;
use emstail::config::Config;
use emstail::run::{DryRun, Ended, RunError, RunOptions, Signals};
use emstail::source::frame::DEFAULT_MAX_LINE;
use std::path::Path;
use std::time::Duration;

/// How often the log's files are listed again while inotify reports changes: a safety net for
/// what it may miss (a new file, a rotation and a file's grace period wake the reader at once),
/// four times less often than a poll needs, as each listing wakes a thread that would sleep.
const RESCAN_MS: u64 = 1000;
/// The same with `--poll`, where listing is how new files are found.
const POLL_RESCAN_MS: u64 = 250;

pub fn run(config_path: &Path, how: &RunArgs) -> anyhow::Result<Outcome> {
    let mut config = super::load_config(config_path)?;
    // Removed when the process ends, whatever the reloads did.
    let dry_state = if how.dry_run {
        Some(
            tempfile::Builder::new()
                .prefix("emstail-dry-run-")
                // tempfile leaves the mode to the umask: 0755 under the usual 022.
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir()
                .context("a temporary state directory for the dry run")?,
        )
    } else {
        None
    };
    // Once for the process: a reload keeps them.
    let signals = match &dry_state {
        // Its temporary state goes at a second SIGINT too, which ends the process at once.
        Some(dir) => {
            let dir = dir.path().to_path_buf();
            Signals::register_then(move || {
                let _ = std::fs::remove_dir_all(&dir);
            })
        }
        None => Signals::register(),
    }
    .map_err(RunError::Signals)?;
    // Whether `config` was just read again: if it cannot drive a run, the one before it does.
    let mut previous: Option<Config> = None;
    loop {
        let mut options = options(&config, how);
        if let Some(dir) = &dry_state {
            options.state_dir = dir.path().to_path_buf();
        }
        let ended = match emstail::run::run(&config, &options, &signals) {
            Ok(ended) => ended,
            Err(e) if previous.is_some() && starting(&e) => {
                log::error!(
                    "{}: {e:#}; going on with the configuration it had",
                    config_path.display(),
                    e = anyhow::Error::from(e)
                );
                config = previous.take().expect("checked just above");
                // A SIGHUP meanwhile is seen by the run that starts now.
                continue;
            }
            Err(RunError::Config(message)) => return Err(Usage(message).into()),
            Err(e) => return Err(e.into()),
        };
        previous = None;
        if ended == Ended::Stopped || !signals.rearm() {
            return Ok(Outcome::Success);
        }
        log::info!("reloading {}", config_path.display());
        match super::load_config(config_path) {
            Ok(new) => {
                log::info!(
                    "read {} again: starting with the new configuration",
                    config_path.display()
                );
                previous = Some(std::mem::replace(&mut config, new));
            }
            // Said as start-up says it; it names the file.
            Err(e) => log::error!(
                "{e:#}; going on with the configuration it had (send SIGHUP again once the \
                 file is fixed)"
            ),
        }
    }
}

/// Whether `error` stopped a run before it followed the log: a new configuration that does
/// this is given up for the one before it.
fn starting(error: &RunError) -> bool {
    match error {
        RunError::Config(_)
        | RunError::Lock(_)
        | RunError::Signals(_)
        | RunError::Log { .. }
        | RunError::StateDir(_) => true,
        RunError::Checkpoint { .. } | RunError::Output(_) => false,
    }
}

/// The run's options: the configuration's, with the command line's overrides.
fn options(config: &Config, how: &RunArgs) -> RunOptions {
    RunOptions {
        log: how
            .log
            .clone()
            .unwrap_or_else(|| config.service.event_log.clone()),
        state_dir: how
            .state_dir
            .clone()
            .unwrap_or_else(|| config.service.state_dir.clone()),
        from_start: how.from_start,
        poll: how.poll,
        rescan: Duration::from_millis(
            how.rescan_ms
                .unwrap_or(if how.poll { POLL_RESCAN_MS } else { RESCAN_MS })
                .max(10),
        ),
        grace: Duration::from_millis(how.grace_ms),
        max_line: DEFAULT_MAX_LINE,
        metrics_file: how.metrics_file.clone(),
        drain_timeout: Duration::from_secs(how.drain_secs),
        summary_every: Duration::from_secs(how.summary_secs.max(1)),
        dry_run: how.dry_run.then_some(DryRun { json: how.json }),
    }
}
