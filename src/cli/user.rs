//! `jmail user add|passwd|del|list|quota|away`: account administration straight on the store. Safe while the server
//! runs: SQLite serializes the writers, and the server sees the change at its next read.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{StoreArgs, prompt, serve};
use crate::accounts;
use crate::store::{QuotaSetting, Store};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; they get a welcome message.
    Add(PasswordArgs),
    /// Change a user's password.
    Passwd(PasswordArgs),
    /// Delete a user and all their mail.
    Del(DelArgs),
    /// List users with their usage against their quota.
    List(ListArgs),
    /// Set a user's quota on stored bytes and on messages (`default`: the server's; `unlimited`).
    Quota(QuotaArgs),
    /// Show a user's automatic reply while away, or change it (what JMAP's VacationResponse and the
    /// webmail's Away panel set).
    Away(AwayArgs),
}

#[derive(Args)]
pub struct AwayArgs {
    name: String,
    /// Switch the reply on.
    #[arg(long, conflicts_with = "off")]
    on: bool,
    /// Switch the reply off (its text and dates are kept).
    #[arg(long)]
    off: bool,
    /// The reply's subject (`""`: "Auto: " and the subject of the message answered).
    #[arg(long)]
    subject: Option<String>,
    /// The reply's text.
    #[arg(long)]
    text: Option<String>,
    /// First day it answers, YYYY-MM-DD (from midnight UTC; `""`: from now).
    #[arg(long, value_parser = parse_day)]
    from: Option<Day>,
    /// Last day it answers, YYYY-MM-DD, included (until midnight UTC after it; `""`: no end).
    #[arg(long, value_parser = parse_day)]
    until: Option<Day>,
    #[command(flatten)]
    store: StoreArgs,
}

/// A day given on the command line, or none (`""`). (A plain `Option<Option<_>>` field means "a flag
/// with an optional value" to clap.)
#[derive(Clone, Copy)]
struct Day(Option<chrono::NaiveDate>);

/// `2026-12-24`, or `""` for none.
fn parse_day(text: &str) -> Result<Day, String> {
    if text.is_empty() {
        return Ok(Day(None));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| Day(Some(d)))
        .map_err(|_| format!("{text:?} is not a day as YYYY-MM-DD"))
}

/// Midnight UTC starting `day`, in microseconds.
fn midnight_micros(day: chrono::NaiveDate) -> i64 {
    day.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_micros()
}

