//! File identity. A path is not an identity (EMS's file is renamed or truncated under it);
//! inode numbers are reused. A file is known by its device and inode plus a hash of its first
//! line, which EMS makes unique (entry counter, event id, timestamp).

use serde::{Deserialize, Serialize};

/// Bytes of the first line hashed into [`FileId::head`]; a longer first line is hashed up to here.
pub const HEAD_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// A 64-bit hash of the first line (up to [`HEAD_BYTES`]), taken once it is complete.
    pub head: u64,
}
