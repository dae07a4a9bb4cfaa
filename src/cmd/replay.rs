//! `emstail replay`: old files through the plugins, the actions printed (`--dry-run`) or
//! carried out with a dead-letter file and a checkpoint of its own (`--resume`).

use super::progress::{Actions, Display};
use crate::cli::{Outcome, ReplayArgs, Usage};
use anyhow::{Context as _, anyhow};
use emstail::config::{Config, LogFormat};
use emstail::exec::dead_letter;
use emstail::exec::dispatch::Executor;
use emstail::exec::dry_run::Printer;
use emstail::exec::live::LiveReport;
use emstail::replay::carry_out::{Carrier, PluginOutcomes, ReplayReport, SharedSink};
use emstail::replay::resume::{self, Checkpoint, Identity};
use emstail::replay::{self, Options, Sink, Summary};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn replay(config_path: &Path, how: &ReplayArgs, inputs: &[PathBuf]) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let config = super::load_config(config_path)?;
    let files = replay::files_in_order(inputs).map_err(Usage::new)?;
    if let (Some(since), Some(until)) = (how.since, how.until)
        && since > until
    {
        return Err(Usage::new("--since is after --until: the window is empty").into());
    }
    let signals = Signals::register().context("cannot handle signals")?;
    let mut plugins = how.plugins.clone();
    plugins.sort_by_key(|p| p.name());
    plugins.dedup();
    let options = Options {
        format: how
            .format
            .map_or(config.service.log_format, LogFormat::from),
        all_actions: how.all_actions,
        window: replay::Window {
            since: how.since,
            until: how.until,
        },
        plugins: (!plugins.is_empty()).then(|| plugins.clone()),
        explain: how.explain,
        stop: Some(Arc::clone(&signals.stop)),
        ..Options::default()
    };
    let run = Run {
        config: &config,
        files: &files,
        how,
        started,
        signals: &signals,
    };
    if how.dry_run {
        run.dry_run(options)
    } else {
        let state_dir = how
            .state_dir
            .clone()
            .unwrap_or_else(|| config.service.state_dir.clone());
        // Known by where the files are, not how they were named from the current directory.
        let canonical = files
            .iter()
            .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))
            .collect();
        let identity = Identity {
            files: canonical,
            window: options.window,
            plugins,
            all_actions: how.all_actions,
        };
        run.carry_out(options, &state_dir, &identity)
    }
}

/// SIGINT and SIGTERM set `stop`; a second one ends the process at once.
struct Signals {
    stop: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
            signal_hook::flag::register(signal, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(SIGTERM, Arc::clone(&term))?;
        Ok(Signals { stop, term })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// 130 after SIGINT, 143 after SIGTERM, as a shell reports them.
    fn exit_code(&self) -> u8 {
        if self.term.load(Relaxed) { 143 } else { 130 }
    }

    fn name(&self) -> &'static str {
        if self.term.load(Relaxed) {
            "SIGTERM"
        } else {
            "SIGINT"
        }
    }
}

struct Run<'a> {
    config: &'a Config,
    files: &'a [PathBuf],
    how: &'a ReplayArgs,
    started: Instant,
    signals: &'a Signals,
}

