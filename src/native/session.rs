//! The native protocol's session: a state machine from (state, decoded event) to reply bytes and an action.
//! It never touches sockets or SQL: it calls the [`MailStore`] trait and returns bytes for the connection.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jmail_proto::native::reply::{Folder, Summary, folder_line, summary_line};
use jmail_proto::native::{Command, Event, VERSION_MAJOR, VERSION_MINOR};

use crate::auth::normalize_name;
use crate::config::Config;
use crate::driver::Outcome;
use crate::message::{NativeSend, build_native};
use crate::reply_stream::{ReplyStream, STREAM_BYTES_MIN, Shape};
use crate::store::{
    Account, Delivery, FlagOp, Flags, MailStore, MailboxId, MailboxWatch, MessageMeta, Outbound,
    Since, StoreError, flags,
};
use crate::throttle::{LoginResult, LoginThrottle, login};

enum State {
    /// Connected; waiting for `JMAIL <version>`.
    Greeted,
    /// Version agreed; waiting for LOGIN.
    Unauthenticated,
    LoggedIn(Account),
    /// Pushing changes after `since` until DONE. `more` is set while changes older than the latest wake-up
    /// are still to be pushed: they go out one batch per turn, so no reply grows past `list_batch_max`.
    Watching {
        account: Account,
        since: Since,
        more: bool,
        watch: MailboxWatch,
    },
}

/// One client's native-protocol session.
pub struct Session {
    store: Arc<dyn MailStore>,
    config: Arc<Config>,
    /// The server's failed-login bookkeeping, shared by every session of every protocol.
    throttle: Arc<LoginThrottle>,
    peer: SocketAddr,
    state: State,
    errors: u32,
    login_failures: u32,
    /// The connection is encrypted (the native TLS port, or after STARTTLS).
    tls: bool,
    /// The minor version agreed with the client: commands of later minors are unknown to it.
    minor: u32,
    /// The folder LIST, READ, MARK, DELETE, COPY, MOVE and WATCH work on: INBOX until SELECT.
    folder: MailboxId,
    /// DKIM signing and the sending limit for mail to other domains; without it, such mail is refused.
    mailer: Option<Arc<crate::outbound::Mailer>>,
}

fn line(status: &str, code: &str, text: &str) -> Vec<u8> {
    if code.is_empty() {
        format!("{status} {text}\r\n").into_bytes()
    } else {
        format!("{status} {code} {text}\r\n").into_bytes()
    }
}

/// The reply for a store failure. Internal error text goes to the log, never to the peer.
fn store_failure(err: &StoreError, peer: SocketAddr) -> Vec<u8> {
    match err {
        StoreError::Closed => line("NO", "TRYLATER", "server is shutting down; try again"),
        StoreError::NoSuchMailbox => line("NO", "NOFOLDER", "no such folder"),
        StoreError::MailboxExists => line("NO", "EXISTS", "a folder of that name exists"),
        StoreError::BadMailboxName(why) => line("NO", "BADNAME", why),
        StoreError::MailboxRefused(why) => line("NO", "REFUSED", why),
        StoreError::TooManyMailboxes(_) | StoreError::TooManyKeywords(_) => {
            line("NO", "LIMIT", &err.to_string())
        }
        StoreError::OverQuota(name) => line(
            "NO",
            "OVERQUOTA",
            &format!("{name}'s mailbox is full; nothing was stored"),
        ),
        StoreError::LowOnDisk => line(
            "NO",
            "TRYLATER",
            "the server's disk is nearly full; nothing was stored; try again later",
        ),
        other => {
            tracing::error!(%peer, error = %other, "store operation failed");
            line(
                "NO",
                "TRYLATER",
                "temporary server error; nothing was changed",
            )
        }
    }
}

