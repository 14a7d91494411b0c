//! The delivery worker: takes due queue entries (leased, so another process or a restart never sends
//! the same one at the same time), delivers each by the route DNS gives, and records the outcome in one
//! write: delivered recipients gone, temporary failures back in the queue with a growing wait, and a
//! notification to the sender for the permanent ones (or those out of time).
//!
//! At-least-once: an entry is removed only after the remote server's `250`; a crash between that reply
//! and the removal sends the message again once the lease runs out. Never zero times.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::{self, Body, Envelope, Failure, Fate};
use super::{Mailer, dns, dsn};
use crate::config::Config;
use crate::store::{Attempted, BodyRef, NewMessage, QueueEntry, Store};

/// Longest an entry stays leased by one attempt: longer than any attempt can take (every reply has a
/// deadline), after which a dead worker's entry is due again.
const LEASE_SECS: i64 = 30 * 60;
/// Entries looked at per pass.
const DUE_BATCH: usize = 200;
/// How often the queue is looked at with no news: entries made by other processes, and leases run out.
const POLL_SECS: u64 = 30;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

struct Body_ {
    store: Arc<dyn Store>,
    body: BodyRef,
}

#[async_trait::async_trait]
impl Body for Body_ {
    async fn piece(&self, offset: u64, max: usize) -> Result<Vec<u8>, String> {
        self.store
            .body_chunk(self.body, offset, max)
            .await
            .map_err(|e| format!("reading the queued message: {e}"))
    }
}

