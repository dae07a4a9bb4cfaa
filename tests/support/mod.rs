pub mod fake_ems;
