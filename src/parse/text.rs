//! The text file-sink format: `NNNNN<TAB>eventType` then TAB-indented `key: value` lines.
//!
//! Values stay strings: the typed event fields read numbers loosely, and a stream named
//! `007` must not become `7`.

use memchr::memmem;
use serde_json::{Map, Value};

use super::{Line, Parsed, strip_bom};
use crate::event::{Envelope, Event};

/// Nesting deeper than this is refused: no EMS payload comes close, and it bounds the
/// recursion when the payload is read and dropped.
const MAX_DEPTH: usize = 64;
/// Payload lines per record beyond which the record is refused, so that a file without
/// blank lines cannot grow one record without bound.
const MAX_RECORD_LINES: usize = 100_000;
/// Payload bytes per record beyond which the record is refused: long lines reach any memory
/// bound long before the line count does.
const MAX_RECORD_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct TextParser {
    state: State,
}

#[derive(Debug, Default)]
enum State {
    /// Between records.
    #[default]
    Idle,
    Record(Record),
    /// Skipping TAB lines that belong to something already reported as malformed. `in_record`:
    /// what is skipped is the rest of a record, so a header before the blank line that ends
    /// it is part of that record's text too (a value with a newline), never a record.
    Skipping {
        in_record: bool,
    },
}

#[derive(Debug)]
struct Record {
    line: u64,
    offset: u64,
    kind: String,
    timestamp: Option<String>,
    /// The open maps, outermost (the payload) first, each with the key it goes under.
    open: Vec<(String, Map<String, Value>)>,
    lines: usize,
    bytes: usize,
}

impl TextParser {
    /// Where the record still being read starts (line, byte offset): the checkpoint must not
    /// move past it until the record is complete.
    pub fn open_record(&self) -> Option<(u64, u64)> {
        match &self.state {
            State::Record(r) => Some((r.line, r.offset)),
            _ => None,
        }
    }

