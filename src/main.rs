use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = jmail::cli::Cli::parse();
    match jmail::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`jmail man | head`) is not an error to report.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::FAILURE
        }
        Err(e) => {
            // One clear line: the error and its causes.
            eprintln!("jmail: {e:#}");
            ExitCode::FAILURE
        }
    }
}