impl Run<'_> {
    fn dry_run(&self, options: Options) -> anyhow::Result<Outcome> {
        let stdout = std::io::stdout().lock();
        let mut printer = Printer::new(
            std::io::BufWriter::with_capacity(1 << 16, stdout),
            self.how.json,
        )
        .explaining(options.explain);
        let progress = Arc::clone(&options.progress);
        let display = Display::start(
            Arc::clone(&progress),
            Box::new(move || Actions {
                done: progress.actions.load(Relaxed),
                ..Actions::default()
            }),
        );
        let summary = replay::replay(self.config, self.files, &options, &mut printer);
        drop(display);
        let summary = summary?;
        let written = printer.finish();
        // Said even when stdout was closed early (`| head`): the replay itself went to its end.
        eprintln!("emstail: replay (dry run): {summary}");
        self.write_report(&summary, None)?;
        written.context("writing the actions")?;
        if summary.stopped {
            eprintln!("emstail: replay stopped by {}", self.signals.name());
            return Ok(Outcome::Interrupted(self.signals.exit_code()));
        }
        Ok(files_outcome(&summary))
    }

    fn carry_out(
        &self,
        mut options: Options,
        state_dir: &Path,
        identity: &Identity,
    ) -> anyhow::Result<Outcome> {
        let _lock = resume::lock(state_dir, identity).map_err(|e| anyhow!(e))?;
        let checkpoint_path = identity.checkpoint_path(state_dir);
        let now = Checkpoint::measure(&identity.files).map_err(Usage::new)?;
        let checkpoint = if self.how.resume {
            let saved = Checkpoint::load(&checkpoint_path)
                .map_err(Usage::new)?
                .ok_or_else(|| {
                    Usage(format!(
                        "no interrupted replay of these inputs, window and plugins to resume \
                         (no {}); run it without --resume",
                        checkpoint_path.display()
                    ))
                })?;
            saved
                .check_planner()
                .and_then(|()| saved.check_inputs(&now))
                .map_err(|e| {
                    Usage(format!(
                        "cannot resume: {e}; run it without --resume to start over"
                    ))
                })?;
            saved
        } else {
            if checkpoint_path.exists() {
                log::warn!(
                    "an interrupted replay of these inputs, window and plugins was not finished \
                     ({}); starting over: --resume would continue it",
                    checkpoint_path.display()
                );
            }
            Checkpoint {
                inputs: now,
                submitted: 0,
                finished: resume::Finished::default(),
                command: resume_command(),
                planner: Some(resume::PLANNER.to_string()),
            }
        };
        options.lengths = Some(checkpoint.inputs.iter().map(|i| i.len).collect());

        let explain = options.explain.then(|| {
            SharedSink(Arc::new(Mutex::new(
                Printer::new(std::io::stdout(), self.how.json).explaining(true),
            )))
        });
        let executor = Executor::new(self.config)
            .map_err(|e| Usage(format!("{}: {e}", self.config.path.display())))?
            .skipping_configured();
        let writer = dead_letter::Writer::open(state_dir).context("state directory")?;
        let report = Arc::new(ReplayReport::new(
            LiveReport::new(writer),
            checkpoint.finished.clone(),
            explain.clone().map(|s| Box::new(s) as Box<dyn Sink + Send>),
        ));
        let pool = emstail::exec::live::pool(self.config, Arc::new(executor), report.clone());
        let mut carrier = Carrier::new(
            &pool,
            Arc::clone(&report),
            checkpoint,
            checkpoint_path.clone(),
            Arc::clone(&self.signals.stop),
        );
        carrier.explain = explain.map(|s| Box::new(s) as Box<dyn Sink>);
        carrier
            .write_checkpoint()
            .with_context(|| format!("writing {}", checkpoint_path.display()))?;

        let display = {
            let report = Arc::clone(&report);
            let submitted = Arc::clone(&carrier.submitted);
            Display::start(
                Arc::clone(&options.progress),
                Box::new(move || {
                    let finished = report.finished_now.load(Relaxed);
                    Actions {
                        done: finished,
                        queued: submitted.load(Relaxed).saturating_sub(finished),
                        failed: report.failed_now.load(Relaxed),
                    }
                }),
            )
        };
        let result = replay::replay(self.config, self.files, &options, &mut carrier);
        let stopped = self.signals.stopped() || result.as_ref().is_ok_and(|s| s.stopped);
        if stopped || result.is_err() {
            let unfinished = pool.drain(Some(Duration::from_secs(self.how.drain_secs)));
            let written = carrier.write_last_checkpoint();
            let finished_before = carrier.finished_before;
            let command = shell_words(&carrier.checkpoint.command);
            drop(carrier);
            drop(display);
            // Workers still on an action are not waited for: what they finish from here on
            // is not in the checkpoint, and is done again by --resume.
            std::mem::forget(pool);
            let summary = result?;
            let finished =
                written.with_context(|| format!("writing {}", checkpoint_path.display()))?;
            self.print_carried(&summary, &report, finished_before)?;
            eprintln!(
                "emstail: replay stopped by {}: {finished} actions finished, {unfinished} left \
                 unfinished; checkpoint {}\nresume with: {command}",
                self.signals.name(),
                checkpoint_path.display(),
            );
            return Ok(Outcome::Interrupted(self.signals.exit_code()));
        }
        let finished_before = carrier.finished_before;
        drop(carrier);
        pool.close();
        drop(display);
        let summary = result?;
        if let Err(e) = std::fs::remove_file(&checkpoint_path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", checkpoint_path.display());
        }
        // Dead letters the file would not take during the run get one more chance.
        report.live.write_unwritten();
        let (unwritten, error) = report.live.give_up_unwritten();
        let dead = self.print_carried(&summary, &report, finished_before)?;
        let written = report.live.counters.dead_written.load(Relaxed);
        if written > 0 {
            eprintln!(
                "emstail: {written} failed actions were written to {}; `emstail dead-letters --retry` runs them again",
                report.live.dead_letter_path().display()
            );
        }
        if unwritten > 0 {
            eprintln!(
                "emstail: {unwritten} failed actions could not be written to {} ({}); each is logged above with its action",
                report.live.dead_letter_path().display(),
                error.as_deref().unwrap_or("unknown error")
            );
        }
        if dead > 0 {
            return Ok(Outcome::SomeFailed);
        }
        Ok(files_outcome(&summary))
    }

    /// The end report of a replay that carried its actions out; returns the dead letters.
    fn print_carried(
        &self,
        summary: &Summary,
        report: &ReplayReport,
        finished_before: u64,
    ) -> anyhow::Result<u64> {
        let outcomes = report.outcomes();
        let total = outcomes
            .values()
            .fold(PluginOutcomes::default(), |a, b| PluginOutcomes {
                done: a.done + b.done,
                already_configured: a.already_configured + b.already_configured,
                gone_from_disk: a.gone_from_disk + b.gone_from_disk,
                timer_not_armed: a.timer_not_armed + b.timer_not_armed,
                not_our_recording: a.not_our_recording + b.not_our_recording,
                stream_listed: a.stream_listed + b.stream_listed,
                dead_letters: a.dead_letters + b.dead_letters,
            });
        let mut err = std::io::stderr().lock();
        let resumed = if finished_before > 0 {
            format!("; {finished_before} finished before the interruption, not repeated")
        } else {
            String::new()
        };
        writeln!(err, "emstail: replay: {summary}{resumed}")?;
        for (plugin, o) in &outcomes {
            let left_out: Vec<String> = summary
                .skipped
                .iter()
                .filter(|((p, _), _)| p == plugin)
                .map(|((_, reason), n)| format!("{n} {reason}"))
                .collect();
            let left_out = if left_out.is_empty() {
                String::new()
            } else {
                format!("; left out: {}", left_out.join(", "))
            };
            writeln!(
                err,
                "emstail:   {plugin}: {} done, {} already configured, {} gone from disk, {} dead letters{}{}{}{left_out}",
                o.done,
                o.already_configured,
                o.gone_from_disk,
                o.dead_letters,
                not_sent(o.timer_not_armed, "timer no longer armed"),
                not_sent(o.not_our_recording, "stream not our recording"),
                not_sent(o.stream_listed, "stream listed again")
            )?;
        }
        writeln!(
            err,
            "emstail: replay carried out: {} done, {} already done, {} gone from disk, {} failed, {} retries{}{}{}",
            total.done,
            total.already_configured,
            total.gone_from_disk,
            total.dead_letters,
            report.live.counters.retries.load(Relaxed),
            not_sent(total.timer_not_armed, "timer no longer armed"),
            not_sent(total.not_our_recording, "stream not our recording"),
            not_sent(total.stream_listed, "stream listed again"),
        )?;
        self.write_report(summary, Some(&outcomes))?;
        Ok(total.dead_letters)
    }

    /// `--report-json FILE`: the summary, each plugin's outcomes and the elapsed time.
    fn write_report(
        &self,
        summary: &Summary,
        outcomes: Option<&BTreeMap<&'static str, PluginOutcomes>>,
    ) -> anyhow::Result<()> {
        let Some(path) = &self.how.report_json else {
            return Ok(());
        };
        let mut report = summary.to_json();
        if let Some(outcomes) = outcomes {
            for (plugin, o) in outcomes {
                let entry = &mut report["plugins"][*plugin];
                for (key, n) in [
                    ("done", o.done),
                    ("already_configured", o.already_configured),
                    ("gone_from_disk", o.gone_from_disk),
                    ("timer_not_armed", o.timer_not_armed),
                    ("not_our_recording", o.not_our_recording),
                    ("stream_listed", o.stream_listed),
                    ("dead_letters", o.dead_letters),
                ] {
                    entry[key] = Value::from(n);
                }
            }
        }
        report["dry_run"] = Value::from(self.how.dry_run);
        report["elapsed_secs"] = Value::from(self.started.elapsed().as_secs_f64());
        let mut text = serde_json::to_vec_pretty(&report).context("the report as JSON")?;
        text.push(b'\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// A file that could not be read fails the run (exit 1) once the others are done.
fn files_outcome(summary: &Summary) -> Outcome {
    if summary.files_failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    }
}

/// This command line with `--resume`, as the way to continue it.
fn resume_command() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args
}

/// `args` as one line a POSIX shell reads back as the same words.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `, N not sent (WHY)` for a report line, when N is not 0: only StreamRecorder's guarded
/// calls can be, so the other plugins' lines do not carry it.
fn not_sent(n: u64, why: &str) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} not sent ({why})")
    }
}
