//! The authenticated state's mailbox commands: LIST and LSUB, CREATE, DELETE, RENAME, SUBSCRIBE,
//! UNSUBSCRIBE, STATUS and APPEND, and the dispatch of every command that needs a login.

use jmail_proto::imap::imap_types::command::CommandBody;
use jmail_proto::imap::imap_types::extensions::binary::LiteralOrLiteral8;
use jmail_proto::imap::imap_types::flag::Flag;
use jmail_proto::imap::imap_types::mailbox::Mailbox;
use jmail_proto::imap::imap_types::status::StatusDataItemName;
use jmail_proto::imap::utf7;

use super::list::ListRequest;
use super::respond::{self, bad, no, ok};
use super::session::{Session, State};
use crate::driver::Outcome;
use crate::store::rules::SEPARATOR;
use crate::store::{Flags, MailboxInfo, NewMessage, StoreError, Wanted, flags};

/// A mailbox name as the client sent it, made the store's: UTF-8 from a client that enabled IMAP4rev2
/// or UTF8=ACCEPT, modified UTF-7 decoded from any other. `None` when it is neither.
pub(super) fn mailbox_name(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".into()),
        Mailbox::Other(other) => wire_name(other.as_ref(), utf8),
    }
}

pub(super) fn wire_name(bytes: &[u8], utf8: bool) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    if utf8 {
        Some(text.to_string())
    } else {
        utf7::decode(text).ok()
    }
}

