//! `emstail replay`.
