//! Push across nodes. Every node runs one LISTEN connection (not one per session) and, after its own
//! commits, one coalesced `pg_notify` carrying only which mailboxes of which accounts moved to which
//! modseq: never inside the write's transaction, where NOTIFY would take its global lock at every commit.
//! A notification from another node wakes this node's watchers of those accounts. A lost listener makes
//! every watcher on the node resync (it may have missed something), and a slow poll of the watched
//! accounts' change counters is the safety net for anything a notification did not carry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{MailboxId, Notifier, UserId};

/// The channel every node listens on.
pub const CHANNEL: &str = "jmail_changes";
/// Largest payload sent in one notification (PostgreSQL's limit is 8,000 bytes); more changes go in
/// more notifications.
pub const PAYLOAD_BYTES_MAX: usize = 7_900;
/// How often the safety net compares the watched accounts' change counters with what it saw last.
pub const POLL_SECS: u64 = 5;
/// Longest wait between attempts to get the listener back.
const RECONNECT_SECS_MAX: u64 = 5;

/// This node's side of push: its local feeds, and the changes waiting to be told to other nodes.
pub struct Push {
    /// Tells this node's own notifications apart from other nodes' (LISTEN hears both).
    node: String,
    pub notifier: Arc<Notifier>,
    outgoing: Mutex<HashMap<(UserId, MailboxId), u64>>,
    wake: Notify,
}

impl Push {
    pub fn new() -> Push {
        Push {
            node: format!("{:016x}", rand::random::<u64>()),
            notifier: Arc::new(Notifier::default()),
            outgoing: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        }
    }

    /// After a commit: this node's watchers hear at once; other nodes with the next notification.
    pub fn committed(&self, touched: Vec<(UserId, MailboxId, u64)>) {
        if touched.is_empty() {
            return;
        }
        let mut outgoing = self.outgoing.lock().expect("push lock");
        for (user, mailbox, modseq) in touched {
            self.notifier.notify(user, mailbox, modseq);
            let at = outgoing.entry((user, mailbox)).or_insert(modseq);
            *at = (*at).max(modseq);
        }
        drop(outgoing);
        self.wake.notify_one();
    }

    /// The payloads that tell what is waiting: `node;user:mailbox:modseq,...`, each within the limit.
    fn take_payloads(&self) -> Vec<String> {
        let waiting = std::mem::take(&mut *self.outgoing.lock().expect("push lock"));
        let mut payloads = Vec::new();
        let mut current = String::new();
        for ((user, mailbox), modseq) in waiting {
            let item = format!("{user}:{mailbox}:{modseq}");
            if !current.is_empty() && current.len() + item.len() + 1 > PAYLOAD_BYTES_MAX {
                payloads.push(std::mem::take(&mut current));
            }
            if current.is_empty() {
                current = format!("{};{item}", self.node);
            } else {
                current.push(',');
                current.push_str(&item);
            }
        }
        if !current.is_empty() {
            payloads.push(current);
        }
        payloads
    }

    /// Wakes this node's watchers for another node's notification; its own are skipped.
    fn heard(&self, payload: &str) {
        let Some((node, items)) = payload.split_once(';') else {
            return;
        };
        if node == self.node {
            return;
        }
        for item in items.split(',') {
            let mut parts = item.split(':').map(str::parse::<i64>);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(user)), Some(Ok(mailbox)), Some(Ok(modseq))) => {
                    self.notifier.notify(user, mailbox, modseq as u64)
                }
                // u64::MAX (a deleted mailbox) does not fit an i64: wake them all the same.
                (Some(Ok(user)), _, _) => self.notifier.resync(user),
                _ => {}
            }
        }
    }

    fn resync_all(&self) {
        for user in self.notifier.watched() {
            self.notifier.resync(user);
        }
    }
}

/// Sends what waits, one notification per payload, until cancelled. While one is being sent, more
/// changes gather: under load, one notification carries many commits.
pub async fn send(push: Arc<Push>, pool: deadpool_postgres::Pool, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = push.wake.notified() => {}
            _ = stop.cancelled() => return,
        }
        send_waiting(&push, &pool).await;
    }
}

/// Sends what waits now (also at close, so the last commits are told).
pub async fn send_waiting(push: &Push, pool: &deadpool_postgres::Pool) {
    for payload in push.take_payloads() {
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = sent {
            // The other nodes' safety-net poll finds these changes within POLL_SECS.
            tracing::warn!(error = %e, "telling other nodes of a change failed");
        }
    }
}

/// Keeps one LISTEN connection open until cancelled, waking watchers for other nodes' changes; on a
/// lost connection every watcher on this node resyncs, and it connects again.
pub async fn listen(
    push: Arc<Push>,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    stop: CancellationToken,
) {
    let mut backoff = 1;
    // TCP keepalives: a half-open connection (a peer gone without a word) is noticed within a minute.
    let mut config = config;
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    loop {
        let started = std::time::Instant::now();
        let result = tokio::select! {
            r = listen_once(&push, &config, tls.clone()) => r,
            _ = stop.cancelled() => return,
        };
        if started.elapsed() > Duration::from_secs(RECONNECT_SECS_MAX * 2) {
            // It was up for a while: the next attempt starts quickly again.
            backoff = 1;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "the PostgreSQL listener was lost; connecting again");
        }
        push.resync_all();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(backoff)) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(RECONNECT_SECS_MAX);
    }
}

async fn listen_once(
    push: &Push,
    config: &tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Listening again after a gap: whatever happened meanwhile is unknown.
    push.resync_all();
    while let Some(payload) = rx.recv().await {
        push.heard(&payload);
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// The safety net: every [`POLL_SECS`], each watched account whose change counter moved since the last
/// look (or that is gone) is told to resync.
pub async fn poll(push: Arc<Push>, pool: deadpool_postgres::Pool, stop: CancellationToken) {
    let mut seen: HashMap<UserId, Option<i64>> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(POLL_SECS)) => {}
            _ = stop.cancelled() => return,
        }
        let watched = push.notifier.watched();
        seen.retain(|user, _| watched.contains(user));
        if watched.is_empty() {
            continue;
        }
        let rows = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .query(
                    "SELECT id, modseq FROM users WHERE id = ANY($1)",
                    &[&watched],
                )
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "polling for changes failed");
                continue;
            }
        };
        let now: HashMap<UserId, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for user in watched {
            let modseq = now.get(&user).copied();
            if seen.insert(user, modseq) != Some(modseq) {
                push.notifier.resync(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payloads_stay_under_the_limit_and_other_nodes_hear_them() {
        let a = Push::new();
        let b = Push::new();
        let mut feed = b.notifier.subscribe(7);
        let touched: Vec<_> = (0..2000).map(|m| (7, m, 5)).collect();
        a.committed(touched);
        let payloads = a.take_payloads();
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= PAYLOAD_BYTES_MAX));
        // Another node hears a (small) payload as the changes it carries.
        a.committed(vec![(7, 3, 5), (8, 4, 1)]);
        let small = a.take_payloads();
        assert_eq!(small.len(), 1);
        b.heard(&small[0]);
        assert!(matches!(
            feed.next().await,
            crate::store::FeedEvent::Changed { modseq: 5, .. }
        ));
        // Its own notifications a node skips.
        let mut own = a.notifier.subscribe(9);
        a.committed(vec![(9, 1, 3)]);
        let _ = own.next().await;
        let p = a.take_payloads();
        a.heard(&p[0]);
        assert!(!own.drain_for(1), "a node does not hear itself twice");
    }
}
