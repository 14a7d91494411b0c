//! The authenticated state's mailbox commands: LIST and LSUB, CREATE, DELETE, RENAME, SUBSCRIBE,
//! UNSUBSCRIBE, STATUS and APPEND, and the dispatch of every command that needs a login.

use jmail_proto::imap::imap_types::command::CommandBody;
use jmail_proto::imap::imap_types::extensions::binary::LiteralOrLiteral8;
use jmail_proto::imap::imap_types::flag::Flag;
use jmail_proto::imap::imap_types::mailbox::{ListMailbox, Mailbox};
use jmail_proto::imap::imap_types::status::StatusDataItemName;
use jmail_proto::imap::utf7;

use super::respond::{self, bad, no, ok};
use super::session::{Session, State};
use crate::driver::Outcome;
use crate::store::rules::SEPARATOR;
use crate::store::{Flags, MailboxInfo, NewMessage, Role, StoreError, flags};

/// A mailbox name as the client sent it, made the store's: UTF-8 from a rev2 client, modified UTF-7
/// decoded from a rev1 one. `None` when it is neither.
pub(super) fn mailbox_name(mailbox: &Mailbox<'_>, rev2: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".into()),
        Mailbox::Other(other) => wire_name(other.as_ref(), rev2),
    }
}

fn wire_name(bytes: &[u8], rev2: bool) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    if rev2 {
        Some(text.to_string())
    } else {
        utf7::decode(text).ok()
    }
}

/// Whether `name` matches a LIST pattern: `*` matches anything, `%` anything but the separator; INBOX
/// in any case.
fn matches_pattern(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| matches_pattern(rest, &name[i..])),
        Some(('%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != SEPARATOR)
            .any(|i| matches_pattern(rest, &name[i..])),
        Some((c, rest)) => name.first() == Some(c) && matches_pattern(rest, &name[1..]),
    }
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    let canon = |s: &str| -> Vec<char> {
        match (s.get(..5), s.get(5..)) {
            (Some(first), Some(rest))
                if first.eq_ignore_ascii_case("INBOX")
                    && (rest.is_empty() || rest.starts_with(SEPARATOR)) =>
            {
                format!("INBOX{rest}").chars().collect()
            }
            _ => s.chars().collect(),
        }
    };
    matches_pattern(&canon(pattern), &canon(name))
}

fn role_attribute(role: Option<Role>) -> Option<&'static str> {
    match role? {
        Role::Inbox => None,
        Role::Sent => Some("\\Sent"),
        Role::Drafts => Some("\\Drafts"),
        Role::Trash => Some("\\Trash"),
        Role::Junk => Some("\\Junk"),
        Role::Archive => Some("\\Archive"),
    }
}

impl Session {
    /// Commands that need a login, for both the authenticated and the selected state.
    pub(super) async fn on_mail_command(
        &mut self,
        tag: &str,
        body: CommandBody<'static>,
    ) -> Outcome {
        let rev2 = self.rev2;
        let name = |m: &Mailbox<'_>| mailbox_name(m, rev2);
        match body {
            CommandBody::Select {
                mailbox,
                parameters,
            } => match name(&mailbox) {
                Some(n) => self.select(tag, &n, false, parameters).await,
                None => self.bad_name(tag),
            },
            CommandBody::Examine {
                mailbox,
                parameters,
            } => match name(&mailbox) {
                Some(n) => self.select(tag, &n, true, parameters).await,
                None => self.bad_name(tag),
            },
            CommandBody::Create { mailbox } => match name(&mailbox) {
                Some(n) => self.create(tag, &n).await,
                None => self.bad_name(tag),
            },
            CommandBody::Delete { mailbox } => match name(&mailbox) {
                Some(n) => self.delete(tag, &n).await,
                None => self.bad_name(tag),
            },
            CommandBody::Rename { from, to } => match (name(&from), name(&to)) {
                (Some(f), Some(t)) => self.rename(tag, &f, &t).await,
                _ => self.bad_name(tag),
            },
            CommandBody::Subscribe { mailbox } => match name(&mailbox) {
                Some(n) => self.subscribe(tag, &n, true).await,
                None => self.bad_name(tag),
            },
            CommandBody::Unsubscribe { mailbox } => match name(&mailbox) {
                Some(n) => self.subscribe(tag, &n, false).await,
                None => self.bad_name(tag),
            },
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(tag, &reference, &mailbox_wildcard, false).await,
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(tag, &reference, &mailbox_wildcard, true).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => match name(&mailbox) {
                Some(n) => self.status(tag, &n, &item_names).await,
                None => self.bad_name(tag),
            },
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => match name(&mailbox) {
                Some(n) => {
                    let raw = match message {
                        LiteralOrLiteral8::Literal(l) => l.into_inner().into_owned(),
                        LiteralOrLiteral8::Literal8(l) => l.data.into_owned(),
                    };
                    let date = date.map(|d| d.as_ref().timestamp_micros());
                    self.append(tag, &n, &flags, date, raw).await
                }
                None => self.bad_name(tag),
            },
            body => self.on_selected_command(tag, body).await,
        }
    }

