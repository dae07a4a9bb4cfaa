//! emstail: follows the EvoStream Media Server event log and turns its events into actions.
//!
//! Data flows one way: `source` (files) → `parse` (bytes → [`event::Event`]) → `engine`
//! (plugins: events → [`action::Action`]) → `exec` (dry-run printer, EMS API, S3).

pub mod action;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod exec;
pub mod parse;
pub mod plugins;
pub mod private_fs;
pub mod replay;
pub mod run;
pub mod source;
pub mod status;