impl Session {
    pub fn new(
        store: Arc<dyn MailStore>,
        config: Arc<Config>,
        throttle: Arc<LoginThrottle>,
        peer: SocketAddr,
        tls: bool,
    ) -> Self {
        Session {
            store,
            config,
            throttle,
            peer,
            state: State::Greeted,
            errors: 0,
            login_failures: 0,
            tls,
            minor: 0,
            folder: 0,
            mailer: None,
        }
    }

    pub fn with_mailer(mut self, mailer: Arc<crate::outbound::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// After the TLS handshake that STARTTLS began.
    pub fn on_tls_started(&mut self) {
        self.tls = true;
    }

    /// How long the client may stay silent in the current state.
    pub fn idle_timeout(&self) -> Duration {
        let l = &self.config.limits;
        Duration::from_secs(match self.state {
            State::Greeted | State::Unauthenticated => l.idle_secs_unauth,
            State::LoggedIn(_) => l.idle_secs_auth,
            State::Watching { .. } => l.idle_secs_watch,
        })
    }

    /// Largest SEND body the decoder should accept now: none before login.
    pub fn literal_bytes_max(&self) -> Option<usize> {
        matches!(self.state, State::LoggedIn(_) | State::Watching { .. })
            .then_some(self.config.limits.message_bytes_max)
    }

    pub fn on_timeout(&self) -> Vec<u8> {
        line("BYE", "TIMEOUT", "idle too long")
    }

    /// The server holds as much arriving mail as it may; the SEND being received was not sent.
    pub fn on_overload(&self) -> Vec<u8> {
        line(
            "BYE",
            "TRYLATER",
            "server is receiving too much mail at once; nothing was sent; try again",
        )
    }

    pub fn on_shutdown(&self) -> Vec<u8> {
        line("BYE", "SHUTDOWN", "server is shutting down")
    }

    /// Resolves when there are changes to push: at once while a catch-up is unfinished, else when the
    /// watched mailbox changes; never while not watching.
    pub async fn changed(&mut self) {
        match &mut self.state {
            State::Watching { more: true, .. } => {}
            State::Watching { watch, .. } => watch.changed().await,
            _ => std::future::pending().await,
        }
    }

    /// `BYE` when the logged-in account was deleted or its password changed since the login (checked
    /// before every command and push); `None` while the login stands or before one.
    async fn revoked(&self) -> Option<Outcome> {
        let account = match &self.state {
            State::LoggedIn(account) | State::Watching { account, .. } => account,
            _ => return None,
        };
        match crate::accounts::still_valid(self.store.as_ref(), account).await {
            Ok(true) => None,
            Ok(false) => {
                tracing::info!(peer = %self.peer, user = %account.name, "session ended: account deleted or password changed");
                let text = "the account was deleted or its password changed; log in again";
                Some(Outcome::close(line("BYE", "REVOKED", text)))
            }
            Err(e) => Some(Outcome::go_on(store_failure(&e, self.peer))),
        }
    }

    /// The change lines to push after [`Session::changed`] fired.
    pub async fn on_change(&mut self) -> Outcome {
        if let Some(revoked) = self.revoked().await {
            return revoked;
        }
        let State::Watching { since, .. } = &self.state else {
            return Outcome::go_on(Vec::new());
        };
        let from = *since;
        let mut out = Vec::new();
        match self.write_changes(self.folder, from, &mut out).await {
            Ok((through, pending)) => {
                if let State::Watching { since, more, .. } = &mut self.state {
                    *since = through;
                    *more = pending;
                }
                Outcome::go_on(out)
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "pushing changes failed");
                Outcome::close([out, line("BYE", "TRYLATER", "temporary server error")].concat())
            }
        }
    }

    /// Handles one decoder event.
    pub async fn on_event(&mut self, event: Event) -> Outcome {
        match event {
            Event::Command(command) => self.on_command(command).await,
            Event::LiteralWanted(len) => Outcome::go_on(format!("+ send {len} bytes\r\n")),
            Event::Bad(err) => self.protocol_error(line("BAD", err.code(), &err.to_string())),
            Event::Fatal(err) => Outcome::close(line("BYE", err.code(), &err.to_string())),
        }
    }

