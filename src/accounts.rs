//! Account administration shared by the command line and tests: validation, hashing, the welcome message.

use crate::auth::{self, NameError, PASSWORD_BYTES_MAX};
use crate::config::Config;
use crate::message::{NativeSend, build_native};
use crate::store::{MailStore, Store, StoreError};

/// The sender of system messages, like the original's `JMailServer`.
pub const SYSTEM_SENDER: &str = "postmaster";

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(
        "a password is 1 to {PASSWORD_BYTES_MAX} bytes without a line break or NUL (no protocol could send one)"
    )]
    Password,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A password every protocol can carry: SASL PLAIN separates with NUL, and POP3's PASS and a quoted
/// IMAP string end at a line break, so a password with one could be set but never used everywhere.
fn check_password(password: &str) -> Result<(), AccountError> {
    if password.is_empty()
        || password.len() > PASSWORD_BYTES_MAX
        || password.contains(['\0', '\r', '\n'])
    {
        return Err(AccountError::Password);
    }
    Ok(())
}

async fn hash(password: &str) -> String {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .expect("hashing task panicked")
}

/// Creates a user and delivers the welcome message, atomically. Returns the normalized name.
pub async fn add_user(
    store: &dyn Store,
    config: &Config,
    name: &str,
    password: &str,
) -> Result<String, AccountError> {
    let name = auth::normalize_name(name)?;
    check_password(password)?;
    let domain = config.primary_domain();
    let from = format!("{SYSTEM_SENDER}@{domain}");
    let to = vec![format!("{name}@{domain}")];
    let welcome = build_native(&NativeSend {
        from: &from,
        date_micros: None,
        message_id: None,
        from_name: None,
        to: &to,
        subject: "Welcome to Jmail",
        body: config.welcome_for(&name).as_bytes(),
        domain,
    });
    store
        .create_user(&name, &hash(password).await, Some(welcome))
        .await?;
    Ok(name)
}

pub async fn set_password(
    store: &dyn Store,
    name: &str,
    password: &str,
) -> Result<(), AccountError> {
    let name = auth::normalize_name(name)?;
    check_password(password)?;
    store.set_password(&name, &hash(password).await).await?;
    Ok(())
}

/// Deletes a user and every message in their mailboxes.
pub async fn delete_user(store: &dyn Store, name: &str) -> Result<(), AccountError> {
    let name = auth::normalize_name(name)?;
    store.delete_user(&name).await?;
    Ok(())
}

/// Puts a system message into a user's INBOX, like the original's message generator: `from` may be any
/// text (shown as the sender), or an address. Goes through the same durable delivery as any other mail.
pub async fn deliver_system(
    store: &dyn MailStore,
    config: &Config,
    to: &str,
    from: &str,
    subject: &str,
    body: &[u8],
) -> Result<String, AccountError> {
    let name = auth::normalize_name(to)?;
    let domain = config.primary_domain();
    let system = format!("{SYSTEM_SENDER}@{domain}");
    let (address, display) = match from.contains('@') {
        true => (from.to_string(), None),
        false => (system, Some(from)),
    };
    let rcpt = vec![format!("{name}@{domain}")];
    let message = build_native(&NativeSend {
        from: &address,
        date_micros: None,
        message_id: None,
        from_name: display,
        to: &rcpt,
        subject,
        body,
        domain,
    });
    store
        .deliver(std::slice::from_ref(&name), message, None)
        .await?;
    Ok(name)
}

/// Checks a password: the account's credentials from the store, the argon2id check off the async runtime.
/// `None` for a wrong password or an unknown user alike, after the same work (an unknown user is checked
/// against a dummy hash).
pub async fn authenticate(
    store: &dyn MailStore,
    name: &str,
    password: &str,
) -> Result<Option<crate::store::Account>, StoreError> {
    authenticate_in_lane(store, name, password, false).await
}

/// [`authenticate`], the password checked in the lane for logins with failures behind them when
/// `suspect` (`crate::auth::verify_off_runtime`).
pub async fn authenticate_in_lane(
    store: &dyn MailStore,
    name: &str,
    password: &str,
    suspect: bool,
) -> Result<Option<crate::store::Account>, StoreError> {
    let credentials = store.credentials(name).await?;
    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    if !auth::verify_off_runtime(hash, password.to_string(), suspect).await {
        return Ok(None);
    }
    Ok(credentials.map(|c| crate::store::Account {
        id: c.id,
        name: name.to_string(),
        inbox: c.inbox,
        credential: auth::credential_tag(&c.password_hash),
    }))
}

/// Whether a session's login still stands: the account exists (ids are never reused, so a new account of
/// the same name is another account) and its password is the one the session logged in with. Sessions ask
/// before each command, so `jmail user del` or `passwd` from another process takes every right away at
/// once.
pub async fn still_valid(
    store: &dyn MailStore,
    account: &crate::store::Account,
) -> Result<bool, StoreError> {
    Ok(store
        .password_hash_of(account.id)
        .await?
        .is_some_and(|hash| auth::credential_tag(&hash) == account.credential))
}
