//! The `jmail` command line: argument definitions and dispatch. The only place that uses anyhow.

mod bench;
mod bench_pop3;
mod bench_smtp;
mod deliver;
mod import_legacy;
mod mail;
mod progress;
mod prompt;
mod serve;
mod transfer;
mod user;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "jmail",
    version,
    about = "Jmail: a small, durable, fast mail server and its client"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Manage accounts (works while the server runs).
    #[command(subcommand)]
    User(user::UserCommand),
    /// The interactive terminal client: inbox, reading pane, `(bob) hello` to send, new mail as it arrives.
    Client(mail::ConnArgs),
    /// Send a message.
    Send(mail::SendArgs),
    /// List the inbox.
    Inbox(mail::InboxArgs),
    /// Show one message (marks it read).
    Read(mail::ReadArgs),
    /// Delete one message.
    Delete(mail::IdArgs),
    /// Mark one message read or unread.
    Mark(mail::MarkArgs),
    /// Print each new message as it arrives.
    Watch(mail::WatchArgs),
    /// Put a system message into a user's mailbox (message on standard input).
    Deliver(deliver::DeliverArgs),
    /// Import the original Jmail's userdat.txt and jmail.txt (all or nothing; safe to run twice).
    ImportLegacy(import_legacy::ImportLegacyArgs),
    /// Import mail into a user's INBOX from an mbox file or a Maildir folder.
    Import(transfer::TransferArgs),
    /// Export a user's INBOX to an mbox file or a Maildir folder.
    Export(transfer::TransferArgs),
    /// Load-test a server and print throughput and latency.
    Bench(bench::BenchArgs),
}

/// Where the server's files are, for commands that open the store directly.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory holding everything the server keeps [default: ./jmail-data].
    #[arg(long, env = "JMAIL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file (TOML); see docs/configuration in the README.
    #[arg(long, env = "JMAIL_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::User(cmd) => user::run(cmd),
        Command::Client(args) => mail::interactive(args),
        Command::Send(args) => mail::send(args),
        Command::Inbox(args) => mail::inbox(args),
        Command::Read(args) => mail::read(args),
        Command::Delete(args) => mail::delete(args),
        Command::Mark(args) => mail::mark(args),
        Command::Watch(args) => mail::watch(args),
        Command::Bench(args) => bench::run(args),
        Command::Deliver(args) => deliver::run(args),
        Command::Import(args) => transfer::import(args),
        Command::Export(args) => transfer::export(args),
        Command::ImportLegacy(args) => import_legacy::run(args),
    }
}

/// A tokio runtime for the client and admin commands.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Logs to stderr: at `explicit` (a flag) if given, else as RUST_LOG says, else at `fallback`.
fn init_logging(explicit: Option<&str>, fallback: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match explicit {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(fallback)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