/// The reply as `jmail user away NAME` prints it.
fn describe(v: &crate::store::Vacation) -> String {
    let day = |micros: Option<i64>, back_one: bool| match micros
        .and_then(chrono::DateTime::from_timestamp_micros)
    {
        Some(t) if back_one => (t - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string(),
        Some(t) => t.format("%Y-%m-%d").to_string(),
        None => "-".to_string(),
    };
    format!(
        "away:    {}\nfrom:    {}\nuntil:   {}\nsubject: {}\ntext:    {}\n",
        if v.enabled { "on" } else { "off" },
        day(v.from_micros, false),
        day(v.to_micros, true),
        v.subject
            .as_deref()
            .unwrap_or("(Auto: and the subject answered)"),
        v.text_body
            .as_deref()
            .unwrap_or("")
            .replace('\n', "\n         "),
    )
}

#[derive(Args)]
pub struct QuotaArgs {
    name: String,
    /// Bytes the user may store: a number with an optional K, M, G or T (powers of 1024), `unlimited`,
    /// or `default`.
    #[arg(long, value_parser = parse_size)]
    storage: Option<QuotaSetting>,
    /// Messages the user may store: a number, `unlimited`, or `default`.
    #[arg(long, value_parser = parse_count)]
    messages: Option<QuotaSetting>,
    #[command(flatten)]
    store: StoreArgs,
}

fn parse_setting(text: &str, number: impl Fn(&str) -> Option<u64>) -> Result<QuotaSetting, String> {
    match text.to_ascii_lowercase().as_str() {
        "default" => Ok(QuotaSetting::Default),
        "unlimited" | "none" => Ok(QuotaSetting::Unlimited),
        other => number(other)
            .map(QuotaSetting::Limit)
            .ok_or_else(|| format!("{text:?} is not a number, `unlimited` or `default`")),
    }
}

/// `500M`, `2G`, `1048576`: bytes, with binary suffixes.
fn parse_size(text: &str) -> Result<QuotaSetting, String> {
    parse_setting(text, |t| {
        let (digits, shift) = match t.as_bytes().last()? {
            b'k' => (&t[..t.len() - 1], 10),
            b'm' => (&t[..t.len() - 1], 20),
            b'g' => (&t[..t.len() - 1], 30),
            b't' => (&t[..t.len() - 1], 40),
            _ => (t, 0),
        };
        digits.parse::<u64>().ok()?.checked_mul(1 << shift)
    })
}

fn parse_count(text: &str) -> Result<QuotaSetting, String> {
    parse_setting(text, |t| t.parse().ok())
}

/// A byte count as people read it: `512 B`, `1.5 MiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `used` or `used/limit`.
fn against(used: String, limit: Option<String>) -> String {
    match limit {
        Some(limit) => format!("{used}/{limit}"),
        None => used,
    }
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
    /// Print JSON: [{"name", "created" (RFC 3339), "messages", "bytes", "quota_messages", "quota_bytes"}],
    /// a quota `null` when unlimited.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Opens an existing store, runs `f`, and closes the store cleanly. A data dir without a store is an
/// error: a mistyped `--data-dir` must not leave an empty store behind.
pub(super) fn with_store<T>(
    args: &StoreArgs,
    f: impl AsyncFnOnce(&dyn Store, &crate::config::Config) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    open_then(args, false, f)
}

/// [`with_store`] that creates the store when there is none (`user add`, `import-legacy`).
pub(super) fn with_new_or_existing_store<T>(
    args: &StoreArgs,
    f: impl AsyncFnOnce(&dyn Store, &crate::config::Config) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    open_then(args, true, f)
}

fn open_then<T>(
    args: &StoreArgs,
    create: bool,
    f: impl AsyncFnOnce(&dyn Store, &crate::config::Config) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    super::init_quiet_logging();
    let (config, _) = serve::resolve(args, Vec::new())?;
    if crate::store::open::is_postgres(&config) {
        // The database is the store; the data dir holds only this node's keys and certificate.
    } else if create {
        crate::datadir::prepare(&config.data_dir)?;
    } else {
        crate::datadir::require_store(&config.data_dir, crate::store::sqlite::DB_FILE)?;
    }
    super::runtime()?.block_on(async {
        let store = crate::store::open::open(&config).await.with_context(|| {
            format!(
                "opening the store in {}",
                crate::store::open::describe(&config)
            )
        })?;
        let result = f(store.as_ref(), &config).await;
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
            let mut out = std::io::stdout().lock();
            let created = |micros| {
                chrono::DateTime::from_timestamp_micros(micros)
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            };
            if a.json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name,
                            "created": created(u.created_micros),
                            "messages": u.usage.messages,
                            "bytes": u.usage.bytes,
                            "quota_messages": u.quota.messages,
                            "quota_bytes": u.quota.bytes,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(rows))?;
            } else {
                for u in users {
                    let messages = against(
                        u.usage.messages.to_string(),
                        u.quota.messages.map(|n| n.to_string()),
                    );
                    let bytes = against(human_bytes(u.usage.bytes), u.quota.bytes.map(human_bytes));
                    writeln!(
                        out,
                        "{:<24} {messages:>14} messages  {bytes:>22}  since {}",
                        u.name,
                        created(u.created_micros)
                    )?;
                }
            }
        }
        UserCommand::Quota(a) => {
            if a.storage.is_none() && a.messages.is_none() {
                bail!("say what to set: --storage SIZE and/or --messages N");
            }
            let name = crate::auth::normalize_name(&a.name)?;
            with_store(&a.store, async |s, _| {
                Ok(s.set_quota(&name, a.storage, a.messages).await?)
            })?;
            println!("quota set for {name}");
        }
        UserCommand::Away(a) => {
            let name = crate::auth::normalize_name(&a.name)?;
            let changes = a.on
                || a.off
                || a.subject.is_some()
                || a.text.is_some()
                || a.from.is_some()
                || a.until.is_some();
            let shown = with_store(&a.store, async |s, _| {
                let Some(user) = s.recipient(&name).await? else {
                    bail!("no user named {name}");
                };
                let (mut v, _) = s.vacation(user.user).await?;
                if changes {
                    if a.on || a.off {
                        v.enabled = a.on;
                    }
                    if let Some(subject) = a.subject {
                        v.subject = (!subject.is_empty()).then_some(subject);
                    }
                    if let Some(text) = a.text {
                        v.text_body = Some(text);
                        v.html_body = None;
                    }
                    if let Some(from) = a.from {
                        v.from_micros = from.0.map(midnight_micros);
                    }
                    if let Some(until) = a.until {
                        v.to_micros = until.0.and_then(|d| d.succ_opt()).map(midnight_micros);
                    }
                    if let Some(why) = crate::vacation::invalid(&v) {
                        bail!("{why}");
                    }
                    s.set_vacation(user.user, &v).await?;
                }
                Ok(describe(&v))
            })?;
            print!("{shown}");
        }
    }
    Ok(())
}
