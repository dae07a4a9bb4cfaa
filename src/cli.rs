//! Command line: parse arguments, call into the library, map errors to exit codes
//! (0 success, 1 runtime failure, 2 bad config or usage).

use crate::config::{Config, LogFormat};
use crate::exec::Failure;
use crate::exec::dead_letter;
use crate::exec::dispatch::Executor;
use crate::exec::dry_run::Printer;
use crate::exec::live::{LiveReport, Submitter};
use crate::exec::pool::{Execute, Pool};
use crate::exec::retry::RetryPolicy;
use crate::parse::{FileParser, Parsed};
use crate::replay::{self, Options};
use crate::source::frame::DEFAULT_MAX_LINE;
use crate::source::read::{Item, for_each_line};
use clap::{Args, Parser as ClapParser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(ClapParser, Debug)]
#[command(
    name = "emstail",
    version,
    about = "Acts on EvoStream Media Server events by following its event log: no webhook, no listener."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the configuration and print it as it takes effect (secrets as ***).
    Check {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Print every event of the given log files as one JSON object per line.
    Parse {
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run old log files through the plugins (backfill). With --dry-run, print the actions.
    Replay {
        #[command(flatten)]
        config: ConfigFile,
        /// Print the actions instead of carrying them out.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: one JSON object per action.
        #[arg(long)]
        json: bool,
        /// Also issue control actions (pull, push, record, timers) for streams that ended
        /// within the replayed window, and repeated ones.
        #[arg(long)]
        all_control: bool,
        /// Log format; overrides Service.log_format.
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Where the dead-letter file goes; overrides Service.state_dir.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Files or directories; EMS's timestamped files are read oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Follow the live EMS event log and carry actions out as they happen, until SIGTERM.
    Run {
        #[command(flatten)]
        config: ConfigFile,
        /// The log: a file, a directory or a glob; overrides Service.event_log.
        #[arg(long)]
        log: Option<String>,
        /// Overrides Service.state_dir.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Without a checkpoint, process what the log already holds instead of starting at its end.
        #[arg(long)]
        from_start: bool,
        /// Poll only, no inotify (network filesystems).
        #[arg(long)]
        poll: bool,
        /// How often the files are rescanned, in milliseconds.
        #[arg(long, default_value_t = 250)]
        rescan_ms: u64,
        /// A newer file is started only after the older one has not grown for this long.
        #[arg(long, default_value_t = 1000)]
        grace_ms: u64,
        /// Write a Prometheus textfile (for node_exporter) here, atomically, every second.
        #[arg(long)]
        metrics_file: Option<PathBuf>,
        /// Seconds in-flight actions may take to finish after SIGTERM.
        #[arg(long, default_value_t = 20)]
        drain_secs: u64,
        /// Seconds between the one-line summaries at info level.
        #[arg(long, default_value_t = 60)]
        summary_secs: u64,
    },
    /// Show what a running (or stopped) emstail has done: files, offsets, lag, retrying
    /// actions and dead letters, from its state directory.
    Status {
        #[command(flatten)]
        config: ConfigFile,
        /// Overrides Service.state_dir (no config needed then).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// List the actions that failed for good; with --retry, run them again and keep only
    /// those that still fail.
    DeadLetters {
        #[command(flatten)]
        config: ConfigFile,
        /// Overrides Service.state_dir.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long)]
        retry: bool,
    },
}

/// `--config`, as every subcommand that reads the configuration takes it.
#[derive(Args, Debug)]
struct ConfigFile {
    #[arg(
        id = "config",
        long = "config",
        short = 'c',
        value_name = "CONFIG",
        env = "EMSTAIL_CONFIG",
        default_value = "/etc/emstail/config.ini"
    )]
    path: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FormatArg {
    Auto,
    Json,
    Text,
}

impl From<FormatArg> for LogFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => LogFormat::Auto,
            FormatArg::Json => LogFormat::Json,
            FormatArg::Text => LogFormat::Text,
        }
    }
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    match cli.command {
        Command::Check { config } => check(&config.path),
        Command::Parse { format, files } => parse_files(format.into(), &files),
        Command::Replay {
            config,
            dry_run,
            json,
            all_control,
            format,
            state_dir,
            files,
        } => {
            let how = ReplayHow {
                dry_run,
                json,
                all_control,
                format,
                state_dir,
            };
            replay_files(&config.path, &how, &files)
        }
        Command::Run {
            config,
            log,
            state_dir,
            from_start,
            poll,
            rescan_ms,
            grace_ms,
            metrics_file,
            drain_secs,
            summary_secs,
        } => {
            let config = match load_config(&config.path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let options = crate::run::RunOptions {
                log: log.unwrap_or_else(|| config.service.event_log.clone()),
                state_dir: state_dir.unwrap_or_else(|| config.service.state_dir.clone()),
                from_start,
                poll,
                rescan: std::time::Duration::from_millis(rescan_ms.max(10)),
                grace: std::time::Duration::from_millis(grace_ms),
                max_line: DEFAULT_MAX_LINE,
                metrics_file,
                drain_timeout: std::time::Duration::from_secs(drain_secs),
                summary_every: std::time::Duration::from_secs(summary_secs.max(1)),
            };
            crate::run::run(&config, &options)
        }
        Command::Status { config, state_dir } => {
            let state_dir = match state_dir {
                Some(d) => d,
                None => match load_config(&config.path) {
                    Ok(c) => c.service.state_dir,
                    Err(code) => return code,
                },
            };
            status(&state_dir)
        }
        Command::DeadLetters {
            config,
            state_dir,
            retry,
        } => dead_letters(&config.path, state_dir, retry),
    }
}

