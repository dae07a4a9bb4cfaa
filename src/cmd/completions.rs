//! `emstail completions SHELL`: the shell's completion script, generated from the command
//! line's definition (the packages install the bash, zsh and fish ones).

use crate::cli::{Cli, Outcome};
use clap::CommandFactory as _;
use clap_complete::Shell;
use std::io::Write;

pub fn completions(shell: Shell) -> anyhow::Result<Outcome> {
    let mut script = Vec::new();
    // Generated into memory first: clap_complete panics on a failed write, and a closed
    // stdout is an ordinary error here.
    clap_complete::generate(shell, &mut Cli::command(), "emstail", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(Outcome::Success)
}
