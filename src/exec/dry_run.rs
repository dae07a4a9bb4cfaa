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
    /// The line being made: each goes out in one write, so that nothing written to the same
    /// file meanwhile (the log, with `2>&1`) can land inside it. Stdout's own buffer sends a
    /// line longer than its 1 KiB in pieces.
    line: Vec<u8>,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, json: bool) -> Self {
        Printer {
            out,
            json,
            explain: false,
            error: None,
            line: Vec::new(),
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

impl<W: Write> Printer<W> {
    /// Writes the line made, once made whole, and keeps its room for the next.
    fn send(&mut self, made: std::io::Result<()>, line: Vec<u8>) {
        if let Err(e) = made.and_then(|()| self.out.write_all(&line)) {
            self.error = Some(e);
        }
        self.line = line;
    }
}

impl<W: Write> Sink for Printer<W> {
    fn action(&mut self, action: &PlannedAction, source: &Source) {
        if self.error.is_some() {
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let result = if self.json {
            action::write_json(&mut line, action, Some(source)).and_then(|()| line.write_all(b"\n"))
        } else {
            writeln!(line, "{action}    # {source}")
        };
        self.send(result, line);
    }

    fn skipped(&mut self, action: &PlannedAction, source: &Source, reason: Skip) {
        if !self.explain || self.error.is_some() {
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let result = if self.json {
            action::write_json(&mut line, action, Some(source)).and_then(|()| {
                // The object's closing brace makes room for one more field.
                if line.pop() != Some(b'}') {
                    return Err(std::io::Error::other("an action is written as one object"));
                }
                writeln!(line, ",\"skipped\":\"{}\"}}", reason.reason())
            })
        } else {
            writeln!(line, "skipped ({reason}): {action}    # {source}")
        };
        self.send(result, line);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Action, ApiTarget, Params, PluginId};

    /// Each `write` it is given, as given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_printed_line_goes_out_in_one_write() {
        let params = Params::new().with("localStreamName", "x".repeat(3000));
        let planned = PlannedAction {
            plugin: PluginId::StreamRecorder,
            lane: "a".into(),
            stream: None,
            stream_id: None,
            action: Action::EmsCall {
                target: ApiTarget::plain("http://ems.test/"),
                command: "record".into(),
                params,
                only_if_armed: None,
            },
        };
        let source = Source {
            file: "events.txt".into(),
            line: 7,
        };
        for json in [false, true] {
            let mut printer = Printer::new(Writes::default(), json).explaining(true);
            printer.action(&planned, &source);
            printer.skipped(&planned, &source, Skip::Repeated);
            let writes = printer.out.0;
            assert_eq!(writes.len(), 2, "json {json}: {} writes", writes.len());
            for write in &writes {
                assert_eq!(write.iter().filter(|&&b| b == b'\n').count(), 1);
                assert!(write.ends_with(b"\n"));
                assert!(write.len() > 3000);
            }
        }
    }
}
