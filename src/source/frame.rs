//! Bytes → lines: the one framer behind both replay ([`super::read`]) and the tailer
//! ([`super::tail`]), so that a log gives the same lines in both modes however its bytes arrive.
//!
//! Owns line boundaries, line numbers, offsets and the length cap; knows nothing of files,
//! formats or events. Lines are framed on bytes (no UTF-8 is assumed): a line ends at `\n`, and
//! one `\r` before it belongs to the ending. A line is handed out only once its `\n` is seen,
//! or at [`Framer::finish`] when nothing more will come. Memory stays bounded by the cap: a line
//! over it is skipped as it arrives and reported with its length.

/// Lines longer than this are reported and skipped (the framing is kept: reading resumes
/// at the next newline).
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// One framed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A line without its `\n` or `\r\n`; `end` is the offset after its newline (after its
    /// last byte for a last line without one).
    Line {
        number: u64,
        offset: u64,
        end: u64,
        bytes: &'a [u8],
    },
    /// A line of `len` bytes (without its `\n` or `\r\n`) over the cap, skipped.
    Oversize {
        number: u64,
        offset: u64,
        end: u64,
        len: u64,
    },
}

/// Splits a stream of bytes, pushed in pieces of any size, into [`Frame`]s.
#[derive(Debug, Clone)]
pub struct Framer {
    max_line: usize,
    /// Where the unterminated line starts: the end of the last line handed out.
    offset: u64,
    /// Lines handed out (or skipped) before `offset`.
    line: u64,
    /// Offset after the last byte pushed.
    read_pos: u64,
    /// The unterminated line so far (empty while skipping an oversize one).
    pending: Vec<u8>,
    /// The unterminated line is over the cap and being skipped.
    skipping: bool,
    /// While skipping: the last byte skipped was a `\r` (it may belong to the ending).
    skipped_cr: bool,
}

impl Framer {
    /// A framer at the start of a file.
    pub fn new(max_line: usize) -> Framer {
        Framer::at(max_line, 0, 0)
    }

    /// A framer whose next byte is at `offset`, the start of line `line + 1`.
    pub fn at(max_line: usize, offset: u64, line: u64) -> Framer {
        Framer {
            max_line,
            offset,
            line,
            read_pos: offset,
            pending: Vec::new(),
            skipping: false,
            skipped_cr: false,
        }
    }

    /// Forgets what was held and goes on as if the next byte were at `offset`, the start of
    /// line `line + 1`.
    pub fn restart_at(&mut self, offset: u64, line: u64) {
        self.offset = offset;
        self.line = line;
        self.read_pos = offset;
        self.pending.clear();
        self.skipping = false;
        self.skipped_cr = false;
    }

    /// The end of the last line handed out: where a restart resumes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Lines handed out (or skipped) before [`Self::offset`].
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The offset after the last byte pushed: where the next byte is read from.
    pub fn read_pos(&self) -> u64 {
        self.read_pos
    }

    /// Frames the next bytes of the stream; `emit` gets every line they complete, in order.
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(Frame<'_>)) {
        let base = self.read_pos;
        self.read_pos += data.len() as u64;
        let mut at = 0;
        if self.skipping {
            let Some(i) = memchr::memchr(b'\n', data) else {
                if let Some(&last) = data.last() {
                    self.skipped_cr = last == b'\r';
                }
                return;
            };
            let cr = if i > 0 {
                data[i - 1] == b'\r'
            } else {
                self.skipped_cr
            };
            let newline = base + i as u64;
            self.skipping = false;
            self.skipped(
                newline - self.offset - u64::from(cr),
                newline + 1,
                &mut emit,
            );
            at = i + 1;
        }
        if !self.pending.is_empty() {
            let Some(i) = memchr::memchr(b'\n', &data[at..]) else {
                self.hold(&data[at..]);
                return;
            };
            self.pending.extend_from_slice(&data[at..at + i]);
            let mut raw = std::mem::take(&mut self.pending);
            at += i + 1;
            self.complete(&raw, base + at as u64, &mut emit);
            raw.clear();
            self.pending = raw;
        }
        let mut from = at;
        for i in memchr::memchr_iter(b'\n', &data[at..]) {
            let newline = at + i;
            self.complete(&data[from..newline], base + newline as u64 + 1, &mut emit);
            from = newline + 1;
        }
        self.hold(&data[from..]);
    }

