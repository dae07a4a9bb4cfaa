//! Carrying actions out.
