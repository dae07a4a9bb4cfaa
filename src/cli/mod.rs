//! The command line: logging set-up, arguments, and the one place where what a command
//! returned becomes the exit code (0 success, 1 runtime failure, 2 bad config or usage).
//! Owns no command's work (that is `cmd`) and nothing the library needs.

mod args;

pub use args::{Cli, Command, ReplayArgs, RulesCommand, RunArgs};

use clap::Parser as _;
use std::fmt;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::OnceLock;

/// How a command that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command did its work and has said what failed (dead letters left): exit code 1.
    SomeFailed,
    /// Stopped by a signal after saying how to go on: the shell's code for it (130, 143).
    Interrupted(u8),
}

/// An error the user fixes before anything runs: a bad configuration, a missing input or
/// state directory, a bad argument. Exit code 2; every other error is 1.
#[derive(Debug)]
pub struct Usage(pub String);

impl Usage {
    pub fn new(message: impl fmt::Display) -> Self {
        Usage(message.to_string())
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Whether stderr is the journal's (systemd says so in `JOURNAL_STREAM`, the device and inode
/// of the stream it connected, which a child whose stderr goes elsewhere inherits too).
fn to_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| {
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Ok(stderr) = rustix::fs::fstat(std::io::stderr()) else {
            return false;
        };
        stream.to_str() == Some(&format!("{}:{}", stderr.st_dev, stderr.st_ino))
    })
}

/// The syslog priority prefix (`<3>` error … `<7>` debug) journald reads a line's priority
/// from, when stderr is the journal's; nothing otherwise.
fn priority(level: log::Level) -> &'static str {
    if !to_journal() {
        return "";
    }
    match level {
        log::Level::Error => "<3>",
        log::Level::Warn => "<4>",
        log::Level::Info => "<6>",
        log::Level::Debug | log::Level::Trace => "<7>",
    }
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if to_journal() {
        // The journal stamps each line itself, and filters by the priority (`journalctl -p
        // warning`), which it would otherwise take as info for every line.
        logger.format(|out, record| {
            writeln!(
                out,
                "{}[{} {}] {}",
                priority(record.level()),
                record.level(),
                record.target(),
                record.args()
            )
        });
    } else {
        logger.format_timestamp_millis();
    }
    logger.init();
    let result = Cli::try_parse()
        .map_err(anyhow::Error::from)
        .and_then(|cli| crate::cmd::run(cli.command));
    exit_code(result)
}

/// The one mapping from what a command returned to the exit code; it also says why on stderr.
/// A closed stdout (`emstail parse … | head`) is not a failure: the reader had enough.
fn exit_code(result: anyhow::Result<Outcome>) -> ExitCode {
    let error = match result {
        Ok(Outcome::Success) => return ExitCode::SUCCESS,
        Ok(Outcome::SomeFailed) => return ExitCode::from(EXIT_FAILURE),
        Ok(Outcome::Interrupted(code)) => return ExitCode::from(code),
        Err(e) => e,
    };
    if let Some(e) = error.downcast_ref::<clap::Error>() {
        // --help and --version come this way too, on stdout with success.
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::SUCCESS
        };
    }
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("{}emstail: {error:#}", priority(log::Level::Error));
    if error.downcast_ref::<Usage>().is_some() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}
