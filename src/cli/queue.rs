//! `jmail queue` (what waits to go to other servers, and why) and `jmail dns records` (what to publish
//! so that other servers deliver here and trust what comes from here). Both work while the server runs.

use std::io::Write;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::StoreArgs;
use super::user::{with_new_or_existing_store, with_store};
use crate::store::QueueEntry;

#[derive(Subcommand)]
pub enum QueueCommand {
    /// List queued messages: id, sender, recipients, attempts, next attempt, last error.
    List(ListArgs),
    /// Show one queued message in full.
    Show(IdArg),
    /// Try one queued message (or all with --all) now.
    Retry(RetryArgs),
    /// Remove a queued message without delivering it (its sender is not told).
    Drop(IdArg),
}

#[derive(Args)]
pub struct ListArgs {
    /// One JSON array, for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct IdArg {
    id: i64,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct RetryArgs {
    id: Option<i64>,
    #[arg(long, conflicts_with = "id")]
    all: bool,
    #[command(flatten)]
    store: StoreArgs,
}

fn time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn json(e: &QueueEntry) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "sender": e.sender,
        "domain": e.domain,
        "recipients": e.recipients,
        "size": e.size,
        "created": time(e.created_micros),
        "next_attempt": time(e.next_micros),
        "attempts": e.attempts,
        "in_flight": e.leased && e.next_micros > chrono::Utc::now().timestamp_micros(),
        "last_error": e.last_error,
    })
}

pub fn run(command: QueueCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_micros();
    let mut out = std::io::stdout().lock();
    match command {
        QueueCommand::List(a) => {
            let entries = with_store(&a.store, async |s, _| Ok(s.queue_list().await?))?;
            if a.json {
                let rows: Vec<_> = entries.iter().map(json).collect();
                writeln!(out, "{}", serde_json::Value::Array(rows))?;
                return Ok(());
            }
            if entries.is_empty() {
                writeln!(out, "the queue is empty")?;
            }
            for e in &entries {
                let state = if e.leased && e.next_micros > now {
                    "being delivered".to_string()
                } else {
                    format!("next attempt {}", time(e.next_micros))
                };
                writeln!(
                    out,
                    "{}  {}  from <{}> to {}  {} attempt(s), {state}",
                    e.id,
                    time(e.created_micros),
                    e.sender,
                    e.recipients.join(", "),
                    e.attempts,
                )?;
                if let Some(error) = &e.last_error {
                    writeln!(out, "    last error: {error}")?;
                }
            }
        }
        QueueCommand::Show(a) => {
            let Some(e) = with_store(&a.store, async |s, _| Ok(s.queue_entry(a.id).await?))? else {
                bail!("no queued message {}", a.id);
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&json(&e))?)?;
        }
        QueueCommand::Retry(a) => {
            if a.id.is_none() && !a.all {
                bail!("name a queued message, or give --all");
            }
            let n = with_store(&a.store, async |s, _| Ok(s.queue_retry(a.id, now).await?))?;
            match (a.id, n) {
                (Some(id), 0) => {
                    bail!("no queued message {id} waiting (or it is being delivered now)")
                }
                _ => writeln!(
                    out,
                    "{n} message(s) due now; a running server tries them within 30 seconds"
                )?,
            }
        }
        QueueCommand::Drop(a) => {
            if !with_store(&a.store, async |s, _| Ok(s.queue_drop(a.id).await?))? {
                bail!("no queued message {}", a.id);
            }
            writeln!(out, "dropped queued message {}", a.id)?;
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum DnsCommand {
    /// Print the DNS records to publish for each domain (MX, SPF, DKIM, DMARC); makes the DKIM keys
    /// if there are none yet.
    Records(RecordsArgs),
}

#[derive(Args)]
pub struct RecordsArgs {
    /// This domain (repeatable) [default: the config's domains].
    #[arg(long = "domain")]
    domains: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn dns(command: DnsCommand) -> anyhow::Result<()> {
    let DnsCommand::Records(a) = command;
    let (config, _) = super::serve::resolve(&a.store, a.domains.clone())?;
    let domains = config.domains.clone();
    // The keys live in the data dir, which `serve` or `user add` makes.
    with_new_or_existing_store(&a.store, async |_, _| Ok(()))?;
    let dkim = crate::outbound::dkim::Dkim::new(&config.data_dir);
    let host = config.hostname();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "; Publish these in each domain's zone. {host} must also have A/AAAA records for this server,\n\
         ; and its address a PTR record back to {host}."
    )?;
    for domain in domains {
        let keys = dkim.public_keys(&domain)?;
        writeln!(out, "\n; {domain}")?;
        writeln!(out, "{domain}.\tIN\tMX\t10 {host}.")?;
        writeln!(out, "{domain}.\tIN\tTXT\t\"v=spf1 mx -all\"")?;
        writeln!(
            out,
            "{}._domainkey.{domain}.\tIN\tTXT\t\"v=DKIM1; k=ed25519; p={}\"",
            crate::outbound::dkim::SELECTOR_ED25519,
            keys.ed25519
        )?;
        // TXT strings are at most 255 bytes: the RSA key is split into several.
        let record = format!("v=DKIM1; k=rsa; p={}", keys.rsa);
        let parts: Vec<String> = record
            .as_bytes()
            .chunks(250)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        writeln!(
            out,
            "{}._domainkey.{domain}.\tIN\tTXT\t( {} )",
            crate::outbound::dkim::SELECTOR_RSA,
            parts.join(" ")
        )?;
        writeln!(
            out,
            "_dmarc.{domain}.\tIN\tTXT\t\"v=DMARC1; p=quarantine; adkim=s; aspf=s\""
        )?;
    }
    Ok(())
}
