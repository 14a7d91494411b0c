//! `jmail bench --store-ops N`: the set operations straight on the store, without a server: N messages
//! flagged, copied, moved and expunged, each in one call, as IMAP's UID STORE / COPY / MOVE / EXPUNGE and
//! JMAP's Email/set will ask for them. Prints how long each call took.

use std::time::Instant;

use anyhow::Context;

use crate::store::sqlite::SqliteStore;
use crate::store::{
    AccountStore, FlagOp, Flags, ImportBatch, ImportedMessage, MailStore, ModelLimits, NewMessage,
    flags,
};

/// Times each bulk operation on `count` messages in a fresh account of the store at `config.data_dir`.
pub async fn run(config: &crate::config::Config, count: usize, json: bool) -> anyhow::Result<()> {
    let store = SqliteStore::open_with(&config.data_dir, ModelLimits::from(&config.limits))
        .context("opening the store")?;
    let name = format!("bulk{}", std::process::id());
    store
        .create_user(&name, &crate::auth::hash_password("unused"), None)
        .await?;
    let account = store.credentials(&name).await?.context("the new user")?;
    let messages = (0..count)
        .map(|i| {
            let raw = format!(
                "From: a@example.org\r\nSubject: bulk {i}\r\nMessage-ID: <{i}@bulk>\r\n\r\n{}\r\n",
                "x".repeat(1000)
            );
            let message = NewMessage::new(
                raw.into_bytes(),
                "a@example.org".into(),
                format!("bulk {i}"),
                Some(format!("<{i}@bulk>")),
                0,
            );
            ImportedMessage {
                owner: name.clone(),
                message,
                flags: 0,
            }
        })
        .collect();
    let started = Instant::now();
    store
        .import(ImportBatch {
            users: vec![],
            messages,
            match_content: false,
        })
        .await?;
    let import_ms = ms(started);
    let uids: Vec<u32> = (1..=count as u32).collect();
    let archive = store
        .mailbox(account.id, "Archive")
        .await?
        .context("Archive")?;
    let trash = store.mailbox(account.id, "Trash").await?.context("Trash")?;
    let started = Instant::now();
    let flagged = Flags::system(flags::FLAGGED);
    store
        .update_flags(account.inbox, &uids, FlagOp::Add, flagged, None)
        .await?;
    let flag_ms = ms(started);
    let started = Instant::now();
    store
        .copy(account.id, account.inbox, &uids, archive.id, false)
        .await?;
    let copy_ms = ms(started);
    let started = Instant::now();
    store
        .copy(account.id, account.inbox, &uids, trash.id, true)
        .await?;
    let move_ms = ms(started);
    let started = Instant::now();
    store.expunge(trash.id, None, false).await?;
    let expunge_ms = ms(started);
    store.delete_user(&name).await?;
    store.close().await;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "messages": count, "import_ms": import_ms, "flag_ms": flag_ms, "copy_ms": copy_ms,
                "move_ms": move_ms, "expunge_ms": expunge_ms,
            })
        );
    } else {
        println!(
            "{count} messages: import {import_ms:.0} ms, flag {flag_ms:.0} ms, copy {copy_ms:.0} ms, \
             move {move_ms:.0} ms, expunge {expunge_ms:.0} ms"
        );
    }
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