    fn bad_name(&mut self, tag: &str) -> Outcome {
        let text = if self.rev2 {
            "Mailbox name is not UTF-8"
        } else {
            "Mailbox name is not modified UTF-7 (RFC 3501 5.1.3)"
        };
        self.protocol_error(bad(tag, text))
    }

    fn user(&self) -> i64 {
        self.account.as_ref().map(|a| a.id).unwrap_or_default()
    }

    async fn create(&mut self, tag: &str, name: &str) -> Outcome {
        // A trailing separator only says the client means to put mailboxes under it (RFC 9051 §6.3.4).
        let name = name.strip_suffix(SEPARATOR).unwrap_or(name);
        match self.store.create_mailbox(self.user(), name).await {
            Ok(_) => Outcome::go_on(ok(tag, "CREATE completed")),
            Err(e) => Outcome::go_on(self.store_failure(tag, &e)),
        }
    }

    async fn delete(&mut self, tag: &str, name: &str) -> Outcome {
        let canonical = crate::store::rules::mailbox_name(name).unwrap_or_default();
        if canonical == "INBOX" {
            return Outcome::go_on(no(tag, Some("CANNOT"), "INBOX cannot be deleted"));
        }
        if let State::Selected(selected) = &self.state
            && selected.name == canonical
        {
            // Deleting the selected mailbox leaves it: nothing more can be done in it.
            self.state = State::Authenticated;
        }
        match self.store.delete_mailbox(self.user(), name).await {
            Ok(()) => Outcome::go_on(ok(tag, "DELETE completed")),
            Err(e) => Outcome::go_on(self.store_failure(tag, &e)),
        }
    }

    async fn rename(&mut self, tag: &str, from: &str, to: &str) -> Outcome {
        match self.store.rename_mailbox(self.user(), from, to).await {
            Ok(()) => Outcome::go_on(ok(tag, "RENAME completed")),
            Err(e) => Outcome::go_on(self.store_failure(tag, &e)),
        }
    }

    async fn subscribe(&mut self, tag: &str, name: &str, on: bool) -> Outcome {
        let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
        match self.store.subscribe(self.user(), name, on).await {
            Ok(()) => Outcome::go_on(ok(tag, &format!("{verb} completed"))),
            Err(e) => Outcome::go_on(self.store_failure(tag, &e)),
        }
    }

