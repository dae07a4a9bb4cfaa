//! The command line's arguments, as clap reads them. Owns their names, defaults and help
//! text (which `--help` prints as is); never loads a file or does a command's work.

use clap::{Args, Parser as ClapParser, Subcommand, ValueEnum};
use emstail::action::PluginId;
use emstail::config::LogFormat;
use emstail::exec::dead_letter::Selection;
use std::path::PathBuf;

#[derive(ClapParser, Debug)]
#[command(
    name = "emstail",
    version,
    about = "Acts on EvoStream Media Server events by following its event log: no webhook, no listener."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the configuration and print it as it takes effect (secrets as ***).
    Check {
        #[command(flatten)]
        config: ConfigFile,
        /// Also reach every EMS API, S3 bucket and RTMP destination the plugins and rules send
        /// to, with their credentials, and say how each answered (exit code 1 if one failed).
        /// Nothing is changed: EMS is asked its `version`, each bucket is listed for at most
        /// one key, the RTMP destination is connected to and left.
        #[arg(long)]
        connect: bool,
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
        #[command(flatten)]
        how: ReplayArgs,
        /// Files, directories or quoted glob patterns ('/var/evostreamms/logs/events_*');
        /// gzip files are read decompressed; EMS's timestamped files are read oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Follow the live EMS event log and carry actions out as they happen, until SIGTERM;
    /// SIGHUP reads the config file again.
    Run {
        #[command(flatten)]
        config: ConfigFile,
        #[command(flatten)]
        how: RunArgs,
    },
    /// Show what a running (or stopped) emstail has done: files, offsets, lag, retrying
    /// actions and dead letters, from its state directory; with --check, also whether
    /// anything there wants attention (exit 1 if so).
    Status {
        #[command(flatten)]
        config: ConfigFile,
        /// Overrides Service.state_dir (no config needed then).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// For monitoring (Nagios, monit, cron): after the report, print `check: ok`, or
        /// `check: N problems` and a `problem:` line for each, saying what to do, and exit 1
        /// when there is one. Problems: emstail not running (or whether it runs cannot be
        /// told), status.json not written for over 3 minutes while it runs (it may be hung),
        /// a checkpoint that cannot be read, an EMS API or S3 bucket down, dead letters (or a
        /// dead-letter file that cannot be read), and with --max-lag, a lag over it.
        #[arg(long)]
        check: bool,
        /// With --check: more than this many bytes of the log behind the checkpoint (the
        /// `lag:` line) is a problem. No lag is a problem without it.
        #[arg(long, value_name = "BYTES", requires = "check")]
        max_lag: Option<u64>,
    },
    /// Custom rules of the `Rules` block.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// List the actions that failed for good; with --retry, run them again and keep only
    /// those that still fail; with --drop, discard them.
    ///
    /// The selectors (--plugin, --rule, --stream, --before, --unrunnable) narrow any of the
    /// three to the letters that match all of them.
    DeadLetters {
        #[command(flatten)]
        config: ConfigFile,
        /// Overrides Service.state_dir.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Run the selected letters again; those done are removed, those still failing kept.
        #[arg(long)]
        retry: bool,
        /// Remove the selected letters from the file; every other line stays as it is. Needs
        /// a selector, or --all to empty the file.
        #[arg(long, conflicts_with = "retry")]
        drop: bool,
        /// With --drop and no selector: drop every letter.
        #[arg(long, requires = "drop", conflicts_with = "selectors")]
        all: bool,
        #[command(flatten)]
        select: DeadLetterSelectors,
    },
    /// Print the completion script for a shell, to be sourced by it or installed where it
    /// looks for completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page in roff: emstail(1), or a subcommand's, such as emstail-check(1).
    Man {
        /// The subcommand whose page to print, such as check; none for emstail(1).
        subcommand: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Show, for each event of the files, which rules match and the exact action each would
    /// take (nothing is carried out); with -v, also the conditions that failed.
    Test {
        #[command(flatten)]
        config: ConfigFile,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Also list the rules that did not match, with their failed conditions.
        #[arg(short, long)]
        verbose: bool,
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        /// Event log files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `--config`, as every subcommand that reads the configuration takes it.
#[derive(Args, Debug)]
pub struct ConfigFile {
    #[arg(
        id = "config",
        long = "config",
        short = 'c',
        value_name = "CONFIG",
        env = "EMSTAIL_CONFIG",
        default_value = "/etc/emstail/config.ini"
    )]
    pub path: PathBuf,
}

/// Which dead letters `dead-letters` lists, retries or drops: those that match every
/// selector given.
#[derive(Args, Debug)]
#[group(id = "selectors", multiple = true)]
pub struct DeadLetterSelectors {
    /// Only this plugin's letters: its config block name (e.g. StreamRecorder), or Rules for
    /// the custom rules'; repeatable.
    #[arg(long = "plugin", value_name = "NAME", value_parser = parse_letter_plugin)]
    pub plugins: Vec<String>,
    /// Only this custom rule's letters (its name in the Rules block); repeatable.
    #[arg(long = "rule", value_name = "NAME")]
    pub rules: Vec<String>,
    /// Only letters of the stream of exactly this name; repeatable.
    #[arg(long = "stream", value_name = "NAME")]
    pub streams: Vec<String>,
    /// Only letters written before this time: RFC 3339, "YYYY-MM-DD HH:MM[:SS]" in UTC, or
    /// unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub before: Option<i64>,
    /// Only letters that cannot be run again by this version: unreadable lines, letters of a
    /// plugin it does not know, StreamRecorder shutdowns and timer removals written without
    /// their rotation check, and letters whose stream name or sent value it refuses now.
    #[arg(long)]
    pub unrunnable: bool,
}

/// How `replay` runs.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Print the actions instead of carrying them out.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: one JSON object per action.
    #[arg(long)]
    pub json: bool,
    /// Issue every action: control actions (pull, push, record, timers) of streams that
    /// ended within the window and repeated ones, every chunk even if deleted later, every
    /// playlist update. Without it a replay issues only the net effect of the window.
    #[arg(long, alias = "all-control")]
    pub all_actions: bool,
    /// Start of the window: RFC 3339, "YYYY-MM-DD HH:MM[:SS]" in UTC, or unix seconds.
    /// Events are cut by their own timestamp.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// End of the window (included), same forms as --since. Streams count as alive if they
    /// are alive at this time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only this plugin's actions (its config block name, e.g. AmazonHLSUpload); repeatable.
    #[arg(long = "plugin", value_name = "NAME", value_parser = parse_plugin)]
    pub plugins: Vec<PluginId>,
    /// Also list every action left out, one line each, with the reason.
    #[arg(long)]
    pub explain: bool,
    /// Write the end report as JSON to this file too.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Continue an interrupted replay of the same inputs, window and plugins: what it
    /// finished is not done again.
    #[arg(long, conflicts_with = "dry_run")]
    pub resume: bool,
    /// Seconds in-flight actions may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 20)]
    pub drain_secs: u64,
    /// Log format; overrides Service.log_format.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Where the dead-letter file, the replay's checkpoint and its lock go; overrides
    /// Service.state_dir.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// How `run` follows the log.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The log: a file, a directory or a glob; overrides Service.event_log.
    #[arg(long)]
    pub log: Option<String>,
    /// Overrides Service.state_dir.
    #[arg(long, conflicts_with = "dry_run")]
    pub state_dir: Option<PathBuf>,
    /// Print each action as the log's lines come instead of carrying it out, to watch what
    /// emstail would do beside the service that acts today. Leaves the state directory alone:
    /// its checkpoint lives in a private temporary directory, removed at the end, so a dry run
    /// can follow the log beside a running emstail.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: one JSON object per action.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Without a checkpoint, process what the log already holds instead of starting at its end.
    #[arg(long)]
    pub from_start: bool,
    /// Poll only, no inotify (network filesystems).
    #[arg(long)]
    pub poll: bool,
    /// How often the log's files are listed again whatever inotify reports, in milliseconds
    /// [default: 1000; 250 with --poll].
    #[arg(long)]
    pub rescan_ms: Option<u64>,
    /// A newer file is started only after the older one has not grown for this long.
    #[arg(long, default_value_t = 1000)]
    pub grace_ms: u64,
    /// Write a Prometheus textfile (for node_exporter) here, atomically, when a figure changes
    /// (checked every second) and at least once a minute.
    #[arg(long, conflicts_with = "dry_run")]
    pub metrics_file: Option<PathBuf>,
    /// Seconds in-flight actions may take to finish after SIGTERM (or SIGHUP, before the
    /// config is read again).
    #[arg(long, default_value_t = 20)]
    pub drain_secs: u64,
    /// Seconds between the one-line summaries at info level.
    #[arg(long, default_value_t = 60)]
    pub summary_secs: u64,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
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

fn parse_time(text: &str) -> Result<i64, String> {
    emstail::replay::Window::parse_time(text)
}

fn parse_plugin(name: &str) -> Result<PluginId, String> {
    PluginId::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = PluginId::ALL.iter().map(|p| p.name()).collect();
        format!("no plugin {name:?}; the plugins are {}", names.join(", "))
    })
}

/// A plugin a dead letter can name: a built-in one's block name, or `Rules`.
fn parse_letter_plugin(name: &str) -> Result<String, String> {
    if name == "Rules" {
        return Ok(name.to_string());
    }
    parse_plugin(name)
        .map(|id| id.name().to_string())
        .map_err(|e| format!("{e}, and Rules for the custom rules"))
}

impl From<DeadLetterSelectors> for Selection {
    fn from(s: DeadLetterSelectors) -> Self {
        Selection {
            plugins: s.plugins,
            rules: s.rules,
            streams: s.streams,
            before: s.before,
            unrunnable: s.unrunnable,
        }
    }
}
