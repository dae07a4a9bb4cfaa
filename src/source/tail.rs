//! Following the live log.
