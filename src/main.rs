use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Everything this process creates (the database and its journal, keys, exports) is its user's
    // alone from the moment it exists, whatever umask it was started with; `serve` also narrows what
    // is already there (datadir.rs).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
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
