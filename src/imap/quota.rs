//! QUOTA (RFC 9208): one quota root per account, `""`, holding every mailbox, with STORAGE (in KiB) and
//! MESSAGE resources: the account's own limits from `jmail user quota`, or the server's defaults.
//! Quotas are set by the administrator, so SETQUOTA is refused.

use jmail_proto::imap::imap_types::core::AString;
use jmail_proto::imap::imap_types::mailbox::Mailbox;

use super::mailboxes::mailbox_name;
use super::respond::{self, no, ok};
use super::session::Session;
use crate::driver::Outcome;
use crate::store::StoreError;

impl Session {
    /// `* QUOTA "" (...)`: the resources that have a limit, each with its usage.
    async fn quota_line(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let (usage, quota) = self
            .store
            .usage(self.user())
            .await?
            .ok_or(StoreError::NoSuchMailbox)?;
        let mut resources = Vec::new();
        if let Some(bytes) = quota.bytes {
            resources.push(format!(
                "STORAGE {} {}",
                usage.bytes.div_ceil(1024),
                bytes / 1024
            ));
        }
        if let Some(messages) = quota.messages {
            resources.push(format!("MESSAGE {} {messages}", usage.messages));
        }
        out.extend_from_slice(format!("* QUOTA \"\" ({})\r\n", resources.join(" ")).as_bytes());
        Ok(())
    }

    pub(super) async fn get_quota_root(&mut self, tag: &str, mailbox: &Mailbox<'_>) -> Outcome {
        let Some(name) = mailbox_name(mailbox, self.utf8()) else {
            return self.bad_name(tag);
        };
        let info = match self.store.mailbox(self.user(), &name).await {
            Ok(Some(info)) => info,
            Ok(None) => return Outcome::go_on(no(tag, Some("NONEXISTENT"), "No such mailbox")),
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let mut out = b"* QUOTAROOT ".to_vec();
        respond::mailbox_name(&mut out, &info.name, self.dialect());
        out.extend_from_slice(b" \"\"\r\n");
        if let Err(e) = self.quota_line(&mut out).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(ok(tag, "GETQUOTAROOT completed"));
        Outcome::go_on(out)
    }

    pub(super) async fn get_quota(&mut self, tag: &str, root: &AString<'_>) -> Outcome {
        let root: &[u8] = root.as_ref();
        if !root.is_empty() {
            return Outcome::go_on(no(tag, Some("NONEXISTENT"), "No such quota root"));
        }
        let mut out = Vec::new();
        if let Err(e) = self.quota_line(&mut out).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(ok(tag, "GETQUOTA completed"));
        Outcome::go_on(out)
    }
}
