//! Stand-ins for functions and types of `fingerprint` and `checkpoint` that are being written
//! elsewhere, behind the same signatures, so the tailer can be built and tested now. When those
//! land, this module is deleted and `tail.rs` imports the real ones instead.

use crate::source::fingerprint::{FileId, HEAD_BYTES};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Where reading of one file stopped, as stored in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePosition {
    pub id: FileId,
    pub path: PathBuf,
    pub offset: u64,
    pub line: u64,
    pub tail_hash: u64,
}

/// Bytes hashed by [`tail_hash`]: enough to tell rewritten content apart, cheap to re-read.
const TAIL_BYTES: u64 = 64;

/// FNV-1a: stable across builds, which a hash stored on disk must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Hash of a file's first line (without its `\n`), at most [`HEAD_BYTES`] of it.
pub fn head_hash(first_line: &[u8]) -> u64 {
    fnv1a(&first_line[..first_line.len().min(HEAD_BYTES)])
}

/// Hash of the at most 64 bytes before `offset`.
pub fn tail_hash(file: &mut File, offset: u64) -> io::Result<u64> {
    let start = offset.saturating_sub(TAIL_BYTES);
    let mut buf = vec![0; (offset - start) as usize];
    file.read_exact_at(&mut buf, start)?;
    Ok(fnv1a(&buf))
}
