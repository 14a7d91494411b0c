//! EmailSubmission (RFC 8621 §7): sending a stored Email, to local users and, through
//! the outbound queue (hourly limit, DKIM), to other domains, in one store transaction as SMTP
//! submission does. An account sends only as itself: the envelope sender and the From header must be
//! its own address at one of this server's domains. Bcc is taken off what is sent (§7.5).
//!
//! Submissions are sent at once (`undoStatus` is `final` from the start) and then kept a while for
//! `/get` and `/query` (`submission_kept`); a failure later on comes back as a delivery status
//! notification.

use mail_parser::MessageParser;
use serde_json::{Map, Value, json};

use super::identity::own_address;
use super::ids;
use super::request::MethodResult;
use super::{Ctx, set_error};
use crate::outbound::dsn_request;
use crate::store::{Delivery, StoreError};

/// The message bytes without their Bcc field (every line of it, folded ones too).
fn without_bcc(raw: &[u8]) -> Vec<u8> {
    let header_end = crate::message::header_end(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    let mut at = 0;
    while at < header_end {
        let end = raw[at..header_end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header_end, |i| at + i + 1);
        let line = &raw[at..end];
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
        at = end;
    }
    out.extend_from_slice(&raw[header_end..]);
    out
}

/// The DSN parameters (RFC 3461) of an envelope (RFC 8621 §7: names as in SMTP, values with their
/// xtext undone); `None` for a parameter this server does not take or a value it cannot use.
fn envelope_dsn(envelope: &Value) -> Option<dsn_request::Request> {
    let params = |v: Option<&Value>| -> Option<Vec<(String, Option<String>)>> {
        match v {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::Null => Some((k.to_ascii_uppercase(), None)),
                    Value::String(s) => Some((k.to_ascii_uppercase(), Some(s.clone()))),
                    _ => None,
                })
                .collect(),
            Some(_) => None,
        }
    };
    let mut request = dsn_request::Request::default();
    for (name, value) in params(envelope.pointer("/mailFrom/parameters"))? {
        let value = value?;
        match name.as_str() {
            "RET" if request.ret.is_none() => {
                request.ret = Some(match value.to_ascii_uppercase().as_str() {
                    "FULL" => dsn_request::Ret::Full,
                    "HDRS" => dsn_request::Ret::Hdrs,
                    _ => return None,
                })
            }
            "ENVID"
                if request.envid.is_none()
                    && dsn_request::acceptable(&value, dsn_request::ENVID_CHARS_MAX) =>
            {
                request.envid = Some(value)
            }
            _ => return None,
        }
    }
    for rcpt in envelope
        .get("rcptTo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let address = rcpt.get("email").and_then(Value::as_str).unwrap_or("");
        let mut recipient = dsn_request::Recipient::default();
        for (name, value) in params(rcpt.get("parameters"))? {
            let value = value?;
            match name.as_str() {
                "NOTIFY" if recipient.notify.is_none() => {
                    recipient.notify = Some(dsn_request::Notify::parse(&value)?)
                }
                "ORCPT" if recipient.orcpt.is_none() => {
                    let (kind, original) = value.split_once(';')?;
                    if !kind.trim().eq_ignore_ascii_case("rfc822")
                        || !dsn_request::acceptable(original, dsn_request::ORCPT_CHARS_MAX)
                    {
                        return None;
                    }
                    recipient.orcpt = Some(original.to_string());
                }
                _ => return None,
            }
        }
        request.add(address, recipient);
    }
    Some(request)
}