    /// Counts a protocol error; too many close the connection.
    fn protocol_error(&mut self, reply: Vec<u8>) -> Outcome {
        self.errors += 1;
        if self.errors >= self.config.limits.bad_commands_max {
            let bye = line("BYE", "TOOMANYERRORS", "too many bad commands");
            return Outcome::close([reply, bye].concat());
        }
        Outcome::go_on(reply)
    }

    fn wrong_state(&mut self, hint: &str) -> Outcome {
        self.protocol_error(line("BAD", "STATE", hint))
    }

    async fn on_command(&mut self, command: Command) -> Outcome {
        if let Some(revoked) = self.revoked().await {
            return revoked;
        }
        match (&self.state, command) {
            (_, command) if command.since_minor() > self.minor => {
                let err = jmail_proto::native::DecodeError::UnknownCommand;
                self.protocol_error(line("BAD", err.code(), &err.to_string()))
            }
            (_, Command::Logout) => Outcome::close(line("BYE", "LOGOUT", "goodbye")),
            (State::Greeted, Command::Hello { major, minor }) => self.hello(major, minor),
            (State::Greeted, _) => {
                let hint = format!("say \"JMAIL {VERSION_MAJOR}.{VERSION_MINOR}\" first");
                self.wrong_state(&hint)
            }
            (_, Command::Hello { .. }) => self.wrong_state("version already agreed"),
            (State::Watching { .. }, Command::Done) => self.done(),
            (State::Watching { .. }, _) => self.wrong_state("only DONE or LOGOUT while watching"),
            (_, Command::Noop) => Outcome::go_on(line("OK", "", "NOOP")),
            (_, Command::Capa) => Outcome::go_on(self.capa()),
            (State::Unauthenticated, Command::StartTls) if !self.tls => {
                Outcome::start_tls(line("OK", "", "STARTTLS begin TLS negotiation now"))
            }
            (_, Command::StartTls) => self.wrong_state("STARTTLS only before LOGIN, without TLS"),
            (State::Unauthenticated, Command::Login { .. })
                if !crate::conn::plaintext_auth_allowed(
                    self.peer.ip(),
                    self.tls,
                    self.config.allow_plaintext_auth,
                ) =>
            {
                let text = "TLS is required to log in from your address; use STARTTLS first";
                Outcome::go_on(line("NO", "PRIVACY", text))
            }
            (State::Unauthenticated, Command::Login { user, password }) => {
                self.login(&user, password).await
            }
            (State::LoggedIn(_), Command::Login { .. }) => self.wrong_state("already logged in"),
            (State::Unauthenticated, _) => self.wrong_state("log in first"),
            (State::LoggedIn(account), command) => {
                let account = account.clone();
                self.logged_in(account, command).await
            }
        }
    }

    fn hello(&mut self, major: u32, minor: u32) -> Outcome {
        if major != VERSION_MAJOR {
            let text =
                format!("this server speaks {VERSION_MAJOR}.x; your client speaks {major}.{minor}");
            return Outcome::close(line("BYE", "VERSION", &text));
        }
        self.state = State::Unauthenticated;
        self.minor = minor.min(VERSION_MINOR);
        let text = format!(
            "JMAIL {VERSION_MAJOR}.{} jmail/{} ready",
            self.minor,
            env!("CARGO_PKG_VERSION")
        );
        Outcome::go_on(line("OK", "", &text))
    }

