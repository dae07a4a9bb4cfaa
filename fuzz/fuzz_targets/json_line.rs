//! One JSON-sink line, any bytes: no panic, and an event keeps the line it came from.
#![no_main]

use emstail::parse::{Line, Parsed, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let line = Line {
        number: 7,
        offset: 1234,
        bytes,
    };
    match json::parse_line(line) {
        Some(Parsed::Event { line, offset, .. }) => assert_eq!((line, offset), (7, 1234)),
        Some(Parsed::Malformed { line, reason }) => {
            assert_eq!(line, 7);
            assert!(!reason.is_empty(), "a malformed line says why");
        }
        None => {}
    }
});
