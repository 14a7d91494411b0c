//! The POP3 session: a state machine from (state, decoded line) to reply bytes and an action. It never touches
//! sockets or SQL: it calls the [`MailStore`] trait and returns bytes for the connection.
//!
//! AUTHORIZATION → TRANSACTION → UPDATE. At login the session takes a snapshot of the INBOX (UIDs and sizes);
//! message numbers index that snapshot for the whole session. Other sessions on the same mailbox are allowed:
//! each works on its own snapshot, so no lock is taken and `[IN-USE]` is never needed. DELE only marks; the
//! marks are applied (expunged) at QUIT, and `+OK` comes after they are durable. A session that ends any other
//! way (disconnect, time-out, shutdown) deletes nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jmail_proto::pop3::{Command, DotStuffer, Event, crlf_size, dot_stuff, parse_command, top};
use jmail_proto::sasl::{self, Mechanism, SaslError};

use crate::config::Config;
use crate::driver::Outcome;
use crate::reply_stream::{ReplyStream, STREAM_BYTES_MIN, Shape};
use crate::store::{Account, FlagOp, Flags, MailStore, MailboxId, StoreError, flags};
use crate::throttle::{LoginResult, LoginThrottle, login, login_name};

/// The first line a client gets.
pub const GREETING: &[u8] = b"+OK Jmail POP3 ready\r\n";

/// RFC 1939 §3: an autologout timer must allow at least 10 minutes. Logged-in sessions get
/// `limits.idle_secs_auth`, but never less than this.
pub const AUTOLOGOUT_SECS_MIN: u64 = 10 * 60;

/// One message of the login snapshot.
struct Entry {
    uid: u32,
    /// Octets as RETR sends them, before dot-stuffing.
    size: u64,
    deleted: bool,
}

/// The INBOX as it was at login, with this session's deletion marks.
struct Maildrop {
    account: Account,
    messages: Vec<Entry>,
}

impl Maildrop {
    /// Messages not marked deleted, with their 1-based numbers.
    fn live(&self) -> impl Iterator<Item = (usize, &Entry)> {
        (1..)
            .zip(&self.messages)
            .filter(|(_, entry)| !entry.deleted)
    }

    fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, octets), (_, e)| (n + 1, octets + e.size))
    }

    fn summary(&self) -> String {
        let (n, octets) = self.stat();
        format!("{n} messages ({octets} octets)")
    }

    /// The live message numbered `msg`, or the `-ERR` reply.
    fn get(&mut self, msg: u32) -> Result<&mut Entry, Vec<u8>> {
        match self.messages.get_mut(msg as usize - 1) {
            None => Err(err("no such message")),
            Some(e) if e.deleted => Err(err(&format!("message {msg} already deleted"))),
            Some(e) => Ok(e),
        }
    }
}

/// A message's unique-id (UIDL): `<mailbox id>.<uid>`. It never repeats, because mailbox ids and UIDs are
/// never reused, not even after a user is deleted and created again.
fn unique_id(inbox: MailboxId, uid: u32) -> String {
    format!("{inbox}.{uid}")
}

enum State {
    /// Before login; `user` is the name a USER command gave.
    Authorization {
        user: Option<String>,
    },
    /// `AUTH PLAIN` came without an initial response: the next line is the client's response.
    AuthResponse,
    Transaction(Maildrop),
}

/// One client's POP3 session.
pub struct Session {
    store: Arc<dyn MailStore>,
    config: Arc<Config>,
    /// The server's failed-login bookkeeping, shared by every session of every protocol.
    throttle: Arc<LoginThrottle>,
    peer: SocketAddr,
    state: State,
    errors: u32,
    login_failures: u32,
    /// The connection is encrypted (POP3S, or after STLS).
    tls: bool,
}

fn ok(text: &str) -> Vec<u8> {
    format!("+OK {text}\r\n").into_bytes()
}

fn err(text: &str) -> Vec<u8> {
    format!("-ERR {text}\r\n").into_bytes()
}

