//! Finished files read start to end (replay and `parse`), framed into lines by the same
//! [`Framer`] as the live log. Never follows a file: what is there when it is read is all.

use super::frame::{Frame, Framer};
use crate::fsutil::read_at_most;
use crate::parse::Line;
use std::fs::File;
use std::io;
use std::path::Path;

/// What a reader hands its caller.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    Line(Line<'a>),
    /// Line number `line`, of `len` bytes without its `\n` or `\r\n`, was longer than the cap
    /// and skipped.
    Oversize {
        line: u64,
        offset: u64,
        len: u64,
    },
}

/// Calls `on_item` for every line of `path` (without its `\n` or `\r\n`), and for every line
/// over `max_line` bytes. A last line without a newline is delivered too:
/// replay reads finished files. Returns the number of bytes read.
pub fn for_each_line(
    path: &Path,
    max_line: usize,
    mut on_item: impl FnMut(Item<'_>),
) -> io::Result<u64> {
    let file = File::open(path)?;
    let mut framer = Framer::new(max_line);
    let mut buf = vec![0; 1 << 20];
    let mut emit = |frame: Frame<'_>| {
        on_item(match frame {
            Frame::Line {
                number,
                offset,
                bytes,
                ..
            } => Item::Line(Line {
                number,
                offset,
                bytes,
            }),
            Frame::Oversize {
                number,
                offset,
                len,
                ..
            } => Item::Oversize {
                line: number,
                offset,
                len,
            },
        })
    };
    loop {
        let n = read_at_most(&file, &mut buf, framer.read_pos())?;
        if n == 0 {
            framer.finish(&mut emit);
            return Ok(framer.read_pos());
        }
        framer.push(&buf[..n], &mut emit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (number, offset, bytes) of each line; (line, offset, length) of each oversize one.
    type Lines = (Vec<(u64, u64, Vec<u8>)>, Vec<(u64, u64, u64)>);

    fn lines_of(content: &[u8], max: usize) -> Lines {
        let dir = std::env::temp_dir().join(format!("emstail-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join(format!("f{}", content.len()));
        std::fs::write(&path, content).expect("temp file is writable");
        let mut lines = Vec::new();
        let mut over = Vec::new();
        for_each_line(&path, max, |item| match item {
            Item::Line(l) => lines.push((l.number, l.offset, l.bytes.to_vec())),
            Item::Oversize { line, offset, len } => over.push((line, offset, len)),
        })
        .expect("file is readable");
        (lines, over)
    }

    #[test]
    fn numbers_offsets_crlf_and_last_line_without_newline() {
        let (lines, over) = lines_of(b"a\r\nbb\n\nccc", 100);
        assert_eq!(
            lines,
            vec![
                (1, 0, b"a".to_vec()),
                (2, 3, b"bb".to_vec()),
                (3, 6, b"".to_vec()),
                (4, 7, b"ccc".to_vec())
            ]
        );
        assert!(over.is_empty());
    }

    #[test]
    fn oversize_line_is_reported_and_framing_kept() {
        let mut content = b"ok1\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 3 << 20));
        content.extend(b"\nok2\n");
        let (lines, over) = lines_of(&content, 1 << 20);
        assert_eq!(
            lines,
            vec![
                (1, 0, b"ok1".to_vec()),
                (3, 4 + (3 << 20) + 1, b"ok2".to_vec())
            ]
        );
        assert_eq!(over, vec![(2, 4, 3 << 20)]);
    }

    #[test]
    fn lines_across_chunk_boundaries_arrive_whole() {
        let line = "y".repeat(1000);
        let content: String = (0..3000).map(|_| format!("{line}\n")).collect();
        let (lines, over) = lines_of(content.as_bytes(), 1 << 20);
        assert_eq!(lines.len(), 3000);
        assert!(lines.iter().all(|(_, _, b)| b.len() == 1000));
        assert_eq!(lines[2999].1, 2999 * 1001);
        assert!(over.is_empty());
    }
}