    /// LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9): every mailbox whose name matches the
    /// reference and pattern, with its child and special-use attributes.
    async fn list(
        &mut self,
        tag: &str,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Outcome {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match reference {
            Mailbox::Inbox => Some("INBOX".to_string()),
            Mailbox::Other(o) => wire_name(o.as_ref(), self.rev2),
        };
        let pattern_bytes: &[u8] = match pattern {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        let (Some(reference), Some(pattern)) = (reference, wire_name(pattern_bytes, self.rev2))
        else {
            return self.bad_name(tag);
        };
        let mut out = Vec::new();
        if pattern.is_empty() {
            // The hierarchy delimiter and root (RFC 9051 §6.3.9).
            out.extend_from_slice(format!("* {verb} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            out.extend(ok(tag, &format!("{verb} completed")));
            return Outcome::go_on(out);
        }
        let full = format!("{reference}{pattern}");
        let mailboxes = match self.store.mailboxes(self.user()).await {
            Ok(m) => m,
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let names: Vec<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
        let dialect = self.dialect();
        for mailbox in &mailboxes {
            if (lsub && !mailbox.subscribed) || !pattern_matches(&full, &mailbox.name) {
                continue;
            }
            let prefix = format!("{}{SEPARATOR}", mailbox.name);
            let children = names.iter().any(|n| n.starts_with(&prefix));
            let mut attributes = vec![if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            attributes.extend(role_attribute(mailbox.role));
            if self.rev2 && mailbox.subscribed && !lsub {
                attributes.push("\\Subscribed");
            }
            out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attributes.join(" ")).as_bytes());
            respond::mailbox_name(&mut out, &mailbox.name, dialect);
            out.extend_from_slice(b"\r\n");
        }
        out.extend(ok(tag, &format!("{verb} completed")));
        Outcome::go_on(out)
    }

    /// STATUS: counts from the mailbox's own row; DELETED needs its messages' flags.
    async fn status(&mut self, tag: &str, name: &str, items: &[StatusDataItemName]) -> Outcome {
        let info = match self.store.mailbox(self.user(), name).await {
            Ok(Some(info)) => info,
            Ok(None) => return Outcome::go_on(self.store_failure(tag, &StoreError::NoSuchMailbox)),
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let mut values = Vec::new();
        for item in items {
            let value = match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", info.messages),
                StatusDataItemName::Recent => "RECENT 0".to_string(),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", info.uid_next),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", info.uid_validity),
                StatusDataItemName::Unseen => format!("UNSEEN {}", info.unseen),
                StatusDataItemName::Size => format!("SIZE {}", info.bytes),
                StatusDataItemName::HighestModSeq => {
                    format!("HIGHESTMODSEQ {}", info.highest_modseq)
                }
                StatusDataItemName::Deleted | StatusDataItemName::DeletedStorage => {
                    match self.deleted_count(&info).await {
                        Ok((n, bytes)) if *item == StatusDataItemName::Deleted => {
                            let _ = bytes;
                            format!("DELETED {n}")
                        }
                        Ok((_, bytes)) => format!("DELETED-STORAGE {bytes}"),
                        Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
                    }
                }
            };
            values.push(value);
        }
        let mut out = b"* STATUS ".to_vec();
        respond::mailbox_name(&mut out, &info.name, self.dialect());
        out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        out.extend(ok(tag, "STATUS completed"));
        Outcome::go_on(out)
    }

    /// Messages flagged `\Deleted` and their bytes.
    async fn deleted_count(&self, info: &MailboxInfo) -> Result<(u64, u64), StoreError> {
        let snapshot = self.store.snapshot(info.id).await?;
        let deleted: Vec<u32> = snapshot
            .messages
            .iter()
            .filter(|(_, f)| f & flags::DELETED != 0)
            .map(|(uid, _)| *uid)
            .collect();
        let mut bytes = 0;
        for chunk in deleted.chunks(crate::store::MESSAGES_PER_CALL_MAX) {
            for (meta, _) in self.store.messages(info.id, chunk, false).await? {
                bytes += meta.size;
            }
        }
        Ok((deleted.len() as u64, bytes))
    }

    /// APPEND: the message stored with its flags and date; `[APPENDUID]` says where (UIDPLUS).
    async fn append(
        &mut self,
        tag: &str,
        name: &str,
        flag_list: &[Flag<'_>],
        date_micros: Option<i64>,
        raw: Vec<u8>,
    ) -> Outcome {
        let message_flags = match store_flags(flag_list) {
            Ok(f) => f,
            Err(text) => return self.protocol_error(bad(tag, text)),
        };
        if raw.is_empty() {
            return self.protocol_error(bad(tag, "An empty message cannot be appended"));
        }
        let info = match self.store.mailbox(self.user(), name).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                return Outcome::go_on(no(tag, Some("TRYCREATE"), "No such mailbox"));
            }
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let (from, subject, message_id, _) = crate::message::summarize(&raw);
        let date = date_micros.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        let message = NewMessage::new(raw, from, subject, message_id, date);
        let uid = match self.store.append(info.id, message, message_flags).await {
            Ok(uid) => uid,
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let mut out = Vec::new();
        if let Err(e) = self.sync(&mut out, true).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        let code = format!("APPENDUID {} {uid}", info.uid_validity);
        out.extend(respond::status(tag, "OK", Some(&code), "APPEND completed"));
        Outcome::go_on(out)
    }
}

/// A command's flag list as the store keeps flags. `\Recent` is ignored (it is the server's to set).
pub(super) fn store_flags(list: &[Flag<'_>]) -> Result<Flags, &'static str> {
    let mut out = Flags::default();
    for flag in list {
        match flag {
            Flag::Seen => out.system |= flags::SEEN,
            Flag::Answered => out.system |= flags::ANSWERED,
            Flag::Flagged => out.system |= flags::FLAGGED,
            Flag::Deleted => out.system |= flags::DELETED,
            Flag::Draft => out.system |= flags::DRAFT,
            Flag::Keyword(word) => {
                let word = word.as_ref();
                crate::store::rules::keyword(word).map_err(|_| "Not a valid keyword")?;
                out.keywords.push(word.to_string());
            }
            Flag::Extension(_) if flag.to_string().eq_ignore_ascii_case("\\Recent") => {}
            Flag::Extension(_) => return Err("Unknown system flag"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(pattern_matches("*", "a/b/c"));
        assert!(pattern_matches("%", "INBOX"));
        assert!(!pattern_matches("%", "a/b"));
        assert!(pattern_matches("a/%", "a/b"));
        assert!(!pattern_matches("a/%", "a/b/c"));
        assert!(pattern_matches("a/*", "a/b/c"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(pattern_matches("Inbox/%", "INBOX/x"));
        assert!(!pattern_matches("Sent", "sent"));
        assert!(pattern_matches("S%t", "Sent"));
        assert!(pattern_matches("Entw*", "Entwürfe"));
        assert!(!pattern_matches("Entwü", "Entwürfe"));
    }
}
