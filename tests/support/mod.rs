//! Test helpers shared by the integration tests; each test uses only some of them.
#![allow(dead_code)]

pub mod emstail;
pub mod expected;
pub mod fake_ems;
pub mod ports;
pub mod raw_http;
pub mod s3;
pub mod scenario;
