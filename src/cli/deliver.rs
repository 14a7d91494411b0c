//! `jmail deliver`: an administrator puts a system message into a mailbox (the original's generator).

use std::io::Read;

use anyhow::Context;
use clap::Args;

use super::StoreArgs;
use super::user::with_store;
use crate::accounts;

#[derive(Args)]
pub struct DeliverArgs {
    /// The user who gets the message.
    #[arg(long)]
    to: String,
    /// The sender shown: any text (e.g. `JMailServer`) or an address.
    #[arg(long)]
    from: String,
    #[arg(long, default_value = "")]
    subject: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// Reads the message from standard input (at most `limits.message_bytes_max`, as every other way in)
/// and delivers it durably.
pub fn run(args: DeliverArgs) -> anyhow::Result<()> {
    let name = with_store(&args.store, async |s, c| {
        let limit = c.limits.message_bytes_max;
        let mut body = Vec::new();
        std::io::stdin()
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .context("reading the message from standard input")?;
        if body.len() > limit {
            anyhow::bail!(
                "the message is larger than limits.message_bytes_max ({limit} bytes); nothing was delivered"
            );
        }
        Ok(accounts::deliver_system(s, c, &args.to, &args.from, &args.subject, &body).await?)
    })?;
    println!("delivered to {name}");
    Ok(())
}