    fn capa(&self) -> Vec<u8> {
        let l = &self.config.limits;
        let mut out = String::new();
        let _ = write!(
            out,
            "* CAPA VERSION {VERSION_MAJOR}.{}\r\n* CAPA LITERAL+\r\n* CAPA WATCH\r\n{}\
             * CAPA MESSAGE-BYTES-MAX {}\r\n* CAPA RECIPIENTS-MAX {}\r\n* CAPA LINE-BYTES-MAX {}\r\n\
             * CAPA LIST-BATCH-MAX {}\r\n* CAPA DOMAIN {}\r\n{}OK CAPA\r\n",
            self.minor,
            if self.minor >= 1 {
                "* CAPA FOLDERS\r\n"
            } else {
                ""
            },
            l.message_bytes_max,
            l.recipients_max,
            l.line_bytes_max,
            l.list_batch_max,
            self.config.primary_domain(),
            if self.tls { "" } else { "* CAPA STARTTLS\r\n" },
        );
        out.into_bytes()
    }

    async fn login(&mut self, user: &str, password: String) -> Outcome {
        let ip = self.peer.ip();
        match login(
            self.store.as_ref(),
            &self.config,
            &self.throttle,
            ip,
            user,
            &password,
        )
        .await
        {
            LoginResult::Ok(account) => {
                tracing::info!(peer = %self.peer, user = %account.name, "native login");
                self.folder = account.inbox;
                self.state = State::LoggedIn(account);
                Outcome::go_on(line("OK", "", "LOGIN welcome"))
            }
            LoginResult::Blocked => Outcome::close(line(
                "BYE",
                "AUTH",
                "too many failed logins; try again later",
            )),
            LoginResult::Failed => {
                self.login_failures += 1;
                tracing::info!(peer = %self.peer, "native login failed");
                let reply = line("NO", "AUTH", "invalid user name or password");
                if self.login_failures >= self.config.limits.login_failures_max {
                    let bye = line("BYE", "AUTH", "too many failed logins");
                    return Outcome::close([reply, bye].concat());
                }
                Outcome::go_on(reply)
            }
            LoginResult::Unavailable(e) => Outcome::go_on(store_failure(&e, self.peer)),
        }
    }

    async fn logged_in(&mut self, account: Account, command: Command) -> Outcome {
        let peer = self.peer;
        let folder = self.folder;
        let not_found = |id: u32| line("NO", "NOTFOUND", &format!("no message {id}"));
        let reply = match command {
            Command::Send {
                recipients,
                subject,
                keep_sent,
                body,
            } => Ok(self
                .send(&account, &recipients, &subject, &body, keep_sent)
                .await),
            Command::List { since } => {
                let mut out = Vec::new();
                self.list(folder, since, &mut out).await.map(|_| out)
            }
            Command::Read { id } => match self.read(id).await {
                Ok(Some(outcome)) => return outcome,
                Ok(None) => Ok(not_found(id)),
                Err(e) => Err(e),
            },
            Command::Mark { id, seen } => {
                let op = if seen { FlagOp::Add } else { FlagOp::Remove };
                let seen_flag = Flags::system(flags::SEEN);
                match self
                    .store
                    .update_flags(folder, &[id], op, seen_flag, None)
                    .await
                {
                    Ok(u) if u.changed.is_empty() && u.unchanged.is_empty() => Ok(not_found(id)),
                    Ok(_) => Ok(line("OK", "", "MARK")),
                    Err(e) => Err(e),
                }
            }
            Command::Delete { id } => match self.store.expunge(folder, Some(&[id]), false).await {
                Ok(gone) if gone.is_empty() => Ok(not_found(id)),
                Ok(_) => Ok(line("OK", "", "DELETE")),
                Err(e) => Err(e),
            },
            Command::Watch { since } => return self.watch(account, since).await,
            Command::Done => return self.wrong_state("DONE ends WATCH; not watching"),
            Command::Folders => self.folders(&account).await,
            Command::Select { folder } => match self.store.mailbox(account.id, &folder).await {
                Ok(Some(m)) => {
                    self.folder = m.id;
                    let text = format!("SELECT {} {}", m.uid_validity, m.highest_modseq);
                    Ok(line("OK", "", &text))
                }
                Ok(None) => Err(StoreError::NoSuchMailbox),
                Err(e) => Err(e),
            },
            Command::Create { folder } => {
                (self.store.create_mailbox(account.id, &folder, true).await)
                    .map(|_| line("OK", "", "CREATE"))
            }
            Command::Rename { from, to } => {
                (self.store.rename_mailbox(account.id, &from, &to).await)
                    .map(|()| line("OK", "", "RENAME"))
            }
            Command::Remove { folder: name } => {
                // The folder in use cannot go from under this session: LIST and the rest would fail.
                // (INBOX is refused by the store, in its own words.)
                match self.store.mailbox(account.id, &name).await {
                    Ok(Some(m)) if m.id == self.folder && m.id != account.inbox => Ok(line(
                        "NO",
                        "REFUSED",
                        "the selected folder cannot be removed; SELECT another first",
                    )),
                    Ok(_) => (self.store.delete_mailbox(account.id, &name).await)
                        .map(|()| line("OK", "", "REMOVE")),
                    Err(e) => Err(e),
                }
            }
            Command::Copy { id, folder: to } => self.copy(&account, id, &to, false).await,
            Command::Move { id, folder: to } => self.copy(&account, id, &to, true).await,
            Command::Hello { .. }
            | Command::Login { .. }
            | Command::Noop
            | Command::Capa
            | Command::StartTls
            | Command::Logout => unreachable!("handled before the logged-in state"),
        };
        Outcome::go_on(reply.unwrap_or_else(|e| store_failure(&e, peer)))
    }

