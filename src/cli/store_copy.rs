//! `jmail store copy --from A --to B`: a whole store from a SQLite data dir or a PostgreSQL database into
//! another (moving a site onto PostgreSQL, or back).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::store::Store;
use crate::transfer::store_copy;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy every account, mailbox and message (UIDs, UIDVALIDITY and modseqs kept) into another store,
    /// then compare both; run it again to resume an interrupted copy. Stop the servers on the source
    /// first: mail arriving meanwhile may be missed, and the comparison then fails.
    Copy(CopyArgs),
}

#[derive(Args)]
pub struct CopyArgs {
    /// The store copied: a data dir (SQLite) or a postgres:// URL.
    #[arg(long)]
    from: String,
    /// Where it goes: a postgres:// URL or a data dir (SQLite).
    #[arg(long)]
    to: String,
    /// Config file (TOML) for the model's limits and `store_tls_roots`; its data dir and store are not
    /// used.
    #[arg(long, env = "JMAIL_CONFIG")]
    config: Option<PathBuf>,
}

fn is_url(place: &str) -> bool {
    place.starts_with("postgres://") || place.starts_with("postgresql://")
}

/// Where a store is, for messages: a URL's password is never shown.
fn shown(place: &str) -> String {
    match is_url(place) {
        true => "the PostgreSQL database".to_string(),
        false => format!("the data dir {place}"),
    }
}

async fn open(
    place: &str,
    base: &crate::config::Config,
    existing: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    let mut config = base.clone();
    if is_url(place) {
        config.store = Some(place.to_string());
    } else {
        config.store = None;
        config.data_dir = PathBuf::from(place);
        if existing {
            crate::datadir::require_store(&config.data_dir, crate::store::sqlite::DB_FILE)?;
        } else {
            crate::datadir::prepare(&config.data_dir)?;
        }
    }
    crate::store::open::open(&config)
        .await
        .with_context(|| format!("opening {}", shown(place)))
}

pub fn run(command: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Copy(args) = command;
    super::init_quiet_logging();
    if args.from == args.to {
        bail!("--from and --to name the same store");
    }
    let file = match &args.config {
        Some(path) => crate::config::FileConfig::load(path)?,
        None => crate::config::FileConfig::default(),
    };
    let mut base = crate::config::Config::for_data_dir(std::path::Path::new("."));
    base.limits = file.limits.clone();
    base.store_tls_roots = file.store_tls_roots.clone();
    super::runtime()?.block_on(async {
        let from = open(&args.from, &base, true).await?;
        let to = open(&args.to, &base, false).await?;
        let total: u64 = from.list_users().await?.iter().map(|u| u.usage.bytes).sum();
        let bar = super::progress::bar(total, "bytes");
        let result = store_copy::copy_store(from.as_ref(), to.as_ref(), &|n| bar.inc(n)).await;
        bar.finish_and_clear();
        from.close().await;
        to.close().await;
        let done = result?;
        println!(
            "copied {} users, {} mailboxes, {} messages ({} bytes) from {} to {}; verified {} messages",
            done.users,
            done.mailboxes,
            done.messages,
            done.bytes,
            shown(&args.from),
            shown(&args.to),
            done.verified
        );
        Ok(())
    })
}