    pub fn push(&mut self, line: Line<'_>, out: &mut Vec<Parsed>) {
        let bytes = line.bytes.strip_suffix(b"\r").unwrap_or(line.bytes);
        let bytes = if line.number == 1 {
            strip_bom(bytes).1
        } else {
            bytes
        };
        if bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            self.end_record(out);
            self.state = State::Idle;
            return;
        }
        if bytes[0] != b'\t' {
            self.header_line(line, bytes, out);
            return;
        }
        match &mut self.state {
            State::Skipping { .. } => {}
            State::Idle => {
                out.push(Parsed::Malformed {
                    line: line.number,
                    reason: "TAB-indented payload line outside a record".to_string(),
                });
                self.state = State::Skipping { in_record: false };
            }
            State::Record(record) => {
                if let Err(reason) = record.payload_line(bytes) {
                    out.push(Parsed::Malformed {
                        line: line.number,
                        reason: format!(
                            "{reason} (in `{}` from line {})",
                            record.kind, record.line
                        ),
                    });
                    self.state = State::Skipping { in_record: true };
                }
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        self.end_record(out);
        self.state = State::Idle;
    }

    /// Line `number` was too long to read, and skipped. A record it is part of is dropped with
    /// it: read without that line it says something else (a stream named `cam1`, a newline and
    /// 1 MiB more read as `cam1`, another publisher's stream).
    pub fn skipped_line(&mut self, number: u64, out: &mut Vec<Parsed>) {
        if let State::Record(record) = &self.state {
            out.push(Parsed::Malformed {
                line: record.line,
                reason: format!(
                    "the `{}` record is dropped: its line {number} is over the line cap (a value \
                     with a newline?)",
                    record.kind
                ),
            });
            self.state = State::Skipping { in_record: true };
        }
    }

    /// A line that does not start with a TAB. Records are separated by blank lines, so a
    /// header is only a header between records: inside one (before its blank line) it can
    /// only come from a value holding a newline, and EMS writes values raw. Acting on it would
    /// let whoever names a stream forge events, so the record it cuts and the forged one are
    /// both dropped.
    fn header_line(&mut self, line: Line<'_>, bytes: &[u8], out: &mut Vec<Parsed>) {
        let parsed = parse_header(bytes);
        let reason = match (&self.state, parsed) {
            (State::Idle | State::Skipping { in_record: false }, Ok((kind, timestamp))) => {
                self.state = State::Record(Record {
                    line: line.number,
                    offset: line.offset,
                    kind,
                    timestamp,
                    open: vec![(String::new(), Map::new())],
                    lines: 0,
                    bytes: 0,
                });
                return;
            }
            (State::Record(record), Ok(_)) => format!(
                "record header inside the `{}` record from line {}, before the blank line that \
                 ends it: both are dropped (a value with a newline?)",
                record.kind, record.line
            ),
            (State::Skipping { in_record: true }, Ok(_)) => {
                "record header before the blank line that ends a dropped record: dropped with it"
                    .to_string()
            }
            (State::Record(record), Err(reason)) => format!(
                "{reason}; the `{}` record from line {} is dropped (a value with a newline?)",
                record.kind, record.line
            ),
            (State::Skipping { in_record }, Err(reason)) => {
                let in_record = *in_record;
                out.push(Parsed::Malformed {
                    line: line.number,
                    reason,
                });
                self.state = State::Skipping { in_record };
                return;
            }
            (State::Idle, Err(reason)) => reason,
        };
        let in_record = matches!(self.state, State::Record(_));
        out.push(Parsed::Malformed {
            line: line.number,
            reason,
        });
        self.state = State::Skipping { in_record };
    }

    fn end_record(&mut self, out: &mut Vec<Parsed>) {
        if let State::Record(record) = std::mem::take(&mut self.state) {
            out.push(record.finish());
        }
    }
}

impl Record {
    fn payload_line(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.lines += 1;
        if self.lines > MAX_RECORD_LINES {
            return Err(format!("record longer than {MAX_RECORD_LINES} lines"));
        }
        self.bytes = self.bytes.saturating_add(bytes.len() + 1);
        if self.bytes > MAX_RECORD_BYTES {
            return Err(format!("record larger than {MAX_RECORD_BYTES} bytes"));
        }
        let depth = bytes.iter().take_while(|&&b| b == b'\t').count();
        let content = &bytes[depth..];
        if depth > self.open.len() {
            return Err(format!(
                "indented {depth} TABs under a map at depth {}",
                self.open.len()
            ));
        }
        while self.open.len() > depth {
            self.close_map();
        }
        match memmem::find(content, b": ") {
            Some(colon) => {
                let key = self.new_key(&content[..colon])?;
                let value = Value::String(text(&content[colon + 2..]));
                self.innermost().insert(key, value);
            }
            None => match content.strip_suffix(b":") {
                Some(key) if depth < MAX_DEPTH => {
                    let key = self.new_key(key)?;
                    self.open.push((key, Map::new()));
                }
                Some(_) => return Err(format!("nested deeper than {MAX_DEPTH} levels")),
                None => return Err("payload line is neither `key: value` nor `key:`".into()),
            },
        }
        Ok(())
    }

    /// A key of the innermost map, which must not have it yet: EMS writes each key of a map
    /// once, so a second one can only be a line of a value holding a newline, and taking it
    /// would let a client's `pageUrl` replace the stream `name` an event acts on. (A map
    /// closed before is in its parent by now, so a map given twice is caught too.)
    fn new_key(&mut self, key: &[u8]) -> Result<String, String> {
        let key = text(key);
        if self.innermost().contains_key(&key) {
            return Err(format!(
                "key `{}` given twice (a value with a newline?)",
                crate::action::ControlEscaped(&key)
            ));
        }
        Ok(key)
    }

    fn innermost(&mut self) -> &mut Map<String, Value> {
        &mut self
            .open
            .last_mut()
            .expect("the payload map is open while the record is")
            .1
    }

    fn close_map(&mut self) {
        if let Some((key, map)) = self.open.pop() {
            let value = array_or_object(map);
            self.innermost().insert(key, value);
        }
    }

