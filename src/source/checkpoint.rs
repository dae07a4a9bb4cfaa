//! Durable positions in the state directory (filled in by the checkpoint work).
