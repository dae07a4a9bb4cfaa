//! Bytes → events. Two on-disk formats, chosen per file: JSON lines (`format="json"`, with
//! EMS's trailing comma) and the multi-line text records (`format="text"`).

use crate::config::{LogFormat, Rule};
use crate::event::Envelope;
use std::sync::Arc;

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
#[allow(
    clippy::large_enum_variant,
    reason = "almost every line is an Event; boxing it would cost an allocation per event"
)]
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
    let line = strip_bom(first_line).1;
    let line = &line[line.iter().take_while(|&&b| b == b' ').count()..];
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    if line.first() == Some(&b'{') {
        Some(Format::Json)
    } else if digits > 0 && line.get(digits) == Some(&b'\t') {
        Some(Format::Text)
    } else {
        None
    }
}

/// Splits off a UTF-8 byte order mark, returning its length and the rest.
fn strip_bom(bytes: &[u8]) -> (usize, &[u8]) {
    match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (3, rest),
        None => (0, bytes),
    }
}

/// Drops serde_json's ` at line L column C` suffix: within a one-line payload, or a payload
/// rebuilt from text lines, that position means nothing to a reader of the log.
fn strip_position(message: &str) -> &str {
    let Some(at) = message.rfind(" at line ") else {
        return message;
    };
    let position = &message[at + " at line ".len()..];
    let is_position = position
        .split_once(" column ")
        .is_some_and(|(line, column)| {
            [line, column]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    if is_position { &message[..at] } else { message }
}

/// A stateful parser for one file. Feed it lines in order; call `finish` at the end of the
/// file (the text format's last record has no terminator of its own).
pub enum Parser {
    Json(OtherPayloads),
    Text(text::TextParser),
}

/// Which events of a type no plugin reads (`Event::Other`) get their payload: only rules read
/// those, so a JSON line of a type no rule is `on` is checked as JSON and its payload left
/// unbuilt (an empty object), which is most of what such a line costs to parse.
#[derive(Debug, Clone, Default)]
pub enum OtherPayloads {
    #[default]
    All,
    /// Only these types (those the rules are `on`).
    Of(Arc<[String]>),
}

impl OtherPayloads {
    /// The payloads `rules` can read.
    pub fn for_rules(rules: &[Rule]) -> OtherPayloads {
        let mut kinds: Vec<String> = rules.iter().flat_map(|r| r.on.iter().cloned()).collect();
        kinds.sort();
        kinds.dedup();
        OtherPayloads::Of(kinds.into())
    }

    /// No payload of an event no plugin reads.
    pub fn none() -> OtherPayloads {
        OtherPayloads::Of(Arc::from([]))
    }

    fn keeps(&self, kind: &str) -> bool {
        match self {
            OtherPayloads::All => true,
            OtherPayloads::Of(kinds) => kinds.iter().any(|k| k == kind),
        }
    }
}

impl Parser {
    pub fn new(format: Format) -> Parser {
        Parser::with_payloads(format, OtherPayloads::All)
    }

    /// A parser that builds the payloads of events no plugin reads only as `others` says
    /// (the text format builds them anyway: its records are read field by field).
    pub fn with_payloads(format: Format, others: OtherPayloads) -> Parser {
        match format {
            Format::Json => Parser::Json(others),
            Format::Text => Parser::Text(text::TextParser::default()),
        }
    }

    /// Feeds one line; pushes what it completes onto `out`.
    pub fn push(&mut self, line: Line<'_>, out: &mut Vec<Parsed>) {
        match self {
            Parser::Json(others) => {
                if let Some(p) = json::parse_line_keeping(line, others) {
                    out.push(p)
                }
            }
            Parser::Text(t) => t.push(line, out),
        }
    }

    /// The (line, offset) of a text record not yet complete; JSON lines are never open.
    pub fn open_record(&self) -> Option<(u64, u64)> {
        match self {
            Parser::Json(_) => None,
            Parser::Text(t) => t.open_record(),
        }
    }

    /// Flushes a record still open at the end of input.
    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        if let Parser::Text(t) = self {
            t.finish(out)
        }
    }

    /// Line `number` was over the line cap and skipped: a text record it is part of is dropped
    /// (see [`text::TextParser::skipped_line`]). The caller reports the line itself.
    pub fn skipped_line(&mut self, number: u64, out: &mut Vec<Parsed>) {
        if let Parser::Text(t) = self {
            t.skipped_line(number, out)
        }
    }
}

/// Splits `bytes` into lines the way the tailer does and parses them all, `finish` included.
#[cfg(test)]
fn parse_all(parser: &mut Parser, bytes: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (index, bytes) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let line = Line {
            number: index as u64 + 1,
            offset,
            bytes: bytes.strip_suffix(b"\n").unwrap_or(bytes),
        };
        parser.push(line, &mut out);
        offset += bytes.len() as u64;
    }
    parser.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn detects_the_format_from_the_first_line() {
        let cases: [(&[u8], Option<Format>); 9] = [
            (
                br#"{"_logEntry":"00000","id":1,"type":"x"},"#,
                Some(Format::Json),
            ),
            (b"\xEF\xBB\xBF{\"type\":\"x\"}", Some(Format::Json)),
            (b"  {", Some(Format::Json)),
            (b"00001\tinStreamCreated", Some(Format::Text)),
            (
                b"7\tx\t<TIMESTAMP name=\"\">2014-03-11T18:30:46.000</TIMESTAMP>",
                Some(Format::Text),
            ),
            (b"#Version: 1.0", None),
            (b"<?xml version=\"1.0\" ?>", None),
            (b"00001 inStreamCreated", None),
            (b"", None),
        ];
        for (line, expected) in cases {
            assert_eq!(detect(line), expected, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn strips_only_a_real_position_suffix() {
        assert_eq!(
            strip_position("missing field `name` at line 1 column 20"),
            "missing field `name`"
        );
        assert_eq!(strip_position("stream at line 4"), "stream at line 4");
        assert_eq!(
            strip_position("x at line a column 2"),
            "x at line a column 2"
        );
    }

    const VALID_JSON: &[&str] = &[
        r#"{"_logEntry":"00001","id":7,"payload":{"PID":2593,"name":"cam","pullSettings":{"_emstail":"1","uri":"rtmp:\/\/h\/a"},"type":"INR","typeNumeric":5282249572905648128,"uniqueId":2},"processId":2593,"timestamp":1380286664,"type":"inStreamCreated"},"#,
        r#"{"id":9,"payload":{"_uniqueId":"15","timerId":3,"triggerCount":1,"value":60},"timestamp":"2014-03-11T18:30:46.000","type":"timerTriggered"},"#,
        r#"{"payload":{"file":"..\/evo-webroot\/g\/s\/segment_1_1_14.ts"},"type":"hlsChunkClosed"},"#,
        r#"{"payload":{"a":[1,{"b":null}],"c":"\u00e9\n"},"type":"cliRequest"}"#,
    ];

    const VALID_TEXT: &str = "00001\tinStreamCreated\t<TIMESTAMP name=\"\">2014-03-11T18:30:46.000</TIMESTAMP>\n\
        \tname: cam\n\taudio:\n\t\tcodec: AUNK\n\tids:\n\t\t0: 1\n\t\t1: 2\n\tuniqueId: 2\n\n\n\
        00002\thlsChunkClosed\n\tfile: /w/a: b.ts\n";

    /// Feeds `input` to both parsers; the JSON one must answer every non-blank line exactly
    /// once, and neither may report a line it was not given.
    fn check_both_parsers(input: &[u8]) {
        let lines = input.split(|&b| b == b'\n').count() as u64;
        let non_blank = input
            .split(|&b| b == b'\n')
            .filter(|l| !strip_bom(l).1.iter().all(u8::is_ascii_whitespace))
            .count();
        let json = parse_all(&mut Parser::new(Format::Json), input);
        assert_eq!(json.len(), non_blank);
        let text = parse_all(&mut Parser::new(Format::Text), input);
        for parsed in json.iter().chain(&text) {
            let (Parsed::Event { line, .. } | Parsed::Malformed { line, .. }) = parsed;
            assert!((1..=lines).contains(line), "line {line} of {lines}");
        }
    }

    fn interesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b"\t\n\r :{}[]\",0123456789\\a".to_vec()),
        ]
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Insert(usize, u8),
        Delete(usize),
        Flip(usize, u8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        ]
    }

    fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
        for m in mutations {
            let len = bytes.len();
            match *m {
                Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
                Mutation::Delete(i) if len > 0 => {
                    bytes.remove(i % len);
                }
                Mutation::Flip(i, b) if len > 0 => bytes[i % len] ^= b,
                _ => {}
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_byte_input_panics(input in prop::collection::vec(interesting_byte(), 0..600)) {
            check_both_parsers(&input);
        }

        #[test]
        fn no_mutated_event_panics(
            json_line in prop::sample::select(VALID_JSON),
            mutations in prop::collection::vec(mutation(), 1..8),
        ) {
            let mut input = VALID_JSON.join("\n").into_bytes();
            input.push(b'\n');
            input.extend(mutate(json_line.as_bytes().to_vec(), &mutations));
            input.push(b'\n');
            input.extend(mutate(VALID_TEXT.as_bytes().to_vec(), &mutations));
            check_both_parsers(&input);
        }
    }
}

/// The parser of one file: its format is the configured one, or the one its first non-blank
/// line shows. A non-blank line before the format is known is reported as malformed.
#[derive(Default)]
pub struct FileParser {
    parser: Option<Parser>,
    others: OtherPayloads,
}

impl FileParser {
    /// A parser that builds every payload (to show events, or test rules on them).
    pub fn new(format: LogFormat) -> FileParser {
        FileParser::with_payloads(format, OtherPayloads::All)
    }

    /// A parser that builds the payloads of events no plugin reads only as `others` says.
    pub fn with_payloads(format: LogFormat, others: OtherPayloads) -> FileParser {
        let format = match format {
            LogFormat::Auto => None,
            LogFormat::Json => Some(Format::Json),
            LogFormat::Text => Some(Format::Text),
        };
        FileParser {
            parser: format.map(|f| Parser::with_payloads(f, others.clone())),
            others,
        }
    }

    /// The format, once known.
    pub fn format(&self) -> Option<Format> {
        match self.parser {
            None => None,
            Some(Parser::Json(_)) => Some(Format::Json),
            Some(Parser::Text(_)) => Some(Format::Text),
        }
    }

    /// Feeds one line; pushes what it completes onto `out`.
    pub fn push(&mut self, line: Line<'_>, out: &mut Vec<Parsed>) {
        let parser = match &mut self.parser {
            Some(p) => p,
            None => match detect(line.bytes) {
                Some(format) => self
                    .parser
                    .insert(Parser::with_payloads(format, self.others.clone())),
                None if line.bytes.iter().all(u8::is_ascii_whitespace) => return,
                None => {
                    out.push(Parsed::Malformed {
                        line: line.number,
                        reason: "neither a JSON event nor a text-format record header".into(),
                    });
                    return;
                }
            },
        };
        parser.push(line, out);
    }

    /// See [`Parser::open_record`].
    pub fn open_record(&self) -> Option<(u64, u64)> {
        self.parser.as_ref().and_then(Parser::open_record)
    }

    /// See [`Parser::finish`].
    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        if let Some(p) = &mut self.parser {
            p.finish(out);
        }
    }

    /// Line `number`, of `len` bytes, was over the line cap `cap` and skipped: it is reported
    /// as malformed, and a text record it is part of is dropped with it (see
    /// [`Parser::skipped_line`]).
    pub fn oversize(&mut self, number: u64, len: u64, cap: usize, out: &mut Vec<Parsed>) {
        out.push(Parsed::Malformed {
            line: number,
            reason: format!("line of {len} bytes is over the {cap} byte cap; skipped"),
        });
        if let Some(p) = &mut self.parser {
            p.skipped_line(number, out);
        }
    }
}