    fn finish(mut self) -> Parsed {
        while self.open.len() > 1 {
            self.close_map();
        }
        let payload = Value::Object(std::mem::take(self.innermost()));
        match Event::from_payload(&self.kind, payload) {
            Ok(event) => Parsed::Event {
                line: self.line,
                offset: self.offset,
                envelope: Envelope {
                    id: None,
                    timestamp: self.timestamp.map(Value::String),
                    event,
                },
            },
            Err(reason) => Parsed::Malformed {
                line: self.line,
                reason: super::strip_position(&reason).to_string(),
            },
        }
    }
}

/// `NNNNN<TAB>eventType`, optionally `<TAB><TIMESTAMP name="">value</TIMESTAMP>`.
fn parse_header(bytes: &[u8]) -> Result<(String, Option<String>), String> {
    let bytes = bytes.trim_ascii_end();
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = match bytes[digits..].strip_prefix(b"\t") {
        Some(rest) if digits > 0 => rest,
        _ => return Err("not a record header (`NNNNN<TAB>eventType`)".to_string()),
    };
    let (kind, stamp) = match memchr::memchr(b'\t', rest) {
        Some(tab) => (&rest[..tab], Some(&rest[tab + 1..])),
        None => (rest, None),
    };
    if kind.is_empty() || !kind.iter().all(|b| b.is_ascii_graphic()) {
        return Err("record header without a valid event type".to_string());
    }
    let timestamp = match stamp {
        None => None,
        Some(stamp) => Some(tag_content(stamp).ok_or("record header with a bad timestamp")?),
    };
    Ok((text(kind), timestamp))
}

/// The text of `<TAG attrs>text</TAG>`: how EMS dumps the timestamp variant.
fn tag_content(bytes: &[u8]) -> Option<String> {
    let inner = bytes.strip_prefix(b"<")?;
    let start = memchr::memchr(b'>', inner)? + 1;
    let end = memchr::memrchr(b'<', inner)?;
    if end < start || !inner[end..].starts_with(b"</") || !inner.ends_with(b">") {
        return None;
    }
    Some(text(&inner[start..end]))
}

/// EMS prints arrays as maps labelled `0`, `1`, …; such a map becomes an array again.
fn array_or_object(map: Map<String, Value>) -> Value {
    let is_array =
        !map.is_empty() && (0..map.len()).all(|i| map.contains_key(i.to_string().as_str()));
    if !is_array {
        return Value::Object(map);
    }
    let mut map = map;
    Value::Array(
        (0..map.len())
            .filter_map(|i| map.remove(i.to_string().as_str()))
            .collect(),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FileEvent, Settings, TimerInfo};
    use crate::parse::{Format, Parser, parse_all};
    use serde_json::json;

    fn parse(input: &str) -> Vec<Parsed> {
        parse_all(&mut Parser::new(Format::Text), input.as_bytes())
    }

    fn event(line: u64, offset: u64, event: Event) -> Parsed {
        Parsed::Event {
            line,
            offset,
            envelope: Envelope {
                id: None,
                timestamp: None,
                event,
            },
        }
    }

    fn other(kind: &str, payload: Value) -> Event {
        Event::Other {
            kind: kind.into(),
            payload,
        }
    }

    fn malformed(line: u64, reason: &str) -> Parsed {
        Parsed::Malformed {
            line,
            reason: reason.into(),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("test literal is an object"),
        }
    }

    const REFERENCE_EXAMPLE: &str = "00001\tinStreamCreated\n\
        \tPID: 2593\n\
        \tappName: evostreamms\n\
        \taudio:\n\
        \t\tbytesCount: 0\n\
        \t\tcodec: AUNK\n\
        \tuniqueId: 2\n\
        \tupTime: 15.600\n\
        \n\n";

    #[test]
    fn reference_example_with_nested_audio_map() {
        let out = parse(&format!(
            "{REFERENCE_EXAMPLE}00002\tinStreamClosed\n\tname: x\n\n\n"
        ));
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            malformed(1, "inStreamCreated: missing field `name`"),
            "the reference example has no name"
        );

        let with_name = REFERENCE_EXAMPLE.replace("\tuniqueId", "\tname: cam\n\tuniqueId");
        let out = parse(&with_name);
        let Some(Parsed::Event { envelope, .. }) = out.first() else {
            panic!("expected an event, got {out:?}")
        };
        let Event::InStreamCreated(info) = &envelope.event else {
            panic!("expected inStreamCreated")
        };
        assert_eq!(info.name, "cam");
        assert_eq!(info.unique_id, Some(2));

        let as_other = REFERENCE_EXAMPLE.replace("inStreamCreated", "inStreamCodecsUpdated");
        assert_eq!(
            parse(&as_other),
            [event(
                1,
                0,
                other(
                    "inStreamCodecsUpdated",
                    json!({
                        "PID": "2593",
                        "appName": "evostreamms",
                        "audio": {"bytesCount": "0", "codec": "AUNK"},
                        "uniqueId": "2",
                        "upTime": "15.600",
                    })
                )
            )]
        );
    }

