//! `emstail parse`: every event of the given files as one JSON object per line.

use crate::cli::{Outcome, Usage};
use anyhow::Context as _;
use emstail::config::LogFormat;
use emstail::parse::{FileParser, Parsed};
use emstail::replay;
use emstail::source::frame::DEFAULT_MAX_LINE;
use emstail::source::read::{Item, for_each_line};
use std::io::Write;
use std::path::PathBuf;

pub fn parse(format: LogFormat, inputs: &[PathBuf]) -> anyhow::Result<Outcome> {
    let files = replay::files_in_order(inputs).map_err(Usage::new)?;
    let mut out = EventPrinter {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        events: 0,
        malformed: 0,
        error: None,
    };
    for path in &files {
        let name = path.to_string_lossy().into_owned();
        let mut parser = FileParser::new(format);
        let mut parsed = Vec::new();
        for_each_line(path, DEFAULT_MAX_LINE, |item| {
            match item {
                Item::Line(line) => parser.push(line, &mut parsed),
                Item::Oversize { line, len, .. } => {
                    parser.oversize(line, len, DEFAULT_MAX_LINE, &mut parsed)
                }
            }
            out.print(&name, &mut parsed);
        })
        .with_context(|| path.display().to_string())?;
        parser.finish(&mut parsed);
        out.print(&name, &mut parsed);
    }
    let written = match out.error.take() {
        Some(e) => Err(e),
        None => out.out.flush(),
    };
    eprintln!(
        "emstail: {} events, {} malformed",
        out.events, out.malformed
    );
    written.context("writing the events")?;
    Ok(Outcome::Success)
}

struct EventPrinter<W: Write> {
    out: W,
    events: u64,
    malformed: u64,
    /// The first write error (stdout closed by `emstail parse … | head`): keep counting,
    /// stop writing.
    error: Option<std::io::Error>,
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
                    if self.error.is_some() {
                        continue;
                    }
                    // Read on a terminal as often as by a program: nothing in it drives one.
                    let written = emstail::action::write_json_escaped(&mut self.out, &record)
                        .and_then(|()| self.out.write_all(b"\n"));
                    if let Err(e) = written {
                        self.error = Some(e);
                    }
                }
                Parsed::Malformed { line, reason } => {
                    self.malformed += 1;
                    log::warn!("{}", emstail::event::AtLine(file, line, &reason));
                }
            }
        }
    }
}
