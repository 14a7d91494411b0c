//! The v1 session: version, user name, password, then refresh (`Banky`) or send (`(bob) text`), each
//! answered with the mailbox. It never touches sockets or SQL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jmail_proto::legacy::{self, Input};

use super::view;
use crate::auth::{NAME_BYTES_MAX, normalize_name};
use crate::config::Config;
use crate::message::{NativeSend, build_native};
use crate::store::{Account, MailStore, StoreError};
use crate::throttle::{LoginResult, LoginThrottle, login};

/// Splits of a coalesced name+password chunk checked at most (each is an argon2 verification).
const COALESCED_TRIES_MAX: usize = 2;

/// The v1 version this server is: older clients get `badver`, as from the original.
const SERVER_VERSION: f64 = 1.0;

/// What to send (each item as its own write, as v1 clients read one `recv()` per reply) and whether to
/// close afterwards.
#[derive(Debug, Default)]
pub struct Reply {
    pub sends: Vec<Vec<u8>>,
    pub close: bool,
}

impl Reply {
    fn one(bytes: impl Into<Vec<u8>>) -> Self {
        Reply {
            sends: vec![bytes.into()],
            close: false,
        }
    }

    fn closing(sends: Vec<Vec<u8>>) -> Self {
        Reply { sends, close: true }
    }
}

enum State {
    Version,
    User,
    /// The user name chunk arrived; the password may follow as its own chunk or was in the same one.
    Password {
        first: Vec<u8>,
    },
    LoggedIn(Account),
}

pub struct LegacySession {
    store: Arc<dyn MailStore>,
    config: Arc<Config>,
    /// The server's failed-login bookkeeping, shared by every session of every protocol.
    throttle: Arc<LoginThrottle>,
    peer: SocketAddr,
    /// Reached through the native TLS port (a v1 client behind a TLS wrapper such as stunnel).
    tls: bool,
    state: State,
}

fn login_failed() -> Reply {
    Reply::closing(vec![
        legacy::LOGIN_FAILED.to_vec(),
        legacy::LOGIN_FAILED_TEXT.to_vec(),
    ])
}