/// Loads the config, printing its warnings; a bad config is exit code 2.
fn load_config(path: &Path) -> Result<Config, i32> {
    match Config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                log::warn!("{warning}");
            }
            Ok(config)
        }
        Err(e) => {
            eprintln!("emstail: {e}");
            Err(EXIT_USAGE)
        }
    }
}

fn check(path: &Path) -> i32 {
    match load_config(path) {
        Ok(config) => {
            print!("{}", config.render());
            println!("# {}: valid", path.display());
            0
        }
        Err(code) => code,
    }
}

struct ReplayHow {
    dry_run: bool,
    json: bool,
    all_control: bool,
    format: Option<FormatArg>,
    state_dir: Option<PathBuf>,
}

fn replay_files(config_path: &Path, how: &ReplayHow, inputs: &[PathBuf]) -> i32 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let files = match replay::files_in_order(inputs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("emstail: {e}");
            return EXIT_USAGE;
        }
    };
    let options = Options {
        format: how
            .format
            .map_or(config.service.log_format, LogFormat::from),
        all_control: how.all_control,
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

fn dry_run(config: &Config, files: &[PathBuf], options: &Options, json: bool) -> i32 {
    let stdout = std::io::stdout().lock();
    let mut printer = Printer::new(std::io::BufWriter::with_capacity(1 << 16, stdout), json);
    let summary = match replay::replay(config, files, options, &mut printer) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("emstail: {e}");
            return EXIT_FAILURE;
        }
    };
    if let Err(e) = printer.finish()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("emstail: writing the actions: {e}");
        return EXIT_FAILURE;
    }
    eprintln!("emstail: replay (dry run): {summary}");
    0
}

/// The executor, the pool and the dead-letter file for carrying a replay's actions out.
/// Backfill may cover what the daemon, or an earlier replay, already did: records and pushes
/// EMS already holds are not configured a second time.
fn start_pool(config: &Config, state_dir: &Path) -> Result<(Pool, Arc<LiveReport>), i32> {
    let executor = match Executor::new(config) {
        Ok(e) => e.skipping_configured(),
        Err(e) => {
            eprintln!("emstail: {}: {e}", config.path.display());
            return Err(EXIT_USAGE);
        }
    };
    let writer = match dead_letter::Writer::open(state_dir) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("emstail: state directory: {e}");
            return Err(EXIT_FAILURE);
        }
    };
    let report = Arc::new(LiveReport::new(writer));
    let pool = crate::exec::live::pool(config, executor, report.clone());
    Ok((pool, report))
}

fn carry_out(config: &Config, files: &[PathBuf], options: &Options, state_dir: &Path) -> i32 {
    let (pool, report) = match start_pool(config, state_dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let result = replay::replay(config, files, options, &mut Submitter { pool: &pool });
    pool.close();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("emstail: {e}");
            return EXIT_FAILURE;
        }
    };
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
        return EXIT_FAILURE;
    }
    0
}

fn status(state_dir: &Path) -> i32 {
    use crate::source::checkpoint;
    if !state_dir.is_dir() {
        eprintln!("emstail: {}: no such state directory", state_dir.display());
        return EXIT_USAGE;
    }
    let running = match checkpoint::lock(state_dir) {
        Ok(lock) => {
            drop(lock);
            None
        }
        Err(e) => Some(e),
    };
    match &running {
        Some(holder) => println!("running: yes ({holder})"),
        None => println!("running: no"),
    }
    let loaded = checkpoint::load(state_dir);
    if let Some(problem) = &loaded.problem {
        println!("checkpoint: {problem}");
    }
    let mut lag = 0u64;
    for p in &loaded.positions {
        let size = std::fs::metadata(&p.path).map(|m| m.len()).ok();
        let behind = size.map_or(0, |s| s.saturating_sub(p.offset));
        lag += behind;
        match size {
            Some(size) => println!(
                "file: {} offset {} of {} bytes (line {}), {} bytes behind",
                p.path.display(),
                p.offset,
                size,
                p.line,
                behind
            ),
            None => println!(
                "file: {} offset {} (line {}), gone",
                p.path.display(),
                p.offset,
                p.line
            ),
        }
    }
    println!("lag: {lag} bytes behind the log at the last checkpoint");
    if let Some(s) = crate::status::load(state_dir) {
        let age = crate::status::now_unix().saturating_sub(s.updated_unix);
        println!(
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
        );
    }
    let dead = match dead_letter::read(&state_dir.join(dead_letter::FILE_NAME)) {
        Ok(l) => l.len(),
        Err(e) => {
            eprintln!("emstail: {e}");
            return EXIT_FAILURE;
        }
    };
    println!(
        "dead letters: {dead} ({})",
        state_dir.join(dead_letter::FILE_NAME).display()
    );
    0
}