/// The reply for a store failure. Internal error text goes to the log, never to the peer.
fn store_failure(e: &StoreError, peer: SocketAddr) -> Vec<u8> {
    match e {
        StoreError::Closed => err("[SYS/TEMP] server is shutting down; try again later"),
        other => {
            tracing::error!(%peer, error = %other, "store operation failed");
            err("[SYS/TEMP] temporary server error; try again later")
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
            state: State::Authorization { user: None },
            errors: 0,
            login_failures: 0,
            tls,
        }
    }

    /// After the TLS handshake: forget a USER given in clear (RFC 2595 §4).
    pub fn on_tls_started(&mut self) {
        self.tls = true;
        self.state = State::Authorization { user: None };
    }

    /// Passwords are taken only under TLS, from loopback, or when the operator allowed it.
    fn plaintext_auth_ok(&self) -> bool {
        crate::conn::plaintext_auth_allowed(
            self.peer.ip(),
            self.tls,
            self.config.allow_plaintext_auth,
        )
    }

    /// How long the client may stay silent in the current state.
    pub fn idle_timeout(&self) -> Duration {
        let l = &self.config.limits;
        Duration::from_secs(match self.state {
            State::Authorization { .. } | State::AuthResponse => l.idle_secs_unauth,
            State::Transaction(_) => l.idle_secs_auth.max(AUTOLOGOUT_SECS_MIN),
        })
    }

    pub fn on_timeout(&self) -> Vec<u8> {
        err("idle too long; closing, no messages were deleted")
    }

    /// A POP3 client sends only command lines, which never reach the input budget; should one still be
    /// cut off for it, it is told as for a shutdown: nothing was deleted.
    pub fn on_overload(&self) -> Vec<u8> {
        err("[SYS/TEMP] server is busy; no messages were deleted")
    }

    pub fn on_shutdown(&self) -> Vec<u8> {
        err("[SYS/TEMP] server is shutting down; no messages were deleted")
    }

    /// Handles one decoder event.
    pub async fn on_event(&mut self, event: Event) -> Outcome {
        match (&self.state, event) {
            (State::AuthResponse, Event::Line(line)) => self.auth_response(&line).await,
            (State::AuthResponse, Event::TooLong) => {
                self.state = State::Authorization { user: None };
                self.protocol_error(err("authentication response too long"))
            }
            (_, Event::TooLong) => self.protocol_error(err("line too long")),
            (_, Event::Line(line)) => match parse_command(&line) {
                Ok(command) => self.on_command(command).await,
                Err(e) => self.protocol_error(err(&e.to_string())),
            },
        }
    }

    /// CAPA (RFC 2449): the login mechanisms only where a password would be taken (RFC 2595 §4: no
    /// USER or PLAIN offered to a client that would be refused for want of TLS), STLS only where it can
    /// still be used.
    fn capabilities(&self) -> String {
        let mut caps = vec!["TOP", "UIDL"];
        if self.plaintext_auth_ok() {
            caps.push("USER");
        }
        caps.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]);
        if self.plaintext_auth_ok() {
            caps.push("SASL PLAIN");
        }
        if !self.tls && matches!(self.state, State::Authorization { .. }) {
            caps.push("STLS");
        }
        caps.push("IMPLEMENTATION Jmail");
        format!(
            "+OK capability list follows\r\n{}\r\n.\r\n",
            caps.join("\r\n")
        )
    }

    /// Counts a protocol error; the last allowed one closes the connection.
    fn protocol_error(&mut self, reply: Vec<u8>) -> Outcome {
        self.errors += 1;
        if self.errors >= self.config.limits.bad_commands_max {
            return Outcome::close(err("too many bad commands; closing"));
        }
        Outcome::go_on(reply)
    }

    async fn on_command(&mut self, command: Command) -> Outcome {
        let (tls, plaintext_auth_ok) = (self.tls, self.plaintext_auth_ok());
        match (&mut self.state, command) {
            (_, Command::Capa) => Outcome::go_on(self.capabilities()),
            (State::Authorization { .. }, Command::AuthMechanisms) => {
                Outcome::go_on("+OK mechanisms follow\r\nPLAIN\r\n.\r\n")
            }
            (_, Command::Quit) => self.quit().await,
            (State::Authorization { .. }, Command::Stls) if !tls => {
                Outcome::start_tls(ok("begin TLS negotiation"))
            }
            (_, Command::Stls) => self.protocol_error(err("STLS only before login, without TLS")),
            (
                State::Authorization { .. },
                Command::User(_) | Command::Pass(_) | Command::Auth { .. },
            ) if !plaintext_auth_ok => Outcome::go_on(err(
                "[AUTH] TLS required to log in: use STLS (or POP3S) first",
            )),
            (State::Authorization { user }, Command::User(name)) => {
                *user = Some(name);
                Outcome::go_on(ok("send PASS"))
            }
            (State::Authorization { user }, Command::Pass(password)) => match user.take() {
                Some(name) => self.login(&name, "", &password).await,
                None => self.protocol_error(err("send USER first")),
            },
            (State::Authorization { .. }, Command::Auth { mechanism, initial }) => {
                match (mechanism, initial) {
                    (Some(Mechanism::Plain), Some(response)) => self.auth_response(&response).await,
                    (Some(Mechanism::Plain), None) => {
                        self.state = State::AuthResponse;
                        Outcome::go_on("+ \r\n")
                    }
                    _ => self.protocol_error(err("unsupported mechanism; use PLAIN")),
                }
            }
            (State::Authorization { .. }, _) => self.protocol_error(err("log in first")),
            (
                State::Transaction(_),
                Command::User(_)
                | Command::Pass(_)
                | Command::Auth { .. }
                | Command::AuthMechanisms,
            ) => self.protocol_error(err("already logged in")),
            (State::Transaction(maildrop), command) => {
                match crate::accounts::still_valid(self.store.as_ref(), &maildrop.account).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Nothing is deleted: the session ends as if the connection dropped.
                        let text = "[AUTH] the account was deleted or its password changed";
                        return Outcome::close(err(text));
                    }
                    Err(e) => return Outcome::go_on(store_failure(&e, self.peer)),
                }
                if let Command::Retr(msg) = command
                    && let Some(streamed) =
                        stream_large(maildrop, &self.store, self.peer, msg).await
                {
                    return streamed;
                }
                Outcome::go_on(transaction(maildrop, self.store.as_ref(), self.peer, command).await)
            }
            (State::AuthResponse, _) => unreachable!("lines go to auth_response in this state"),
        }
    }

    /// The client's SASL PLAIN response (base64, line end removed).
    async fn auth_response(&mut self, line: &[u8]) -> Outcome {
        self.state = State::Authorization { user: None };
        match sasl::decode_plain(line) {
            Ok(c) => self.login(&c.user, &c.authzid, &c.password).await,
            Err(SaslError::Cancelled) => Outcome::go_on(err("authentication cancelled")),
            Err(e) => self.protocol_error(err(&e.to_string())),
        }
    }

    /// Checks credentials; on success takes the snapshot and enters TRANSACTION. `authzid`, when given, must
    /// name the same user (nobody may act for another).
    async fn login(&mut self, user: &str, authzid: &str, password: &str) -> Outcome {
        // Acting as someone else fails like a wrong password, after the same work.
        let acting_as_self = authzid.is_empty()
            || login_name(&self.config, authzid) == login_name(&self.config, user);
        let user = if acting_as_self { user } else { "" };
        let ip = self.peer.ip();
        let account = match login(
            self.store.as_ref(),
            &self.config,
            &self.throttle,
            ip,
            user,
            password,
        )
        .await
        {
            LoginResult::Ok(account) => account,
            LoginResult::Blocked => {
                return Outcome::close(err("[AUTH] too many failed logins; try again later"));
            }
            LoginResult::Failed => {
                self.login_failures += 1;
                tracing::info!(peer = %self.peer, "pop3 login failed");
                let reply = err("[AUTH] invalid user name or password");
                if self.login_failures >= self.config.limits.login_failures_max {
                    return Outcome::close(reply);
                }
                return Outcome::go_on(reply);
            }
            LoginResult::Unavailable(e) => return Outcome::go_on(store_failure(&e, self.peer)),
        };
        match self.snapshot(account).await {
            Ok(maildrop) => {
                tracing::info!(peer = %self.peer, user = %maildrop.account.name, "pop3 login");
                let reply = ok(&format!(
                    "{} has {}",
                    maildrop.account.name,
                    maildrop.summary()
                ));
                self.state = State::Transaction(maildrop);
                Outcome::go_on(reply)
            }
            Err(e) => Outcome::go_on(store_failure(&e, self.peer)),
        }
    }

    /// The INBOX now: every message's UID and size, paged through the change index.
    async fn snapshot(&self, account: Account) -> Result<Maildrop, StoreError> {
        let mut messages = BTreeMap::new();
        let mut since = 0;
        loop {
            let batch = self
                .store
                .changes(account.inbox, since, self.config.limits.list_batch_max)
                .await?;
            // A message changed between batches shows up again: the map keeps one entry per UID.
            for m in &batch.messages {
                messages.insert(m.uid, m.crlf_size);
            }
            for uid in &batch.gone {
                messages.remove(uid);
            }
            since = batch.through_modseq;
            if !batch.more {
                break;
            }
        }
        let messages = messages
            .into_iter()
            .map(|(uid, size)| Entry {
                uid,
                size,
                deleted: false,
            })
            .collect();
        Ok(Maildrop { account, messages })
    }

    /// QUIT: in TRANSACTION, the UPDATE state applies the deletion marks before `+OK`.
    async fn quit(&mut self) -> Outcome {
        let State::Transaction(maildrop) =
            std::mem::replace(&mut self.state, State::Authorization { user: None })
        else {
            return Outcome::close(ok("Jmail POP3 signing off"));
        };
        let inbox = maildrop.account.inbox;
        let marked: Vec<u32> = maildrop
            .messages
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect();
        // All at once, or none: a message another session removed already is gone either way.
        if let Err(e) = self.store.expunge(inbox, Some(&marked), false).await {
            tracing::error!(peer = %self.peer, error = %e, "pop3 expunge failed");
            return Outcome::close(err(
                "[SYS/TEMP] the deleted messages could not be removed; try again later",
            ));
        }
        let deleted = marked.len();
        Outcome::close(ok(&format!(
            "Jmail POP3 signing off ({deleted} messages deleted)"
        )))
    }
}

