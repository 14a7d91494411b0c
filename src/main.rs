use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = jmail::cli::Cli::parse();
    match jmail::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line: the error and its causes.
            eprintln!("jmail: {e:#}");
            ExitCode::FAILURE
        }
    }
}
