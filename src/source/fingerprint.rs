//! File identity. A path is not an identity (EMS's file is renamed or truncated under it);
//! inode numbers are reused. A file is known by its device and inode plus a hash of its first
//! line, which EMS makes unique (entry counter, event id, timestamp).

use crate::fsutil::read_at_most;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Bytes of the first line hashed into [`FileId::head`]; a longer first line is hashed up to here.
pub const HEAD_BYTES: usize = 4096;

/// Bytes just before a saved offset that [`tail_hash`] covers.
pub const TAIL_BYTES: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// A 64-bit hash of the first line (up to [`HEAD_BYTES`]), taken once it is complete.
    pub head: u64,
}

/// The hash stored on disk in checkpoints, so it must never change between builds or
/// platforms: CRC-64/XZ (the `crc` crate's catalogue entry; check value of `123456789` is
/// `0x995dc9bbdf1939fa`).
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// The hash of a file's first line (the bytes before its `\n`, at most [`HEAD_BYTES`]).
pub fn head_hash(first_line: &[u8]) -> u64 {
    CRC64.checksum(first_line)
}

/// The identity of an open file, or `None` while it is "not ready": its first line has no
/// `\n` yet and it is shorter than [`HEAD_BYTES`]. Hashing a half-written first line would
/// give the file a different identity once the line completes.
///
/// Reads at a position, so the file's cursor does not move; device and inode are those of the
/// open file, never of a path that may name another file by now.
pub fn identify(file: &File) -> io::Result<Option<FileId>> {
    let meta = file.metadata()?;
    Ok(head(file)?.map(|head| FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        head,
    }))
}

/// [`FileId::head`] of an open file, or `None` while its first line is not complete: what
/// [`identify`] hashes, without the `stat` (an open file keeps its device and inode), for the
/// check made at every change of a followed file.
pub fn head(file: &File) -> io::Result<Option<u64>> {
    Ok(first_line(file)?.map(|line| head_hash(&line)))
}

/// The bytes [`head`] hashes (the first line, or its first [`HEAD_BYTES`]), or `None` while
/// the first line is not complete.
pub fn first_line(file: &File) -> io::Result<Option<Vec<u8>>> {
    let mut head = vec![0u8; HEAD_BYTES];
    let filled = read_at_most(file, &mut head, 0)?;
    match memchr::memchr(b'\n', &head[..filled]) {
        Some(end) => head.truncate(end),
        None if filled == HEAD_BYTES => {}
        None => return Ok(None),
    }
    Ok(Some(head))
}

/// Whether the open file still begins with `line`, as [`first_line`] gave it (at most
/// [`HEAD_BYTES`]): reads only the line and the byte after it, instead of [`HEAD_BYTES`] and
/// a hash.
pub fn starts_with_line(file: &File, line: &[u8]) -> io::Result<bool> {
    let cut = line.len() >= HEAD_BYTES;
    let mut buf = vec![0u8; if cut { HEAD_BYTES } else { line.len() + 1 }];
    let filled = read_at_most(file, &mut buf, 0)?;
    Ok(filled == buf.len() && buf.starts_with(line) && (cut || buf[line.len()] == b'\n'))
}

