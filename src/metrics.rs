//! Counters for `/metrics` (Prometheus text format): cheap atomics bumped where things happen, read at
//! scrape time. Process-wide: one server per process.

use std::sync::atomic::{AtomicU64, Ordering};

/// The listeners, in the order their counters are kept (the `protocol` label).
pub const PROTOCOLS: [&str; 11] = [
    "native",
    "smtp",
    "submission",
    "pop3",
    "submissions",
    "pop3s",
    "native_tls",
    "imap",
    "imaps",
    "https",
    "http",
];

/// How a login ended (the `result` label).
#[derive(Debug, Clone, Copy)]
pub enum Login {
    Ok = 0,
    Failed = 1,
    Blocked = 2,
    Unavailable = 3,
}

const LOGIN_RESULTS: [&str; 4] = ["ok", "failed", "blocked", "unavailable"];

pub struct Metrics {
    accepted: [AtomicU64; PROTOCOLS.len()],
    open: [AtomicU64; PROTOCOLS.len()],
    logins: [AtomicU64; LOGIN_RESULTS.len()],
    /// Copies of messages stored for local recipients by deliveries (SMTP, submission, native sends).
    delivered: AtomicU64,
    /// Events told to watching sessions' feeds (push wake-ups).
    pushed: AtomicU64,
    /// Store operations that failed in the backend (a database error, a lost connection, a full disk).
    store_errors: AtomicU64,
    /// Write operations per committed transaction (group commit's batches).
    batch_ops: Histogram<{ BATCH_BUCKETS.len() }>,
    /// Seconds from a batch's start to its commit.
    commit_seconds: Histogram<{ SECONDS_BUCKETS.len() }>,
}

/// Upper bounds of the batch-size buckets (ops), and of the latency buckets (seconds).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const SECONDS_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// A Prometheus histogram of fixed buckets: a count per bucket (not cumulative; summed when rendered),
/// the sum in micro-units and the count.
pub struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    #[allow(clippy::declare_interior_mutable_const)]
    const NEW: Histogram<N> = Histogram {
        buckets: [ZERO; N],
        sum_micros: ZERO,
        count: ZERO,
    };

    fn observe(&self, bounds: &[f64; N], value: f64) {
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram's lines (buckets cumulative, then `+Inf`, sum and count).
    fn render(&self, name: &str, help: &str, bounds: &[f64; N]) -> String {
        let mut out = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut running = 0;
        for (bound, bucket) in bounds.iter().zip(&self.buckets) {
            running += bucket.load(Ordering::Relaxed);
            out += &format!("{name}_bucket{{le=\"{bound}\"}} {running}\n");
        }
        let count = self.count.load(Ordering::Relaxed);
        out += &format!("{name}_bucket{{le=\"+Inf\"}} {count}\n");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out += &format!("{name}_sum {sum}\n{name}_count {count}\n");
        out
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

pub static METRICS: Metrics = Metrics {
    accepted: [ZERO; PROTOCOLS.len()],
    open: [ZERO; PROTOCOLS.len()],
    logins: [ZERO; LOGIN_RESULTS.len()],
    delivered: ZERO,
    pushed: ZERO,
    store_errors: ZERO,
    batch_ops: Histogram::NEW,
    commit_seconds: Histogram::NEW,
};

/// A connection counted as open while this lives.
pub struct OpenConnection(usize);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.open[self.0].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A connection accepted on listener `protocol` (an index into [`PROTOCOLS`]).
    pub fn connection(&self, protocol: usize) -> OpenConnection {
        self.accepted[protocol].fetch_add(1, Ordering::Relaxed);
        self.open[protocol].fetch_add(1, Ordering::Relaxed);
        OpenConnection(protocol)
    }

    pub fn login(&self, result: Login) {
        self.logins[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivered(&self, copies: usize) {
        self.delivered.fetch_add(copies as u64, Ordering::Relaxed);
    }

    pub fn pushed(&self) {
        self.pushed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A transaction committed `ops` write operations, `took` after its batch began.
    pub fn committed(&self, ops: usize, took: std::time::Duration) {
        self.batch_ops.observe(&BATCH_BUCKETS, ops as f64);
        self.commit_seconds
            .observe(&SECONDS_BUCKETS, took.as_secs_f64());
    }

    /// (listener, connections accepted, connections open now), for the admin page.
    pub fn connections(&self) -> Vec<(&'static str, u64, u64)> {
        PROTOCOLS
            .iter()
            .zip(self.accepted.iter().zip(&self.open))
            .map(|(p, (a, o))| (*p, a.load(Ordering::Relaxed), o.load(Ordering::Relaxed)))
            .collect()
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            out += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (labels, value) in rows {
                out += &format!("{name}{labels} {value}\n");
            }
        };
        let by_protocol = |counters: &[AtomicU64]| {
            PROTOCOLS
                .iter()
                .zip(counters)
                .map(|(p, c)| (format!("{{protocol=\"{p}\"}}"), c.load(Ordering::Relaxed)))
                .collect()
        };
        family(
            "jmail_connections_accepted_total",
            "counter",
            "Connections accepted, by listener.",
            by_protocol(&self.accepted),
        );
        family(
            "jmail_connections_open",
            "gauge",
            "Connections open now, by listener.",
            by_protocol(&self.open),
        );
        family(
            "jmail_logins_total",
            "counter",
            "Logins on every protocol, by result.",
            LOGIN_RESULTS
                .iter()
                .zip(&self.logins)
                .map(|(r, c)| (format!("{{result=\"{r}\"}}"), c.load(Ordering::Relaxed)))
                .collect(),
        );
        let one = |c: &AtomicU64| vec![(String::new(), c.load(Ordering::Relaxed))];
        family(
            "jmail_delivered_total",
            "counter",
            "Message copies stored for local recipients by deliveries.",
            one(&self.delivered),
        );
        family(
            "jmail_push_events_total",
            "counter",
            "Events told to watching sessions (IDLE, WATCH).",
            one(&self.pushed),
        );
        family(
            "jmail_store_errors_total",
            "counter",
            "Store operations that failed in the backend.",
            one(&self.store_errors),
        );
        out += &self.batch_ops.render(
            "jmail_commit_batch_ops",
            "Write operations per committed transaction (group commit).",
            &BATCH_BUCKETS,
        );
        out += &self.commit_seconds.render(
            "jmail_commit_seconds",
            "Seconds from a write batch's start to its commit.",
            &SECONDS_BUCKETS,
        );
        out
    }
}
