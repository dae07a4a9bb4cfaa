//! `emstail run`: the daemon, with the command line's overrides of the configuration.

use crate::cli::{Outcome, RunArgs, Usage};
use emstail::run::{RunError, RunOptions};
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
    let config = super::load_config(config_path)?;
    let options = RunOptions {
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
    };
    match emstail::run::run(&config, &options) {
        Ok(()) => Ok(Outcome::Success),
        Err(RunError::Config(message)) => Err(Usage(message).into()),
        Err(e) => Err(e.into()),
    }
}
