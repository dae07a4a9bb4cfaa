//! Where lines come from.

pub mod replay;