/// Runs until `shutdown`; attempts in flight are finished (or their leases run out) by the tracker.
pub async fn run(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    mailer: Arc<Mailer>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = &config.limits;
    let all = Arc::new(Semaphore::new(limits.outbound_connections_max));
    let mut per_domain: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let waker = store.queue_waker();
    match store.queue_recover(now_micros()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            entries = n,
            "queued messages were being delivered when the server last stopped; trying them again (a receiver may get one twice)"
        ),
        Err(e) => tracing::warn!(error = %e, "recovering the queue's leases failed"),
    }
    loop {
        let now = now_micros();
        let free = all.available_permits().min(DUE_BATCH);
        let due = match free {
            0 => Vec::new(),
            _ => store.queue_due(now, DUE_BATCH).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the outbound queue failed");
                Vec::new()
            }),
        };
        per_domain
            .retain(|_, s| s.available_permits() < limits.outbound_connections_per_domain_max);
        let mut chosen = Vec::new();
        let mut room: HashMap<String, usize> = HashMap::new();
        for (id, domain) in &due {
            if chosen.len() >= free {
                break;
            }
            let sem = per_domain.entry(domain.clone()).or_insert_with(|| {
                Arc::new(Semaphore::new(limits.outbound_connections_per_domain_max))
            });
            let left = room
                .entry(domain.clone())
                .or_insert(sem.available_permits());
            if *left > 0 {
                *left -= 1;
                chosen.push(*id);
            }
        }
        let mut busy_skipped = chosen.len() < due.len();
        if !chosen.is_empty() {
            let lease = now + LEASE_SECS * 1_000_000;
            match store.queue_take(chosen, now, lease).await {
                Ok(entries) => {
                    for entry in entries {
                        let Ok(global) = all.clone().try_acquire_owned() else {
                            busy_skipped = true;
                            continue;
                        };
                        let domain_sem = per_domain
                            .get(&entry.domain)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(Semaphore::new(1)));
                        let Ok(local) = domain_sem.try_acquire_owned() else {
                            busy_skipped = true;
                            continue;
                        };
                        let (store, config, mailer) =
                            (store.clone(), config.clone(), mailer.clone());
                        tracker.spawn(async move {
                            attempt(&store, &config, &mailer, entry).await;
                            drop((global, local));
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "taking queue entries failed"),
            }
        }
        // Wait for news: a new entry here, the next one due, a slot freed, or the poll.
        let next_due = store.queue_next_due().await.ok().flatten();
        let mut wait = Duration::from_secs(POLL_SECS);
        if let Some(at) = next_due {
            let until = Duration::from_micros((at - now_micros()).max(0) as u64);
            wait = wait.min(until.max(Duration::from_millis(50)));
        }
        if busy_skipped || free == 0 || due.len() == DUE_BATCH {
            wait = wait.min(Duration::from_millis(200));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = waker.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One attempt at one entry, its outcome recorded.
async fn attempt(store: &Arc<dyn Store>, config: &Config, mailer: &Mailer, entry: QueueEntry) {
    let fates = deliver(store, config, mailer, &entry).await;
    let now = now_micros();
    let expired = now - entry.created_micros > config.limits.queue_lifetime_secs as i64 * 1_000_000;
    let mut retry = Vec::new();
    let mut failed: Vec<(String, String, String)> = Vec::new();
    let mut error = None;
    for (rcpt, fate) in entry.recipients.iter().zip(fates) {
        match fate {
            Fate::Delivered => {
                tracing::info!(queue = entry.id, to = %rcpt, "delivered");
            }
            Fate::Temporary(why) if !expired => {
                tracing::info!(queue = entry.id, to = %rcpt, reason = %why, "delivery deferred");
                error = Some(why);
                retry.push(rcpt.clone());
            }
            Fate::Temporary(why) => {
                tracing::warn!(queue = entry.id, to = %rcpt, reason = %why, "delivery expired");
                let status = dsn::status_of(&why, "4.4.7");
                let status = format!("5{}", &status[1..]);
                failed.push((
                    rcpt.clone(),
                    format!("gave up after {} attempts: {why}", entry.attempts),
                    status,
                ));
            }
            Fate::Permanent(why) => {
                tracing::warn!(queue = entry.id, to = %rcpt, reason = %why, "delivery failed");
                let status = dsn::status_of(&why, "5.0.0");
                failed.push((rcpt.clone(), why, status));
            }
        }
    }
    let bounce = match (&entry.user, failed.is_empty(), entry.sender.is_empty()) {
        (Some(user), false, false) => bounce(store, config, &entry, &failed)
            .await
            .map(|m| (*user, m)),
        _ => None,
    };
    let limits = &config.limits;
    let backoff = limits
        .queue_retry_secs_min
        .saturating_mul(1u64 << entry.attempts.saturating_sub(1).min(20))
        .min(limits.queue_retry_secs_max);
    let outcome = Attempted {
        id: entry.id,
        retry,
        retry_micros: now + backoff as i64 * 1_000_000,
        error,
        bounce,
    };
    match store.queue_attempted(outcome).await {
        // The worker sleeps until the next due entry it knew of; this one may now be due sooner.
        Ok(()) => store.queue_waker().notify_one(),
        // The lease runs out and the entry is tried again: sent twice rather than lost.
        Err(e) => {
            tracing::warn!(queue = entry.id, error = %e, "recording a delivery attempt failed")
        }
    }
}

/// The notification for `failed` recipients, with the original message's header.
async fn bounce(
    store: &Arc<dyn Store>,
    config: &Config,
    entry: &QueueEntry,
    failed: &[(String, String, String)],
) -> Option<NewMessage> {
    let head = store
        .body_chunk(
            BodyRef {
                blob: entry.blob,
                len: entry.size,
            },
            0,
            64 * 1024,
        )
        .await
        .ok()?;
    let list: Vec<dsn::Failed<'_>> = failed
        .iter()
        .map(|(rcpt, why, status)| dsn::Failed {
            recipient: rcpt,
            diagnostic: why,
            status: status.clone(),
            remote: None,
        })
        .collect();
    let raw = dsn::build(
        config.hostname(),
        &entry.sender,
        &list,
        &head,
        entry.created_micros,
    );
    let (from, subject, message_id, _) = crate::message::summarize(&raw);
    Some(NewMessage::new(
        raw,
        from,
        subject,
        message_id,
        now_micros(),
    ))
}

/// Tries the domain's hosts in order until one gives answers; each recipient's fate.
async fn deliver(
    store: &Arc<dyn Store>,
    config: &Config,
    mailer: &Mailer,
    entry: &QueueEntry,
) -> Vec<Fate> {
    let all = |f: Fate| vec![f; entry.recipients.len()];
    let routed = match &config.relay_host {
        Some(relay) => dns::relay_route(&mailer.dns, relay, config.outbound_port)
            .await
            .map(|(host, ips, port)| (vec![(host, ips)], port)),
        None => dns::route(&mailer.dns, &entry.domain)
            .await
            .map(|routes| (routes, config.outbound_port)),
    };
    let (routes, port) = match routed {
        Ok(routed) => routed,
        Err(dns::RouteError::Temporary(why)) => return all(Fate::Temporary(why)),
        Err(dns::RouteError::Permanent(why)) => {
            return all(Fate::Permanent(format!("5.1.2 {why}")));
        }
    };
    let body = Body_ {
        store: store.clone(),
        body: BodyRef {
            blob: entry.blob,
            len: entry.size,
        },
    };
    let envelope = Envelope {
        hostname: config.hostname(),
        sender: &entry.sender,
        recipients: &entry.recipients,
        size: entry.size,
    };
    let deadline = Duration::from_secs(config.limits.outbound_reply_secs_max);
    let tls_required = config.tls_required_for(&entry.domain);
    let mut last = Fate::Temporary(format!("no server for {} could be reached", entry.domain));
    for (host, ips) in routes {
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            let tcp = match tokio::time::timeout(deadline, connect(config, addr)).await {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(e)) => {
                    last = Fate::Temporary(format!("{host} [{ip}]: {e}"));
                    continue;
                }
                Err(_) => {
                    last = Fate::Temporary(format!("{host} [{ip}]: connection timed out"));
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            match client::transact(
                tcp,
                &host,
                &mailer.tls,
                tls_required,
                deadline,
                &envelope,
                &body,
            )
            .await
            {
                Ok(fates) => return fates,
                Err(Failure::Permanent(why)) => return all(Fate::Permanent(why)),
                Err(Failure::Temporary(why)) => last = Fate::Temporary(why),
            }
        }
    }
    all(last)
}

/// Connects to `addr` from the server's own address when it listens on one (so the receiver's SPF
/// check sees the address the domain's records name), else from whatever the system picks.
async fn connect(config: &Config, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if !config.bind.is_unspecified() && config.bind.is_ipv4() == addr.is_ipv4() {
        socket.bind(SocketAddr::new(config.bind, 0))?;
    }
    socket.connect(addr).await
}