    /// The end of the stream: an unterminated last line is handed out (nothing will complete
    /// it), as a line or, over the cap, as skipped.
    pub fn finish(&mut self, mut emit: impl FnMut(Frame<'_>)) {
        if self.skipping {
            self.skipping = false;
            let len = self.read_pos - self.offset - u64::from(self.skipped_cr);
            self.skipped(len, self.read_pos, &mut emit);
        } else if !self.pending.is_empty() {
            let raw = std::mem::take(&mut self.pending);
            self.complete(&raw, self.read_pos, &mut emit);
        }
    }

    /// Hands out the line `raw` (its `\n` excluded) that ends at `end`.
    fn complete(&mut self, raw: &[u8], end: u64, emit: &mut impl FnMut(Frame<'_>)) {
        let bytes = raw.strip_suffix(b"\r").unwrap_or(raw);
        self.line += 1;
        let (number, offset) = (self.line, self.offset);
        self.offset = end;
        emit(if bytes.len() > self.max_line {
            Frame::Oversize {
                number,
                offset,
                end,
                len: bytes.len() as u64,
            }
        } else {
            Frame::Line {
                number,
                offset,
                end,
                bytes,
            }
        });
    }

    /// Hands out the skipped line of `len` bytes that ends at `end`.
    fn skipped(&mut self, len: u64, end: u64, emit: &mut impl FnMut(Frame<'_>)) {
        self.line += 1;
        let (number, offset) = (self.line, self.offset);
        self.offset = end;
        emit(Frame::Oversize {
            number,
            offset,
            end,
            len,
        });
    }

    /// Keeps `rest`, the next bytes of the unterminated line, or starts skipping the line
    /// once it is certainly over the cap (one byte of slack for a `\r` whose `\n` has not
    /// arrived) and frees what it held.
    fn hold(&mut self, rest: &[u8]) {
        if self.pending.len() + rest.len() > self.max_line.saturating_add(1) {
            self.skipped_cr = rest.last().or(self.pending.last()) == Some(&b'\r');
            self.skipping = true;
            self.pending = Vec::new();
        } else {
            self.pending.extend_from_slice(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (number, offset, end, bytes) of lines; oversize ones as `<len>` in the bytes' place.
    type Framed = Vec<(u64, u64, u64, Vec<u8>)>;

    fn frame_in(pieces: &[&[u8]], max_line: usize) -> Framed {
        let mut framer = Framer::new(max_line);
        let mut out = Vec::new();
        let mut keep = |f: Frame<'_>| {
            out.push(match f {
                Frame::Line {
                    number,
                    offset,
                    end,
                    bytes,
                } => (number, offset, end, bytes.to_vec()),
                Frame::Oversize {
                    number,
                    offset,
                    end,
                    len,
                } => (number, offset, end, format!("<{len}>").into_bytes()),
            })
        };
        for piece in pieces {
            framer.push(piece, &mut keep);
        }
        framer.finish(&mut keep);
        out
    }

    fn line(number: u64, offset: u64, end: u64, bytes: &[u8]) -> (u64, u64, u64, Vec<u8>) {
        (number, offset, end, bytes.to_vec())
    }

    #[test]
    fn crlf_empty_lines_and_a_last_line_without_newline() {
        assert_eq!(
            frame_in(&[b"a\r\nbb\n\nccc"], 100),
            vec![
                line(1, 0, 3, b"a"),
                line(2, 3, 6, b"bb"),
                line(3, 6, 7, b""),
                line(4, 7, 10, b"ccc"),
            ]
        );
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_ending() {
        assert_eq!(
            frame_in(&[b"sec", b"ond\r", b"\nthird\r", b"\n"], 100),
            vec![line(1, 0, 8, b"second"), line(2, 8, 15, b"third")]
        );
    }

    #[test]
    fn the_cap_counts_the_line_without_its_ending() {
        let at_cap = [b'y'; 4];
        let mut data = at_cap.to_vec();
        data.extend(b"\r\nzzzzz\r\nok");
        // Byte by byte, so that the `\r` of the line at the cap arrives alone.
        let pieces: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(
            frame_in(&pieces, 4),
            vec![
                line(1, 0, 6, b"yyyy"),
                line(2, 6, 13, b"<5>"),
                line(3, 13, 15, b"ok")
            ]
        );
    }

    #[test]
    fn a_long_line_is_skipped_as_it_arrives_and_framing_kept() {
        let mut framer = Framer::new(10);
        let mut out = Vec::new();
        framer.push(b"ok\n", |f| out.push(format!("{f:?}")));
        for _ in 0..100 {
            framer.push(&[b'x'; 1000], |f| out.push(format!("{f:?}")));
            assert!(framer.pending.capacity() <= 22, "memory stays bounded");
        }
        framer.push(b"\r\nnext\n", |f| out.push(format!("{f:?}")));
        assert_eq!(
            out,
            [
                "Line { number: 1, offset: 0, end: 3, bytes: [111, 107] }",
                "Oversize { number: 2, offset: 3, end: 100005, len: 100000 }",
                "Line { number: 3, offset: 100005, end: 100010, bytes: [110, 101, 120, 116] }",
            ]
        );
        assert_eq!((framer.offset(), framer.line()), (100_010, 3));
    }

    #[test]
    fn an_unterminated_last_line_over_the_cap_is_reported_at_the_end() {
        assert_eq!(
            frame_in(&[b"a\n", b"xxxxxxxxxx", b"xx\r"], 5),
            vec![line(1, 0, 2, b"a"), line(2, 2, 15, b"<12>")]
        );
        assert_eq!(
            frame_in(&[b"a\nxxxxxx"], 5),
            vec![line(1, 0, 2, b"a"), line(2, 2, 8, b"<6>")]
        );
    }

    #[test]
    fn restart_resumes_numbering_and_offsets() {
        let mut framer = Framer::at(100, 50, 7);
        let mut out = Vec::new();
        framer.push(b"part", |f| out.push(format!("{f:?}")));
        assert!(out.is_empty(), "nothing before the newline");
        assert_eq!((framer.offset(), framer.read_pos()), (50, 54));
        framer.restart_at(50, 7);
        framer.push(b"whole\n", |f| out.push(format!("{f:?}")));
        assert_eq!(
            out,
            ["Line { number: 8, offset: 50, end: 56, bytes: [119, 104, 111, 108, 101] }"]
        );
    }

    /// Bytes rich in what framing can get wrong: `\r`, `\n`, runs long enough to pass a small
    /// cap, and bytes that are not UTF-8.
    fn log_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(vec![0xff, 0xfe]),
            proptest::collection::vec(b'a'..=b'e', 0..12),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn any_split_frames_like_the_whole(
            data in log_bytes(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10),
            max_line in 0usize..16,
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in at {
                pieces.push(&data[from..cut]);
                from = cut;
            }
            pieces.push(&data[from..]);
            let whole = frame_in(&[&data], max_line);
            prop_assert_eq!(frame_in(&pieces, max_line), whole.clone());

            // What a line is, independently: the text between newlines, one `\r` before the
            // newline dropped; over the cap only its length is told.
            let mut expected = Vec::new();
            let mut offset = 0u64;
            let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
            if parts.last().is_some_and(|p| p.is_empty()) {
                parts.pop();
            }
            for (i, raw) in parts.iter().enumerate() {
                let end = (offset + raw.len() as u64 + 1).min(data.len() as u64);
                let bytes = raw.strip_suffix(b"\r").unwrap_or(raw);
                let shown = if bytes.len() > max_line {
                    format!("<{}>", bytes.len()).into_bytes()
                } else {
                    bytes.to_vec()
                };
                expected.push((i as u64 + 1, offset, end, shown));
                offset = end;
            }
            prop_assert_eq!(whole, expected);
        }
    }
}
