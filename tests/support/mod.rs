//! Test helpers shared by the integration tests; each test uses only some of them.
#![allow(dead_code)]

pub mod fake_ems;
pub mod s3;
pub mod scenario;