    #[test]
    fn timestamp_header_goes_into_the_envelope() {
        let out = parse(
            "00001\thlsChunkClosed\t<TIMESTAMP name=\"\">2014-03-11T18:30:46.000</TIMESTAMP>\r\n\
             \tfile: /w/s/seg_1.ts\r\n\r\n\r\n",
        );
        assert_eq!(
            out,
            [Parsed::Event {
                line: 1,
                offset: 0,
                envelope: Envelope {
                    id: None,
                    timestamp: Some(json!("2014-03-11T18:30:46.000")),
                    event: Event::HlsChunkClosed(FileEvent {
                        file: "/w/s/seg_1.ts".into()
                    }),
                },
            }]
        );
    }

    #[test]
    fn index_labelled_maps_become_arrays() {
        let out = parse(
            "00001\tx\n\tids:\n\t\t0: 5\n\t\t1: 6\n\t\t2:\n\t\t\ta: 1\n\
             \tsparse:\n\t\t1: 3\n\tempty:\n\tleadingZero:\n\t\t00: 1\n",
        );
        assert_eq!(
            out,
            [event(
                1,
                0,
                other(
                    "x",
                    json!({
                        "ids": ["5", "6", {"a": "1"}],
                        "sparse": {"1": "3"},
                        "empty": {},
                        "leadingZero": {"00": "1"},
                    })
                )
            )]
        );
    }

    #[test]
    fn records_separated_by_two_blank_lines_keep_their_line_and_offset() {
        let input = "00001\ta\n\tk: 1\n\n\n00002\tb\n\tk: 2\n\n\n";
        assert_eq!(
            parse(input),
            [
                event(1, 0, other("a", json!({"k": "1"}))),
                event(5, 16, other("b", json!({"k": "2"}))),
            ]
        );
    }

    #[test]
    fn a_header_before_the_blank_line_drops_the_cut_record_and_the_injected_one() {
        // A stream name holding a newline and a forged header: EMS writes it raw.
        let forged = "00001\tinStreamCreated\n\tname: cam\n\
                      00002\thlsMasterPlaylistUpdated\n\
                      \tfile: /var/evostreamms/evo-webroot/x/playlist.m3u8\n\
                      \tuniqueId: 2\n\n\n00003\tb\n";
        let out = parse(forged);
        assert_eq!(
            out,
            [
                malformed(
                    3,
                    "record header inside the `inStreamCreated` record from line 1, before the \
                     blank line that ends it: both are dropped (a value with a newline?)"
                ),
                event(8, 131, other("b", json!({}))),
            ]
        );
        // The same after a payload line that already cut the record.
        assert_eq!(
            parse(
                "00001\ta\n\tk: 1\nfoo\n00002\thlsMasterPlaylistUpdated\n\tfile: x\n\n00003\tb\n"
            ),
            [
                malformed(
                    3,
                    "not a record header (`NNNNN<TAB>eventType`); the `a` record from line 1 is \
                     dropped (a value with a newline?)"
                ),
                malformed(
                    4,
                    "record header before the blank line that ends a dropped record: dropped \
                     with it"
                ),
                event(7, 59, other("b", json!({}))),
            ]
        );
    }

    #[test]
    fn a_record_over_one_mebibyte_is_dropped_whatever_its_line_count() {
        let half = "x".repeat(600 * 1024);
        let input = format!("00001\ta\n\tk: {half}\n\tj: {half}\n\tl: 1\n\n00002\tb\n");
        let out = parse(&input);
        assert_eq!(
            out.len(),
            2,
            "{:?}",
            out.iter()
                .map(|p| format!("{p:?}").chars().take(200).collect::<String>())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            out[0],
            malformed(3, "record larger than 1048576 bytes (in `a` from line 1)")
        );
        assert!(
            matches!(&out[1], Parsed::Event { line: 6, .. }),
            "{:?}",
            out[1]
        );
    }

    #[test]
    fn last_record_needs_finish() {
        let mut parser = TextParser::default();
        let mut out = Vec::new();
        for (number, offset, bytes) in [(1, 0, &b"00001\ta"[..]), (2, 8, b"\tk: 1")] {
            parser.push(
                Line {
                    number,
                    offset,
                    bytes,
                },
                &mut out,
            );
        }
        assert_eq!(out, []);
        parser.finish(&mut out);
        assert_eq!(out, [event(1, 0, other("a", json!({"k": "1"})))]);
        parser.finish(&mut out);
        assert_eq!(out.len(), 1, "a second finish emits nothing");
    }

