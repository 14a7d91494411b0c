//! One SMTP conversation as a state machine: lines and DATA in, replies out. Inbound (port 25) accepts mail
//! for local users from anyone; submission (RFC 6409) first wants AUTH and then a sender of the user's own.

use std::net::SocketAddr;
use std::sync::Arc;

use jmail_proto::sasl::{self, Credentials, Mechanism, SaslError};
use jmail_proto::smtp::chunk::{ChunkEnd, canonical_line_ends};
use jmail_proto::smtp::{CommandError, DataEnd, Request, parse_command, wire};

use super::{envelope, verify};
use crate::auth::normalize_name;
use crate::caps::{Admission, Caps, Refusal};
use jmail_proto::header_fields::strip_own_results;
use std::borrow::Cow;

use crate::config::Config;
use crate::outbound::{Mailer, dsn_request};
use crate::store::{Account, Delivery, MailStore, Outbound, StoreError, UserId};
use crate::throttle::{LoginResult, LoginThrottle, login, login_name};

/// Which listener the session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail for local users from anyone; no AUTH.
    Inbound,
    /// Port 587: AUTH first, then mail from the user's own address.
    Submission,
}

/// The reply when the store's disk reserve would not be left free (`limits.disk_free_bytes_min`).
const DISK_NEARLY_FULL: &str =
    "452 4.3.1 Insufficient system storage; nothing was stored; try again later";

/// The local name every SMTP server accepts mail for.
const POSTMASTER: &str = "postmaster";

/// What the connection does after sending the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read the next command line.
    Command,
    /// Read a message (the reply was 354).
    Data,
    /// Read a BDAT chunk of `size` bytes (RFC 3030), kept when `keep`; then call [`Session::on_chunk`],
    /// which gives the reply. The chunk's bytes are read even when its BDAT was refused.
    Chunk {
        size: u64,
        keep: bool,
    },
    /// Start the TLS handshake (the reply was 220 to STARTTLS); then call [`Session::on_tls_started`].
    StartTls,
    Close,
}

#[derive(Debug)]
pub struct Outcome {
    pub reply: Vec<u8>,
    pub next: Next,
}

impl Outcome {
    fn reply(text: impl Into<String>) -> Outcome {
        Outcome {
            reply: crlf(text.into()),
            next: Next::Command,
        }
    }

    fn close(text: impl Into<String>) -> Outcome {
        Outcome {
            reply: crlf(text.into()),
            next: Next::Close,
        }
    }
}

fn crlf(mut text: String) -> Vec<u8> {
    text.push_str("\r\n");
    text.into_bytes()
}

/// A SASL exchange waiting for the client's next line.
#[derive(Debug)]
enum AuthStep {
    PlainResponse,
    LoginUser,
    LoginPassword { user: String },
}

/// The open mail transaction (after MAIL).
#[derive(Debug)]
struct Transaction {
    sender: String,
    smtputf8: bool,
    /// Local user names, each once.
    users: Vec<String>,
    /// Recipients at other domains (submission only), each once.
    remote: Vec<String>,
    /// The addresses as given in RCPT, for the Received header.
    addresses: Vec<String>,
    /// The message so far when it comes by BDAT (from the first chunk on).
    chunks: Option<Vec<u8>>,
    /// Local users (id and name) whose automatic reply is on.
    away: Vec<(UserId, String)>,
    /// What the sender asked of delivery reports (RFC 3461).
    dsn: dsn_request::Request,
}

pub struct Session {
    store: Arc<dyn MailStore>,
    config: Arc<Config>,
    /// The server's failed-login bookkeeping, shared by every session of every protocol.
    throttle: Arc<LoginThrottle>,
    peer: SocketAddr,
    mode: Mode,
    /// The client's EHLO/HELO name, and whether it said EHLO.
    helo: Option<(String, bool)>,
    account: Option<Account>,
    auth_step: Option<AuthStep>,
    transaction: Option<Transaction>,
    bad_commands: u32,
    login_failures: u32,
    /// The connection is encrypted (implicit TLS, or after STARTTLS).
    tls: bool,
    /// Slots for messages being received from unauthenticated clients, shared by the server.
    data_slots: Option<Arc<Caps>>,
    /// This session's slot while its DATA (or its BDAT chunks) is being received.
    data_permit: Option<Admission>,
    /// What unauthenticated clients stored this hour, per address, shared by the server.
    unauth_volume: Option<Arc<crate::caps::HourlyVolume>>,
    /// The BDAT whose chunk is being read: its size, whether it is the last, and the reply it gets
    /// instead when it was refused.
    chunk: Option<(u64, bool, Option<String>)>,
    /// DNS checks of strangers' mail, DKIM signing and the sending limit; without it (sessions made
    /// by hand), mail to other domains is refused and nothing is checked.
    mailer: Option<Arc<Mailer>>,
    /// The address the client reached: `user@[that address]` is local (RFC 1123 §5.2.17).
    local_ip: Option<std::net::IpAddr>,
}

impl Session {
    pub fn new(
        store: Arc<dyn MailStore>,
        config: Arc<Config>,
        throttle: Arc<LoginThrottle>,
        peer: SocketAddr,
        mode: Mode,
        tls: bool,
    ) -> Session {
        Session {
            store,
            config,
            throttle,
            peer,
            mode,
            helo: None,
            account: None,
            auth_step: None,
            transaction: None,
            bad_commands: 0,
            login_failures: 0,
            tls,
            data_slots: None,
            data_permit: None,
            unauth_volume: None,
            chunk: None,
            mailer: None,
            local_ip: None,
        }
    }

