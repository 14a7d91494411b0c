//! The `jmail` command line: argument definitions and dispatch. The only place that uses anyhow.

mod bench;
mod bench_imap;
mod bench_pop3;
mod bench_sink;
mod bench_smtp;
mod bench_store;
mod deliver;
mod import_legacy;
mod mail;
mod operate;
mod progress;
mod prompt;
mod queue;
mod serve;
mod store_copy;
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
    /// List your folders with their counts.
    Folders(mail::FoldersArgs),
    /// Create, rename or remove a folder.
    #[command(subcommand)]
    Folder(mail::FolderCommand),
    /// Move one message into another folder.
    Move(mail::MoveArgs),
    /// Copy one message into another folder.
    Copy(mail::MoveArgs),
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
    /// Check a config file.
    #[command(subcommand)]
    Config(operate::ConfigCommand),
    /// The outbound queue: list, show, retry or drop what waits for other servers.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// The store as a whole: copy it to another backend (SQLite to PostgreSQL, or back).
    #[command(subcommand)]
    Store(store_copy::StoreCommand),
    /// DNS records to publish (MX, SPF, DKIM, DMARC).
    #[command(subcommand)]
    Dns(queue::DnsCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(operate::CompletionsArgs),
    /// Print the manual page (roff), or write one per command with --dir.
    Man(operate::ManArgs),
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
    /// Store mail in this PostgreSQL database (`postgres://user:password@host:port/database`), shared by
    /// several nodes, instead of SQLite in the data dir [default: the config file's `store`, else SQLite].
    #[arg(long, env = "JMAIL_STORE")]
    store: Option<String>,
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
        Command::Folders(args) => mail::folders(args),
        Command::Folder(command) => mail::folder(command),
        Command::Move(args) => mail::copy(args, true),
        Command::Copy(args) => mail::copy(args, false),
        Command::Bench(args) => bench::run(args),
        Command::Deliver(args) => deliver::run(args),
        Command::Import(args) => transfer::import(args),
        Command::Export(args) => transfer::export(args),
        Command::ImportLegacy(args) => import_legacy::run(args),
        Command::Config(command) => operate::config(command),
        Command::Queue(command) => queue::run(command),
        Command::Dns(command) => queue::dns(command),
        Command::Store(command) => store_copy::run(command),
        Command::Completions(args) => operate::completions(args),
        Command::Man(args) => operate::man(args),
    }
}

/// A tokio runtime for the client and admin commands.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The log level in force: `explicit` (a flag) if given, else RUST_LOG, else `fallback` (the config file's
/// or `info`). Checked, so a misspelt level is an error instead of a server that logs nothing.
fn log_level(explicit: Option<&str>, fallback: &str) -> anyhow::Result<String> {
    let (level, from) = match explicit {
        Some(level) => (level.to_string(), "--log-level"),
        None => match std::env::var("RUST_LOG") {
            Ok(level) if !level.is_empty() => (level, "RUST_LOG"),
            _ => (fallback.to_string(), "log_level"),
        },
    };
    crate::config::check_log_level(&level).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
    Ok(level)
}

/// Logs to stderr at `level` (already checked by [`log_level`]).
fn init_logging(level: &str, format: crate::config::LogFormat) {
    use crate::config::LogFormat;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::new(level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Logging for the commands that are not the server: warnings only, unless RUST_LOG says otherwise.
fn init_quiet_logging() {
    let level = log_level(None, "warn").unwrap_or_else(|_| "warn".to_string());
    init_logging(&level, crate::config::LogFormat::Text);
}
