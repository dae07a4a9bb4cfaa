//! Old files read start to end, line by line, on bytes.

use crate::parse::Line;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Lines longer than this are reported and skipped (the framing is kept: reading resumes
/// at the next newline).
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// What a reader hands its caller.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    Line(Line<'a>),
    /// A line of `len` bytes starting at `line` was longer than the cap and skipped.
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
    let mut file = File::open(path)?;
    let chunk = 1 << 20;
    let mut buf: Vec<u8> = Vec::with_capacity(chunk * 2);
    // Offset in the file of buf[0], the line number of the line starting at buf[0].
    let mut base: u64 = 0;
    let mut number: u64 = 1;
    // While skipping an oversize line: where it started.
    let mut skipping: Option<(u64, u64)> = None;
    loop {
        let start = buf.len();
        buf.resize(start + chunk, 0);
        let n = read_full(&mut file, &mut buf[start..])?;
        buf.truncate(start + n);
        let eof = n == 0;
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[pos..]) {
            let end = pos + i;
            if let Some((line, offset)) = skipping.take() {
                on_item(Item::Oversize {
                    line,
                    offset,
                    len: base + end as u64 - offset,
                });
            } else if end - pos > max_line {
                on_item(Item::Oversize {
                    line: number,
                    offset: base + pos as u64,
                    len: (end - pos) as u64,
                });
            } else {
                on_item(Item::Line(Line {
                    number,
                    offset: base + pos as u64,
                    bytes: strip_cr(&buf[pos..end]),
                }));
            }
            number += 1;
            pos = end + 1;
        }
        if eof {
            let rest = buf.len() - pos;
            if let Some((line, offset)) = skipping.take() {
                on_item(Item::Oversize {
                    line,
                    offset,
                    len: base + buf.len() as u64 - offset,
                });
            } else if rest > max_line {
                on_item(Item::Oversize {
                    line: number,
                    offset: base + pos as u64,
                    len: rest as u64,
                });
            } else if rest > 0 {
                on_item(Item::Line(Line {
                    number,
                    offset: base + pos as u64,
                    bytes: strip_cr(&buf[pos..]),
                }));
            }
            return Ok(base + buf.len() as u64);
        }
        // Keep the unfinished line; drop it early when it is already over the cap.
        if skipping.is_none() && buf.len() - pos > max_line {
            skipping = Some((number, base + pos as u64));
        }
        if skipping.is_some() {
            base += buf.len() as u64;
            buf.clear();
        } else {
            buf.drain(..pos);
            base += pos as u64;
        }
    }
}

fn strip_cr(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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
