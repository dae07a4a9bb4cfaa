//! Which byte of each file every earlier line's actions have finished below.
