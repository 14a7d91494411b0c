//! `jmail import` and `jmail export`: a user's mail as mbox or Maildir.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::StoreArgs;
use super::user::with_store;
use crate::auth::normalize_name;
use crate::transfer::{self, maildir, mbox};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Mbox,
    Maildir,
}

#[derive(Args)]
pub struct TransferArgs {
    /// Whose INBOX.
    #[arg(long)]
    user: String,
    #[arg(long, value_enum)]
    format: Format,
    /// The mbox file or the Maildir folder.
    path: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

/// Imports mail; messages already there (same Message-ID and bytes) are not imported twice.
pub fn import(args: TransferArgs) -> anyhow::Result<()> {
    let user = normalize_name(&args.user)?;
    let summary = with_store(&args.store, async |store, config| {
        transfer::inbox(store, &user).await?;
        let max = config.limits.message_bytes_max;
        let (total, unit) = match args.format {
            Format::Mbox => (
                std::fs::metadata(&args.path).map(|m| m.len()).unwrap_or(0),
                "bytes",
            ),
            Format::Maildir => (maildir::count(&args.path), "files"),
        };
        let bar = super::progress::bar(total, unit);
        let progress = |n| bar.set_position(n);
        let summary = match args.format {
            Format::Mbox => mbox::import(store, &user, &args.path, max, &progress).await?,
            Format::Maildir => maildir::import(store, &user, &args.path, max, &progress).await?,
        };
        bar.finish_and_clear();
        Ok(summary)
    })?;
    println!(
        "imported {} messages for {user} ({} already present, {} larger than message_bytes_max skipped)",
        summary.imported, summary.present, summary.too_large
    );
    Ok(())
}

pub fn export(args: TransferArgs) -> anyhow::Result<()> {
    let user = normalize_name(&args.user)?;
    let count = with_store(&args.store, async |store, _| {
        let inbox = transfer::inbox(store, &user).await?;
        Ok(match args.format {
            Format::Mbox => mbox::export(store, inbox, &args.path).await?,
            Format::Maildir => maildir::export(store, inbox, &args.path).await?,
        })
    })?;
    println!(
        "exported {count} messages of {user} to {}",
        args.path.display()
    );
    Ok(())
}
