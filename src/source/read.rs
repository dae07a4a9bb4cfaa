//! Finished files read start to end (replay and `parse`), framed into lines by the same
//! [`Framer`] as the live log, gzip decompressed on the way. Never follows a file: what is
//! there when it is read is all.

use super::frame::{Frame, Framer};
use crate::fsutil::read_at_most;
use crate::parse::Line;
use flate2::bufread::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

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
/// replay reads finished files. A gzip file (known by its magic bytes, whatever its name) is
/// read decompressed. Returns the number of log bytes read (decompressed).
pub fn for_each_line(
    path: &Path,
    max_line: usize,
    on_item: impl FnMut(Item<'_>),
) -> io::Result<u64> {
    for_each_line_counted(path, max_line, u64::MAX, &AtomicU64::new(0), None, on_item)
}

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// How much of a file's start is looked at to tell an event log from something else.
const SNIFF: usize = 64 << 10;
/// Bytes read per call. Below glibc's mmap threshold (128 KiB), so the buffer comes from the
/// heap and is reused; a 1 MiB one was a mapping of its own, all of it resident, for no gain
/// in speed (a line longer than this is held by the framer across reads).
const READ_BUF: usize = 64 << 10;

/// The first bytes of the other formats logrotate may compress with: bzip2, xz, zstd.
const OTHER_COMPRESSED_MAGIC: [&[u8]; 3] = [b"BZh", b"\xfd7zXZ\0", b"\x28\xb5\x2f\xfd"];

/// What a file's first bytes say it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    Plain,
    Gzip,
    /// bzip2, xz or zstd: never read, only told apart from a log.
    OtherCompressed,
}

/// How the open `file` is packed, by its first bytes (read at a position: its cursor does
/// not move). No event log begins as a compressed file does.
pub fn packing(file: &File) -> io::Result<Packing> {
    let mut head = [0u8; 6];
    let n = read_at_most(file, &mut head, 0)?;
    Ok(packing_of(&head[..n]))
}

/// [`packing`] of a file that begins with `head` (its first 6 bytes, or all of a shorter one).
fn packing_of(head: &[u8]) -> Packing {
    if head.starts_with(&GZIP_MAGIC) {
        Packing::Gzip
    } else if OTHER_COMPRESSED_MAGIC.iter().any(|m| head.starts_with(m)) {
        Packing::OtherCompressed
    } else {
        Packing::Plain
    }
}

/// Whether `path` starts like a gzip file.
pub fn is_gzip(path: &Path) -> io::Result<bool> {
    Ok(packing(&File::open(path)?)? == Packing::Gzip)
}

/// [`for_each_line`] reading at most the first `limit` bytes of the file (a replay reads
/// what was there when it began, so that a resumed one reads the same), adding the bytes
/// read from disk (compressed, for gzip) to `disk_bytes` as they are read, for progress
/// reports, and stopping early (without finishing the last line) once `stop` is set.
///
/// A file that is neither gzip nor text (a NUL byte in its first 64 KiB, after decompression
/// for gzip, and a first line that begins like no event log's) is an `InvalidData` error
/// before any line is delivered; so is a damaged gzip stream, at the point where it breaks.
pub fn for_each_line_counted(
    path: &Path,
    max_line: usize,
    limit: u64,
    disk_bytes: &AtomicU64,
    stop: Option<&AtomicBool>,
    mut on_item: impl FnMut(Item<'_>),
) -> io::Result<u64> {
    let file = File::open(path)?;
    let mut framer = Framer::new(max_line);
    let mut buf = vec![0; READ_BUF];
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
    let gzip = packing(&file)? == Packing::Gzip;
    let mut reader: Box<dyn Read> = if gzip {
        let counted = Counted {
            inner: BufReader::with_capacity(1 << 16, file.take(limit)),
            count: disk_bytes,
        };
        Box::new(MultiGzDecoder::new(counted))
    } else {
        Box::new(Counted {
            inner: file.take(limit),
            count: disk_bytes,
        })
    };
    let mut sniffed = 0usize;
    // The bytes sniffed so far, to tell a log holding a NUL byte from binary data.
    let mut head = Vec::new();
    loop {
        if stop.is_some_and(|s| s.load(Relaxed)) {
            return Ok(framer.read_pos());
        }
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if gzip => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("damaged gzip data: {e}"),
                ));
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            framer.finish(&mut emit);
            return Ok(framer.read_pos());
        }
        if sniffed < SNIFF {
            let look = &buf[..n.min(SNIFF - sniffed)];
            head.extend_from_slice(look);
            sniffed += look.len();
            // A NUL byte in a log is a value EMS wrote raw (it costs its line); in anything
            // that does not begin like a log, it is binary data.
            if memchr::memchr(0, look).is_some() && !begins_like_a_log(&head) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    if gzip {
                        "gzip file whose content is not an EMS event log (binary data)"
                    } else {
                        "neither an EMS event log (it holds binary data) nor gzip"
                    },
                ));
            }
            if sniffed >= SNIFF {
                head = Vec::new();
            }
        }
        framer.push(&buf[..n], &mut emit);
    }
}

