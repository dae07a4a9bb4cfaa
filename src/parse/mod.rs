//! Bytes → events. Two on-disk formats, chosen per file: JSON lines (`format="json"`, with
//! EMS's trailing comma) and the multi-line text records (`format="text"`).

use crate::event::Envelope;

pub mod json;
pub mod text;

/// A line of a log file: where it starts and its bytes without the line ending.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// 1-based line number in the file.
    pub number: u64,
    /// Byte offset where the line starts.
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// One parsed event, or why a line or record was skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event {
        /// The line the event's record starts on.
        line: u64,
        /// Byte offset of that line.
        offset: u64,
        envelope: Envelope,
    },
    Malformed {
        line: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// Guesses the format from a file's first non-blank line: `{` is JSON, `NNNNN<TAB>name` is text.
pub fn detect(first_line: &[u8]) -> Option<Format> {
    let _ = first_line;
    None
}

/// A stateful parser for one file. Feed it lines in order; call `finish` at the end of the
/// file (the text format's last record has no terminator of its own).
pub enum Parser {
    Json,
    Text(text::TextParser),
}

impl Parser {
    pub fn new(format: Format) -> Parser {
        match format {
            Format::Json => Parser::Json,
            Format::Text => Parser::Text(text::TextParser::default()),
        }
    }

    /// Feeds one line; pushes what it completes onto `out`.
    pub fn push(&mut self, line: Line<'_>, out: &mut Vec<Parsed>) {
        match self {
            Parser::Json => {
                if let Some(p) = json::parse_line(line) {
                    out.push(p)
                }
            }
            Parser::Text(t) => t.push(line, out),
        }
    }

    /// Flushes a record still open at the end of input.
    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        if let Parser::Text(t) = self {
            t.finish(out)
        }
    }
}