/// Sends one submission; the created object, or the set error.
async fn submit(ctx: &mut Ctx<'_>, object: &Map<String, Value>) -> Result<(Value, String), Value> {
    let identity = object
        .get("identityId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let identity = ctx.resolve(identity).to_string();
    let identity_email = match super::identity::email_of(ctx, &identity).await {
        Ok(Some(email)) => email,
        Ok(None) => return Err(json!({"type": "invalidProperties", "properties": ["identityId"]})),
        Err(_) => return Err(set_error("serverFail", "the identity could not be read")),
    };
    let email_id = object
        .get("emailId")
        .and_then(Value::as_str)
        .map(|id| ctx.resolve(id).to_string());
    let Some(email) = email_id.as_deref().and_then(ids::parse_email) else {
        return Err(json!({"type": "invalidProperties", "properties": ["emailId"]}));
    };
    let raw = match ctx.first_copy(email).await.ok().flatten() {
        Some(copy) => ctx
            .store()
            .fetch(copy.mailbox, copy.uid, false)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let Some(raw) = raw else {
        return Err(set_error("emailNotFound", "no such email"));
    };
    let parsed = MessageParser::default().parse(&raw[..]);
    // The submission's thread is its Email's (RFC 8621 §7), from the same conversation root.
    let root = jmail_proto::summary::summarize_message(&raw).thread_root;
    let thread_id = super::email::thread_by_root(ctx.account.id, email, root.as_deref());
    // The From field must be the account's own address.
    let from_ok = parsed.as_ref().and_then(|m| m.from()).is_some_and(|f| {
        f.iter()
            .all(|a| a.address().is_some_and(|x| own_address(ctx, x)))
    });
    if !from_ok {
        return Err(set_error(
            "forbiddenFrom",
            "the From field must be your own address",
        ));
    }
    let envelope = object.get("envelope").filter(|e| !e.is_null());
    let Some(dsn) = envelope.map_or(Some(dsn_request::Request::default()), envelope_dsn) else {
        return Err(
            json!({"type": "invalidProperties", "properties": ["envelope"],
            "description": "the envelope takes DSN's parameters only (RET, ENVID; NOTIFY, ORCPT), with valid values"}),
        );
    };
    let (sender, recipients): (String, Vec<String>) = match envelope {
        Some(envelope) => {
            let sender = envelope
                .pointer("/mailFrom/email")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let rcpts = envelope
                .get("rcptTo")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|r| r.get("email")?.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (sender, rcpts)
        }
        None => {
            let m = parsed.as_ref().expect("checked above");
            let mut rcpts: Vec<String> = Vec::new();
            for list in [m.to(), m.cc(), m.bcc()].into_iter().flatten() {
                rcpts.extend(list.iter().filter_map(|a| a.address().map(str::to_string)));
            }
            (identity_email.clone(), rcpts)
        }
    };
    if !own_address(ctx, &sender) {
        return Err(set_error(
            "forbiddenMailFrom",
            "you may send only as yourself",
        ));
    }
    let limits = &ctx.shared.config.limits;
    if recipients.is_empty() {
        return Err(set_error("noRecipients", "the message has no recipients"));
    }
    if recipients.len() > limits.recipients_max {
        return Err(set_error(
            "tooManyRecipients",
            format!("at most {} recipients", limits.recipients_max),
        ));
    }
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    let (mut invalid, mut local_addresses) = (Vec::new(), Vec::new());
    let private_ok = ctx.shared.config.outbound_private_addresses;
    for r in &recipients {
        match ctx.shared.config.local_part(r) {
            Some(l) => match crate::auth::normalize_name(l) {
                Ok(name) => {
                    local.push(name);
                    local_addresses.push(r.clone());
                }
                Err(_) => invalid.push(r.clone()),
            },
            None if crate::outbound::plausible_address(r, private_ok) => remote.push(r.clone()),
            None => invalid.push(r.clone()),
        }
    }
    if !invalid.is_empty() {
        return Err(json!({"type": "invalidRecipients", "invalidRecipients": invalid}));
    }
    local.sort();
    local.dedup();
    // A "pass" in this server's name is this server's to give (RFC 8601 §5), not the sender's.
    let hostname = ctx.shared.config.hostname();
    let raw = jmail_proto::header_fields::strip_own_results(&raw, hostname);
    let mut message = crate::message::imported(without_bcc(&raw));
    message.internal_date_micros = chrono::Utc::now().timestamp_micros();
    let outbound = if remote.is_empty() {
        None
    } else {
        let mailer = ctx.shared.mailer.clone();
        match crate::outbound::queue_remote(
            &mailer,
            &ctx.shared.config,
            ctx.account.id,
            &sender,
            &remote,
            &mut message,
        )
        .await
        {
            Ok(mut o) => {
                o.dsn = dsn.to_json();
                Some(o)
            }
            Err(crate::outbound::NotQueued::HourlyLimit) => {
                return Err(set_error(
                    "forbiddenToSend",
                    "you have sent as much mail as an hour allows; try again later",
                ));
            }
            Err(crate::outbound::NotQueued::Signing) => {
                return Err(set_error(
                    "serverFail",
                    "the message could not be signed; nothing was sent",
                ));
            }
        }
    };
    let (names, head) = (local.clone(), crate::vacation::head_of(&message.raw));
    let arrival_micros = message.internal_date_micros;
    let delivery = Delivery {
        local,
        message,
        sent_copy_of: None,
        junk: false,
        outbound,
    };
    match ctx.store().submit(delivery).await {
        Ok(_) => {
            let received = crate::vacation::Received {
                sender: &sender,
                message: &head,
                sender_proven: true,
            };
            let (shared, mailer) = (ctx.shared, Some(&ctx.shared.mailer));
            crate::vacation::answer_named(ctx.store(), mailer, &shared.config, &names, &received)
                .await;
            let stored = crate::outbound::delivered::Stored {
                sender: &sender,
                recipients: &local_addresses,
                raw: &head,
                arrival_micros,
                sender_proven: true,
            };
            crate::outbound::delivered::report(ctx.store(), mailer, &shared.config, &dsn, &stored)
                .await;
        }
        Err(StoreError::UnknownRecipient(user)) => {
            // RFC 8621 §7.5: the addresses as the client gave them, not the account names.
            let config = &ctx.shared.config;
            let named_user = |a: &&String| {
                config
                    .local_part(a)
                    .and_then(|l| crate::auth::normalize_name(l).ok())
                    .is_some_and(|n| n == user)
            };
            let addresses: Vec<&String> = local_addresses.iter().filter(named_user).collect();
            return Err(json!({"type": "invalidRecipients", "invalidRecipients": addresses}));
        }
        Err(StoreError::OverQuota(user)) => {
            return Err(set_error(
                "serverFail",
                format!("{user}'s mailbox is full; nothing was sent"),
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "JMAP submission failed; nothing sent");
            return Err(set_error("serverFail", "nothing was sent; try again"));
        }
    }
    ctx.changed();
    let sent_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let given_envelope = envelope.is_some();
    // What is kept of the envelope: each address and its parameters (checked above: DSN's only, values
    // bounded), nothing else a client put in it (kept 200 times, a stray field could weigh megabytes).
    let address = |a: &Value| {
        let email = a.get("email").and_then(Value::as_str)?;
        let parameters = a.get("parameters").filter(|p| p.is_object());
        Some(json!({"email": email, "parameters": parameters}))
    };
    let rcpt_to: Vec<Value> = match envelope
        .and_then(|e| e.get("rcptTo"))
        .and_then(Value::as_array)
    {
        Some(given) => given.iter().filter_map(address).collect(),
        None => recipients
            .iter()
            .map(|r| json!({"email": r, "parameters": null}))
            .collect(),
    };
    let mail_from = envelope
        .and_then(|e| e.get("mailFrom"))
        .and_then(address)
        .unwrap_or_else(|| json!({"email": sender, "parameters": null}));
    let envelope = json!({"mailFrom": mail_from, "rcptTo": rcpt_to});
    // Where each recipient's copy is as the server answers (RFC 8621 §7: deliveryStatus): stored for
    // a local one, queued for another domain (its fate comes back as a delivery report).
    let delivery_status: Map<String, Value> = recipients
        .iter()
        .map(|r| {
            let status = match local_addresses.contains(r) {
                true => json!({"smtpReply": "250 2.1.5 Delivered to the mailbox",
                               "delivered": "yes", "displayed": "unknown"}),
                false => json!({"smtpReply": "250 2.0.0 Queued for delivery",
                                "delivered": "queued", "displayed": "unknown"}),
            };
            (r.clone(), status)
        })
        .collect();
    let email_id = email_id.unwrap_or_default();
    let mut object = Map::new();
    for (key, value) in [
        ("identityId", json!(identity)),
        ("emailId", json!(email_id)),
        ("threadId", json!(thread_id)),
        ("envelope", envelope.clone()),
        ("sendAt", json!(sent_at)),
        ("undoStatus", json!("final")),
        ("deliveryStatus", Value::Object(delivery_status.clone())),
        ("dsnBlobIds", json!([])),
        ("mdnBlobIds", json!([])),
    ] {
        object.insert(key.into(), value);
    }
    let id = super::submission_kept::keep(ctx, &object).await;
    // What the server set or defaulted (RFC 8620 §5.3).
    let mut created = json!({"id": id, "sendAt": sent_at, "undoStatus": "final",
        "threadId": thread_id, "deliveryStatus": delivery_status, "dsnBlobIds": [],
        "mdnBlobIds": []});
    if !given_envelope {
        created["envelope"] = envelope;
    }
    Ok((created, email_id))
}

pub async fn set(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let super::SetArgs {
        create,
        update,
        destroy,
    } = super::SetArgs::read(&args)?;
    let old_state = super::submission_kept::state(ctx).await?;
    super::check_state(&args, &old_state)?;
    let (mut created, mut not_created) = (Map::new(), Map::new());
    // What the implicit Email/set does afterwards, by creation id of the submission.
    let mut sent_emails: Vec<(String, String)> = Vec::new();
    for (cid, object) in create {
        let Some(object) = object.as_object() else {
            not_created.insert(
                cid,
                set_error("invalidProperties", "a submission is an object"),
            );
            continue;
        };
        let result = submit(ctx, object).await.map(|(v, email)| {
            sent_emails.push((cid.clone(), email));
            v
        });
        super::record_creation(ctx, cid, result, &mut created, &mut not_created);
    }
    let [updated, not_updated, destroyed, not_destroyed] =
        super::submission_kept::change(ctx, &update, &destroy).await?;
    let new_state = super::submission_kept::state(ctx).await?;
    let response = json!({"accountId": ctx.account_id(), "oldState": old_state,
        "newState": new_state, "created": created, "notCreated": not_created,
        "updated": updated, "notUpdated": not_updated,
        "destroyed": destroyed, "notDestroyed": not_destroyed});
    // onSuccessUpdateEmail / onSuccessDestroyEmail: keys are submission ids or `#creationId`.
    let email_for = |key: &str| -> Option<String> {
        let cid = key.strip_prefix('#')?;
        sent_emails
            .iter()
            .find(|(c, _)| c == cid)
            .map(|(_, e)| e.clone())
    };
    let mut update = Map::new();
    if let Some(o) = args.get("onSuccessUpdateEmail").and_then(Value::as_object) {
        for (key, patch) in o {
            if let Some(email) = email_for(key) {
                update.insert(email, patch.clone());
            }
        }
    }
    let destroy: Vec<Value> = args
        .get("onSuccessDestroyEmail")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|k| k.as_str().and_then(email_for))
                .map(Value::String)
                .collect()
        })
        .unwrap_or_default();
    if !update.is_empty() || !destroy.is_empty() {
        let mut email_args = Map::new();
        email_args.insert("accountId".into(), json!(ctx.account_id()));
        email_args.insert("update".into(), Value::Object(update));
        email_args.insert("destroy".into(), Value::Array(destroy));
        let implicit = super::email_set::set(ctx, email_args).await;
        let value = implicit.unwrap_or_else(|e| e.to_value());
        ctx.extra.push(("Email/set".into(), value));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_is_taken_off_folded_lines_and_all() {
        let raw = b"From: a@x\r\nBcc: secret@y,\r\n  other@z\r\nTo: b@x\r\n\r\nBcc: stays in the body\r\n";
        assert_eq!(
            without_bcc(raw),
            b"From: a@x\r\nTo: b@x\r\n\r\nBcc: stays in the body\r\n".to_vec()
        );
    }
}
