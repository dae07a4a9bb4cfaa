//! The text sink's multi-line records, any bytes split into lines as the tailer splits them:
//! no panic, and every event or malformed report names a line that was fed.
#![no_main]

use emstail::parse::{Format, Line, Parsed, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut parser = Parser::new(Format::Text);
    let mut out = Vec::new();
    let mut lines = 0u64;
    let mut offset = 0u64;
    for piece in bytes.split(|&b| b == b'\n') {
        lines += 1;
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        parser.push(
            Line {
                number: lines,
                offset,
                bytes: piece,
            },
            &mut out,
        );
        offset += piece.len() as u64 + 1;
    }
    parser.finish(&mut out);
    for parsed in &out {
        let line = match parsed {
            Parsed::Event { line, .. } | Parsed::Malformed { line, .. } => *line,
        };
        assert!((1..=lines).contains(&line), "line {line} of {lines}");
    }
});