    #[test]
    fn value_containing_colon_space_is_split_at_the_first() {
        assert_eq!(
            parse("00001\tx\n\turi: rtmp://h/a?b=c: d\n\tempty: \n\tnoSpace: a:b: c\n"),
            [event(
                1,
                0,
                other(
                    "x",
                    json!({"uri": "rtmp://h/a?b=c: d", "empty": "", "noSpace": "a:b: c"})
                )
            )]
        );
    }

    #[test]
    fn numbers_stay_strings_where_typed_fields_read_them_loosely() {
        let out = parse("00001\ttimerTriggered\n\t_uniqueId: 15\n\ttimerId: 3\n\tvalue: 60\n");
        assert_eq!(
            out,
            [event(
                1,
                0,
                Event::TimerTriggered(TimerInfo {
                    timer_id: Some(3),
                    trigger_count: None,
                    value: Some(json!("60")),
                    custom: Settings(object(json!({"_uniqueId": "15"}))),
                })
            )]
        );
    }

    #[test]
    fn bad_header_is_reported_once_with_its_payload_lines() {
        assert_eq!(
            parse("garbage\n\tk: 1\n\tk: 2\n\n\n00002\tb\n"),
            [
                malformed(1, "not a record header (`NNNNN<TAB>eventType`)"),
                event(6, 22, other("b", json!({}))),
            ]
        );
        assert_eq!(
            parse("00001\n\tk: 1\n")[0],
            malformed(1, "not a record header (`NNNNN<TAB>eventType`)")
        );
        assert_eq!(
            parse("00001\tx \r\n"),
            [event(1, 0, other("x", json!({})))],
            "trailing spaces after the event type are ignored"
        );
        assert_eq!(
            parse("00001\tx\tjunk\n"),
            [malformed(1, "record header with a bad timestamp")]
        );
    }

    #[test]
    fn value_broken_by_a_newline_drops_the_record() {
        assert_eq!(
            parse("00001\tinStreamCreated\n\tname: evil\nname\n\tuniqueId: 2\n\n\n00002\tb\n"),
            [
                malformed(
                    3,
                    "not a record header (`NNNNN<TAB>eventType`); the `inStreamCreated` record \
                     from line 1 is dropped (a value with a newline?)"
                ),
                event(7, 54, other("b", json!({}))),
            ]
        );
    }

    #[test]
    fn a_key_given_twice_drops_the_record() {
        // A client's pageUrl holding a newline and a TAB-indented `name` line: EMS writes each
        // key once, so the second `name` can only come from a value, and must not replace the
        // stream the event is about.
        assert_eq!(
            parse(
                "00001\tinStreamCreated\n\tname: cam1\n\tpageUrl: x\n\tname: victim\n\
                 \tuniqueId: 2\n\n\n00002\tb\n"
            ),
            [
                malformed(
                    4,
                    "key `name` given twice (a value with a newline?) (in `inStreamCreated` \
                     from line 1)"
                ),
                event(8, 75, other("b", json!({}))),
            ]
        );
        // In a nested map, and a map given twice.
        for input in [
            "00001\ta\n\tm:\n\t\tk: 1\n\t\tk: 2\n",
            "00001\ta\n\tm:\n\t\tk: 1\n\tm:\n\t\tk: 2\n",
            "00001\ta\n\tm: 1\n\tm:\n\t\tk: 2\n",
            "00001\ta\n\tm:\n\t\tk: 1\n\tm: 2\n",
        ] {
            let out = parse(input);
            assert!(
                matches!(&out[..], [Parsed::Malformed { reason, .. }]
                    if reason.starts_with("key `")),
                "{input:?}: {out:?}"
            );
        }
    }

