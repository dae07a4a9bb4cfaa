//! Where lines come from.

pub mod discover;
pub mod replay;
