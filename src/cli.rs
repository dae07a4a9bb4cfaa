//! Command line: parse arguments, call into the library, map errors to exit codes
//! (0 success, 1 runtime failure, 2 bad config or usage).

use crate::config::{Config, LogFormat};
use crate::exec::dry_run::Printer;
use crate::parse::{self, Format, Parsed, Parser};
use crate::replay::{self, Options};
use crate::source::replay::{DEFAULT_MAX_LINE, Item, for_each_line};
use clap::{Parser as ClapParser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

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
        #[arg(
            long,
            short,
            env = "EMSTAIL_CONFIG",
            default_value = "/etc/emstail/config.ini"
        )]
        config: PathBuf,
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
        #[arg(
            long,
            short,
            env = "EMSTAIL_CONFIG",
            default_value = "/etc/emstail/config.ini"
        )]
        config: PathBuf,
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
        /// Files or directories; EMS's timestamped files are read oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
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
        Command::Check { config } => check(&config),
        Command::Parse { format, files } => parse_files(format.into(), &files),
        Command::Replay {
            config,
            dry_run,
            json,
            all_control,
            format,
            files,
        } => replay_files(&config, dry_run, json, all_control, format, &files),
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

fn replay_files(
    config_path: &Path,
    dry_run: bool,
    json: bool,
    all_control: bool,
    format: Option<FormatArg>,
    inputs: &[PathBuf],
) -> i32 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !dry_run {
        eprintln!("emstail: replay without --dry-run is not available yet; use --dry-run");
        return EXIT_USAGE;
    }
    let files = match replay::files_in_order(inputs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("emstail: {e}");
            return EXIT_USAGE;
        }
    };
    let options = Options {
        format: format.map_or(config.service.log_format, LogFormat::from),
        all_control,
        ..Options::default()
    };
    let stdout = std::io::stdout().lock();
    let mut printer = Printer::new(std::io::BufWriter::with_capacity(1 << 16, stdout), json);
    let summary = match replay::replay(&config, &files, &options, &mut printer) {
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
        let mut parser: Option<Parser> = match format {
            LogFormat::Auto => None,
            LogFormat::Json => Some(Parser::new(Format::Json)),
            LogFormat::Text => Some(Parser::new(Format::Text)),
        };
        let mut parsed = Vec::new();
        let result = for_each_line(path, DEFAULT_MAX_LINE, |item| {
            match item {
                Item::Line(line) => {
                    if parser.is_none() {
                        parser = parse::detect(line.bytes).map(Parser::new);
                    }
                    match &mut parser {
                        Some(p) => p.push(line, &mut parsed),
                        None if line.bytes.iter().all(u8::is_ascii_whitespace) => {}
                        None => parsed.push(Parsed::Malformed {
                            line: line.number,
                            reason: "neither a JSON event nor a text-format record header".into(),
                        }),
                    }
                }
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
        if let Some(p) = &mut parser {
            p.finish(&mut parsed);
        }
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