/// The hash of the up to [`TAIL_BYTES`] bytes just before `offset` (0 for offset 0). Stored next
/// to a checkpoint, it tells whether the file at that offset still holds the same content, which
/// device, inode and first line alone cannot (an inode reused by a file with the same first line).
///
/// Reads at a position, so the file's cursor does not move. A file shorter than `offset` gives
/// an `UnexpectedEof` error: it was truncated, and no hash of it can match.
pub fn tail_hash(file: &File, offset: u64) -> io::Result<u64> {
    if offset == 0 {
        return Ok(0);
    }
    let start = offset.saturating_sub(TAIL_BYTES);
    let mut buf = [0u8; TAIL_BYTES as usize];
    let len = usize::try_from(offset - start).expect("at most TAIL_BYTES, which fits in usize");
    file.read_exact_at(&mut buf[..len], start)?;
    Ok(head_hash(&buf[..len]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::path::Path;

    fn id_of(path: &Path) -> io::Result<Option<FileId>> {
        identify(&File::open(path)?)
    }

    #[test]
    fn head_hash_is_crc64_xz() {
        // The catalogue check value: a different algorithm would orphan every stored checkpoint.
        assert_eq!(head_hash(b"123456789"), 0x995d_c9bb_df19_39fa);
        assert_eq!(head_hash(b""), 0);
    }

    #[test]
    fn starts_with_line_tells_a_changed_first_line_as_the_hash_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.txt");
        let check = |content: &[u8], line: &[u8]| {
            std::fs::write(&path, content).expect("write");
            let file = File::open(&path).expect("open");
            let by_line = starts_with_line(&file, line).expect("readable");
            // The same answer as comparing the hash of the first line read again.
            assert_eq!(
                by_line,
                head(&file).expect("readable") == Some(head_hash(line))
            );
            by_line
        };
        assert!(check(b"{\"entry\":1}\n{\"entry\":2}\n", b"{\"entry\":1}"));
        assert!(!check(b"{\"entry\":9}\n{\"entry\":2}\n", b"{\"entry\":1}"));
        // Longer, shorter, or not complete: not the same line.
        assert!(!check(b"{\"entry\":1}x\n", b"{\"entry\":1}"));
        assert!(!check(b"{\"entry\":\n", b"{\"entry\":1}"));
        assert!(!check(b"{\"entry\":1}", b"{\"entry\":1}"));
        assert!(!check(b"", b"{\"entry\":1}"));
        // A first line over HEAD_BYTES is known by its first HEAD_BYTES.
        let long = vec![b'a'; HEAD_BYTES + 10];
        let mut content = long.clone();
        content.push(b'\n');
        assert!(check(&content, &long[..HEAD_BYTES]));
        content[HEAD_BYTES - 1] = b'b';
        assert!(!check(&content, &long[..HEAD_BYTES]));
        let line = first_line(&File::open(&path).expect("open")).expect("readable");
        assert_eq!(line.as_deref(), Some(&content[..HEAD_BYTES]));
    }

    #[test]
    fn identify_waits_for_a_complete_first_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.txt");
        std::fs::write(&path, b"").expect("write");
        assert_eq!(id_of(&path).expect("readable"), None);
        std::fs::write(&path, b"{\"entry\":1").expect("write");
        assert_eq!(id_of(&path).expect("readable"), None);

        std::fs::write(&path, b"{\"entry\":1}\n{\"entry\":2").expect("write");
        let id = id_of(&path)
            .expect("readable")
            .expect("first line complete");
        assert_eq!(id.head, head_hash(b"{\"entry\":1}"));
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!((id.dev, id.ino), (meta.dev(), meta.ino()));

        // More lines do not change the identity.
        std::fs::write(&path, b"{\"entry\":1}\n{\"entry\":2}\n{\"entry\":3}\n").expect("write");
        assert_eq!(id_of(&path).expect("readable"), Some(id));
    }

    #[test]
    fn long_first_line_is_identified_by_its_first_head_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.txt");
        let mut content = vec![b'x'; HEAD_BYTES];
        std::fs::write(&path, &content).expect("write");
        let id = id_of(&path)
            .expect("readable")
            .expect("HEAD_BYTES without newline is enough");
        assert_eq!(id.head, head_hash(&content));
        content.extend_from_slice(b"yyy\nnext\n");
        std::fs::write(&path, &content).expect("write");
        assert_eq!(id_of(&path).expect("readable"), Some(id));
    }

    #[test]
    fn different_first_lines_differ_and_missing_file_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = dir.path().join("a");
        std::fs::write(&a, b"{\"entry\":1}\n").expect("write");
        let before = id_of(&a).expect("readable").expect("complete");
        // Rewritten in place (same inode), new first line: a different file.
        std::fs::write(&a, b"{\"entry\":7}\n").expect("write");
        let after = id_of(&a).expect("readable").expect("complete");
        assert_eq!((before.dev, before.ino), (after.dev, after.ino));
        assert_ne!(before, after);
        let err = id_of(&dir.path().join("missing")).expect_err("no such file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn tail_hash_covers_the_bytes_before_the_offset_and_keeps_the_cursor() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.txt");
        let mut content = b"first line\n".to_vec();
        content.extend((0..200u8).map(|i| b'a' + i % 26));
        content.push(b'\n');
        std::fs::write(&path, &content).expect("write");
        let mut file = File::open(&path).expect("open");
        file.seek(SeekFrom::Start(5)).expect("seek");

        assert_eq!(tail_hash(&file, 0).expect("offset 0"), 0);
        assert_eq!(
            tail_hash(&file, 11).expect("short prefix"),
            head_hash(&content[..11])
        );
        let end = content.len() as u64;
        assert_eq!(
            tail_hash(&file, end).expect("whole file"),
            head_hash(&content[content.len() - 64..])
        );
        assert_eq!(file.stream_position().expect("position"), 5);

        let err = tail_hash(&file, end + 1).expect_err("past the end");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn tail_hash_tells_reused_content_apart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.txt");
        std::fs::write(&path, b"same first line\nold second line\n").expect("write");
        let file = File::open(&path).expect("open");
        let saved = tail_hash(&file, 32).expect("hash");
        drop(file);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .expect("reopen");
        file.write_all(b"same first line\nnew second line\n")
            .expect("write");
        let file = File::open(&path).expect("open");
        assert_eq!(
            id_of(&path).expect("readable").map(|id| id.head),
            Some(head_hash(b"same first line"))
        );
        assert_ne!(tail_hash(&file, 32).expect("hash"), saved);
    }
}
