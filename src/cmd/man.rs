//! `emstail man [SUBCOMMAND]`: a man page in roff, generated from the command line's
//! definition: emstail(1), or emstail-SUBCOMMAND(1) (the packages install them all).

use crate::cli::{Cli, Outcome, Usage};
use clap::CommandFactory as _;
use std::io::Write;

/// What only the page of emstail itself says: where things are and the other pages.
const FILES: &str = r#".SH FILES
.TP
\fI/etc/emstail/config.ini\fR
The configuration, read by \fBemstail.service\fR (override with \fB\-\-config\fR or
\fBEMSTAIL_CONFIG\fR). \fBemstail check\fR validates it.
.TP
\fI/var/lib/emstail\fR
The state directory of the service: checkpoints, dead letters, lock file and status.
.TP
\fI/usr/share/doc/emstail/README.md\fR
The full documentation: configuration, plugins, running it as a service.
"#;

pub fn man(subcommand: Option<&str>) -> anyhow::Result<Outcome> {
    // Built the way clap_mangen builds a whole tree: subcommands get their display names
    // (emstail-check) and `help` is not a subcommand of its own.
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut page = Vec::new();
    match subcommand {
        None => {
            clap_mangen::Man::new(root.clone()).render(&mut page)?;
            page.extend_from_slice(FILES.as_bytes());
            page.extend_from_slice(see_also(&root).as_bytes());
        }
        Some(name) => {
            let Some(sub) = root.find_subcommand(name) else {
                let known: Vec<&str> = root.get_subcommands().map(|s| s.get_name()).collect();
                return Err(Usage::new(format_args!(
                    "man: no subcommand {name:?} (known: {})",
                    known.join(", ")
                ))
                .into());
            };
            clap_mangen::Man::new(sub.clone()).render(&mut page)?;
            page.extend_from_slice(b".SH SEE ALSO\n\\fBemstail\\fR(1)\n");
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&page)?;
    out.flush()?;
    Ok(Outcome::Success)
}

/// `.SH SEE ALSO` naming every subcommand's page.
fn see_also(root: &clap::Command) -> String {
    let pages: Vec<String> = root
        .get_subcommands()
        .map(|s| format!("\\fBemstail\\-{}\\fR(1)", s.get_name()))
        .collect();
    format!(".SH SEE ALSO\n{}\n", pages.join(",\n"))
}
