//! Where lines come from: finished files (`read`), the live log (`tail`), both framed by one
//! `frame`r, files known by their `fingerprint`, and the state that lets a restart resume
//! exactly where the work stopped (`checkpoint`, `watermark`).

pub mod checkpoint;
pub mod discover;
pub mod fingerprint;
pub mod frame;
pub mod read;
pub mod tail;
pub mod watermark;
