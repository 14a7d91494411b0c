//! `jmail user add|passwd|del|list`: account administration straight on the store. Safe while the server
//! runs: SQLite serializes the writers, and the server sees the change at its next read.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{StoreArgs, prompt, serve};
use crate::accounts;
use crate::store::sqlite::SqliteStore;
use crate::store::{AccountStore, MailStore};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; they get a welcome message.
    Add(PasswordArgs),
    /// Change a user's password.
    Passwd(PasswordArgs),
    /// Delete a user and all their mail.
    Del(DelArgs),
    /// List users.
    List(ListArgs),
}

#[derive(Args)]
pub struct PasswordArgs {
    name: String,
    /// Read the password from the first line of standard input instead of asking.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct DelArgs {
    name: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON: [{"name": ..., "created": RFC 3339, "messages": N}].
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Opens an existing store, runs `f`, and closes the store cleanly. A data dir without a store is an
/// error: a mistyped `--data-dir` must not leave an empty store behind.
pub(super) fn with_store<T>(
    args: &StoreArgs,
    f: impl AsyncFnOnce(&SqliteStore, &crate::config::Config) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    open_then(args, false, f)
}

/// [`with_store`] that creates the store when there is none (`user add`, `import-legacy`).
pub(super) fn with_new_or_existing_store<T>(
    args: &StoreArgs,
    f: impl AsyncFnOnce(&SqliteStore, &crate::config::Config) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    open_then(args, true, f)
}

fn open_then<T>(
    args: &StoreArgs,
    create: bool,
    f: impl AsyncFnOnce(&SqliteStore, &crate::config::Config) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    super::init_quiet_logging();
    let (config, _) = serve::resolve(args, Vec::new())?;
    if create {
        crate::datadir::prepare(&config.data_dir)?;
    } else {
        crate::datadir::require_store(&config.data_dir, crate::store::sqlite::DB_FILE)?;
    }
    super::runtime()?.block_on(async {
        let store = SqliteStore::open(&config.data_dir)
            .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
        let result = f(&store, &config).await;
        store.close().await;
        result
    })
}

pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(a) => {
            let password = prompt::new_password(a.password_stdin)?;
            let name = with_new_or_existing_store(&a.store, async |s, c| {
                Ok(accounts::add_user(s, c, &a.name, &password).await?)
            })?;
            println!("added user {name}");
        }
        UserCommand::Passwd(a) => {
            let password = prompt::new_password(a.password_stdin)?;
            with_store(&a.store, async |s, _| {
                Ok(accounts::set_password(s, &a.name, &password).await?)
            })?;
            println!("password changed for {}", a.name);
        }
        UserCommand::Del(a) => {
            if !a.yes {
                if !prompt::stdin_is_terminal() {
                    bail!(
                        "refusing to delete {} without confirmation; add --yes",
                        a.name
                    );
                }
                let answer = prompt::ask(&format!(
                    "Delete user {} and all their mail? [y/N] ",
                    a.name
                ))?;
                if !answer.trim().eq_ignore_ascii_case("y") {
                    bail!("not deleted");
                }
            }
            with_store(&a.store, async |s, _| {
                Ok(accounts::delete_user(s, &a.name).await?)
            })?;
            println!("deleted user {} and their mail", a.name);
        }
        UserCommand::List(a) => {
            let users = with_store(&a.store, async |s, _| Ok(s.list_users().await?))?;
            let created = |micros| {
                chrono::DateTime::from_timestamp_micros(micros)
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            };
            if a.json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|u| serde_json::json!({"name": u.name, "created": created(u.created_micros), "messages": u.messages}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for u in users {
                    println!(
                        "{:<24} {:>8} messages  since {}",
                        u.name,
                        u.messages,
                        created(u.created_micros)
                    );
                }
            }
        }
    }
    Ok(())
}