fn dead_letters(config_path: &Path, state_dir: Option<PathBuf>, retry: bool) -> i32 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state_dir = state_dir.unwrap_or_else(|| config.service.state_dir.clone());
    let path = state_dir.join(dead_letter::FILE_NAME);
    let letters = match dead_letter::read(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("emstail: {e}");
            return EXIT_FAILURE;
        }
    };
    if !retry {
        for entry in &letters {
            match &entry.letter {
                Ok(l) => println!("{}", l.summary()),
                Err(e) => println!("{}:{}: unreadable: {e}", path.display(), entry.line),
            }
        }
        eprintln!(
            "emstail: {} dead letters in {}",
            letters.len(),
            path.display()
        );
        return 0;
    }
    let executor = match Executor::new(&config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("emstail: {}: {e}", config.path.display());
            return EXIT_USAGE;
        }
    };
    let policy = RetryPolicy::from_config(&config.service.retry);
    let mut keep: Vec<&[u8]> = Vec::new();
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
            keep.push(&entry.raw);
            failed += 1;
            continue;
        };
        // A dead letter was sent before and may have reached EMS (a lost answer): every
        // attempt here is a re-send, so a record or push already configured is not made twice.
        let attempt = |n: u32| executor.execute_sending(&planned, n, true);
        match policy.run(attempt, std::thread::sleep) {
            Ok(_) | Err(Failure::Missing(_)) => succeeded += 1,
            Err(e) => {
                log::error!("still failing: {planned}: {e}");
                keep.push(&entry.raw);
                failed += 1;
            }
        }
    }
    if let Err(e) = dead_letter::rewrite(&path, &keep) {
        eprintln!("emstail: {}: {e}", path.display());
        return EXIT_FAILURE;
    }
    eprintln!(
        "emstail: dead letters: {succeeded} done and removed, {failed} still failing (kept in {})",
        path.display()
    );
    if failed > 0 { EXIT_FAILURE } else { 0 }
}

fn parse_files(format: LogFormat, inputs: &[PathBuf]) -> i32 {
    let files = match replay::files_in_order(inputs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("emstail: {e}");
            return EXIT_USAGE;
        }
    };
    let mut out = EventPrinter {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        events: 0,
        malformed: 0,
        closed: false,
    };
    for path in &files {
        let name = path.to_string_lossy().into_owned();
        let mut parser = FileParser::new(format);
        let mut parsed = Vec::new();
        let result = for_each_line(path, DEFAULT_MAX_LINE, |item| {
            match item {
                Item::Line(line) => parser.push(line, &mut parsed),
                Item::Oversize { line, len, .. } => parsed.push(Parsed::Malformed {
                    line,
                    reason: format!("line of {len} bytes is over the {DEFAULT_MAX_LINE} byte cap"),
                }),
            }
            out.print(&name, &mut parsed);
        });
        if let Err(e) = result {
            eprintln!("emstail: {}: {e}", path.display());
            return EXIT_FAILURE;
        }
        parser.finish(&mut parsed);
        out.print(&name, &mut parsed);
    }
    let _ = out.out.flush();
    eprintln!(
        "emstail: {} events, {} malformed",
        out.events, out.malformed
    );
    0
}

struct EventPrinter<W: Write> {
    out: W,
    events: u64,
    malformed: u64,
    /// stdout was closed (`emstail parse … | head`): keep counting, stop writing.
    closed: bool,
}

impl<W: Write> EventPrinter<W> {
    fn print(&mut self, file: &str, parsed: &mut Vec<Parsed>) {
        for p in parsed.drain(..) {
            match p {
                Parsed::Event {
                    line,
                    offset,
                    envelope,
                } => {
                    self.events += 1;
                    let record = serde_json::json!({
                        "file": file, "line": line, "offset": offset,
                        "id": envelope.id, "timestamp": envelope.timestamp,
                        "event": envelope.event,
                    });
                    if !self.closed && writeln!(self.out, "{record}").is_err() {
                        self.closed = true;
                    }
                }
                Parsed::Malformed { line, reason } => {
                    self.malformed += 1;
                    log::warn!("{file}:{line}: {reason}");
                }
            }
        }
    }
}
