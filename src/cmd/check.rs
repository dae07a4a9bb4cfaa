//! `emstail check`: the configuration as it takes effect, secrets as `***`, then one summary
//! line: what is enabled and which unknown blocks were ignored. A configuration that enables
//! nothing is valid (a fresh install's is) but earns a warning: emstail would do nothing.
//! With `--connect`, one line more per EMS API and S3 bucket, saying how it answered.

use crate::cli::Outcome;
use emstail::action::PluginId;
use emstail::config::Config;
use emstail::exec::reach::{self, Outcome as Reach};
use std::io::Write;
use std::path::Path;

pub fn check(path: &Path, connect: bool) -> anyhow::Result<Outcome> {
    let config = super::load_config(path)?;
    let work = Work::of(&config);
    if work.is_nothing() {
        log::warn!(
            "{}: no plugin and no rule is enabled: emstail would do nothing (set a plugin's \
             \"plugin_switch\" to \"enabled\")",
            path.display()
        );
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", config.render())?;
    writeln!(
        out,
        "# {}: valid, {}{}",
        path.display(),
        work,
        ignored(&config)
    )?;
    out.flush()?;
    if !connect {
        return Ok(Outcome::Success);
    }
    let reached = reach::reach_all(&config);
    let (mut answered, mut failed, mut unchecked) = (0, 0, 0);
    for r in &reached {
        let said = match &r.outcome {
            Reach::Answered(said) => {
                answered += 1;
                said.clone()
            }
            Reach::Failed(why) => {
                failed += 1;
                format!("FAILED: {why}")
            }
            Reach::NotChecked(why) => {
                unchecked += 1;
                format!("not checked: {why}")
            }
        };
        writeln!(out, "# {} ({}): {said}", r.target, r.users.join(", "))?;
    }
    if reached.is_empty() {
        writeln!(
            out,
            "# connect: nothing to reach, no plugin or rule sends anywhere"
        )?;
    } else if unchecked == 0 {
        writeln!(out, "# connect: {answered} answered, {failed} failed")?;
    } else {
        writeln!(
            out,
            "# connect: {answered} answered, {failed} failed, {unchecked} not checked"
        )?;
    }
    Ok(if failed == 0 {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    })
}

/// What the configuration has emstail act on: every source of actions is counted here, so
/// that "nothing enabled" stays true to its word.
struct Work {
    plugins: usize,
    rules: usize,
}

impl Work {
    fn of(config: &Config) -> Work {
        Work {
            plugins: PluginId::ALL
                .into_iter()
                .filter(|&plugin| config.is_enabled(plugin))
                .count(),
            rules: config.rules.len(),
        }
    }

    fn is_nothing(&self) -> bool {
        self.plugins == 0 && self.rules == 0
    }
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_nothing() {
            return f.write_str("no plugin enabled: emstail would do nothing");
        }
        match self.plugins {
            1 => f.write_str("1 plugin enabled")?,
            n => write!(f, "{n} plugins enabled")?,
        }
        match self.rules {
            0 => Ok(()),
            1 => f.write_str(", 1 rule"),
            n => write!(f, ", {n} rules"),
        }
    }
}

/// `; unknown blocks ignored: A, B`, or nothing. The loader reports each unknown block as a
/// warning `FILE: unknown block NAME (…)`; the names are taken from those.
fn ignored(config: &Config) -> String {
    let prefix = format!("{}: unknown block ", config.path.display());
    let names: Vec<&str> = config
        .warnings
        .iter()
        .filter_map(|w| w.strip_prefix(&prefix))
        .map(|rest| rest.split_once(" (").map_or(rest, |(name, _)| name))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("; unknown blocks ignored: {}", names.join(", "))
    }
}
