//! Commands for operators and packagers: `config check`, shell completions and manual pages, the last two
//! generated from the one CLI definition so they never drift from it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, Subcommand};

use super::{Cli, StoreArgs};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Read the config file as `jmail serve` would and report every error; exit 0 when it is good.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Write a page for jmail and one for each subcommand (jmail-serve.1, ...) into this folder, instead
    /// of printing jmail(1) to standard output.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Everything `jmail serve` checks before it binds a port: the file parses with no unknown key, every
/// limit is in its range, the log level is one, and a TLS pair given is readable and matches.
pub fn config(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check(args) = command;
    let (config, file) = super::serve::resolve(&args.store, Vec::new())?;
    if let Some(level) = &file.log_level {
        crate::config::check_log_level(level)?;
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let source =
            crate::tls::CertSource::new(Some(cert.clone()), Some(key.clone()), &config.data_dir);
        crate::tls::Tls::load(
            source,
            config.domains.clone(),
            config.limits.tls_handshake_secs_max,
        )
        .context("tls_cert / tls_key")?;
    }
    match &args.store.config {
        Some(path) => println!("{}: OK", path.display()),
        None => println!("no config file given (--config or JMAIL_CONFIG): the defaults are OK"),
    }
    Ok(())
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "jmail", &mut std::io::stdout());
    Ok(())
}

pub fn man(args: ManArgs) -> anyhow::Result<()> {
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing pages into {}", dir.display()))?;
            println!("wrote the manual pages into {}", dir.display());
        }
        None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?,
    }
    Ok(())
}
