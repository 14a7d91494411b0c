//! Reads the original Jmail's data files (`userdat.txt`, `jmail.txt`) into an [`ImportBatch`], checking
//! everything before anything is stored: a malformed file imports nothing, and the error names the file
//! and the place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::auth::{hash_password, normalize_name};
use crate::config::Config;
use crate::message::{NativeSend, build_native, content_digest};
use crate::store::{ImportBatch, ImportedMessage, NewMessage};

#[derive(Debug, thiserror::Error)]
pub enum LegacyFileError {
    #[error("{}: {detail}", file.display())]
    Bad { file: PathBuf, detail: String },
}

fn bad(file: &Path, detail: impl Into<String>) -> LegacyFileError {
    LegacyFileError::Bad {
        file: file.to_path_buf(),
        detail: detail.into(),
    }
}

/// One v1 message, parsed from its `"<sender> At:<timestamp>": "<text>"` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    pub owner: String,
    pub key: String,
    pub sender: String,
    pub micros: i64,
    pub text: String,
}

fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T, LegacyFileError> {
    let text = std::fs::read_to_string(file).map_err(|e| bad(file, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| {
        bad(
            file,
            format!("line {} column {}: {e}", e.line(), e.column()),
        )
    })
}

/// `userdat.txt`: `{"user": "plain password", ...}`.
pub fn read_users(file: &Path) -> Result<Vec<(String, String)>, LegacyFileError> {
    let map: serde_json::Map<String, serde_json::Value> = read_json(file)?;
    let mut seen = HashSet::new();
    let mut users = Vec::with_capacity(map.len());
    for (name, password) in map {
        let place = format!("user {name:?}");
        let normal = normalize_name(&name).map_err(|e| bad(file, format!("{place}: {e}")))?;
        let password = password
            .as_str()
            .ok_or_else(|| bad(file, format!("{place}: the password is not a string")))?;
        if !seen.insert(normal.clone()) {
            return Err(bad(
                file,
                format!("{place}: the same user twice (names ignore case)"),
            ));
        }
        users.push((normal, password.to_string()));
    }
    Ok(users)
}

/// `jmail.txt`: `{"user": {"<sender> At:<YYYY-MM-DD HH:MM:SS.ffffff>": "<text>", ...}, ...}`.
pub fn read_mail(file: &Path) -> Result<Vec<LegacyMessage>, LegacyFileError> {
    let map: serde_json::Map<String, serde_json::Value> = read_json(file)?;
    let mut messages = Vec::new();
    for (owner, mailbox) in map {
        let place = format!("mailbox {owner:?}");
        let owner = normalize_name(&owner).map_err(|e| bad(file, format!("{place}: {e}")))?;
        let entries = mailbox
            .as_object()
            .ok_or_else(|| bad(file, format!("{place}: not an object of messages")))?;
        for (key, text) in entries {
            let place = format!("{place}, key {key:?}");
            let (sender, stamp) = key
                .rsplit_once(" At:")
                .ok_or_else(|| bad(file, format!("{place}: not \"<sender> At:<time>\"")))?;
            let time = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f")
                .map_err(|_| {
                    bad(
                        file,
                        format!("{place}: the time is not YYYY-MM-DD HH:MM:SS.ffffff"),
                    )
                })?;
            let text = text
                .as_str()
                .ok_or_else(|| bad(file, format!("{place}: the text is not a string")))?;
            messages.push(LegacyMessage {
                owner: owner.clone(),
                key: key.clone(),
                sender: sender.to_string(),
                micros: time.and_utc().timestamp_micros(),
                text: text.replace("\\n", "\n"),
            });
        }
    }
    // Message ids follow this order, and "newest" means the highest id. JSON objects come back sorted by
    // key ("<sender> At:...", so by sender): put each mailbox in time order, as the original appended it.
    messages.sort_by(|a, b| (&a.owner, a.micros).cmp(&(&b.owner, b.micros)));
    Ok(messages)
}

/// The stored form of a v1 message. Its Message-ID comes from its content, so importing it twice finds it.
/// A sender that is one of `users` gets their address; any other sender text (the original's generator
/// wrote any name) is shown as given.
pub fn to_message(m: &LegacyMessage, users: &HashSet<String>, config: &Config) -> NewMessage {
    let domain = config.primary_domain();
    let (from, display) = match normalize_name(&m.sender) {
        Ok(name) if users.contains(&name) => (format!("{name}@{domain}"), None),
        _ => (
            format!("{}@{domain}", crate::accounts::SYSTEM_SENDER),
            Some(m.sender.as_str()),
        ),
    };
    let digest = content_digest(format!("{}\0{}\0{}\0", m.owner, m.key, m.text).as_bytes());
    let id = format!("legacy.{digest:016x}@{domain}");
    let to = vec![format!("{}@{domain}", m.owner)];
    build_native(&NativeSend {
        from: &from,
        date_micros: Some(m.micros),
        message_id: Some(&id),
        from_name: display,
        to: &to,
        subject: "",
        body: m.text.as_bytes(),
        domain,
    })
}

/// Builds the batch: users with hashed passwords (slow: argon2 per user), and messages for owners in
/// `known` (users of the file or of the store). Returns the batch and how many messages had no owner.
/// `progress` hears how many passwords are hashed so far.
pub fn batch(
    users: &[(String, String)],
    mail: &[LegacyMessage],
    known: &HashSet<String>,
    config: &Config,
    progress: &(dyn Fn(u64) + Sync),
) -> (ImportBatch, usize) {
    let mut batch = ImportBatch::default();
    for (done, (name, password)) in users.iter().enumerate() {
        batch.users.push((name.clone(), hash_password(password)));
        progress(done as u64 + 1);
    }
    let mut orphans = 0;
    for m in mail {
        if known.contains(&m.owner) {
            batch.messages.push(ImportedMessage {
                owner: m.owner.clone(),
                message: to_message(m, known, config),
                flags: 0,
            });
        } else {
            orphans += 1;
        }
    }
    (batch, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mailbox_comes_in_time_order_whatever_the_senders_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jmail.txt");
        std::fs::write(
            &file,
            r#"{"bob": {"zed At:2020-01-01 10:00:00.000000": "first",
                        "amy At:2021-06-01 10:00:00.000000": "third",
                        "mia At:2020-06-01 10:00:00.000000": "second"},
                "al": {"bob At:2019-01-01 00:00:00.000000": "al's"}}"#,
        )
        .unwrap();
        let texts: Vec<(String, String)> = read_mail(&file)
            .unwrap()
            .into_iter()
            .map(|m| (m.owner, m.text))
            .collect();
        let pair = |o: &str, t: &str| (o.to_string(), t.to_string());
        assert_eq!(
            texts,
            [
                pair("al", "al's"),
                pair("bob", "first"),
                pair("bob", "second"),
                pair("bob", "third")
            ]
        );
    }
}
