//! The text file-sink format: `NNNNN<TAB>eventType` then TAB-indented `key: value` lines.

use super::{Line, Parsed};

#[derive(Debug, Default)]
pub struct TextParser {}

impl TextParser {
    pub fn push(&mut self, line: Line<'_>, out: &mut Vec<Parsed>) {
        let _ = (line, out);
    }
    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        let _ = out;
    }
}