    pub fn with_mailer(mut self, mailer: Arc<Mailer>) -> Session {
        self.mailer = Some(mailer);
        self
    }

    /// The address the client connected to, whose address literal names this host.
    pub fn with_local_ip(mut self, ip: Option<std::net::IpAddr>) -> Session {
        self.local_ip = ip.map(|ip| ip.to_canonical());
        self
    }

    /// `user@[ip]` where ip is the address the client reached, as `user@` the primary domain: a host
    /// MUST take its own address literals as itself (RFC 1123 §5.2.17, RFC 5321 §4.1.3).
    fn own_literal(&self, address: &str) -> Option<String> {
        let (local, domain) = address.rsplit_once('@')?;
        let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
        let named: std::net::IpAddr = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                inner[5..].parse::<std::net::Ipv6Addr>().ok()?.into()
            }
            _ => inner.parse::<std::net::Ipv4Addr>().ok()?.into(),
        };
        (Some(named.to_canonical()) == self.local_ip).then(|| format!("{local}@{}", self.domain()))
    }

    /// Bounds what unauthenticated clients may have stored from one address in an hour.
    pub fn with_unauth_volume(mut self, volume: Arc<crate::caps::HourlyVolume>) -> Session {
        self.unauth_volume = Some(volume);
        self
    }

    /// The shared hourly count when this client is a stranger to it (not logged in, not this host).
    fn stranger_volume(&self) -> Option<&crate::caps::HourlyVolume> {
        match self.account.is_none() && !self.peer_is_this_host() {
            true => self.unauth_volume.as_deref(),
            false => None,
        }
    }

    /// Bounds how many messages unauthenticated clients send at once, server-wide.
    pub fn with_data_slots(mut self, slots: Arc<Caps>) -> Session {
        self.data_slots = Some(slots);
        self
    }

    fn domain(&self) -> &str {
        self.config.primary_domain()
    }

    pub fn greeting(&self) -> Vec<u8> {
        crlf(format!("220 {} ESMTP Jmail ready", self.domain()))
    }

    pub fn on_timeout(&self) -> Vec<u8> {
        crlf(format!(
            "421 4.4.2 {} timeout waiting for input; closing",
            self.domain()
        ))
    }

    /// The server holds as much arriving mail as it may: this message is dropped, and the sender is to
    /// retry (421: the client must treat the message as not delivered).
    pub fn on_overload(&self) -> Vec<u8> {
        crlf(format!(
            "421 4.3.2 {} receiving too much mail at once; try again later",
            self.domain()
        ))
    }

    pub fn on_shutdown(&self) -> Vec<u8> {
        crlf(format!(
            "421 4.3.2 {} shutting down; try again later",
            self.domain()
        ))
    }

    /// Largest message DATA may carry.
    pub fn data_bytes_max(&self) -> usize {
        self.config.limits.message_bytes_max
    }

    /// After the TLS handshake: everything learnt in clear is forgotten (RFC 3207 §4.2).
    pub fn on_tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.account = None;
        self.auth_step = None;
        self.end_transaction();
    }

    /// Passwords are taken only under TLS, from loopback, or when the operator allowed it.
    fn plaintext_auth_ok(&self) -> bool {
        crate::conn::plaintext_auth_allowed(
            self.peer.ip(),
            self.tls,
            self.config.allow_plaintext_auth,
        )
    }

    /// A line longer than the limit (RFC 5321 §4.5.3.1.10).
    pub fn on_too_long(&mut self) -> Outcome {
        self.auth_step = None;
        self.bad("500 5.5.2 Line too long")
    }

    pub async fn on_line(&mut self, line: &[u8]) -> Outcome {
        if let Some(step) = self.auth_step.take() {
            return self.on_auth_response(step, line).await;
        }
        match parse_command(line) {
            Ok(request) => self.on_request(request).await,
            Err(CommandError::Unknown) => self.bad("500 5.5.2 Command not recognized"),
            Err(CommandError::BadAddress) => self.bad("501 5.1.3 Bad address syntax"),
            Err(CommandError::Syntax(syntax)) => self.bad(format!("501 5.5.4 Syntax: {syntax}")),
            Err(CommandError::UnsupportedParameter(p)) => {
                let p: String = p
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(40)
                    .collect();
                self.bad(format!("555 5.5.4 Unsupported parameter {p}"))
            }
        }
    }

    /// Counts a protocol error; too many close the connection.
    fn bad(&mut self, reply: impl Into<String>) -> Outcome {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.limits.bad_commands_max {
            return Outcome::close("421 4.7.0 Too many errors; closing");
        }
        Outcome::reply(reply)
    }

    async fn on_request(&mut self, request: Request<String>) -> Outcome {
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Mail { from } => match self.revoked().await {
                Some(revoked) => revoked,
                None => self.mail(from).await,
            },
            Request::Rcpt { to } => self.rcpt_with_dsn(to).await,
            Request::Data => self.data(),
            Request::Rset => {
                self.end_transaction();
                Outcome::reply("250 2.0.0 OK")
            }
            Request::Noop { .. } => Outcome::reply("250 2.0.0 OK"),
            Request::Quit => Outcome::close(format!("221 2.0.0 {} closing", self.domain())),
            // Answering VRFY would tell strangers which users exist (RFC 5321 §3.5.3 allows 252).
            Request::Vrfy { .. } => {
                Outcome::reply("252 2.5.0 Cannot verify users; send mail and it will be delivered")
            }
            Request::Expn { .. } => Outcome::reply("502 5.5.1 EXPN is not available"),
            Request::Help { .. } => Outcome::reply(format!(
                "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP{}{}",
                if self.tls { "" } else { " STARTTLS" },
                if self.mode == Mode::Submission {
                    " AUTH"
                } else {
                    ""
                },
            )),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await,
            Request::StartTls if self.tls => self.bad("503 5.5.1 TLS is already active"),
            // The handshake would end the transaction unseen; the client must finish or RSET it.
            Request::StartTls if self.transaction.is_some() => {
                self.bad("503 5.5.1 A transaction is open; RSET first")
            }
            Request::StartTls => Outcome {
                reply: crlf("220 2.0.0 Ready to start TLS".to_string()),
                next: Next::StartTls,
            },
            Request::Lhlo { .. } => self.bad("500 5.5.2 LHLO is for LMTP; this is SMTP"),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size as u64, is_last),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.bad("502 5.5.1 Command not implemented")
            }
        }
    }

    fn hello(&mut self, host: String, extended: bool) -> Outcome {
        if host.is_empty() {
            return self.bad("501 5.5.4 Syntax: EHLO hostname");
        }
        self.end_transaction();
        let greeting = format!("{} greets {host}", self.domain());
        self.helo = Some((host, extended));
        if !extended {
            return Outcome::reply(format!("250 {greeting}"));
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.limits.message_bytes_max),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
            "DSN".to_string(),
        ];
        if !self.tls {
            lines.push("STARTTLS".to_string());
        }
        if self.mode == Mode::Submission && self.account.is_none() && self.plaintext_auth_ok() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        lines.push("HELP".to_string());
        let last = lines.len() - 1;
        let text: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
            .collect();
        Outcome::reply(text.join("\r\n"))
    }

    /// `421` when the authenticated account was deleted or its password changed since AUTH.
    async fn revoked(&self) -> Option<Outcome> {
        let account = self.account.as_ref()?;
        match crate::accounts::still_valid(self.store.as_ref(), account).await {
            Ok(true) => None,
            Ok(false) => {
                tracing::info!(peer = %self.peer, user = %account.name, "SMTP session ended: account deleted or password changed");
                Some(Outcome::close(
                    "421 4.7.0 Your login is no longer valid (account deleted or password changed); closing",
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "checking a login failed");
                Some(Outcome::reply(
                    "451 4.3.0 Temporary failure; try again later",
                ))
            }
        }
    }

    async fn mail(&mut self, from: wire::MailFrom<String>) -> Outcome {
        if self.helo.is_none() {
            return self.bad("503 5.5.1 Send EHLO first");
        }
        if self.mode == Mode::Submission && self.account.is_none() {
            return Outcome::reply("530 5.7.0 Authentication required");
        }
        if self.transaction.is_some() {
            return self.bad("503 5.5.1 A transaction is already open; RSET first");
        }
        if from.flags & wire::MAIL_BODY_BINARYMIME != 0 {
            return Outcome::reply("555 5.5.4 BINARYMIME is not supported");
        }
        if !from.address.is_ascii() && from.flags & wire::MAIL_SMTPUTF8 == 0 {
            return Outcome::reply(UTF8_UNDECLARED);
        }
        if from.size > self.config.limits.message_bytes_max {
            return Outcome::reply(format!(
                "552 5.3.4 Message too big; the limit is {} bytes",
                self.config.limits.message_bytes_max
            ));
        }
        // Mail from a local address comes from a logged-in user or from this machine: a stranger who
        // says it is forging (a spoofed colleague is the oldest phishing trick there is).
        if self.mode == Mode::Inbound
            && !self.peer_is_this_host()
            && from.address.contains('@')
            && self.config.local_part(&from.address).is_some()
        {
            return Outcome::reply(format!(
                "550 5.7.1 Sender <{}> is an address of this server; its users log in on the submission port to send",
                printable(&from.address)
            ));
        }
        if self
            .stranger_volume()
            .is_some_and(|v| !v.has_room(self.peer.ip(), from.size.max(1) as u64))
        {
            return Outcome::reply(
                "452 4.7.1 Too much mail from your address this hour; try again later",
            );
        }
        // RFC 1870 §6.1: a size the server cannot take now, for want of storage, is 452 at MAIL.
        if let Err(StoreError::LowOnDisk) = self.store.has_disk_room(from.size as u64).await {
            return Outcome::reply(DISK_NEARLY_FULL);
        }
        // The null sender is allowed: read receipts (RFC 8098 §2.1) and other automatic replies use
        // it, and nothing comes back to it.
        if let Some(account) = &self.account
            && !from.address.is_empty()
            && !self.owns(account, &from.address)
        {
            return Outcome::reply(format!(
                "553 5.7.1 Sender <{}> is not yours; use {}@{}",
                printable(&from.address),
                account.name,
                self.domain()
            ));
        }
        // Decoded xtext can hold line breaks, which would forge fields of the report it is quoted in.
        if let Some(envid) = &from.env_id
            && !dsn_request::acceptable(envid, dsn_request::ENVID_CHARS_MAX)
        {
            return self.bad("501 5.5.4 ENVID must be 1 to 100 printable characters");
        }
        let ret = match from.flags & (wire::MAIL_RET_FULL | wire::MAIL_RET_HDRS) {
            0 => None,
            wire::MAIL_RET_FULL => Some(dsn_request::Ret::Full),
            wire::MAIL_RET_HDRS => Some(dsn_request::Ret::Hdrs),
            _ => return self.bad("501 5.5.4 RET is given once: FULL or HDRS"),
        };
        self.transaction = Some(Transaction {
            sender: from.address,
            smtputf8: from.flags & wire::MAIL_SMTPUTF8 != 0,
            users: Vec::new(),
            remote: Vec::new(),
            addresses: Vec::new(),
            chunks: None,
            away: Vec::new(),
            dsn: dsn_request::Request {
                ret,
                envid: from.env_id,
                ..Default::default()
            },
        });
        Outcome::reply("250 2.1.0 Sender OK")
    }

    /// Submitted mail must say it is from its sender: every `From` and `Sender` address one of the user's
    /// own (RFC 6409 §6.1 leaves sender checks to the MSA; without this alice could sign mail as carol).
    /// A message without `From` gets the user's address added by the envelope.
    fn check_authors(&self, account: &Account, body: &[u8]) -> Result<(), String> {
        let authors = jmail_proto::mime::authors(body);
        let strangers: Vec<String> = authors
            .addresses
            .iter()
            .filter(|a| !self.owns(account, a))
            .map(|a| printable(a))
            .collect();
        if authors.unreadable || authors.from_headers > 1 || !strangers.is_empty() {
            let named = if strangers.is_empty() {
                String::new()
            } else {
                format!(" (<{}>)", strangers.join(">, <"))
            };
            return Err(format!(
                "553 5.7.1 From and Sender must be your own address, {}@{}{named}; nothing was stored",
                account.name,
                self.domain()
            ));
        }
        Ok(())
    }

    /// Mail from this machine itself (a local script or content filter on 127.0.0.1 or ::1) is trusted
    /// as OpenDKIM and OpenDMARC trust it by default: it has no SPF or DKIM to prove, and it may send as
    /// a local user.
    fn peer_is_this_host(&self) -> bool {
        match self.peer.ip() {
            std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
            std::net::IpAddr::V6(ip) => {
                ip == std::net::Ipv6Addr::LOCALHOST
                    || ip.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
            }
        }
    }

    /// An authenticated user may send only as one of their own local addresses.
    fn owns(&self, account: &Account, sender: &str) -> bool {
        sender.contains('@')
            && self
                .config
                .local_part(sender)
                .is_some_and(|local| local.eq_ignore_ascii_case(&account.name))
    }

    /// RCPT with its DSN parameters (RFC 3461 §4.1, §4.2), kept for a recipient once it is accepted.
    async fn rcpt_with_dsn(&mut self, to: wire::RcptTo<String>) -> Outcome {
        if let Some(orcpt) = &to.orcpt
            && !dsn_request::acceptable(orcpt, dsn_request::ORCPT_CHARS_MAX)
        {
            return self.bad("501 5.5.4 ORCPT must be 1 to 500 printable characters");
        }
        let notify_flags = wire::RCPT_NOTIFY_SUCCESS
            | wire::RCPT_NOTIFY_FAILURE
            | wire::RCPT_NOTIFY_DELAY
            | wire::RCPT_NOTIFY_NEVER;
        let notify = (to.flags & notify_flags != 0).then_some(dsn_request::Notify {
            success: to.flags & wire::RCPT_NOTIFY_SUCCESS != 0,
            failure: to.flags & wire::RCPT_NOTIFY_FAILURE != 0,
            delay: to.flags & wire::RCPT_NOTIFY_DELAY != 0,
        });
        // NEVER stands alone (RFC 3461 §4.1).
        if to.flags & wire::RCPT_NOTIFY_NEVER != 0
            && to.flags & (notify_flags ^ wire::RCPT_NOTIFY_NEVER) != 0
        {
            return self.bad("501 5.5.4 NOTIFY=NEVER cannot be combined with other values");
        }
        let accepted_before = self.transaction.as_ref().map(|t| t.addresses.len());
        let outcome = self.rcpt(&to.address).await;
        if let Some(t) = self.transaction.as_mut()
            && Some(t.addresses.len()) > accepted_before
        {
            t.dsn.add(
                &to.address,
                dsn_request::Recipient {
                    notify,
                    orcpt: to.orcpt,
                },
            );
        }
        outcome
    }

    async fn rcpt(&mut self, address: &str) -> Outcome {
        let Some(transaction) = &self.transaction else {
            return self.bad("503 5.5.1 Send MAIL first");
        };
        if transaction.chunks.is_some() {
            return self.bad("503 5.5.1 BDAT has begun this message; no more recipients");
        }
        if !address.is_ascii() && !transaction.smtputf8 {
            return Outcome::reply(UTF8_UNDECLARED);
        }
        if transaction.addresses.len() >= self.config.limits.recipients_max {
            return Outcome::reply(
                "452 4.5.3 Too many recipients; send the rest in another message",
            );
        }
        let own = self.own_literal(address);
        let address = own.as_deref().unwrap_or(address);
        let Some(local) = self.config.local_part(address) else {
            return self.remote_rcpt(address);
        };
        // Unknown recipients count as errors: a stranger cannot try names without end (VRFY is 252 for
        // the same reason).
        let unknown = format!(
            "550 5.1.1 <{}>: no such user here",
            printable(&jmail_proto::smtp_client::path_address(address))
        );
        let Ok(mut name) = normalize_name(local) else {
            return self.bad(unknown);
        };
        if name == POSTMASTER {
            match self.postmaster().await {
                Ok(Some(user)) => name = user,
                Ok(None) => return self.bad(unknown),
                Err(e) => {
                    tracing::warn!(error = %e, "finding the postmaster failed");
                    return Outcome::reply("451 4.3.0 Temporary failure; try again later");
                }
            }
        }
        let recipient = match self.store.recipient(&name).await {
            Ok(Some(recipient)) if recipient.has_room => recipient,
            // Said at RCPT, before the data is sent: the sender keeps its other recipients and retries
            // this one (RFC 3463 X.2.2); a message that would pass the quota gets 552 5.2.2 after DATA.
            Ok(Some(_)) => {
                return Outcome::reply(format!(
                    "452 4.2.2 <{}>: mailbox full; try again later",
                    printable(address)
                ));
            }
            Ok(None) => return self.bad(unknown),
            Err(e) => {
                tracing::warn!(error = %e, "checking a recipient failed");
                return Outcome::reply("451 4.3.0 Temporary failure; try again later");
            }
        };
        let Some(transaction) = self.transaction.as_mut() else {
            return self.bad("503 5.5.1 Send MAIL first");
        };
        if !transaction.users.contains(&name) {
            if recipient.away {
                transaction.away.push((recipient.user, name.clone()));
            }
            transaction.users.push(name);
        }
        transaction.addresses.push(address.to_string());
        Outcome::reply("250 2.1.5 Recipient OK")
    }

    /// A recipient at another domain: only a logged-in user's mail goes there (never an open relay).
    fn remote_rcpt(&mut self, address: &str) -> Outcome {
        if self.account.is_none() {
            return Outcome::reply("550 5.7.1 Relay access denied");
        }
        if self.mailer.is_none() {
            return Outcome::reply("550 5.7.1 Delivery to other domains is not available here");
        }
        if !crate::outbound::plausible_address(address, self.config.outbound_private_addresses) {
            return self.bad(format!(
                "553 5.1.3 <{}>: not a deliverable address",
                printable(address)
            ));
        }
        let Some(transaction) = self.transaction.as_mut() else {
            return self.bad("503 5.5.1 Send MAIL first");
        };
        if !transaction
            .remote
            .iter()
            .any(|r| r.eq_ignore_ascii_case(address))
        {
            transaction.remote.push(address.to_string());
        }
        transaction.addresses.push(address.to_string());
        Outcome::reply("250 2.1.5 Recipient OK")
    }

    /// Who gets mail for `postmaster`, which every SMTP server must accept (RFC 5321 §4.5.1): the configured
    /// user, else a user named postmaster, else the first user created.
    async fn postmaster(&self) -> Result<Option<String>, StoreError> {
        if let Some(user) = &self.config.postmaster {
            return Ok(normalize_name(user).ok());
        }
        let own = [POSTMASTER.to_string()];
        if !self.store.existing_users(&own).await?.is_empty() {
            return Ok(Some(POSTMASTER.to_string()));
        }
        self.store.first_user().await
    }

    fn data(&mut self) -> Outcome {
        if let Some(refused) = self.before_message() {
            return refused;
        }
        if self.in_chunked_message() {
            return self.bad("503 5.5.1 BDAT has begun this message; end it with BDAT LAST");
        }
        if let Err(reply) = self.admit_message() {
            return Outcome::reply(reply);
        }
        Outcome {
            reply: crlf("354 Start mail input; end with <CRLF>.<CRLF>".to_string()),
            next: Next::Data,
        }
    }

    /// Why a message cannot begin now (no MAIL, no recipient), if it cannot.
    fn before_message(&mut self) -> Option<Outcome> {
        match &self.transaction {
            None => Some(self.bad("503 5.5.1 Send MAIL first")),
            Some(t) if t.users.is_empty() && t.remote.is_empty() => {
                Some(self.bad("503 5.5.1 No valid recipients; send RCPT first"))
            }
            Some(_) => None,
        }
    }

    /// A stranger's message is held in memory while it arrives: their number is bounded. Takes this
    /// session's slot (once per message), or says why there is none.
    fn admit_message(&mut self) -> Result<(), &'static str> {
        if self.account.is_some() || self.data_permit.is_some() {
            return Ok(());
        }
        let Some(slots) = &self.data_slots else {
            return Ok(());
        };
        match slots.admit(self.peer.ip()) {
            Ok(permit) => {
                self.data_permit = Some(permit);
                Ok(())
            }
            Err(Refusal::ServerFull) => {
                Err("452 4.3.1 Too many messages are being received; try again later")
            }
            Err(Refusal::TooManyFromIp) => {
                Err("452 4.3.1 Too many messages at once from your address; try again later")
            }
        }
    }

    /// `BDAT size [LAST]` (RFC 3030): the chunk is read next, refused or not; its reply comes after it.
    /// A refused chunk ends the transaction (§2: the client sends no more chunks of it).
    fn bdat(&mut self, size: u64, last: bool) -> Outcome {
        let refusal = match self.before_message() {
            Some(refused) if refused.next == Next::Close => return refused,
            Some(refused) => Some(refused.reply),
            None => self.admit_message().err().map(|r| crlf(r.to_string())),
        };
        let refusal = refusal.map(|reply| {
            self.end_transaction();
            String::from_utf8_lossy(&reply).trim_end().to_string()
        });
        if let Some(t) = self.transaction.as_mut() {
            t.chunks.get_or_insert_with(Vec::new);
        }
        let keep = refusal.is_none();
        self.chunk = Some((size, last, refusal));
        Outcome {
            reply: Vec::new(),
            next: Next::Chunk { size, keep },
        }
    }

    /// Room left under the size limit for the chunk being read.
    pub fn chunk_room(&self) -> usize {
        let so_far = self
            .transaction
            .as_ref()
            .and_then(|t| t.chunks.as_ref())
            .map_or(0, Vec::len);
        self.data_bytes_max().saturating_sub(so_far)
    }

    /// Whether this message must arrive at `smtp_data_unauth_bytes_per_sec_min`: the client has not
    /// authenticated, so its message holds one of the `smtp_data_unauth_max` slots, and at least half of
    /// those are taken. While most are free, a sender on a slow link keeps the rate everyone keeps
    /// (`data_bytes_per_sec_min`) and its mail gets through; when they run short, slow senders are cut
    /// and their slots go to the rest (8 addresses at 4 KiB/s held all 64 for 44 minutes).
    pub fn must_hurry(&self) -> bool {
        self.account.is_none() && self.data_slots.as_ref().is_some_and(|s| s.half_taken())
    }

    /// The farewell to a message cut off for arriving too slowly.
    pub fn on_too_slow(&self) -> Vec<u8> {
        crlf(format!(
            "421 4.4.2 {} message arriving too slowly; closing",
            self.domain()
        ))
    }

    /// Whether a message by BDAT has begun and not yet ended.
    pub fn in_chunked_message(&self) -> bool {
        self.transaction
            .as_ref()
            .is_some_and(|t| t.chunks.is_some())
    }

    /// Bytes of a message by BDAT held between its chunks.
    pub fn chunk_bytes_held(&self) -> usize {
        self.transaction
            .as_ref()
            .and_then(|t| t.chunks.as_ref())
            .map_or(0, Vec::capacity)
    }

    /// A BDAT chunk has been read: `250` for one that is not the last, and the message's fate for the
    /// last (`250` only once it is durable for every recipient, as after DATA).
    pub async fn on_chunk(&mut self, end: ChunkEnd) -> Outcome {
        let Some((size, last, refusal)) = self.chunk.take() else {
            return Outcome::reply("503 5.5.1 No BDAT was given");
        };
        if let Some(refusal) = refusal {
            return Outcome::reply(refusal);
        }
        let Some(transaction) = self.transaction.as_mut() else {
            return Outcome::reply("503 5.5.1 Send MAIL first");
        };
        match end {
            ChunkEnd::Bytes(bytes) => transaction
                .chunks
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&bytes),
            ChunkEnd::Dropped => {}
            // The transaction fails now (RFC 3030 §2: the client sends no more of its chunks).
            ChunkEnd::TooBig => {
                self.end_transaction();
                return self.too_big();
            }
        }
        if !last {
            return Outcome::reply(format!("250 2.0.0 {size} octets received"));
        }
        // The slot is held until the message is stored: parsing and checking it cost memory too.
        let _permit = self.data_permit.take();
        let Some(mut transaction) = self.transaction.take() else {
            return Outcome::reply("503 5.5.1 Send MAIL first");
        };
        let body = canonical_line_ends(transaction.chunks.take().unwrap_or_default());
        self.deliver(transaction, body).await
    }

    /// Forgets the open transaction and gives back its slot for a message in progress.
    fn end_transaction(&mut self) {
        self.transaction = None;
        self.data_permit = None;
    }

    fn too_big(&self) -> Outcome {
        Outcome::reply(format!(
            "552 5.3.4 Message too big; the limit is {} bytes",
            self.config.limits.message_bytes_max
        ))
    }

    /// The message after DATA. `250` only once it is durable for every recipient.
    pub async fn on_data(&mut self, end: DataEnd) -> Outcome {
        // The slot is held until the message is stored: parsing and checking it cost memory too.
        let _permit = self.data_permit.take();
        let Some(transaction) = self.transaction.take() else {
            return Outcome::reply("503 5.5.1 Send MAIL first");
        };
        match end {
            DataEnd::Message(body) => self.deliver(transaction, body).await,
            DataEnd::TooBig => self.too_big(),
        }
    }

    /// A whole message of `transaction`, by DATA or BDAT: checked, stamped and stored (or queued).
    async fn deliver(&mut self, mut transaction: Transaction, body: Vec<u8>) -> Outcome {
        if let Some(revoked) = self.revoked().await {
            return revoked;
        }
        if let Some(account) = &self.account
            && let Err(reply) = self.check_authors(account, &body)
        {
            return Outcome::reply(reply);
        }
        let counts = envelope::count_fields(&body);
        if counts.fields > envelope::HEADER_FIELDS_MAX {
            return Outcome::reply(format!(
                "552 5.3.4 Too many header fields (more than {}); nothing was stored",
                envelope::HEADER_FIELDS_MAX
            ));
        }
        // A message that has passed through this many servers is going round in circles (RFC 5321 §6.3).
        if counts.received >= envelope::HOPS_MAX {
            return Outcome::reply(format!(
                "554 5.4.6 Too many hops ({} Received fields): a mail loop? Nothing was stored",
                envelope::HOPS_MAX
            ));
        }
        let (helo, extended) = self.helo.clone().unwrap_or_default();
        // No one but this server speaks for its checks: a stranger's or a user's own "pass" in our
        // name is dropped, whoever sends (a user writing to a colleague included).
        let stripped = match strip_own_results(&body, self.config.hostname()) {
            Cow::Owned(stripped) => Some(stripped),
            Cow::Borrowed(_) => None,
        };
        let mut body = stripped.unwrap_or(body);
        // Strangers' mail is checked (SPF, DKIM, DMARC) and the results put on top of it.
        let mut junk = false;
        // Whether an automatic reply may go to the envelope sender: without checks, trusted as given.
        let mut sender_proven = true;
        if self.account.is_none()
            && self.config.inbound_auth_checks
            && !self.peer_is_this_host()
            && let Some(mailer) = &self.mailer
        {
            let hostname = self.config.hostname();
            let verdict = verify::check(
                &mailer.dns,
                hostname,
                |domain| self.config.is_local_domain(domain),
                (self.peer.ip(), &helo, &transaction.sender),
                &body,
            )
            .await;
            match verdict.disposition {
                verify::Disposition::Reject => {
                    tracing::info!(peer = %self.peer, from = %verdict.from_domain, "refused by the sender domain's DMARC policy");
                    return Outcome::reply(format!(
                        "550 5.7.1 Message refused: it fails the DMARC policy of {}",
                        printable(&verdict.from_domain)
                    ));
                }
                verify::Disposition::Refuse(reason) => {
                    tracing::info!(peer = %self.peer, reason, "refused: no one author domain to check");
                    return Outcome::reply(format!("550 5.7.1 Message refused: {reason}"));
                }
                verify::Disposition::Quarantine => junk = true,
                verify::Disposition::Deliver => {}
            }
            sender_proven = verdict.sender_proven;
            let mut stamped = verdict.header.into_bytes();
            stamped.extend_from_slice(&body);
            body = stamped;
        }
        let trace = envelope::Trace {
            helo: &helo,
            extended,
            authenticated: self.account.is_some(),
            tls: self.tls,
            smtputf8: transaction.smtputf8,
            peer: self.peer,
            by: self.config.hostname(),
            sender: &transaction.sender,
            recipients: &transaction.addresses,
            submission: self.mode == Mode::Submission,
        };
        let (mut message, id) = envelope::stamp(&trace, body);
        let outbound = match (&self.account, transaction.remote.is_empty()) {
            (Some(account), false) => {
                match self.outbound(account, &transaction, &mut message).await {
                    Ok(outbound) => Some(outbound),
                    Err(reply) => return reply,
                }
            }
            _ => None,
        };
        let queued = outbound.is_some();
        // What an automatic reply reads of the message: its header, at most.
        let away = match junk {
            false => std::mem::take(&mut transaction.away),
            true => Vec::new(),
        };
        let head = (!away.is_empty()).then(|| crate::vacation::head_of(&message.raw));
        let delivery = Delivery {
            local: transaction.users,
            message,
            sent_copy_of: None,
            junk,
            outbound,
        };
        let arrival_micros = delivery.message.internal_date_micros;
        let report_head = transaction
            .dsn
            .recipients
            .values()
            .any(|r| r.wants_success())
            .then(|| {
                delivery.message.raw[..crate::message::header_end(&delivery.message.raw)].to_vec()
            });
        let stored_bytes = delivery.message.raw.len() as u64;
        let stored = self.store.submit(delivery).await;
        if stored.is_ok()
            && let Some(volume) = self.stranger_volume()
        {
            volume.add(self.peer.ip(), stored_bytes);
        }
        if stored.is_ok()
            && !junk
            && let Some(head) = &report_head
        {
            // Local recipients only: the server that takes the others reports on them, or the
            // queue does when it hands them on.
            let local: Vec<String> = transaction
                .addresses
                .iter()
                .filter(|a| self.config.local_part(a).is_some())
                .cloned()
                .collect();
            let stored_here = crate::outbound::delivered::Stored {
                sender: &transaction.sender,
                recipients: &local,
                raw: head,
                arrival_micros,
                sender_proven,
            };
            crate::outbound::delivered::report(
                &*self.store,
                self.mailer.as_ref(),
                &self.config,
                &transaction.dsn,
                &stored_here,
            )
            .await;
        }
        if stored.is_ok()
            && let Some(head) = head
        {
            let received = crate::vacation::Received {
                sender: &transaction.sender,
                message: &head,
                sender_proven,
            };
            for (user, name) in &away {
                let mailer = self.mailer.as_ref();
                crate::vacation::answer(
                    &*self.store,
                    mailer,
                    &self.config,
                    (*user, name),
                    &received,
                )
                .await;
            }
        }
        match stored {
            Ok(_) if queued => Outcome::reply(format!("250 2.0.0 OK: queued as {id}")),
            Ok(_) => Outcome::reply(format!("250 2.0.0 OK: stored as {id}")),
            Err(StoreError::OverQuota(user)) => Outcome::reply(format!(
                "552 5.2.2 <{user}>: mailbox full; nothing was stored"
            )),
            Err(StoreError::LowOnDisk) => Outcome::reply(DISK_NEARLY_FULL),
            Err(StoreError::UnknownRecipient(user)) => Outcome::reply(format!(
                "550 5.1.1 <{user}>: no such user here (removed during the transaction)"
            )),
            Err(e) => {
                tracing::warn!(error = %e, "SMTP delivery failed; nothing stored");
                Outcome::reply("451 4.3.0 Temporary failure; nothing was stored; try again later")
            }
        }
    }

    /// The queue entries for a submitted message's other domains (the shared path: hourly limit, DKIM).
    async fn outbound(
        &self,
        account: &Account,
        transaction: &Transaction,
        message: &mut crate::store::NewMessage,
    ) -> Result<Outbound, Outcome> {
        let mailer = self
            .mailer
            .as_ref()
            .expect("remote recipients need the mailer");
        let queued = crate::outbound::queue_remote(
            mailer,
            &self.config,
            account.id,
            &transaction.sender,
            &transaction.remote,
            message,
        )
        .await;
        queued
            .map(|mut outbound| {
                outbound.dsn = transaction.dsn.to_json();
                outbound
            })
            .map_err(|why| match why {
            crate::outbound::NotQueued::HourlyLimit => {
                tracing::warn!(user = %account.name, peer = %self.peer, "hourly sending limit reached; message refused");
                Outcome::reply(
                    "451 4.7.1 You have sent as much mail to other domains as an hour allows; try again later",
                )
            }
            crate::outbound::NotQueued::Signing => {
                Outcome::reply("451 4.3.0 Temporary failure; nothing was stored; try again later")
            }
        })
    }

    async fn auth(&mut self, mechanism: u64, initial: String) -> Outcome {
        if self.mode != Mode::Submission {
            return Outcome::reply("503 5.5.1 AUTH is offered on the submission port");
        }
        if self.account.is_some() {
            return self.bad("503 5.5.1 Already authenticated");
        }
        if self.transaction.is_some() {
            return self.bad("503 5.5.1 AUTH is not allowed during a mail transaction");
        }
        if !self.plaintext_auth_ok() {
            return Outcome::reply(
                "538 5.7.11 Encryption required for requested authentication mechanism; use STARTTLS",
            );
        }
        let mechanism = match mechanism {
            wire::AUTH_PLAIN => Mechanism::Plain,
            wire::AUTH_LOGIN => Mechanism::Login,
            _ => return Outcome::reply("504 5.5.4 Unrecognized authentication mechanism"),
        };
        match (mechanism, initial.is_empty()) {
            (Mechanism::Plain, true) => {
                self.auth_step = Some(AuthStep::PlainResponse);
                Outcome::reply("334 ")
            }
            (Mechanism::Plain, false) => {
                self.on_auth_response(AuthStep::PlainResponse, initial.as_bytes())
                    .await
            }
            (Mechanism::Login, true) => {
                self.auth_step = Some(AuthStep::LoginUser);
                Outcome::reply(format!("334 {}", sasl::LOGIN_USERNAME_CHALLENGE))
            }
            (Mechanism::Login, false) => {
                self.on_auth_response(AuthStep::LoginUser, initial.as_bytes())
                    .await
            }
        }
    }

    async fn on_auth_response(&mut self, step: AuthStep, line: &[u8]) -> Outcome {
        let decoded = match step {
            AuthStep::PlainResponse => sasl::decode_plain(line),
            AuthStep::LoginUser => {
                return match sasl::decode_login_step(line) {
                    Ok(user) => {
                        self.auth_step = Some(AuthStep::LoginPassword { user });
                        Outcome::reply(format!("334 {}", sasl::LOGIN_PASSWORD_CHALLENGE))
                    }
                    Err(e) => self.sasl_error(e),
                };
            }
            AuthStep::LoginPassword { user } => {
                sasl::decode_login_step(line).map(|password| Credentials {
                    authzid: String::new(),
                    user,
                    password,
                })
            }
        };
        match decoded {
            Ok(credentials) => self.verify(credentials).await,
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Outcome {
        match e {
            SaslError::Cancelled => Outcome::reply("501 5.0.0 Authentication cancelled"),
            SaslError::BadBase64 | SaslError::TooLong => {
                self.bad("501 5.5.2 Cannot decode the response (base64 expected)")
            }
            SaslError::Malformed => self.bad("501 5.5.2 Malformed authentication response"),
        }
    }

    async fn verify(&mut self, credentials: Credentials) -> Outcome {
        // Acting as someone else fails like a wrong password, after the same work.
        let acting_as_self = credentials.authzid.is_empty()
            || login_name(&self.config, &credentials.authzid)
                == login_name(&self.config, &credentials.user);
        let user = if acting_as_self {
            credentials.user.as_str()
        } else {
            ""
        };
        let ip = self.peer.ip();
        let account = match login(
            self.store.as_ref(),
            &self.config,
            &self.throttle,
            ip,
            user,
            &credentials.password,
        )
        .await
        {
            LoginResult::Ok(account) => Some(account),
            LoginResult::Failed => None,
            LoginResult::Blocked => {
                return Outcome::close("421 4.7.0 Too many failed logins; try again later");
            }
            LoginResult::Unavailable(e) => {
                tracing::warn!(error = %e, "authentication failed in the store");
                return Outcome::reply("454 4.7.0 Temporary authentication failure");
            }
        };
        match account {
            Some(account) => {
                tracing::info!(peer = %self.peer, user = %account.name, "SMTP submission login");
                self.account = Some(account);
                Outcome::reply("235 2.7.0 Authentication successful")
            }
            None => {
                self.login_failures += 1;
                tracing::info!(peer = %self.peer, failures = self.login_failures, "SMTP AUTH failed");
                if self.login_failures >= self.config.limits.login_failures_max {
                    return Outcome::close("421 4.7.0 Too many failed authentications; closing");
                }
                Outcome::reply("535 5.7.8 Authentication credentials invalid")
            }
        }
    }
}

/// Client text echoed in a reply: printable ASCII only, and not much of it.
/// Text from the client made safe to echo in a reply: ASCII, one line, at most 100 characters. What
/// An address with non-ASCII characters in a transaction that did not declare SMTPUTF8 (RFC 6531 §3.4).
const UTF8_UNDECLARED: &str = "553 5.6.7 Must declare SMTPUTF8 to send a non-ASCII address";

/// cannot be shown becomes `?` rather than vanishing, so the echo never names another address.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_ascii_graphic() || c == ' ' {
            true => c,
            false => '?',
        })
        .take(100)
        .collect()
}
