//! The IMAP session: a state machine from (state, decoded command) to response bytes and an action
//! (RFC 9051 and RFC 3501 on one port). It never touches sockets or SQL: it calls the [`MailStore`]
//! trait and returns bytes for the connection.
//!
//! Not authenticated → authenticated ⇄ selected → logout. Two conversations stand apart from commands:
//! an AUTHENTICATE exchange (the decoder then reads SASL lines) and IDLE (the decoder waits for `DONE`,
//! and the connection pushes the selected mailbox's changes). A client is rev1 until it ENABLEs
//! IMAP4rev2; the differences (RECENT, UNSEEN, SEARCH vs ESEARCH, UTF-8 names) are decided by
//! [`Session::rev2`], except UTF-8 names, which UTF8=ACCEPT brings too ([`Session::utf8`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jmail_proto::imap::extended::Extension;
use jmail_proto::imap::imap_types::auth::{AuthMechanism, AuthenticateData};
use jmail_proto::imap::imap_types::command::{Command, CommandBody};
use jmail_proto::imap::imap_types::extensions::enable::CapabilityEnable;
use jmail_proto::imap::structure::Dialect;
use jmail_proto::imap::{Event, Expect, Refusal};
use jmail_proto::sasl;

use super::list::ListRequest;
use super::mailboxes::{StatusItem, mailbox_name};
use super::respond::{bad, no, ok};
use super::selected::Selected;
use crate::config::Config;
use crate::driver::Outcome;
use crate::store::{Account, MailStore, StoreError};
use crate::throttle::{LoginResult, LoginThrottle, login, login_name};

/// RFC 9051 §5.4: an autologout timer must allow at least 30 minutes once logged in (IDLE included).
pub const AUTOLOGOUT_SECS_MIN: u64 = 30 * 60;

/// The SASL exchange in progress after `AUTHENTICATE` without (all of) its response.
pub(super) enum SaslStep {
    /// PLAIN: the one response.
    Plain,
    /// LOGIN: the user name, then the password.
    LoginUser,
    LoginPassword {
        user: String,
    },
}

/// What the next line is for, beyond ordinary commands.
pub(super) enum Waiting {
    Command,
    Authenticate { tag: String, step: SaslStep },
    Idle { tag: String },
}

pub(super) enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Box<Selected>),
}

/// One client's IMAP session.
pub struct Session {
    pub(super) store: Arc<dyn MailStore>,
    pub(super) config: Arc<Config>,
    throttle: Arc<LoginThrottle>,
    pub(super) peer: SocketAddr,
    tls: bool,
    pub(super) account: Option<Account>,
    pub(super) state: State,
    pub(super) waiting: Waiting,
    /// The client ENABLEd IMAP4rev2.
    pub(super) rev2: bool,
    /// The client ENABLEd UTF8=ACCEPT (RFC 9755): mailbox names in UTF-8, as IMAP4rev2 has them.
    utf8_accept: bool,
    /// The client ENABLEd (or used) CONDSTORE, or enabled QRESYNC.
    pub(super) condstore: bool,
    pub(super) qresync: bool,
    errors: u32,
    /// The command being handled named the saved search result `$` (SEARCHRES, RFC 5182).
    pub(super) using_saved: bool,
    login_failures: u32,
    /// The server's allowance of compressed connections, and this one's share once COMPRESS is on.
    compressed: Arc<tokio::sync::Semaphore>,
    compress_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The server's budget for large messages held in memory at once (`input_bytes_max`): a BINARY of a
    /// large part or a SEARCH through a large message draws on it while it works.
    pub(super) input: Arc<crate::caps::InputBudget>,
    /// The server's sort keys kept between SORTs; without it every SORT reads the store.
    pub(super) sort_cache: Option<Arc<super::SortCache>>,
}

/// The farewell when the session must end on an error.
fn bye(text: &str) -> Vec<u8> {
    format!("* BYE {text}\r\n").into_bytes()
}

