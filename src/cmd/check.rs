//! `emstail check`: the configuration as it takes effect, secrets as `***`.

use crate::cli::Outcome;
use std::io::Write;
use std::path::Path;

pub fn check(path: &Path) -> anyhow::Result<Outcome> {
    let config = super::load_config(path)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", config.render())?;
    writeln!(out, "# {}: valid", path.display())?;
    out.flush()?;
    Ok(Outcome::Success)
}
