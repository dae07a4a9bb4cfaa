//! emstail: follows the EvoStream Media Server event log and turns its events into actions.
//!
//! Data flows one way: `source` (files) → `parse` (bytes → [`event::Event`]) → `engine`
//! (plugins: events → [`action::Action`]) → `exec` (dry-run printer, EMS API, S3); `replay`
//! and `run` are the two pipelines. The library returns typed results: it never prints to
//! stdout and never exits the process (that is the binary's, `src/main.rs`).

pub mod action;
pub mod config;
pub mod engine;
pub mod event;
pub mod exec;
pub mod fsutil;
pub mod parse;
pub mod plugins;
pub mod replay;
pub mod run;
pub mod source;
pub mod status;
pub mod systemd;
pub mod throttle;