    /// READ: marks the message seen, then sends it; a large one streams from the store piece by piece.
    async fn read(&self, id: u32) -> Result<Option<Outcome>, StoreError> {
        const TRAILER: &[u8] = b"\r\nOK READ\r\n";
        let Some(body) = self.store.body_ref(self.folder, id).await? else {
            return Ok(None);
        };
        let head = format!("* MESSAGE {id} {{{}}}\r\n", body.len).into_bytes();
        if body.len >= STREAM_BYTES_MIN {
            let seen = Flags::system(flags::SEEN);
            (self.store)
                .update_flags(self.folder, &[id], FlagOp::Add, seen, None)
                .await?;
            let stream =
                ReplyStream::new(self.store.clone(), body, Shape::AsStored, TRAILER.into());
            return Ok(Some(Outcome::streaming(head, stream)));
        }
        let Some(raw) = self.store.fetch(self.folder, id, true).await? else {
            return Ok(None);
        };
        // Sizes agree unless the message was replaced between the two reads (it never is: stored bytes
        // do not change); the literal is announced from the bytes sent.
        let mut out = format!("* MESSAGE {id} {{{}}}\r\n", raw.len()).into_bytes();
        out.extend_from_slice(&raw);
        out.extend_from_slice(TRAILER);
        Ok(Some(Outcome::go_on(out)))
    }

    /// FOLDERS: `* FOLDER <name> <role|-> <messages> <unseen> <bytes>` for each, by name.
    async fn folders(&self, account: &Account) -> Result<Vec<u8>, StoreError> {
        let mailboxes = self.store.mailboxes(account.id).await?;
        let mut out = Vec::new();
        for m in &mailboxes {
            let row = folder_line(&Folder {
                name: m.name.clone(),
                role: m.role.map(|r| r.as_str().to_string()),
                messages: m.messages,
                unseen: m.unseen,
                bytes: m.bytes,
            });
            out.extend_from_slice(row.as_bytes());
        }
        out.extend_from_slice(format!("OK FOLDERS {}\r\n", mailboxes.len()).as_bytes());
        Ok(out)
    }

    /// COPY and MOVE of one message into another folder: `OK COPY <new-id>`.
    async fn copy(
        &self,
        account: &Account,
        id: u32,
        to: &str,
        remove_source: bool,
    ) -> Result<Vec<u8>, StoreError> {
        let dest = self
            .store
            .mailbox(account.id, to)
            .await?
            .ok_or(StoreError::NoSuchMailbox)?;
        let map = (self.store)
            .copy(account.id, self.folder, &[id], dest.id, remove_source)
            .await?;
        let word = if remove_source { "MOVE" } else { "COPY" };
        Ok(match map.uids.first() {
            Some((_, new)) => line("OK", "", &format!("{word} {new}")),
            None => line("NO", "NOTFOUND", &format!("no message {id}")),
        })
    }

