//! The commands: each reads its inputs, calls the library and writes its report, returning
//! a `Result` with the context a user needs. They never pick an exit code (that is `cli`).

mod check;
mod completions;
mod dead_letters;
mod man;
mod parse;
mod progress;
mod replay;
mod rules;
mod run;
mod status;

use crate::cli::{Command, Outcome, RulesCommand, Usage};
use emstail::config::Config;
use std::path::Path;

/// Runs one command.
pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Check { config, connect } => check::check(&config.path, connect),
        Command::Parse { format, files } => parse::parse(format.into(), &files),
        Command::Replay { config, how, files } => replay::replay(&config.path, &how, &files),
        Command::Run { config, how } => run::run(&config.path, &how),
        Command::Status {
            config,
            state_dir,
            check,
            max_lag,
        } => status::status(
            &config.path,
            state_dir,
            check.then_some(status::Check { max_lag }),
        ),
        Command::Rules {
            command:
                RulesCommand::Test {
                    config,
                    rule,
                    verbose,
                    format,
                    files,
                },
        } => rules::test(
            &config.path,
            rule.as_deref(),
            verbose,
            format.into(),
            &files,
        ),
        Command::DeadLetters {
            config,
            state_dir,
            retry,
            drop,
            all,
            select,
        } => {
            let what = match (retry, drop) {
                (true, _) => dead_letters::Work::Retry,
                (_, true) => dead_letters::Work::Drop { all },
                _ => dead_letters::Work::List,
            };
            dead_letters::dead_letters(&config.path, state_dir, what, select.into())
        }
        Command::Completions { shell } => completions::completions(shell),
        Command::Man { subcommand } => man::man(subcommand.as_deref()),
    }
}

/// Loads the config, logging its warnings; a bad config is a usage error.
fn load_config(path: &Path) -> anyhow::Result<Config> {
    let config = Config::load(path).map_err(Usage::new)?;
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    Ok(config)
}
