//! `emstail rules test`: which custom rules each event of the given files matches, and the
//! exact action each would take; nothing is carried out.

use crate::cli::{Outcome, Usage};
use anyhow::Context as _;
use emstail::config::LogFormat;
use emstail::parse::{FileParser, Parsed};
use emstail::plugins::rules::{Rules, Verdict};
use emstail::replay;
use emstail::source::frame::DEFAULT_MAX_LINE;
use emstail::source::read::{Item, for_each_line};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn test(
    config_path: &Path,
    only: Option<&str>,
    verbose: bool,
    format: LogFormat,
    inputs: &[PathBuf],
) -> anyhow::Result<Outcome> {
    let config = super::load_config(config_path)?;
    let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
    if names.is_empty() {
        return Err(Usage(format!("{}: has no Rules", config_path.display())).into());
    }
    if let Some(only) = only
        && !names.contains(&only)
    {
        return Err(Usage(format!(
            "{}: no rule named {only:?} (rules: {})",
            config_path.display(),
            names.join(", ")
        ))
        .into());
    }
    let files = replay::files_in_order(inputs).map_err(Usage::new)?;
    let rules = Rules::new(&config);
    let mut report = Report {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        rules: &rules,
        only,
        verbose,
        counts: Counts::default(),
    };
    for path in &files {
        let name = path.to_string_lossy().into_owned();
        let mut parser = FileParser::new(format);
        let mut parsed = Vec::new();
        let mut written = Ok(());
        for_each_line(path, DEFAULT_MAX_LINE, |item| {
            if let Item::Line(line) = item {
                parser.push(line, &mut parsed);
            }
            if written.is_ok() {
                written = report.events(&name, &mut parsed);
            }
        })
        .with_context(|| path.display().to_string())?;
        parser.finish(&mut parsed);
        written?;
        report.events(&name, &mut parsed)?;
    }
    report.out.flush()?;
    let c = &report.counts;
    eprintln!(
        "emstail: {} events, {} taken by a rule: {} actions, {} skipped",
        c.events, c.taken, c.actions, c.skipped
    );
    Ok(Outcome::Success)
}

#[derive(Default)]
struct Counts {
    events: u64,
    taken: u64,
    actions: u64,
    skipped: u64,
}

struct Report<'a, W: Write> {
    out: W,
    rules: &'a Rules,
    only: Option<&'a str>,
    verbose: bool,
    counts: Counts,
}

impl<W: Write> Report<'_, W> {
    fn events(&mut self, file: &str, parsed: &mut Vec<Parsed>) -> std::io::Result<()> {
        for p in parsed.drain(..) {
            match p {
                Parsed::Event { line, envelope, .. } => {
                    self.counts.events += 1;
                    let verdicts: Vec<(&str, Verdict)> = self
                        .rules
                        .explain((&envelope).into(), self.only)
                        .into_iter()
                        .filter(|(_, v)| *v != Verdict::NotOn)
                        .collect();
                    if verdicts.is_empty() {
                        continue;
                    }
                    self.counts.taken += 1;
                    writeln!(self.out, "{file}:{line} {}", envelope.event.kind())?;
                    let mut any = false;
                    for (name, verdict) in verdicts {
                        any |= self.verdict(name, verdict)?;
                    }
                    if !any {
                        writeln!(self.out, "  no rule matched")?;
                    }
                }
                Parsed::Malformed { line, reason } => {
                    log::warn!("{}", emstail::event::AtLine(file, line, &reason));
                }
            }
        }
        Ok(())
    }

    /// Writes one rule's verdict; true when it was written.
    fn verdict(&mut self, name: &str, verdict: Verdict) -> std::io::Result<bool> {
        match verdict {
            Verdict::Action(action) => {
                self.counts.actions += 1;
                writeln!(self.out, "  {name}: {}", action.action)?;
            }
            Verdict::Skipped(reason) => {
                self.counts.skipped += 1;
                // The reason can name the event's file path: one line, whatever it holds.
                writeln!(
                    self.out,
                    "  {name}: {}",
                    emstail::action::ControlEscaped(&reason)
                )?;
            }
            Verdict::Own if self.verbose => writeln!(
                self.out,
                "  {name}: not matched: a stream emstail made (include_own is off)"
            )?,
            Verdict::Unmet(failed) if self.verbose => {
                writeln!(self.out, "  {name}: not matched:")?;
                for (condition, value) in failed {
                    // The value is JSON, which leaves DEL and the C1 controls raw.
                    writeln!(
                        self.out,
                        "    {} {} {} failed: it is {}",
                        condition.path,
                        condition.test.operator(),
                        condition.test.operand(),
                        emstail::action::ControlEscaped(&value)
                    )?;
                }
            }
            Verdict::NotOn | Verdict::Own | Verdict::Unmet(_) => return Ok(false),
        }
        Ok(true)
    }
}