    /// Sorts recipients: local user names (`bob` or `bob@<one of our domains>`), the To addresses, and
    /// the addresses at other domains.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        recipients: &[String],
    ) -> Result<(Vec<String>, Vec<String>, Vec<String>), Vec<u8>> {
        let domain = self.config.primary_domain();
        let mut names = Vec::with_capacity(recipients.len());
        let mut addresses = Vec::with_capacity(recipients.len());
        let mut remote: Vec<String> = Vec::new();
        for rcpt in recipients {
            let Some(local) = self.config.local_part(rcpt) else {
                if self.mailer.is_none() {
                    let text = format!("{rcpt}: mail to other domains is not delivered here");
                    return Err(line("NO", "REMOTE", &text));
                }
                if !crate::outbound::plausible_address(rcpt, self.config.outbound_private_addresses)
                {
                    let text = format!("{rcpt}: not a deliverable address; nothing was sent");
                    return Err(line("NO", "NOUSER", &text));
                }
                if !remote.iter().any(|r| r.eq_ignore_ascii_case(rcpt)) {
                    addresses.push(rcpt.clone());
                    remote.push(rcpt.clone());
                }
                continue;
            };
            let Ok(name) = normalize_name(local) else {
                let text = format!("no such user: {rcpt}; nothing was sent");
                return Err(line("NO", "NOUSER", &text));
            };
            if !names.contains(&name) {
                addresses.push(format!("{name}@{domain}"));
                names.push(name);
            }
        }
        Ok((names, addresses, remote))
    }

    async fn send(
        &self,
        account: &Account,
        recipients: &[String],
        subject: &str,
        body: &[u8],
        keep_sent: bool,
    ) -> Vec<u8> {
        let (names, addresses, remote) = match self.resolve(recipients) {
            Ok(resolved) => resolved,
            Err(reply) => return reply,
        };
        let domain = self.config.primary_domain();
        let from = format!("{}@{domain}", account.name);
        let mut message = build_native(&NativeSend {
            from: &from,
            date_micros: None,
            message_id: None,
            from_name: None,
            to: &addresses,
            subject,
            body,
            domain,
        });
        let message_id = message.message_id.clone().unwrap_or_default();
        let outbound = match (&self.mailer, remote.is_empty()) {
            (Some(mailer), false) => {
                if !mailer.limiter.admit(account.id, remote.len() as u64) {
                    tracing::warn!(user = %account.name, peer = %self.peer, "hourly sending limit reached; message refused");
                    return line(
                        "NO",
                        "TRYLATER",
                        "you have sent as much mail to other domains as an hour allows; nothing was sent",
                    );
                }
                if let Err(e) = crate::outbound::sign(mailer, domain, &mut message).await {
                    tracing::warn!(error = %e, "DKIM signing failed; nothing stored");
                    return line("NO", "TRYLATER", "temporary failure; nothing was sent");
                }
                Some(Outbound {
                    user: Some(account.id),
                    sender: from.clone(),
                    domains: crate::outbound::by_domain(&remote),
                    dsn: None,
                })
            }
            _ => None,
        };
        // With KEEP, the sender keeps a copy in their Sent folder, in the same transaction.
        let sent_copy = keep_sent.then_some(account.id);
        // Recipients who are away answer a logged-in sender as they answer SMTP and JMAP mail.
        let head = crate::vacation::head_of(&message.raw);
        let local = names.clone();
        let delivery = Delivery {
            local: names,
            message,
            sent_copy_of: sent_copy,
            junk: false,
            outbound,
        };
        match self.store.submit(delivery).await {
            Ok(delivered) => {
                let count = delivered.len() + remote.len();
                tracing::debug!(peer = %self.peer, from = %account.name, count, "native send");
                let received = crate::vacation::Received {
                    sender: &from,
                    message: &head,
                    sender_proven: true,
                };
                let (store, mailer) = (self.store.as_ref(), self.mailer.as_ref());
                crate::vacation::answer_named(store, mailer, &self.config, &local, &received).await;
                line("OK", "", &format!("SENT {count} <{message_id}>"))
            }
            Err(StoreError::UnknownRecipient(name)) => line(
                "NO",
                "NOUSER",
                &format!("no such user: {name}; nothing was sent"),
            ),
            Err(e) => store_failure(&e, self.peer),
        }
    }

    async fn watch(&mut self, account: Account, since: u64) -> Outcome {
        // Subscribe before reading, so a change between the read and the subscription is not missed.
        let watch = MailboxWatch::new(self.store.feed(account.id), self.folder);
        let mut out = b"+ WATCHING send DONE to stop\r\n".to_vec();
        let start = if since == 0 {
            match self.store.changes(self.folder, i64::MAX as u64, 1).await {
                Ok(c) => (c.next(), false),
                Err(e) => return Outcome::go_on(store_failure(&e, self.peer)),
            }
        } else {
            match self
                .write_changes(self.folder, Since::modseq(since), &mut out)
                .await
            {
                Ok(start) => start,
                Err(e) => return Outcome::go_on(store_failure(&e, self.peer)),
            }
        };
        self.state = State::Watching {
            account,
            since: start.0,
            more: start.1,
            watch,
        };
        Outcome::go_on(out)
    }

    /// Ends WATCH, saying the modseq pushed through so the client can go on from there with LIST.
    fn done(&mut self) -> Outcome {
        let State::Watching { account, since, .. } =
            std::mem::replace(&mut self.state, State::Unauthenticated)
        else {
            unreachable!("only called while watching")
        };
        self.state = State::LoggedIn(account);
        Outcome::go_on(line("OK", "", &format!("WATCH {}", since.modseq)))
    }

    /// LIST: one batch of changes and the `OK LIST <modseq> [MORE]` line.
    async fn list(
        &self,
        inbox: crate::store::MailboxId,
        since: u64,
        out: &mut Vec<u8>,
    ) -> Result<u64, StoreError> {
        let (through, more) = self.write_changes(inbox, Since::modseq(since), out).await?;
        let more = if more { " MORE" } else { "" };
        let through = through.modseq;
        out.extend_from_slice(format!("OK LIST {through}{more}\r\n").as_bytes());
        Ok(through)
    }

    /// Writes one batch (at most `list_batch_max`) of the changes after `since` as `* MSG` / `* GONE`
    /// lines. Returns where the next batch starts and whether more changes follow.
    async fn write_changes(
        &self,
        inbox: crate::store::MailboxId,
        since: Since,
        out: &mut Vec<u8>,
    ) -> Result<(Since, bool), StoreError> {
        let changes = self
            .store
            .changes_from(inbox, since, self.config.limits.list_batch_max)
            .await?;
        for m in &changes.messages {
            out.extend_from_slice(summary_line(&summary(m)).as_bytes());
        }
        // A first full listing has nothing to forget: tombstones only matter to a client that has state.
        if since.modseq > 0 {
            for uid in &changes.gone {
                out.extend_from_slice(format!("* GONE {uid}\r\n").as_bytes());
            }
        }
        Ok((changes.next(), changes.more))
    }
}

fn summary(m: &MessageMeta) -> Summary {
    let date = chrono::DateTime::from_timestamp_micros(m.internal_date_micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Summary {
        id: m.uid,
        modseq: m.modseq,
        seen: m.flags & flags::SEEN != 0,
        size: m.size,
        date,
        from: m.from.clone(),
        subject: m.subject.clone(),
    }
}
