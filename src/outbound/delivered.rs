//! "Delivered" reports (RFC 3461 §5.2.2) for mail stored here whose sender asked for them with
//! `NOTIFY=SUCCESS`: to a local sender's INBOX, or queued to a remote sender with the null envelope
//! sender (RFC 3461 §6.2) and DKIM-signed for this server's primary domain.
//!
//! A remote sender gets one only when it is proven (a logged-in user, this host, SPF or aligned DKIM):
//! a report to a forged sender would be backscatter, mail to a stranger who never wrote.

use std::sync::Arc;

use super::Mailer;
use super::dsn::{self, Action};
use super::dsn_request::Request;
use crate::config::Config;
use crate::store::{Delivery, MailStore, NewMessage, Outbound};

/// The message a report is about, as far as the report needs it.
pub struct Stored<'a> {
    /// The envelope sender.
    pub sender: &'a str,
    /// The addresses it was stored for, as given in RCPT.
    pub recipients: &'a [String],
    /// The stored message; its header is quoted.
    pub raw: &'a [u8],
    pub arrival_micros: i64,
    /// SPF or aligned DKIM passed, or the sender logged in or is this host.
    pub sender_proven: bool,
}

/// Sends the report for those of `stored.recipients` that asked. Failures are logged, never returned:
/// the message itself is stored.
pub async fn report(
    store: &dyn MailStore,
    mailer: Option<&Arc<Mailer>>,
    config: &Config,
    dsn: &Request,
    stored: &Stored<'_>,
) {
    let asked: Vec<&String> = stored
        .recipients
        .iter()
        .filter(|r| dsn.recipient(r).wants_success())
        .collect();
    // Never a report about a report (the null sender), nor to a sender not proven.
    if asked.is_empty() || stored.sender.is_empty() || !stored.sender_proven {
        return;
    }
    let originals: Vec<Option<String>> = asked.iter().map(|r| dsn.recipient(r).orcpt).collect();
    let reports: Vec<dsn::Report<'_>> = asked
        .iter()
        .zip(&originals)
        .map(|(r, original)| dsn::Report {
            recipient: r,
            action: Action::Delivered,
            status: "2.0.0".into(),
            diagnostic: None,
            remote: None,
            original_recipient: original.as_deref(),
        })
        .collect();
    let notice = dsn::Notice {
        hostname: config.hostname(),
        to: stored.sender,
        envid: dsn.envid.as_deref(),
        arrival_micros: stored.arrival_micros,
        original: stored.raw,
        whole: false,
    };
    let raw = dsn::build(&notice, &reports);
    let (from, subject, message_id, _) = crate::message::summarize(&raw);
    let mut message = NewMessage::new(
        raw,
        from,
        subject,
        message_id,
        chrono::Utc::now().timestamp_micros(),
    );
    let to = stored.sender.to_ascii_lowercase();
    let delivery = match config.local_part(&to).map(crate::auth::normalize_name) {
        Some(Ok(local)) => Delivery::to_local(local, message),
        Some(Err(_)) => return,
        None => {
            let Some(mailer) = mailer else {
                return;
            };
            if let Err(e) = super::sign(mailer, config.primary_domain(), &mut message).await {
                tracing::warn!(error = %e, "DKIM signing a delivery report failed; not sent");
                return;
            }
            let outbound = Outbound {
                user: None,
                sender: String::new(),
                domains: super::by_domain(std::slice::from_ref(&to)),
                dsn: None,
            };
            Delivery::to_remote(message, outbound)
        }
    };
    match store.submit(delivery).await {
        Ok(_) => tracing::info!(to = %to, recipients = asked.len(), "delivery report sent"),
        Err(e) => tracing::info!(to = %to, error = %e, "delivery report not sent"),
    }
}