impl LegacySession {
    pub fn new(
        store: Arc<dyn MailStore>,
        config: Arc<Config>,
        throttle: Arc<LoginThrottle>,
        peer: SocketAddr,
        tls: bool,
    ) -> Self {
        tracing::info!(%peer, "legacy v1 session");
        LegacySession {
            store,
            config,
            throttle,
            peer,
            tls,
            state: State::Version,
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        let l = &self.config.limits;
        Duration::from_secs(match self.state {
            State::LoggedIn(_) => l.idle_secs_auth,
            _ => l.idle_secs_unauth,
        })
    }

    /// True while a lone first credentials chunk waits: the password may still come as a chunk of its own.
    pub fn awaiting_password(&self) -> bool {
        matches!(self.state, State::Password { .. })
    }

    /// One chunk from the client (what one read returned).
    pub async fn on_chunk(&mut self, chunk: &[u8]) -> Reply {
        match std::mem::replace(&mut self.state, State::Version) {
            State::Version => match legacy::parse_version(chunk) {
                Some(v) if v >= SERVER_VERSION => {
                    self.state = State::User;
                    Reply::one(legacy::GOOD_VERSION)
                }
                _ => Reply::closing(vec![legacy::BAD_VERSION.to_vec()]),
            },
            State::User => {
                self.state = State::Password {
                    first: chunk.to_vec(),
                };
                Reply::default()
            }
            State::Password { first } => {
                let user = String::from_utf8_lossy(&first).into_owned();
                let password = String::from_utf8_lossy(chunk).into_owned();
                self.login(&user, &password).await
            }
            State::LoggedIn(account) => {
                if !crate::accounts::still_valid(self.store.as_ref(), &account)
                    .await
                    .unwrap_or(false)
                {
                    // v1 has no words for this: the connection just ends, as the v1 server's did on error.
                    tracing::info!(peer = %self.peer, user = %account.name, "legacy v1 session ended: account deleted or password changed");
                    return Reply::closing(Vec::new());
                }
                let reply = self.logged_in(&account, chunk).await;
                self.state = State::LoggedIn(account);
                reply
            }
        }
    }

    /// No second chunk came: the name and password arrived as one. Try each split whose name is a user.
    pub async fn on_password_wait_over(&mut self) -> Reply {
        let State::Password { first } = std::mem::replace(&mut self.state, State::Version) else {
            return Reply::default();
        };
        let chunk = String::from_utf8_lossy(&first).into_owned();
        let names: Vec<String> = legacy::credential_splits(&chunk, NAME_BYTES_MAX)
            .filter_map(|(name, _)| normalize_name(name).ok())
            .collect();
        let users = match self.store.existing_users(&names).await {
            Ok(users) => users,
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "legacy login lookup failed");
                return login_failed();
            }
        };
        let mut tries = Vec::new();
        for (name, password) in legacy::credential_splits(&chunk, NAME_BYTES_MAX) {
            if normalize_name(name).is_ok_and(|n| users.contains(&n)) {
                tries.push((name.to_string(), password.to_string()));
            }
        }
        // Each try costs an argon2 check: at most this many per connection, like failed native logins.
        tries.truncate(COALESCED_TRIES_MAX);
        if tries.is_empty() {
            // Spend the same work as a real check, so the reply's timing says nothing.
            return self.login("", "").await;
        }
        for (name, password) in tries {
            let reply = self.login(&name, &password).await;
            if !reply.close {
                return reply;
            }
        }
        login_failed()
    }

    async fn login(&mut self, user: &str, password: &str) -> Reply {
        // The v1 exchange has no STARTTLS: in clear, its passwords are taken only where plaintext ones are.
        if !crate::conn::plaintext_auth_allowed(
            self.peer.ip(),
            self.tls,
            self.config.allow_plaintext_auth,
        ) {
            tracing::warn!(peer = %self.peer, "v1 login refused: password in clear from a non-loopback address");
            return login_failed();
        }
        let ip = self.peer.ip();
        match login(
            self.store.as_ref(),
            &self.config,
            &self.throttle,
            ip,
            user,
            password,
        )
        .await
        {
            LoginResult::Ok(account) => {
                tracing::info!(peer = %self.peer, user = %account.name, "legacy v1 login");
                let mailbox = self.mailbox(&account, None).await;
                self.state = State::LoggedIn(account);
                Reply {
                    sends: vec![legacy::LOGIN_OK.to_vec(), mailbox],
                    close: false,
                }
            }
            LoginResult::Failed | LoginResult::Blocked => {
                tracing::info!(peer = %self.peer, "legacy v1 login failed");
                login_failed()
            }
            LoginResult::Unavailable(e) => {
                tracing::error!(peer = %self.peer, error = %e, "legacy login failed in the store");
                login_failed()
            }
        }
    }

    async fn logged_in(&self, account: &Account, chunk: &[u8]) -> Reply {
        let notice = match legacy::parse_input(chunk) {
            Input::Refresh => None,
            Input::Send { to, text } => self.send(account, &to, &text).await,
            Input::Invalid => Some(view::notice("Not understood: send (name) text, or refresh")),
        };
        Reply::one(self.mailbox(account, notice).await)
    }

    /// Sends a v1 message; returns a notice for the view when it was not sent.
    async fn send(
        &self,
        account: &Account,
        to: &str,
        text: &str,
    ) -> Option<jmail_proto::legacy::Entry> {
        let Ok(name) = normalize_name(to) else {
            return Some(view::notice(&format!("Not sent: no such user {to}")));
        };
        let domain = self.config.primary_domain();
        let from = format!("{}@{domain}", account.name);
        let rcpt = vec![format!("{name}@{domain}")];
        let message = build_native(&NativeSend {
            from: &from,
            date_micros: None,
            message_id: None,
            from_name: None,
            to: &rcpt,
            subject: "",
            body: text.as_bytes(),
            domain,
        });
        match self.store.deliver(&[name], message, None).await {
            Ok(_) => None,
            Err(StoreError::OverQuota(n)) => {
                Some(view::notice(&format!("Not sent: {n}'s mailbox is full")))
            }
            Err(StoreError::UnknownRecipient(n)) => {
                Some(view::notice(&format!("Not sent: no such user {n}")))
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "legacy send failed");
                Some(view::notice("Not sent: temporary server error; try again"))
            }
        }
    }

    async fn mailbox(
        &self,
        account: &Account,
        notice: Option<jmail_proto::legacy::Entry>,
    ) -> Vec<u8> {
        match view::mailbox(self.store.as_ref(), account.inbox, &self.config, notice).await {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "legacy mailbox view failed");
                b"{}".to_vec()
            }
        }
    }
}
