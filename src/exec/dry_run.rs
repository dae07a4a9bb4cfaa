//! The dry-run printer: every action, one per line, for a person or as JSON, written to the
//! `Write` the command hands it (stdout for `replay --dry-run`). Carries nothing out.

use crate::action::{self, PlannedAction};
use crate::event::Source;
use crate::exec::pool::Execute;
use crate::exec::{Done, Failure};
use crate::replay::{Problem, Sink, Skip};
use std::io::Write;

pub struct Printer<W: Write> {
    out: W,
    json: bool,
    /// Also print the actions left out, with their reason.
    explain: bool,
    /// The first write error (a closed pipe, a full disk); printing stops there.
    pub error: Option<std::io::Error>,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, json: bool) -> Self {
        Printer {
            out,
            json,
            explain: false,
            error: None,
        }
    }

    /// Prints the actions left out too: `skipped (<reason>): <action>`, or in JSON the
    /// action with `"skipped": "<reason>"`.
    pub fn explaining(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

impl<W: Write> Sink for Printer<W> {
    fn action(&mut self, action: &PlannedAction, source: &Source) {
        if self.error.is_some() {
            return;
        }
        let result = if self.json {
            action::write_json(&mut self.out, action, Some(source))
                .and_then(|()| self.out.write_all(b"\n"))
        } else {
            writeln!(self.out, "{action}    # {}:{}", source.file, source.line)
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    fn skipped(&mut self, action: &PlannedAction, source: &Source, reason: Skip) {
        if !self.explain || self.error.is_some() {
            return;
        }
        let result = if self.json {
            let mut object = Vec::with_capacity(256);
            action::write_json(&mut object, action, Some(source)).and_then(|()| {
                // The object's closing brace makes room for one more field.
                if object.pop() != Some(b'}') {
                    return Err(std::io::Error::other("an action is written as one object"));
                }
                self.out.write_all(&object)?;
                writeln!(self.out, ",\"skipped\":\"{}\"}}", reason.reason())
            })
        } else {
            writeln!(
                self.out,
                "skipped ({reason}): {action}    # {}:{}",
                source.file, source.line
            )
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    fn problem(&mut self, problem: &Problem) {
        log::warn!("{problem}");
    }
}

/// The executor of `run --dry-run`, whose reader prints actions instead of handing them to the
/// pool: should one reach the pool all the same, it fails for good rather than being carried
/// out.
pub struct CarriesNothingOut;

impl Execute for CarriesNothingOut {
    fn execute(&self, _: &PlannedAction) -> Result<Done, Failure> {
        Err(Failure::Permanent("a dry run carries nothing out".into()))
    }
}
