//! Old files read start to end.