impl Session {
    /// Commands that need a login, for both the authenticated and the selected state.
    pub(super) async fn on_mail_command(
        &mut self,
        tag: &str,
        body: CommandBody<'static>,
    ) -> Outcome {
        let utf8 = self.utf8();
        let name = |m: &Mailbox<'_>| mailbox_name(m, utf8);
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
            } => {
                let request = ListRequest::plain(&reference, &mailbox_wildcard, false);
                self.list(tag, request).await
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                let request = ListRequest::plain(&reference, &mailbox_wildcard, true);
                self.list(tag, request).await
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => match name(&mailbox) {
                // The grammar asks for at least one item (RFC 9051 §9, `status-att`).
                Some(_) if item_names.is_empty() => {
                    self.protocol_error(bad(tag, "Empty STATUS item list"))
                }
                Some(n) => {
                    let items: Vec<StatusItem> = item_names.iter().map(StatusItem::from).collect();
                    self.status(tag, &n, &items).await
                }
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
                    let date = date.map(|d| {
                        let d = d.as_ref();
                        (d.timestamp_micros(), d.offset().local_minus_utc() / 60)
                    });
                    self.append(tag, &n, &flags, date, raw).await
                }
                None => self.bad_name(tag),
            },
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(tag, &mailbox).await,
            CommandBody::GetQuota { root } => self.get_quota(tag, &root).await,
            CommandBody::SetQuota { .. } => Outcome::go_on(no(
                tag,
                Some("NOPERM"),
                "Quotas are set by the administrator (jmail user quota)",
            )),
            body => self.on_selected_command(tag, body).await,
        }
    }

    /// A name that is a valid string but no mailbox name: NO, as for any name that cannot be used (the
    /// command's syntax was right).
    pub(super) fn bad_name(&mut self, tag: &str) -> Outcome {
        let text = if self.utf8() {
            "Mailbox name is not UTF-8"
        } else {
            "Mailbox name is not modified UTF-7 (RFC 3501 5.1.3)"
        };
        Outcome::go_on(no(tag, None, text))
    }

    pub(super) fn user(&self) -> i64 {
        self.account.as_ref().map(|a| a.id).unwrap_or_default()
    }

    async fn create(&mut self, tag: &str, name: &str) -> Outcome {
        // A trailing separator only says the client means to put mailboxes under it (RFC 9051 §6.3.4).
        let name = name.strip_suffix(SEPARATOR).unwrap_or(name);
        // Not subscribed: an IMAP client subscribes to what it wants listed (RFC 9051 §6.3.7), and one
        // that does not expects LSUB to stay as it was (Dovecot and Cyrus do the same).
        match self.store.create_mailbox(self.user(), name, false).await {
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

    /// STATUS: counts from the mailbox's own row; DELETED needs its messages' flags.
    pub(super) async fn status(&mut self, tag: &str, name: &str, items: &[StatusItem]) -> Outcome {
        let info = match self.store.mailbox(self.user(), name).await {
            Ok(Some(info)) => info,
            Ok(None) => return Outcome::go_on(self.store_failure(tag, &StoreError::NoSuchMailbox)),
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        // Asking for HIGHESTMODSEQ enables CONDSTORE (RFC 7162 §3.1).
        let mut out = match items.contains(&StatusItem::HighestModSeq) {
            true => self.enable_condstore(),
            false => Vec::new(),
        };
        if let Err(e) = self.status_line(&mut out, &info, items).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(ok(tag, "STATUS completed"));
        Outcome::go_on(out)
    }

    /// `* STATUS name (items)` for one mailbox (STATUS, and LIST's RETURN (STATUS)).
    pub(super) async fn status_line(
        &self,
        out: &mut Vec<u8>,
        info: &MailboxInfo,
        items: &[StatusItem],
    ) -> Result<(), StoreError> {
        let mut values = Vec::new();
        for item in items {
            values.push(match item {
                StatusItem::Messages => format!("MESSAGES {}", info.messages),
                StatusItem::Recent => {
                    format!("RECENT {}", self.store.recent_count(info.id).await?)
                }
                StatusItem::UidNext => format!("UIDNEXT {}", info.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", info.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", info.unseen),
                StatusItem::Size => format!("SIZE {}", info.bytes),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", info.highest_modseq),
                StatusItem::AppendLimit => {
                    format!("APPENDLIMIT {}", self.config.limits.message_bytes_max)
                }
                StatusItem::Deleted => format!("DELETED {}", self.deleted_count(info).await?.0),
                StatusItem::DeletedStorage => {
                    format!("DELETED-STORAGE {}", self.deleted_count(info).await?.1)
                }
            });
        }
        out.extend_from_slice(b"* STATUS ");
        respond::mailbox_name(out, &info.name, self.dialect());
        out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        Ok(())
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
            for listed in self
                .store
                .messages(info.id, chunk, Wanted::default())
                .await?
            {
                bytes += listed.meta.size;
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
        date: Option<(i64, i32)>,
        raw: Vec<u8>,
    ) -> Outcome {
        let message_flags = match store_flags(flag_list) {
            Ok(f) => f,
            Err(text) => return self.protocol_error(bad(tag, text)),
        };
        if raw.is_empty() {
            return Outcome::go_on(no(tag, None, "An empty message cannot be appended"));
        }
        let info = match self.store.mailbox(self.user(), name).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                return Outcome::go_on(no(tag, Some("TRYCREATE"), "No such mailbox"));
            }
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let (from, subject, message_id, _) = crate::message::summarize(&raw);
        // The date and zone given, else now in UTC.
        let (micros, zone) = date.unwrap_or_else(|| (chrono::Utc::now().timestamp_micros(), 0));
        let mut message = NewMessage::new(raw, from, subject, message_id, micros);
        message.internal_zone_minutes = zone;
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

/// A STATUS item (RFC 9051 §6.3.11, RFC 7889's APPENDLIMIT, RFC 8438's SIZE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    DeletedStorage,
    Size,
    HighestModSeq,
    AppendLimit,
}

impl From<&StatusDataItemName> for StatusItem {
    fn from(name: &StatusDataItemName) -> StatusItem {
        match name {
            StatusDataItemName::Messages => StatusItem::Messages,
            StatusDataItemName::Recent => StatusItem::Recent,
            StatusDataItemName::UidNext => StatusItem::UidNext,
            StatusDataItemName::UidValidity => StatusItem::UidValidity,
            StatusDataItemName::Unseen => StatusItem::Unseen,
            StatusDataItemName::Deleted => StatusItem::Deleted,
            StatusDataItemName::DeletedStorage => StatusItem::DeletedStorage,
            StatusDataItemName::Size => StatusItem::Size,
            StatusDataItemName::HighestModSeq => StatusItem::HighestModSeq,
        }
    }
}

impl StatusItem {
    /// An item by its name (upper case), as the extended forms carry them.
    pub(super) fn named(name: &str) -> Option<StatusItem> {
        Some(match name {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "DELETED-STORAGE" => StatusItem::DeletedStorage,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "APPENDLIMIT" => StatusItem::AppendLimit,
            _ => return None,
        })
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