impl Session {
    pub fn new(
        store: Arc<dyn MailStore>,
        config: Arc<Config>,
        throttle: Arc<LoginThrottle>,
        peer: SocketAddr,
        tls: bool,
        compressed: Arc<tokio::sync::Semaphore>,
        input: Arc<crate::caps::InputBudget>,
    ) -> Self {
        Session {
            store,
            config,
            throttle,
            peer,
            tls,
            account: None,
            state: State::NotAuthenticated,
            waiting: Waiting::Command,
            rev2: false,
            utf8_accept: false,
            condstore: false,
            qresync: false,
            errors: 0,
            using_saved: false,
            login_failures: 0,
            compressed,
            compress_permit: None,
            input,
            sort_cache: None,
        }
    }

    /// The greeting, with the capabilities so clients need not ask.
    /// Sorts with the server's kept sort keys.
    pub fn with_sort_cache(mut self, cache: Arc<super::SortCache>) -> Self {
        self.sort_cache = Some(cache);
        self
    }

    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] Jmail IMAP ready\r\n",
            self.capabilities()
        )
        .into_bytes()
    }

    /// What the decoder should read next.
    pub fn expect(&self) -> Expect {
        match self.waiting {
            Waiting::Command => Expect::Command,
            Waiting::Authenticate { .. } => Expect::AuthenticateData,
            Waiting::Idle { .. } => Expect::IdleDone,
        }
    }

    pub fn logged_in(&self) -> bool {
        self.account.is_some()
    }

    /// Whether mailbox names and quoted strings are UTF-8 both ways (IMAP4rev2 or UTF8=ACCEPT enabled);
    /// otherwise names are modified UTF-7 and 8-bit text goes in literals.
    pub(super) fn utf8(&self) -> bool {
        self.rev2 || self.utf8_accept
    }

    pub(super) fn dialect(&self) -> Dialect {
        Dialect {
            utf8: self.utf8(),
            message_global: self.rev2,
        }
    }

    /// After the TLS handshake that STARTTLS began.
    pub fn on_tls_started(&mut self) {
        self.tls = true;
    }

    fn plaintext_auth_ok(&self) -> bool {
        crate::conn::plaintext_auth_allowed(
            self.peer.ip(),
            self.tls,
            self.config.allow_plaintext_auth,
        )
    }

    /// What the server offers now: the login mechanisms only where a password would be taken
    /// (LOGINDISABLED otherwise, RFC 9051 §6.2.3), STARTTLS only before TLS and login.
    pub(super) fn capabilities(&self) -> String {
        let mut caps = vec!["IMAP4rev1", "IMAP4rev2"];
        if !self.tls && !self.logged_in() {
            caps.push("STARTTLS");
        }
        if !self.logged_in() {
            if self.plaintext_auth_ok() {
                caps.extend(["AUTH=PLAIN", "AUTH=LOGIN"]);
            } else {
                caps.push("LOGINDISABLED");
            }
        }
        caps.extend([
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CONDSTORE",
            "QRESYNC",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "ESEARCH",
            "SEARCHRES",
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "BINARY",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "QUOTA=RES-MESSAGE",
            "STATUS=SIZE",
            "UTF8=ACCEPT",
        ]);
        if self.config.limits.compressed_sessions_max > 0 {
            caps.push("COMPRESS=DEFLATE");
        }
        let mut caps = caps.join(" ");
        caps.push_str(&format!(
            " APPENDLIMIT={}",
            self.config.limits.message_bytes_max
        ));
        caps
    }

    /// How long the client may stay silent now.
    pub fn idle_timeout(&self) -> Duration {
        let l = &self.config.limits;
        Duration::from_secs(if self.logged_in() {
            l.idle_secs_auth.max(AUTOLOGOUT_SECS_MIN)
        } else {
            l.idle_secs_unauth
        })
    }

    pub fn on_timeout(&self) -> Vec<u8> {
        bye("Autologout; idle for too long")
    }

    pub fn on_shutdown(&self) -> Vec<u8> {
        bye("[UNAVAILABLE] Server shutting down")
    }

    pub fn on_overload(&self) -> Vec<u8> {
        bye("[UNAVAILABLE] Server is receiving too much mail at once; try again later")
    }

    /// Counts a protocol error; the last allowed one closes the connection.
    pub(super) fn protocol_error(&mut self, reply: Vec<u8>) -> Outcome {
        self.errors += 1;
        if self.errors >= self.config.limits.bad_commands_max {
            let mut out = reply;
            out.extend(bye("Too many bad commands"));
            return Outcome::close(out);
        }
        Outcome::go_on(reply)
    }

    /// The reply for a store failure. Internal error text goes to the log, never to the peer.
    pub(super) fn store_failure(&self, tag: &str, e: &StoreError) -> Vec<u8> {
        match e {
            StoreError::Closed => no(tag, Some("UNAVAILABLE"), "Server shutting down"),
            StoreError::OverQuota(_) => no(tag, Some("OVERQUOTA"), "Quota exceeded"),
            StoreError::LowOnDisk => no(
                tag,
                Some("UNAVAILABLE"),
                "The server's disk is nearly full; try again later",
            ),
            StoreError::NoSuchMailbox => no(tag, Some("NONEXISTENT"), "No such mailbox"),
            StoreError::MailboxExists => no(tag, Some("ALREADYEXISTS"), "Mailbox exists"),
            StoreError::BadMailboxName(why) | StoreError::MailboxRefused(why) => {
                no(tag, Some("CANNOT"), why)
            }
            StoreError::TooManyMailboxes(_) => no(tag, Some("LIMIT"), "Too many mailboxes"),
            StoreError::TooManyKeywords(_) => no(tag, Some("LIMIT"), "Too many keywords"),
            StoreError::BadKeyword(_) => bad(tag, "Not a valid keyword"),
            // A store that cannot answer now (a database restarting, a full disk, a conflict that
            // retrying did not get through) is a subsystem down (RFC 5530 UNAVAILABLE), not a bug.
            other => {
                tracing::error!(peer = %self.peer, error = %other, "store operation failed");
                no(
                    tag,
                    Some("UNAVAILABLE"),
                    "Temporary server error; try again",
                )
            }
        }
    }

    /// Handles one decoder event.
    pub async fn on_event(&mut self, event: Event) -> Outcome {
        let outcome = self.on_event_inner(event).await;
        // The selected mailbox was deleted by another session: nothing the client knows of it holds
        // any more, so the session ends, as Dovecot ends it (the command's answer is dropped).
        if matches!(&self.state, State::Selected(s) if s.deleted) {
            self.state = State::Authenticated;
            return Outcome::close(bye("The selected mailbox was deleted; please log in again"));
        }
        outcome
    }

    async fn on_event_inner(&mut self, event: Event) -> Outcome {
        // A set that is the saved-result marker means `$` only in a command that named `$`.
        self.using_saved = false;
        match event {
            Event::Command(command) => self.on_command(*command).await,
            Event::ContinuationWanted => Outcome::go_on(b"+ Ready for literal data\r\n".to_vec()),
            Event::AuthenticateData(data) => self.on_authenticate_data(data).await,
            Event::IdleDone => self.on_idle_done().await,
            Event::Extended {
                tag,
                extension: Extension::Saved(inner),
            } => {
                self.using_saved = true;
                let outcome = self.on_extended(&tag, *inner).await;
                self.using_saved = false;
                outcome
            }
            Event::Extended { tag, extension } => self.on_extended(&tag, extension).await,
            Event::Bad { tag, why } => {
                if let Waiting::Idle { tag } =
                    std::mem::replace(&mut self.waiting, Waiting::Command)
                {
                    // Anything but DONE during IDLE: RFC 9051 §6.3.13 leaves it to the server. The
                    // client is out of step: IDLE ends with a tagged BAD (as Dovecot does), so the
                    // client gets its tag back and its next command is read as one.
                    return self.protocol_error(bad(&tag, "Expected DONE"));
                }
                if let Waiting::Authenticate { tag, .. } =
                    std::mem::replace(&mut self.waiting, Waiting::Command)
                {
                    return self.protocol_error(bad(&tag, "Bad SASL response"));
                }
                let tag = tag.unwrap_or_else(|| "*".into());
                let text = match why {
                    Refusal::Syntax => "Syntax error or unknown command".to_string(),
                    Refusal::LineTooLong => "Line too long".to_string(),
                    Refusal::LiteralTooBig(n) => format!("Literal of {n} bytes is too large"),
                };
                let mut reply = bad(&tag, &text);
                if matches!(why, Refusal::LiteralTooBig(_)) && tag != "*" {
                    reply = no(&tag, Some("TOOBIG"), &text);
                }
                self.protocol_error(reply)
            }
            Event::Fatal { why, .. } => {
                let text = match why {
                    Refusal::LiteralTooBig(n) => format!("Literal of {n} bytes is too large"),
                    _ => "Line too long".to_string(),
                };
                Outcome::close(bye(&text))
            }
        }
    }

    /// Before each command: does the login still stand? (`jmail user del` or `passwd` from any process
    /// ends the session.) Returns the reply that ends or refuses the command.
    async fn login_stands(&mut self, tag: &str) -> Option<Outcome> {
        let account = self.account.as_ref()?;
        match crate::accounts::still_valid(self.store.as_ref(), account).await {
            Ok(true) => None,
            Ok(false) => Some(Outcome::close(bye(
                "The account was deleted or its password changed",
            ))),
            Err(e) => Some(Outcome::go_on(self.store_failure(tag, &e))),
        }
    }

    /// The forms imap-codec does not parse (LIST-EXTENDED, SEARCH and SORT RETURN, STATUS APPENDLIMIT).
    async fn on_extended(&mut self, tag: &str, extension: Extension) -> Outcome {
        if let Some(refused) = self.login_stands(tag).await {
            return refused;
        }
        if !self.logged_in() {
            return self.protocol_error(bad(tag, "Log in first"));
        }
        match extension {
            Extension::List(list) => self.list(tag, ListRequest::extended(list)).await,
            Extension::Search { command, returns } => match command.body {
                CommandBody::Search {
                    charset,
                    criteria,
                    uid,
                } if matches!(self.state, State::Selected(_)) => {
                    self.search_command(tag, charset, criteria.as_ref(), uid, Some(returns))
                        .await
                }
                _ => self.protocol_error(bad(tag, "No mailbox selected")),
            },
            Extension::Sort { command, returns } => match command.body {
                CommandBody::Sort {
                    sort_criteria,
                    charset,
                    search_criteria,
                    uid,
                } if matches!(self.state, State::Selected(_)) => {
                    let keys = search_criteria.as_ref();
                    self.sort(
                        tag,
                        sort_criteria.as_ref(),
                        &charset,
                        keys,
                        uid,
                        Some(returns),
                    )
                    .await
                }
                _ => self.protocol_error(bad(tag, "No mailbox selected")),
            },
            Extension::Command(command) => self.on_command(*command).await,
            // Unwrapped by `on_event`; one inside another is not made by the parser.
            Extension::Saved(_) => self.protocol_error(bad(tag, "Syntax error")),
            Extension::StatusAppendLimit { command, items } => {
                let CommandBody::Status { mailbox, .. } = command.body else {
                    return self.protocol_error(bad(tag, "Syntax error"));
                };
                let items: Option<Vec<StatusItem>> =
                    items.iter().map(|i| StatusItem::named(i)).collect();
                match (mailbox_name(&mailbox, self.utf8()), items) {
                    (Some(name), Some(items)) => self.status(tag, &name, &items).await,
                    (None, _) => self.bad_name(tag),
                    (_, None) => self.protocol_error(bad(tag, "Unknown STATUS item")),
                }
            }
        }
    }

    async fn on_command(&mut self, command: Command<'static>) -> Outcome {
        let tag = command.tag.inner().to_string();
        if let Some(refused) = self.login_stands(&tag).await {
            return refused;
        }
        match command.body {
            CommandBody::Capability => {
                let mut out = format!("* CAPABILITY {}\r\n", self.capabilities()).into_bytes();
                out.extend(ok(&tag, "CAPABILITY completed"));
                Outcome::go_on(out)
            }
            CommandBody::Noop => self.noop(&tag, "NOOP").await,
            // CHECK is a selected-state command (RFC 3501 §6.4.1); IMAP4rev2 dropped it.
            CommandBody::Check if matches!(self.state, State::Selected(_)) => {
                self.noop(&tag, "CHECK").await
            }
            CommandBody::Check if self.logged_in() => {
                self.protocol_error(bad(&tag, "No mailbox selected"))
            }
            CommandBody::Logout => {
                let mut out = bye("Logging out");
                out.extend(ok(&tag, "LOGOUT completed"));
                Outcome::close(out)
            }
            CommandBody::Id { .. } => {
                let mut out = b"* ID (\"name\" \"Jmail\" \"vendor\" \"Jmail\")\r\n".to_vec();
                out.extend(ok(&tag, "ID completed"));
                Outcome::go_on(out)
            }
            CommandBody::StartTLS if !self.tls && !self.logged_in() => {
                Outcome::start_tls(ok(&tag, "Begin TLS negotiation now"))
            }
            CommandBody::StartTLS if self.tls => {
                self.protocol_error(bad(&tag, "TLS is already active"))
            }
            CommandBody::StartTLS => {
                self.protocol_error(bad(&tag, "STARTTLS is allowed only before login"))
            }
            CommandBody::Login { username, password } if !self.logged_in() => {
                if !self.plaintext_auth_ok() {
                    return Outcome::go_on(no(
                        &tag,
                        Some("PRIVACYREQUIRED"),
                        "LOGIN is disabled without TLS; use STARTTLS",
                    ));
                }
                let (Ok(user), Ok(password)) = (
                    std::str::from_utf8(username.as_ref()),
                    std::str::from_utf8(password.declassify().as_ref()),
                ) else {
                    return self.login_failed(&tag);
                };
                let (user, password) = (user.to_string(), password.to_string());
                self.login(&tag, &user, "", &password).await
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } if !self.logged_in() => {
                self.authenticate(
                    &tag,
                    mechanism,
                    initial_response.map(|r| r.declassify().to_vec()),
                )
                .await
            }
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                self.protocol_error(bad(&tag, "Already logged in"))
            }
            _ if !self.logged_in() => self.protocol_error(bad(&tag, "Log in first")),
            // RFC 9051 §6.3.1: clients enable before selecting, "however, server implementations
            // don't have to check"; Dovecot (and imaptest's scripts) take it while selected, and
            // CONDSTORE turned on midway is what a rev1 session's first MODSEQ command does anyway.
            CommandBody::Enable { capabilities } => self.enable(&tag, capabilities.as_ref()),
            CommandBody::Namespace => {
                let mut out = b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n".to_vec();
                out.extend(ok(&tag, "NAMESPACE completed"));
                Outcome::go_on(out)
            }
            CommandBody::Idle => self.idle(&tag).await,
            CommandBody::Compress { .. } => self.compress(&tag),
            body => self.on_mail_command(&tag, body).await,
        }
    }

    /// COMPRESS DEFLATE (RFC 4978; the codec knows no other algorithm): once per connection, after login,
    /// within the server's allowance of compressed connections.
    fn compress(&mut self, tag: &str) -> Outcome {
        if self.compress_permit.is_some() {
            return Outcome::go_on(no(
                tag,
                Some("COMPRESSIONACTIVE"),
                "DEFLATE is already active",
            ));
        }
        if self.config.limits.compressed_sessions_max == 0 {
            return self.protocol_error(bad(tag, "COMPRESS is turned off"));
        }
        match self.compressed.clone().try_acquire_owned() {
            Ok(permit) => {
                self.compress_permit = Some(permit);
                Outcome::start_compress(ok(tag, "DEFLATE active"))
            }
            Err(_) => Outcome::go_on(no(
                tag,
                Some("LIMIT"),
                "Too many compressed connections; go on without",
            )),
        }
    }

    /// NOOP and CHECK: the selected mailbox's news.
    /// NOOP, or CHECK (nothing to do: every change is durable when answered): the mailbox's news.
    async fn noop(&mut self, tag: &str, command: &str) -> Outcome {
        let mut out = Vec::new();
        if let Err(e) = self.sync(&mut out, true).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(ok(tag, &format!("{command} completed")));
        Outcome::go_on(out)
    }

    /// ENABLE (RFC 5161): IMAP4rev2, UTF8=ACCEPT, CONDSTORE, QRESYNC (which implies CONDSTORE); others
    /// are ignored.
    fn enable(&mut self, tag: &str, capabilities: &[CapabilityEnable<'_>]) -> Outcome {
        let mut enabled = Vec::new();
        let mut told = Vec::new();
        for capability in capabilities {
            let name = capability.to_string().to_ascii_uppercase();
            match name.as_str() {
                "IMAP4REV2" if !self.rev2 => {
                    self.rev2 = true;
                    enabled.push("IMAP4rev2");
                }
                "UTF8=ACCEPT" if !self.utf8_accept => {
                    self.utf8_accept = true;
                    enabled.push("UTF8=ACCEPT");
                }
                "CONDSTORE" if !self.condstore => {
                    told.extend(self.enable_condstore());
                    enabled.push("CONDSTORE");
                }
                "QRESYNC" if !self.qresync => {
                    self.qresync = true;
                    told.extend(self.enable_condstore());
                    enabled.push("QRESYNC");
                }
                _ => {}
            }
        }
        let mut out = if enabled.is_empty() {
            b"* ENABLED\r\n".to_vec()
        } else {
            format!("* ENABLED {}\r\n", enabled.join(" ")).into_bytes()
        };
        out.extend(told);
        out.extend(ok(tag, "ENABLE completed"));
        Outcome::go_on(out)
    }

    /// IDLE (RFC 2177): `+ idling`, then the selected mailbox's changes as they happen until `DONE`.
    async fn idle(&mut self, tag: &str) -> Outcome {
        let mut out = Vec::new();
        if let Err(e) = self.sync(&mut out, true).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend_from_slice(b"+ idling\r\n");
        self.waiting = Waiting::Idle {
            tag: tag.to_string(),
        };
        Outcome::go_on(out)
    }

    async fn on_idle_done(&mut self) -> Outcome {
        let Waiting::Idle { tag } = std::mem::replace(&mut self.waiting, Waiting::Command) else {
            return Outcome::go_on(Vec::new());
        };
        let mut out = Vec::new();
        if let Err(e) = self.sync(&mut out, true).await {
            return Outcome::go_on(self.store_failure(&tag, &e));
        }
        out.extend(ok(&tag, "IDLE terminated"));
        Outcome::go_on(out)
    }

    /// Whether the connection should wait for the selected mailbox's changes (during IDLE).
    pub fn watching(&self) -> bool {
        matches!(self.waiting, Waiting::Idle { .. }) && matches!(self.state, State::Selected(_))
    }

    /// Resolves when the selected mailbox may have changed (only meaningful while [`Self::watching`]).
    pub async fn changed(&mut self) {
        match &mut self.state {
            State::Selected(selected) => {
                selected.watch.changed().await;
                selected.woken = true;
            }
            _ => std::future::pending().await,
        }
    }

    /// What IDLE pushes after a change.
    pub async fn on_change(&mut self) -> Outcome {
        let mut out = Vec::new();
        if let Err(e) = self.sync(&mut out, true).await {
            tracing::warn!(peer = %self.peer, error = %e, "idle update failed");
        }
        if matches!(&self.state, State::Selected(s) if s.deleted) {
            self.state = State::Authenticated;
            out.extend(bye("The selected mailbox was deleted; please log in again"));
            return Outcome::close(out);
        }
        Outcome::go_on(out)
    }

    async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: AuthMechanism<'_>,
        initial: Option<Vec<u8>>,
    ) -> Outcome {
        if !self.plaintext_auth_ok() {
            return Outcome::go_on(no(
                tag,
                Some("PRIVACYREQUIRED"),
                "Authentication is disabled without TLS; use STARTTLS",
            ));
        }
        let step = match mechanism {
            AuthMechanism::Plain => SaslStep::Plain,
            AuthMechanism::Login => SaslStep::LoginUser,
            _ => {
                return Outcome::go_on(no(
                    tag,
                    Some("CANNOT"),
                    "Unsupported mechanism; use PLAIN or LOGIN",
                ));
            }
        };
        match (step, initial) {
            (SaslStep::Plain, Some(response)) => self.sasl_plain(tag, &response).await,
            (SaslStep::LoginUser, Some(user)) => {
                self.waiting = Waiting::Authenticate {
                    tag: tag.to_string(),
                    step: SaslStep::LoginPassword {
                        user: String::from_utf8_lossy(&user).into_owned(),
                    },
                };
                Outcome::go_on(format!("+ {}\r\n", sasl::encode(b"Password:")).into_bytes())
            }
            (step, None) => {
                let prompt = match step {
                    SaslStep::Plain => "+ \r\n".to_string(),
                    _ => format!("+ {}\r\n", sasl::encode(b"Username:")),
                };
                self.waiting = Waiting::Authenticate {
                    tag: tag.to_string(),
                    step,
                };
                Outcome::go_on(prompt.into_bytes())
            }
            (SaslStep::LoginPassword { .. }, Some(_)) => unreachable!("not a starting step"),
        }
    }

    async fn on_authenticate_data(&mut self, data: AuthenticateData<'static>) -> Outcome {
        let Waiting::Authenticate { tag, step } =
            std::mem::replace(&mut self.waiting, Waiting::Command)
        else {
            return Outcome::go_on(Vec::new());
        };
        let response = match data {
            AuthenticateData::Continue(bytes) => bytes.declassify().to_vec(),
            AuthenticateData::Cancel => {
                return Outcome::go_on(bad(&tag, "Authentication cancelled"));
            }
        };
        match step {
            SaslStep::Plain => self.sasl_plain(&tag, &response).await,
            SaslStep::LoginUser => {
                self.waiting = Waiting::Authenticate {
                    tag,
                    step: SaslStep::LoginPassword {
                        user: String::from_utf8_lossy(&response).into_owned(),
                    },
                };
                Outcome::go_on(format!("+ {}\r\n", sasl::encode(b"Password:")).into_bytes())
            }
            SaslStep::LoginPassword { user } => {
                let password = String::from_utf8_lossy(&response).into_owned();
                self.login(&tag, &user, "", &password).await
            }
        }
    }

    /// A PLAIN response, already base64-decoded by the codec.
    async fn sasl_plain(&mut self, tag: &str, response: &[u8]) -> Outcome {
        let mut fields = response.split(|&b| b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return self.protocol_error(bad(tag, "Malformed PLAIN response"));
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (authzid, user, password) = (text(authzid), text(user), text(password));
        self.login(tag, &user, &authzid, &password).await
    }

    fn login_failed(&mut self, tag: &str) -> Outcome {
        self.login_failures += 1;
        tracing::info!(peer = %self.peer, "imap login failed");
        let reply = no(tag, Some("AUTHENTICATIONFAILED"), "Invalid credentials");
        if self.login_failures >= self.config.limits.login_failures_max {
            let mut out = reply;
            out.extend(bye("Too many failed logins"));
            return Outcome::close(out);
        }
        Outcome::go_on(reply)
    }

    /// Checks credentials through the one login path. `authzid`, when given, must name the same user.
    async fn login(&mut self, tag: &str, user: &str, authzid: &str, password: &str) -> Outcome {
        let acting_as_self = authzid.is_empty()
            || login_name(&self.config, authzid) == login_name(&self.config, user);
        let user = if acting_as_self { user } else { "" };
        let result = login(
            self.store.as_ref(),
            &self.config,
            &self.throttle,
            self.peer.ip(),
            user,
            password,
        )
        .await;
        match result {
            LoginResult::Ok(account) => {
                self.account = Some(account);
                self.state = State::Authenticated;
                let code = format!("CAPABILITY {}", self.capabilities());
                Outcome::go_on(super::respond::status(tag, "OK", Some(&code), "Logged in"))
            }
            LoginResult::Blocked => {
                Outcome::close(bye("[UNAVAILABLE] Too many failed logins; try again later"))
            }
            LoginResult::Failed => self.login_failed(tag),
            LoginResult::Unavailable(e) => Outcome::go_on(self.store_failure(tag, &e)),
        }
    }
}
