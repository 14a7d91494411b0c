//! The automatic reply while a user is away (JMAP's VacationResponse, RFC 8621 §8), sent by the rules
//! of RFC 3834 and RFC 5230: whom it answers ([`rules`]), its bytes ([`reply`]), and where it goes.
//! Delivery calls [`answer`] after a message is stored for a recipient whose reply is on; nothing here
//! can fail a delivery.

mod reply;
mod rules;

use std::sync::Arc;

use crate::config::Config;
use crate::outbound::Mailer;
use crate::store::{Delivery, MailStore, UserId, Vacation};

pub use rules::REPLY_INTERVAL_SECS;

/// Longest subject a reply may be given, in bytes.
pub const SUBJECT_BYTES_MAX: usize = 1_000;
/// Longest text or HTML body a reply may be given, in bytes: each is stored once per account and sent
/// with every reply.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Bytes of a message's header read to decide whether to answer it.
const HEAD_BYTES_MAX: usize = 64 * 1024;

/// Why a reply's settings cannot be kept, in words for the user; `None` when they can.
pub fn invalid(v: &Vacation) -> Option<String> {
    if v.subject
        .as_ref()
        .is_some_and(|s| s.len() > SUBJECT_BYTES_MAX)
    {
        return Some(format!("subject: at most {SUBJECT_BYTES_MAX} bytes"));
    }
    if v.subject
        .as_ref()
        .is_some_and(|s| s.chars().any(char::is_control))
    {
        return Some("subject: one line, without control characters".into());
    }
    for (name, body) in [("textBody", &v.text_body), ("htmlBody", &v.html_body)] {
        if body.as_ref().is_some_and(|b| b.len() > BODY_BYTES_MAX) {
            return Some(format!("{name}: at most {BODY_BYTES_MAX} bytes"));
        }
    }
    if let (Some(from), Some(to)) = (v.from_micros, v.to_micros)
        && from > to
    {
        return Some("fromDate: after toDate".into());
    }
    None
}

/// Whether the reply answers mail arriving at `now_micros`: on, and within its dates.
pub fn in_force(v: &Vacation, now_micros: i64) -> bool {
    v.enabled
        && v.from_micros.is_none_or(|from| from <= now_micros)
        && v.to_micros.is_none_or(|to| now_micros < to)
}

/// [`answer`] for each of `names` (local users a message was just stored for) whose reply is on, looked
/// up here: for sends by a logged-in user (JMAP, native), which SMTP's RCPT lookup does not see.
pub async fn answer_named(
    store: &dyn MailStore,
    mailer: Option<&Arc<Mailer>>,
    config: &Config,
    names: &[String],
    received: &Received<'_>,
) {
    for name in names {
        match store.recipient(name).await {
            Ok(Some(recipient)) if recipient.away => {
                answer(store, mailer, config, (recipient.user, name), received).await
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(user = %name, error = %e, "looking up an automatic reply failed")
            }
        }
    }
}

/// The header of `message` (its first [`HEAD_BYTES_MAX`] bytes at most): all [`answer`] reads.
pub fn head_of(message: &[u8]) -> Vec<u8> {
    let start = &message[..message.len().min(HEAD_BYTES_MAX)];
    start[..crate::message::header_end(start)].to_vec()
}

/// A message just stored for a user whose reply is on.
pub struct Received<'a> {
    /// The envelope sender (MAIL FROM): the reply goes there, never to a header's address.
    pub sender: &'a str,
    pub message: &'a [u8],
    /// The sender is known to be who it says: a logged-in user, this host, or SPF or DKIM passed for
    /// its domain. A forged sender is never answered (that is backscatter).
    pub sender_proven: bool,
}

/// Answers `received` on behalf of `user` (id and name) if its reply is in force and the rules allow:
/// stored for a local sender, queued for a remote one. Failures are logged, never returned.
pub async fn answer(
    store: &dyn MailStore,
    mailer: Option<&Arc<Mailer>>,
    config: &Config,
    user: (UserId, &str),
    received: &Received<'_>,
) {
    let (id, name) = user;
    if !received.sender_proven {
        return;
    }
    let now = chrono::Utc::now().timestamp_micros();
    let vacation = match store.vacation(id).await {
        Ok((vacation, _)) if in_force(&vacation, now) => vacation,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(user = name, error = %e, "reading the automatic reply failed");
            return;
        }
    };
    let head = head_of(received.message);
    let Some(head) = mail_parser::MessageParser::default().parse_headers(&head) else {
        return;
    };
    let own = |address: &str| {
        config
            .local_part(address)
            .is_some_and(|local| address.contains('@') && local.eq_ignore_ascii_case(name))
    };
    if let Some(why) = rules::refusal(received.sender, &head, own) {
        tracing::debug!(user = name, reason = why, "no automatic reply");
        return;
    }
    let sender = received.sender.to_ascii_lowercase();
    let interval = REPLY_INTERVAL_SECS * 1_000_000;
    match store.vacation_reply_due(id, &sender, now, interval).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(user = name, error = %e, "recording an automatic reply failed");
            return;
        }
    }
    let from = rules::addressed_as(&head, own)
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_else(|| format!("{name}@{}", config.primary_domain()));
    let mut message = reply::build(&vacation, &from, received.sender, &head);
    let delivery = match config.local_part(&sender).map(crate::auth::normalize_name) {
        Some(Ok(local)) => Delivery::to_local(local, message),
        Some(Err(_)) => return,
        None => {
            let Some(mailer) = mailer else {
                return;
            };
            let domain = crate::outbound::signing_domain(config, &from);
            let queued = crate::outbound::queue_signed(
                mailer,
                id,
                "",
                &domain,
                std::slice::from_ref(&sender),
                &mut message,
            )
            .await;
            let Ok(outbound) = queued else {
                tracing::info!(
                    user = name,
                    "automatic reply not sent: the hourly limit or signing refused it"
                );
                return;
            };
            Delivery::to_remote(message, outbound)
        }
    };
    match store.submit(delivery).await {
        Ok(_) => tracing::info!(user = name, to = %sender, "automatic reply sent"),
        Err(e) => tracing::info!(user = name, to = %sender, error = %e, "automatic reply not sent"),
    }
}
