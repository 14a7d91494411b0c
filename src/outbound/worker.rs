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
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::{self, Body, Envelope, Failure, Fate};
use super::dsn::{self, Action};
use super::dsn_request::{Request, Ret};
use super::{Mailer, dns};
use crate::config::Config;
use crate::store::{Attempted, BodyRef, NewMessage, QueueEntry, Store};

/// Longest an entry stays leased, after which a dead worker's entry is due again. An attempt begins
/// only while at least `ATTEMPT_SECS_MAX` (and a minute) of its lease are left, and is cut at that
/// length, so its outcome is always recorded under the lease it was made under: a server answering
/// each command just within RFC 5321's timeouts once outlasted a 30-minute lease, and a second worker
/// delivered the message again.
const LEASE_SECS: i64 = 60 * 60;
/// Longest one attempt (one transaction, a connection opened for it included) may take.
const ATTEMPT_SECS_MAX: u64 = 25 * 60;
/// Entries looked at per pass.
const DUE_BATCH: usize = 200;
/// Messages one connection carries before it is closed (Postfix's connection reuse is bounded too), so
/// that one busy destination's connections are renewed and other work gets its turn.
const MESSAGES_PER_CONNECTION_MAX: usize = 100;
/// How long an open connection waits for another message to its domain before it is closed, and how
/// often it looks meanwhile.
const CONNECTION_IDLE_MAX: Duration = Duration::from_secs(2);
const CONNECTION_IDLE_POLL: Duration = Duration::from_millis(100);
/// Entries a connection leases at a time for itself. Each waits its turn under its lease
/// (`LEASE_SECS`), so few: a slow destination cannot make a lease run out before its turn.
const TAKE_PER_CONNECTION: usize = 4;
/// How often the queue is looked at with no news: entries made by other processes, and leases run out.
const POLL_SECS: u64 = 30;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// How much of a queued message's start is searched for a Return-Path field to leave out: it follows
/// only the DKIM signatures, a few KiB, and this is read once more than the bytes sent.
const RETURN_PATH_SEARCH_BYTES: usize = 16 * 1024;

/// A queued message as it is sent: its stored bytes without the Return-Path field that a local
/// delivery of the same bytes needs (RFC 5321 §4.4: only the final delivery adds one, and a message
/// sent on SHOULD NOT carry one; DKIM does not sign it).
struct Body_ {
    store: Arc<dyn Store>,
    body: BodyRef,
    /// The stored bytes left out.
    skip: Option<std::ops::Range<u64>>,
    /// Whether the header, as far as read, holds bytes past ASCII.
    utf8_header: bool,
}

impl Body_ {
    async fn new(store: Arc<dyn Store>, body: BodyRef) -> Body_ {
        let head = store
            .body_chunk(body, 0, RETURN_PATH_SEARCH_BYTES)
            .await
            .unwrap_or_default();
        // Only a field whole within what was read (one cut at its end might go on, folded).
        let skip = jmail_proto::header_fields::first_field(&head, "Return-Path")
            .filter(|span| span.end < head.len())
            .map(|span| span.start as u64..span.end as u64);
        let header_end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(head.len());
        let utf8_header = !head[..header_end].is_ascii();
        Body_ {
            store,
            body,
            skip,
            utf8_header,
        }
    }

    /// Bytes sent.
    fn len(&self) -> u64 {
        let skipped = self.skip.as_ref().map_or(0, |s| s.end - s.start);
        self.body.len - skipped
    }
}