/// A TRANSACTION-state command other than QUIT.
async fn transaction(
    maildrop: &mut Maildrop,
    store: &dyn MailStore,
    peer: SocketAddr,
    command: Command,
) -> Vec<u8> {
    let inbox = maildrop.account.inbox;
    match command {
        Command::Stat => {
            let (n, octets) = maildrop.stat();
            ok(&format!("{n} {octets}"))
        }
        Command::List(None) => {
            let mut out = ok(&maildrop.summary());
            for (n, e) in maildrop.live() {
                out.extend_from_slice(format!("{n} {}\r\n", e.size).as_bytes());
            }
            out.extend_from_slice(b".\r\n");
            out
        }
        Command::List(Some(msg)) => match maildrop.get(msg) {
            Ok(e) => ok(&format!("{msg} {}", e.size)),
            Err(reply) => reply,
        },
        Command::Uidl(None) => {
            let mut out = ok("unique-id listing follows");
            for (n, e) in maildrop.live() {
                let id = unique_id(inbox, e.uid);
                out.extend_from_slice(format!("{n} {id}\r\n").as_bytes());
            }
            out.extend_from_slice(b".\r\n");
            out
        }
        Command::Uidl(Some(msg)) => match maildrop.get(msg) {
            Ok(e) => ok(&format!("{msg} {}", unique_id(inbox, e.uid))),
            Err(reply) => reply,
        },
        Command::Retr(msg) => retrieve(maildrop, store, peer, msg, None).await,
        Command::Top { msg, lines } => retrieve(maildrop, store, peer, msg, Some(lines)).await,
        Command::Dele(msg) => match maildrop.get(msg) {
            Ok(e) => {
                e.deleted = true;
                ok(&format!("message {msg} deleted"))
            }
            Err(reply) => reply,
        },
        Command::Rset => {
            for e in &mut maildrop.messages {
                e.deleted = false;
            }
            ok(&maildrop.summary())
        }
        Command::Noop => b"+OK\r\n".to_vec(),
        Command::User(_)
        | Command::Pass(_)
        | Command::Auth { .. }
        | Command::AuthMechanisms
        | Command::Quit
        | Command::Capa
        | Command::Stls => unreachable!("handled before the transaction state"),
    }
}

