//! Email (and Thread) states, and `Email/changes`. The store numbers changes per mailbox (each message
//! has its mailbox's modseq), so an Email state is, for each mailbox, how far its changes had gone and
//! its next UID then: `m.h.u` per mailbox, comma-separated (mailboxes never written to are left out).
//! `/changes` then reads only the mailboxes whose modseq moved, and of those only what changed after.
//! A mailbox deleted since the state cannot say which messages went with it, and a state past where a
//! mailbox is now was never this server's: both get `cannotCalculateChanges`, and the client resyncs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::request::{MethodError, MethodResult};
use super::{Ctx, ids};
use crate::store::{Located, MailboxId, MailboxInfo, Since, Tombstone};

/// Most changes one `/changes` answer holds (a smaller `maxChanges` is kept).
const CHANGES_MAX: usize = 5000;

/// Per mailbox: (highest modseq told, next UID then).
type Marks = BTreeMap<MailboxId, (u64, u32)>;

/// What every state starts with. States of the releases whose Email ids named a mailbox and UID began
/// `s`: a client holding one holds ids that no longer name anything, so it gets `cannotCalculateChanges`
/// and reads everything again rather than keep them.
const PREFIX: &str = "v2:";

fn encode(marks: &Marks) -> String {
    let parts: Vec<String> = marks
        .iter()
        .filter(|(_, (modseq, _))| *modseq > 0)
        .map(|(m, (h, u))| format!("{m}.{h}.{u}"))
        .collect();
    format!("{PREFIX}{}", parts.join(","))
}

fn decode(state: &str) -> Option<Marks> {
    let body = state.strip_prefix(PREFIX)?;
    let mut marks = Marks::new();
    for part in body.split(',').filter(|p| !p.is_empty()) {
        let mut fields = part.split('.');
        let m = fields.next()?.parse().ok()?;
        let h = fields.next()?.parse().ok()?;
        let u = fields.next()?.parse().ok()?;
        if fields.next().is_some() {
            return None;
        }
        marks.insert(m, (h, u));
    }
    Some(marks)
}

fn marks_of(mailboxes: &[MailboxInfo]) -> Marks {
    mailboxes
        .iter()
        .map(|m| (m.id, (m.highest_modseq, m.uid_next)))
        .collect()
}

/// The account's Email state now.
pub async fn email_state(ctx: &mut Ctx<'_>) -> Result<String, MethodError> {
    Ok(encode(&marks_of(ctx.mailboxes().await?)))
}

/// The Email state of a mailbox list already read (push).
pub fn email_state_of(mailboxes: &[MailboxInfo]) -> String {
    encode(&marks_of(mailboxes))
}

/// Whether an Email was there at the state `marks`. An Email lives from its first copy to the loss of its
/// last (its bytes never come back once gone), so it was there if a copy of it, kept or expunged since,
/// had been stored by then (below its mailbox's UIDNEXT in the state), unless every copy is gone and
/// each went before the state (at or below its mailbox's modseq in it). A state that read some
/// mailboxes' logs further than others (a page of changes) thereby still counts a moved Email as
/// there, whichever half of the move it has read.
fn present_at(marks: &Marks, copies: &[Located], tombstones: &[Tombstone]) -> bool {
    let mark = |mailbox| marks.get(&mailbox).copied().unwrap_or((0, 0));
    let stored = copies.iter().any(|c| c.uid < mark(c.mailbox).1)
        || tombstones.iter().any(|t| t.uid < mark(t.mailbox).1);
    let gone = copies.is_empty() && tombstones.iter().all(|t| t.modseq <= mark(t.mailbox).0);
    stored && !gone
}

