//! `jmail import-legacy`: brings the original Jmail's users and mail in, all or nothing, idempotently.

use std::collections::HashSet;
use std::path::PathBuf;

use clap::Args;

use super::StoreArgs;
use super::user::with_new_or_existing_store;
use crate::legacy::import;

#[derive(Args)]
pub struct ImportLegacyArgs {
    /// The original's userdat.txt: {"user": "password", ...}.
    #[arg(long)]
    users: PathBuf,
    /// The original's jmail.txt: {"user": {"<sender> At:<time>": "<text>", ...}, ...}.
    #[arg(long)]
    mail: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: ImportLegacyArgs) -> anyhow::Result<()> {
    // Both files are read and checked before the store is touched.
    let users = import::read_users(&args.users)?;
    let mail = import::read_mail(&args.mail)?;
    let (counts, orphans) = with_new_or_existing_store(&args.store, async |store, config| {
        let mut known: HashSet<String> = users.iter().map(|(n, _)| n.clone()).collect();
        let others: Vec<String> = mail
            .iter()
            .map(|m| m.owner.clone())
            .filter(|o| !known.contains(o))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        known.extend(store.existing_users(&others).await?);
        let (users, mail, config) = (users.clone(), mail.clone(), config.clone());
        let bar = super::progress::bar(users.len() as u64, "passwords hashed");
        let hashing = bar.clone();
        let (batch, orphans) = tokio::task::spawn_blocking(move || {
            import::batch(&users, &mail, &known, &config, &|n| hashing.set_position(n))
        })
        .await?;
        bar.finish_and_clear();
        Ok((store.import(batch).await?, orphans))
    })?;
    println!(
        "imported {} users ({} already present) and {} messages ({} already present)",
        counts.users_created,
        counts.users_existing,
        counts.messages_imported,
        counts.messages_present
    );
    if orphans > 0 {
        println!(
            "skipped {orphans} messages whose mailbox names no user (the original created such mailboxes)"
        );
    }
    Ok(())
}
