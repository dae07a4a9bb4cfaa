//! The `emstail` binary: the command line (`cli`) and the commands (`cmd`) on top of the
//! library. Only this binary prints to stdout or picks an exit code.

mod cli;
mod cmd;

fn main() -> std::process::ExitCode {
    cli::main()
}