/// Whether the first non-blank line of `head` (the start of a file) begins like an event
/// log's, JSON or text: binary files (mp4, png, elf) do not.
fn begins_like_a_log(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n')
        .find(|line| !line.iter().all(u8::is_ascii_whitespace))
        .is_some_and(|line| crate::parse::detect(line).is_some())
}

/// A reader that adds what it reads to a shared counter.
struct Counted<'a, R> {
    inner: R,
    count: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

impl<R: io::BufRead> io::BufRead for Counted<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.count.fetch_add(amt as u64, Relaxed);
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_starts_are_told_from_event_logs() {
        assert_eq!(packing_of(b"\x1f\x8b\x08\x00\x00\x00"), Packing::Gzip);
        for head in [&b"BZh91A"[..], b"\xfd7zXZ\0", b"\x28\xb5\x2f\xfd\x00\x58"] {
            assert_eq!(packing_of(head), Packing::OtherCompressed, "{head:?}");
        }
        for head in [&b"{\"type\""[..], b"2026-1", b"\x1f", b"", b"BZ"] {
            assert_eq!(packing_of(head), Packing::Plain, "{head:?}");
        }
    }

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

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).expect("in memory");
        enc.finish().expect("in memory")
    }

    /// Line number, offset and bytes of each line.
    type Numbered = Vec<(u64, u64, Vec<u8>)>;

    /// The lines of `path`, the log bytes and the disk bytes read.
    fn collect(path: &Path) -> io::Result<(Numbered, u64, u64)> {
        let mut lines = Vec::new();
        let disk = AtomicU64::new(0);
        let bytes = for_each_line_counted(path, 1 << 20, u64::MAX, &disk, None, |item| {
            if let Item::Line(l) = item {
                lines.push((l.number, l.offset, l.bytes.to_vec()));
            }
        })?;
        Ok((lines, bytes, disk.load(Relaxed)))
    }

    #[test]
    fn gzip_reads_like_the_plain_file_and_counts_compressed_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let content: String = (0..5000).map(|i| format!("line {i}\r\n")).collect();
        let plain = dir.path().join("events_20261127_000000.txt");
        // Named without .gz on purpose: the content says what it is, not the name.
        let packed = dir.path().join("events_20261126_000000.txt");
        std::fs::write(&plain, &content).expect("write");
        let gz = gzip(content.as_bytes());
        std::fs::write(&packed, &gz).expect("write");
        let (a, a_bytes, a_disk) = collect(&plain).expect("plain");
        let (b, b_bytes, b_disk) = collect(&packed).expect("gzip");
        assert_eq!(a.len(), 5000);
        assert_eq!(a, b);
        assert_eq!(a_bytes, b_bytes);
        assert_eq!(a_disk, content.len() as u64);
        assert_eq!(b_disk, gz.len() as u64, "compressed bytes for gzip");
    }

    #[test]
    fn binary_and_damaged_gzip_files_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = dir.path().join("picture.png");
        std::fs::write(&binary, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").expect("write");
        let e = collect(&binary).expect_err("binary is not a log");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("nor gzip"), "{e}");

        // An mp4 starts with a NUL byte on its first line.
        let mp4 = dir.path().join("events_20261127_000000.mp4");
        std::fs::write(&mp4, b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2\nmdat").expect("write");
        let e = collect(&mp4).expect_err("an mp4 is not a log");
        assert!(e.to_string().contains("nor gzip"), "{e}");

        let mut gz = gzip("a\nb\n".repeat(10000).as_bytes());
        let half = gz.len() / 2;
        gz[half..].fill(0x55);
        let damaged = dir.path().join("events_20261127_000000.txt.gz");
        std::fs::write(&damaged, &gz).expect("write");
        let e = collect(&damaged).expect_err("damaged gzip");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("damaged gzip"), "{e}");
    }

    /// EMS writes control bytes in values raw (NUL included), and anyone who publishes a stream
    /// chooses some of those values: one such byte must cost its line, not the whole file.
    #[test]
    fn a_nul_byte_in_a_value_costs_its_line_not_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let json = b"{\"payload\":{\"name\":\"a\"},\"type\":\"x\"},\n\
            {\"payload\":{\"name\":\"b\\u0000\",\"tcUrl\":\"rtmp://h/\0live\"},\"type\":\"x\"},\n\
            {\"payload\":{\"name\":\"c\"},\"type\":\"x\"},\n";
        let text = b"\n00001\tinStreamCreated\n\tname: a\0b\n\n\n00002\tx\n";
        for (name, content) in [("events.json", &json[..]), ("events.txt", &text[..])] {
            let plain = dir.path().join(name);
            std::fs::write(&plain, content).expect("write");
            let packed = dir.path().join(format!("{name}.gz"));
            std::fs::write(&packed, gzip(content)).expect("write");
            for path in [plain, packed] {
                let (lines, _, _) = collect(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
                let expected = content.split(|&b| b == b'\n').count() - 1;
                assert_eq!(lines.len(), expected, "{}", path.display());
            }
        }
    }
}