#[async_trait::async_trait]
impl Body for Body_ {
    async fn piece(&self, offset: u64, max: usize) -> Result<Vec<u8>, String> {
        let (from, max) = match &self.skip {
            Some(skip) if offset < skip.start => (offset, max.min((skip.start - offset) as usize)),
            Some(skip) => (offset + (skip.end - skip.start), max),
            None => (offset, max),
        };
        self.store
            .body_chunk(self.body, from, max)
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
                        let (store, config, mailer, stop) = (
                            store.clone(),
                            config.clone(),
                            mailer.clone(),
                            shutdown.clone(),
                        );
                        tracker.spawn(async move {
                            connection(&store, &config, &mailer, entry, &stop).await;
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

/// One connection's work: the entry it was started for, then more due entries for the same domain over
/// the same connection (as Postfix reuses its connections), up to `MESSAGES_PER_CONNECTION_MAX`.
async fn connection(
    store: &Arc<dyn Store>,
    config: &Config,
    mailer: &Mailer,
    first: QueueEntry,
    stop: &CancellationToken,
) {
    let domain = first.domain.clone();
    let mut session = None;
    let mut next = std::collections::VecDeque::from([(first, Instant::now())]);
    let mut sent = 0;
    while let Some((entry, leased)) = next.pop_front() {
        let held = leased.elapsed().as_secs();
        if held + ATTEMPT_SECS_MAX + 60 > LEASE_SECS as u64 {
            // Too little of its lease is left for an attempt: given back while it is still this
            // worker's, else (its lease ran out) left to whoever has it now.
            if held + 60 < LEASE_SECS as u64 {
                release(store, &entry).await;
            }
            continue;
        }
        let dsn = Request::from_json(entry.dsn.as_deref());
        let attempt = deliver(store, config, mailer, &entry, &dsn, &mut session);
        let fates = match tokio::time::timeout(Duration::from_secs(ATTEMPT_SECS_MAX), attempt).await
        {
            Ok(fates) => fates,
            Err(_) => {
                session = None;
                let why = format!(
                    "the attempt took more than {} minutes",
                    ATTEMPT_SECS_MAX / 60
                );
                vec![Fate::Temporary(why); entry.recipients.len()]
            }
        };
        // Who took the delivered ones, and whether it reports on them from here on.
        let taker = session
            .as_ref()
            .map(|s| (s.host().to_string(), s.offers_dsn()));
        record(store, config, &entry, &dsn, fates, taker).await;
        sent += 1;
        let done = session.is_none() || sent >= MESSAGES_PER_CONNECTION_MAX || stop.is_cancelled();
        if done {
            // Entries taken for this connection that it will not carry are made due again at once.
            for (left, _) in next.drain(..) {
                release(store, &left).await;
            }
            break;
        }
        if next.is_empty() {
            let now = Instant::now();
            next.extend(
                more(store, &domain, stop)
                    .await
                    .into_iter()
                    .map(|e| (e, now)),
            );
        }
    }
    if let Some(session) = session {
        session.quit().await;
    }
}

/// Leases a few due entries for `domain` (starting at a random one of them, so that connections to
/// one destination do not all reach for the same), waiting up to `CONNECTION_IDLE_MAX` for some to come
/// due (Postfix keeps a connection open 2 s for the next message too); empty when none came.
async fn more(store: &Arc<dyn Store>, domain: &str, stop: &CancellationToken) -> Vec<QueueEntry> {
    let give_up = tokio::time::Instant::now() + CONNECTION_IDLE_MAX;
    loop {
        let now = now_micros();
        let Ok(due) = store.queue_due(now, DUE_BATCH).await else {
            return Vec::new();
        };
        let mut ids: Vec<i64> = due
            .into_iter()
            .filter(|(_, d)| d == domain)
            .map(|(id, _)| id)
            .collect();
        if !ids.is_empty() {
            let start = rand::random::<u32>() as usize % ids.len();
            ids.rotate_left(start);
            ids.truncate(TAKE_PER_CONNECTION);
            let lease = now + LEASE_SECS * 1_000_000;
            match store.queue_take(ids, now, lease).await {
                Ok(taken) if !taken.is_empty() => return taken,
                Ok(_) => continue, // others took them first: look again at once
                Err(_) => return Vec::new(),
            }
        }
        if tokio::time::Instant::now() >= give_up || stop.is_cancelled() {
            return Vec::new();
        }
        tokio::time::sleep(CONNECTION_IDLE_POLL).await;
    }
}

/// Gives back a leased entry untried: due again now, its last error kept.
async fn release(store: &Arc<dyn Store>, entry: &QueueEntry) {
    let back = Attempted {
        id: entry.id,
        retry: entry.recipients.clone(),
        retry_micros: now_micros(),
        error: entry.last_error.clone(),
        bounce: None,
    };
    if let Err(e) = store.queue_attempted(back).await {
        tracing::warn!(queue = entry.id, error = %e, "giving back a queue entry failed; its lease runs out");
    }
}

/// One recipient's line in a notification, before it is written.
struct Outcome {
    recipient: String,
    action: Action,
    diagnostic: Option<String>,
    status: String,
    remote: Option<String>,
}

/// Records one attempt's outcome: delivered recipients gone, temporary failures back in the queue,
/// permanent ones (and those out of time) told to the sender, unless they asked not to be (RFC 3461
/// `NOTIFY`), and delivered ones told when asked and the server that took them will not tell.
async fn record(
    store: &Arc<dyn Store>,
    config: &Config,
    entry: &QueueEntry,
    dsn: &Request,
    fates: Vec<Fate>,
    taker: Option<(String, bool)>,
) {
    let now = now_micros();
    let expired = now - entry.created_micros > config.limits.queue_lifetime_secs as i64 * 1_000_000;
    let mut retry = Vec::new();
    let mut failed: Vec<(String, String, String)> = Vec::new();
    let mut relayed: Vec<Outcome> = Vec::new();
    let mut error = None;
    for (rcpt, fate) in entry.recipients.iter().zip(fates) {
        match fate {
            Fate::Delivered => {
                tracing::info!(queue = entry.id, to = %rcpt, "delivered");
                if let Some((host, false)) = &taker
                    && dsn.recipient(rcpt).wants_success()
                {
                    relayed.push(Outcome {
                        recipient: rcpt.clone(),
                        action: Action::Relayed,
                        diagnostic: None,
                        status: "2.0.0".into(),
                        remote: Some(host.clone()),
                    });
                }
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
                // A failure's status is of class 5 whatever the server's text said (`550 2.1.5`).
                let status = dsn::status_of(&why, "5.0.0");
                let status = format!("5{}", &status[1..]);
                failed.push((rcpt.clone(), why, status));
            }
        }
    }
    let mut reports: Vec<Outcome> = failed
        .into_iter()
        .filter(|(rcpt, _, _)| dsn.recipient(rcpt).wants_failure())
        .map(|(recipient, why, status)| Outcome {
            recipient,
            action: Action::Failed,
            diagnostic: Some(why),
            status,
            remote: None,
        })
        .collect();
    reports.extend(relayed);
    let bounce = match (&entry.user, reports.is_empty(), entry.sender.is_empty()) {
        (Some(user), false, false) => notification(store, config, entry, dsn, &reports)
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

/// The notification for `reports`, with the original message's header, or all of it when the sender
/// asked (`RET=FULL`) and something failed.
async fn notification(
    store: &Arc<dyn Store>,
    config: &Config,
    entry: &QueueEntry,
    dsn: &Request,
    reports: &[Outcome],
) -> Option<NewMessage> {
    let whole = dsn.ret == Some(Ret::Full) && reports.iter().any(|r| r.action == Action::Failed);
    let wanted = match whole {
        true => usize::try_from(entry.size).unwrap_or(usize::MAX),
        false => 64 * 1024,
    };
    let original = store
        .body_chunk(
            BodyRef {
                blob: entry.blob,
                len: entry.size,
            },
            0,
            wanted,
        )
        .await
        .ok()?;
    let originals: Vec<Option<String>> = reports
        .iter()
        .map(|r| dsn.recipient(&r.recipient).orcpt)
        .collect();
    let list: Vec<dsn::Report<'_>> = reports
        .iter()
        .zip(&originals)
        .map(|(r, original)| dsn::Report {
            recipient: &r.recipient,
            action: r.action,
            diagnostic: r.diagnostic.as_deref(),
            status: r.status.clone(),
            remote: r.remote.as_deref(),
            original_recipient: original.as_deref(),
        })
        .collect();
    let notice = dsn::Notice {
        hostname: config.hostname(),
        to: &entry.sender,
        envid: dsn.envid.as_deref(),
        arrival_micros: entry.created_micros,
        original: &original,
        whole,
    };
    let raw = dsn::build(&notice, &list);
    let (from, subject, message_id, _) = crate::message::summarize(&raw);
    Some(NewMessage::new(
        raw,
        from,
        subject,
        message_id,
        now_micros(),
    ))
}

/// Each recipient's fate: over `session` when it is open and still works, else over a new connection
/// to the domain's hosts in order (the first that answers), which is left in `session` for the next.
async fn deliver(
    store: &Arc<dyn Store>,
    config: &Config,
    mailer: &Mailer,
    entry: &QueueEntry,
    dsn: &Request,
    session: &mut Option<client::Session>,
) -> Vec<Fate> {
    let all = |f: Fate| vec![f; entry.recipients.len()];
    let stored = BodyRef {
        blob: entry.blob,
        len: entry.size,
    };
    let body = Body_::new(store.clone(), stored).await;
    let envelope = Envelope {
        sender: &entry.sender,
        recipients: &entry.recipients,
        size: body.len(),
        dsn,
        utf8_header: body.utf8_header,
    };
    if let Some(open) = session.as_mut() {
        match open.send(&envelope, &body).await {
            Ok(fates) => {
                if !open.usable() {
                    *session = None;
                }
                return fates;
            }
            // A connection that went stale between messages (or out of step): try this one on a new
            // connection.
            Err(_) => *session = None,
        }
    }
    let routed = match &config.relay_host {
        Some(relay) => dns::relay_route(&mailer.dns, relay, config.outbound_port)
            .await
            .map(|(host, ips, port)| (vec![(host, ips)], port)),
        None => dns::route(
            &mailer.dns,
            &entry.domain,
            config.outbound_private_addresses,
        )
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
    let deadline = Duration::from_secs(config.limits.outbound_reply_secs_max);
    let mut last = Fate::Temporary(format!("no server for {} could be reached", entry.domain));
    for (host, ips) in routes {
        let opening = client::Opening {
            host: &host,
            hostname: config.hostname(),
            tls: &mailer.tls,
            tls_required: config.tls_required_for(&entry.domain),
            deadline,
        };
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
            let mut open = match client::Session::open(tcp, &opening).await {
                Ok(open) => open,
                Err(Failure::Permanent(why)) => return all(Fate::Permanent(why)),
                Err(Failure::Temporary(why)) => {
                    last = Fate::Temporary(why);
                    continue;
                }
            };
            match open.send(&envelope, &body).await {
                Ok(fates) => {
                    *session = open.usable().then_some(open);
                    return fates;
                }
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
