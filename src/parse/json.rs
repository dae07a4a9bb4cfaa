//! The JSON file-sink format: one compact object per line, an optional trailing comma.

use super::{Line, Parsed};

/// Parses one line. Blank lines give `None`.
pub fn parse_line(line: Line<'_>) -> Option<Parsed> {
    let _ = line;
    None
}