    #[test]
    fn a_record_with_a_skipped_line_is_dropped() {
        let mut parser = TextParser::default();
        let mut out = Vec::new();
        let lines: [&[u8]; 3] = [b"00001\tinStreamCreated", b"\tname: cam1", b"\tuniqueId: 2"];
        for (number, bytes) in (1..).zip(lines) {
            parser.push(
                Line {
                    number,
                    offset: 0,
                    bytes,
                },
                &mut out,
            );
            if number == 2 {
                // The rest of the name, a line over the cap the reader skipped.
                parser.skipped_line(3, &mut out);
            }
        }
        parser.finish(&mut out);
        assert_eq!(
            out,
            [malformed(
                1,
                "the `inStreamCreated` record is dropped: its line 3 is over the line cap (a \
                 value with a newline?)"
            )]
        );
        // Between records, nothing to drop.
        parser.skipped_line(9, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn payload_line_before_any_header() {
        assert_eq!(
            parse("\tk: 1\n\tk: 2\n00001\ta\n"),
            [
                malformed(1, "TAB-indented payload line outside a record"),
                event(3, 12, other("a", json!({}))),
            ]
        );
    }

    #[test]
    fn payload_line_without_colon() {
        assert_eq!(
            parse("00001\ta\n\tk: 1\n\tnocolon\n\tk: 2\n\n\n00002\tb\n"),
            [
                malformed(
                    3,
                    "payload line is neither `key: value` nor `key:` (in `a` from line 1)"
                ),
                event(7, 31, other("b", json!({}))),
            ]
        );
    }

    #[test]
    fn depth_jump_of_more_than_one_level() {
        assert_eq!(
            parse("00001\ta\n\tm:\n\t\t\tk: 1\n"),
            [malformed(
                3,
                "indented 3 TABs under a map at depth 2 (in `a` from line 1)"
            )]
        );
    }

    #[test]
    fn typed_event_missing_its_required_field() {
        assert_eq!(
            parse("00001\thlsChunkClosed\n\tPID: 1\n"),
            [malformed(1, "hlsChunkClosed: missing field `file`")]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut parser = Parser::new(Format::Text);
        let out = parse_all(
            &mut parser,
            b"00001\thlsChunkClosed\n\tfile: /w/caf\xE9.ts\n",
        );
        assert_eq!(
            out,
            [event(
                1,
                0,
                Event::HlsChunkClosed(FileEvent {
                    file: "/w/caf\u{FFFD}.ts".into()
                })
            )]
        );
    }

    #[test]
    fn fixture_file() {
        let out = parse_all(
            &mut Parser::new(Format::Text),
            include_bytes!("../../fixtures/parse/events.txt"),
        );
        let summary: Vec<String> = out
            .iter()
            .map(|p| match p {
                Parsed::Event { line, envelope, .. } => {
                    format!("{line}:{}", envelope.event.kind())
                }
                Parsed::Malformed { line, reason } => format!("{line}:{reason}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "1:inStreamCreated",
                "43:timerTriggered",
                "51:outStreamCreated",
                "66:hlsChunkClosed",
                "74:cliRequest",
                "82:inStreamClosed",
            ]
        );
        let Parsed::Event { envelope, .. } = &out[0] else {
            panic!("first record is an event")
        };
        let Event::InStreamCreated(info) = &envelope.event else {
            panic!("first record is inStreamCreated")
        };
        assert_eq!(info.name, "007");
        assert_eq!(info.unique_id, Some(2));
        let pull = info.pull_settings.as_ref().expect("pullSettings present");
        assert!(pull.is_truthy("_emstail"));
        assert_eq!(pull.get_str("localStreamName").as_deref(), Some("007"));

        let Parsed::Event { envelope, .. } = &out[2] else {
            panic!("third record is an event")
        };
        let Event::OutStreamCreated(info) = &envelope.event else {
            panic!("third record is outStreamCreated")
        };
        assert_eq!(info.ip.as_deref(), Some(""));
        assert_eq!(
            info.record_settings
                .as_ref()
                .and_then(|s| s.get_str("computedPathToFile"))
                .as_deref(),
            Some("/var/evostreamms/media/007_0001.mp4")
        );
        let Parsed::Event { envelope, .. } = &out[4] else {
            panic!("fifth record is an event")
        };
        assert_eq!(
            envelope.event,
            other(
                "cliRequest",
                json!({"PID": "2593", "command": "pullStream", "parameters": {
                    "_emstail": "1", "uri": "rtmp://192.168.1.55/live/x?a=b: c"}})
            )
        );
    }

    #[test]
    fn timestamped_fixture_file() {
        let out = parse_all(
            &mut Parser::new(Format::Text),
            include_bytes!("../../fixtures/parse/events_timestamp.txt"),
        );
        let stamps: Vec<_> = out
            .iter()
            .map(|p| match p {
                Parsed::Event { line, envelope, .. } => (*line, envelope.timestamp.clone()),
                Parsed::Malformed { line, .. } => (*line, None),
            })
            .collect();
        assert_eq!(
            stamps,
            [
                (1, Some(json!("2014-03-11T18:30:46.000"))),
                (6, Some(json!("2014-03-11T18:30:57.000"))),
            ]
        );
    }
}
