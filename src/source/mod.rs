//! Where lines come from: old files (`replay`), the live log (`tail`), and the state that
//! lets a restart resume exactly where the work stopped (`checkpoint`, `watermark`).

pub mod checkpoint;
pub mod discover;
pub mod fingerprint;
pub mod replay;
pub mod tail;
pub mod watermark;