/// RETR of a message of at least [`STREAM_BYTES_MIN`]: marked seen, then streamed from the store piece by
/// piece, dot-stuffed on the way. `None` for a smaller one (or a bad number): [`retrieve`] answers.
async fn stream_large(
    maildrop: &mut Maildrop,
    store: &Arc<dyn MailStore>,
    peer: SocketAddr,
    msg: u32,
) -> Option<Outcome> {
    let inbox = maildrop.account.inbox;
    let (uid, size) = maildrop.get(msg).map(|e| (e.uid, e.size)).ok()?;
    if size < STREAM_BYTES_MIN {
        return None;
    }
    let seen = Flags::system(flags::SEEN);
    let found = match store
        .update_flags(inbox, &[uid], FlagOp::Add, seen, None)
        .await
    {
        Ok(_) => store.body_ref(inbox, uid).await,
        Err(e) => Err(e),
    };
    Some(match found {
        Ok(Some(body)) => {
            let stuffed = Shape::DotStuffed(DotStuffer::default());
            let stream = ReplyStream::new(store.clone(), body, stuffed, Vec::new());
            Outcome::streaming(ok(&format!("{size} octets")), stream)
        }
        Ok(None) => Outcome::go_on(err(&format!(
            "message {msg} was deleted by another session"
        ))),
        Err(e) => Outcome::go_on(store_failure(&e, peer)),
    })
}

/// RETR (`top_lines` = None: the whole message, which is then marked seen) or TOP.
async fn retrieve(
    maildrop: &mut Maildrop,
    store: &dyn MailStore,
    peer: SocketAddr,
    msg: u32,
    top_lines: Option<u32>,
) -> Vec<u8> {
    let uid = match maildrop.get(msg) {
        Ok(e) => e.uid,
        Err(reply) => return reply,
    };
    match store
        .fetch(maildrop.account.inbox, uid, top_lines.is_none())
        .await
    {
        Ok(Some(raw)) => {
            let (mut out, shown) = match top_lines {
                None => (ok(&format!("{} octets", crlf_size(&raw))), &raw[..]),
                Some(n) => (ok("top of message follows"), top(&raw, n)),
            };
            dot_stuff(shown, &mut out);
            out
        }
        Ok(None) => err(&format!("message {msg} was deleted by another session")),
        Err(e) => store_failure(&e, peer),
    }
}