/// What changed since `since`: (created, updated, destroyed) Email ids, the state they bring the client
/// to, and whether more remain. `None`: cannot be worked out (the client resyncs).
///
/// The store's change logs are per mailbox and speak of copies; an Email is its copies together. So the
/// copies stored and expunged are gathered first, then each Email they belong to is judged at the old
/// state and at the new one (which, when `maxChanges` cuts the answer short, has read some mailboxes'
/// logs further than others): there at both, it was updated (a move is an expunged copy and a new one),
/// at the new state only created, at the old one only destroyed ([`present_at`]). Its copies and
/// tombstones are all read for that, wherever they are, so a move whose two halves fall on different
/// pages is never told as the creation of an Email the client already has, nor as its destruction.
pub async fn email_changes_since(
    ctx: &mut Ctx<'_>,
    since: &str,
    max: usize,
) -> Result<Option<(Vec<String>, Vec<String>, Vec<String>, String, bool)>, MethodError> {
    let Some(old) = decode(since) else {
        return Ok(None);
    };
    ctx.changed();
    let current = ctx.mailboxes().await?.to_vec();
    // A mailbox gone, or a mark no state of this server ever held (past the mailbox's modseq or
    // UIDNEXT: a change-log read trusts the mark's UIDNEXT to say where new mail begins).
    let possible = |(m, (modseq, next)): (&MailboxId, &(u64, u32))| {
        current
            .iter()
            .any(|c| c.id == *m && *modseq <= c.highest_modseq && *next <= c.uid_next)
    };
    if !old.iter().all(possible) {
        return Ok(None);
    }
    let mut touched: BTreeSet<ids::EmailId> = BTreeSet::new();
    let mut marks = Marks::new();
    let mut more = false;
    let mut read = 0;
    for mailbox in &current {
        let (old_modseq, old_next) = old.get(&mailbox.id).copied().unwrap_or((0, 0));
        if mailbox.highest_modseq <= old_modseq {
            marks.insert(mailbox.id, (old_modseq, old_next));
            continue;
        }
        let room = max.saturating_sub(read);
        if room == 0 {
            marks.insert(mailbox.id, (old_modseq, old_next));
            more = true;
            continue;
        }
        // The state's UIDNEXT was read with its modseq: no mail below it is new.
        let since = Since {
            modseq: old_modseq,
            stored_from: old_next,
        };
        let changes = ctx.store().changes_from(mailbox.id, since, room).await?;
        read += changes.messages.len() + changes.gone.len();
        let mut next = old_next;
        for m in &changes.messages {
            touched.insert(ids::EmailId { blob: m.blob });
            next = next.max(m.uid.saturating_add(1));
        }
        // The store gives a blob (or `None`) per tombstone; a list that does not pair up cannot say
        // which Emails lost copies, so the client resyncs rather than miss one.
        if changes.gone.len() != changes.gone_blobs.len() {
            tracing::error!(
                mailbox = mailbox.id,
                "a change log's tombstones and blobs differ in number"
            );
            return Ok(None);
        }
        for (&uid, blob) in changes.gone.iter().zip(&changes.gone_blobs) {
            // A tombstone from before they kept the blob cannot say which Email lost a copy.
            let Some(blob) = *blob else {
                return Ok(None);
            };
            touched.insert(ids::EmailId { blob });
            next = next.max(uid.saturating_add(1));
        }
        more |= changes.more;
        marks.insert(mailbox.id, (changes.through_modseq.max(old_modseq), next));
    }
    let emails: Vec<ids::EmailId> = touched.into_iter().collect();
    let copies = ctx.copies(&emails).await?;
    let tombstones = ctx.tombstones(&emails).await?;
    let (mut created, mut updated, mut destroyed) = (Vec::new(), Vec::new(), Vec::new());
    for email in emails {
        let now = copies.get(&email).map(Vec::as_slice).unwrap_or_default();
        let lost = tombstones
            .get(&email)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match (present_at(&old, now, lost), present_at(&marks, now, lost)) {
            // Made and destroyed since the state: the client never knew of it.
            (false, false) => {}
            (false, true) => created.push(email.to_string()),
            (true, true) => updated.push(email.to_string()),
            (true, false) => destroyed.push(email.to_string()),
        }
    }
    Ok(Some((created, updated, destroyed, encode(&marks), more)))
}

/// The `maxChanges` argument, within [`CHANGES_MAX`].
pub fn max_changes(args: &Map<String, Value>) -> Result<usize, MethodError> {
    match args.get("maxChanges") {
        None | Some(Value::Null) => Ok(CHANGES_MAX),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok((n as usize).min(CHANGES_MAX)),
            _ => Err(MethodError::invalid("maxChanges is a positive integer")),
        },
    }
}

pub async fn email_changes(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let since = super::since_state(&args)?;
    let max = max_changes(&args)?;
    let Some((created, updated, destroyed, new_state, more)) =
        email_changes_since(ctx, since, max).await?
    else {
        return Err(MethodError::new("cannotCalculateChanges"));
    };
    Ok(json!({
        "accountId": ctx.account_id(), "oldState": since, "newState": new_state,
        "hasMoreChanges": more, "created": created, "updated": updated, "destroyed": destroyed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back() {
        let marks: Marks = [(3, (10, 7)), (5, (0, 1)), (9, (2, 3))]
            .into_iter()
            .collect();
        let s = encode(&marks);
        assert_eq!(s, "v2:3.10.7,9.2.3");
        let back = decode(&s).unwrap();
        assert_eq!(back.get(&3), Some(&(10, 7)));
        assert_eq!(back.get(&5), None);
        assert_eq!(decode("v2:").unwrap().len(), 0);
        for bad in [
            "",
            "s",
            "s3.10.7",
            "x1.2.3",
            "v2:1.2",
            "v2:1.2.3.4",
            "v2:a.b.c",
        ] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }
}
