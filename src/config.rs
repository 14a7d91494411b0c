//! Server settings: the config file (TOML), flags and environment merged into one [`Config`], and every
//! named limit in one place.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The port used when nothing else names one (the v1 server's server-to-server port).
pub const DEFAULT_PORT: u16 = 2005;
/// SMTP's port (RFC 5321).
pub const DEFAULT_SMTP_PORT: u16 = 25;
/// The submission port (RFC 6409).
pub const DEFAULT_SUBMISSION_PORT: u16 = 587;
/// SMTP submission over implicit TLS (RFC 8314).
pub const DEFAULT_SUBMISSIONS_PORT: u16 = 465;
/// POP3 over implicit TLS (RFC 8314).
pub const DEFAULT_POP3S_PORT: u16 = 995;
/// The native protocol over implicit TLS: the native port's neighbour.
pub const DEFAULT_NATIVE_TLS_PORT: u16 = 2006;
/// The POP3 port when neither `--pop3-port` nor the config file names one (RFC 1939).
pub const DEFAULT_POP3_PORT: u16 = 110;
/// The IMAP port when neither `--imap-port` nor the config file names one (RFC 9051).
pub const DEFAULT_IMAP_PORT: u16 = 143;
/// IMAP over implicit TLS (RFC 8314).
pub const DEFAULT_IMAPS_PORT: u16 = 993;
pub const DEFAULT_HTTPS_PORT: u16 = 443;
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// Data dir used when neither `--data-dir`, `JMAIL_DATA_DIR` nor the config file names one.
pub const DEFAULT_DATA_DIR: &str = "./jmail-data";
/// The smallest `message_bytes_max` accepted. Clients may send bodies up to this size without waiting for
/// the server's go-ahead (non-synchronizing literals), so the limit may not go below it.
pub const MESSAGE_BYTES_MIN: usize = 64 * 1024;

/// Every limit the server enforces. Each has a cost, said in its doc comment; the config file's `[limits]`
/// table sets any of them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest command line, line end included. A connection buffers at most this much of a line.
    pub line_bytes_max: usize,
    /// Largest message body a SEND may carry. A sending connection buffers up to this much before storing it.
    pub message_bytes_max: usize,
    /// Most recipients of one message. Each costs a stored copy and a row.
    pub recipients_max: usize,
    /// Open connections, all listeners together. Each idle one costs a few KiB and a file descriptor.
    /// Unset: as many as the open-file limit allows (the server raises it as far as it may), at most
    /// [`CONNECTIONS_DEFAULT_MAX`].
    pub connections_max: Option<usize>,
    /// Open connections from one IP address (IPv6: its /64) some account has logged in from in the last
    /// 30 days, so one host cannot take every slot while a household or office behind one address can
    /// run its clients.
    pub connections_per_ip_max: usize,
    /// Open connections from an address no account has logged in from lately (strangers' SMTP servers,
    /// and every client until its first login), at most `connections_per_ip_max`. This is what makes
    /// filling the server's slots cost many addresses: with 500 each, 40 addresses that never logged
    /// in held all 19,744 of a test machine's. 50 is Postfix's `smtpd_client_connection_count_limit`.
    pub connections_per_new_ip_max: usize,
    /// Seconds a connection may stay silent before it has logged in.
    pub idle_secs_unauth: u64,
    /// Seconds a logged-in connection may stay silent.
    pub idle_secs_auth: u64,
    /// Seconds a connection may WATCH without a word from the client, pushes notwithstanding (like IMAP
    /// IDLE's 29 minutes).
    pub idle_secs_watch: u64,
    /// Seconds one command line may take to arrive once it has begun (slowloris: a client trickling bytes
    /// keeps the idle timer alive but not the connection). Applies to command lines, not message bodies.
    pub line_secs_max: u64,
    /// Seconds a TLS handshake (implicit TLS or after STARTTLS) may take: a client that opens TLS and stalls
    /// holds a slot only this long.
    pub tls_handshake_secs_max: u64,
    /// Seconds a reply may take to be written before the peer is considered gone; a client that does not
    /// read cannot make the server buffer its replies without bound.
    pub write_secs_max: u64,
    /// Changes one LIST reply carries; the client asks again for the rest. Bounds one reply's memory.
    pub list_batch_max: usize,
    /// Protocol errors a connection may make; the last one closes it.
    pub bad_commands_max: u32,
    /// Failed logins a connection may make; the last one closes it.
    pub login_failures_max: u32,
    /// Seconds in-flight work gets to finish at shutdown before the server exits anyway.
    pub shutdown_grace_secs: u64,
    /// Longest wait, in seconds, before a failed login is answered; the wait doubles with each failure from
    /// the same IP or on the same account (1, 2, 4 ...). 0 turns the penalty off.
    pub login_penalty_secs_max: u64,
    /// Failed logins from one IP after which it is refused outright for `login_block_secs`; also failed
    /// logins on one account after which addresses it never logged in from take turns at it.
    pub login_block_failures: u32,
    /// Seconds an IP stays blocked; also how long failures are remembered.
    pub login_block_secs: u64,
    /// Messages received at once from SMTP clients that have not authenticated (port 25). Each may hold
    /// up to `message_bytes_max` in memory while it arrives, and about three times that while it is
    /// parsed, checked and stored (a slot is held until then), so this bounds what strangers can make the
    /// server hold (64 × 30 MiB by default); more get `452 4.3.1` at DATA.
    pub smtp_data_unauth_max: usize,
    /// Bytes of message bodies that all connections together may hold while they arrive (SMTP DATA, a
    /// native SEND), beyond the first 256 KiB of each. This is what bounds the memory that logged-in
    /// clients (or many addresses) can make the server hold with large messages sent slowly; a body
    /// that would pass it ends its connection with a "try again later" (SMTP `421 4.3.2`). Taken as at
    /// least twice `message_bytes_max` (a body's buffer may be twice its length while it grows), so that
    /// a message of the largest size can always arrive. IMAP draws on it too while it holds a large
    /// message whole (a BINARY part decoded, a SEARCH through its text); refused, those get `NO
    /// [UNAVAILABLE]` and the session goes on.
    pub input_bytes_max: usize,
    /// Seconds an SMTP server waits for the next command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub smtp_command_idle_secs: u64,
    /// Seconds an SMTP server waits for the next bytes of a message (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub smtp_data_idle_secs: u64,
    /// Of `smtp_data_unauth_max`, how many one client address (IPv6: its /64) may hold at once, so one
    /// host cannot take every slot and shut off inbound mail for everyone else. A busy relay that sends
    /// from one address with many sessions in parallel (a local content filter) needs it raised; beyond
    /// it a sender gets `452 4.3.1` and retries.
    pub smtp_data_unauth_per_ip_max: usize,
    /// Slowest average a message body (SMTP DATA, a native SEND) may arrive at once its first
    /// `line_secs_max` seconds are over, in bytes per second. A body trickled slower is cut off, so a
    /// sender holds its buffer and slot for at most `line_secs_max + message_bytes_max / this` seconds.
    pub data_bytes_per_sec_min: u64,
    /// The same for a message from a client that has not authenticated (port 25), which holds one of
    /// the `smtp_data_unauth_max` slots while it arrives, once half of those slots are taken: at 4096
    /// bytes a second a 10 MiB message held its slot 44 minutes, and 8 addresses shut off inbound
    /// mail. At this rate it holds it for `line_secs_max + message_bytes_max / this` seconds at most
    /// (6 minutes with the defaults), so slow senders can hold about half the slots, never all. While
    /// more than half are free, a sender on a slow link keeps only `data_bytes_per_sec_min`.
    pub smtp_data_unauth_bytes_per_sec_min: u64,
    /// Bytes of mail that clients without AUTH may have stored from one address (IPv6: its /64) in an
    /// hour; past it MAIL gets `452 4.7.1` and the sender tries again later. Strangers could otherwise
    /// fill the disk (8 addresses stored 66 MB a second), and a full disk stops mail for everyone.
    /// The count is this node's own.
    pub smtp_unauth_bytes_per_ip_hour_max: u64,
    /// Connections a node holds open to a PostgreSQL store at most (unused with SQLite). Each is a
    /// PostgreSQL server process of a few MB; ops beyond it wait for one to come free. Throughput peaks
    /// at a few per database CPU core (measured: 8 did 30% more than 32 on two cores); every node has
    /// its own, and their sum must stay under the server's `max_connections`.
    pub store_connections_max: u64,
    /// Mailboxes one account may have (its six special-use ones included). Each is a row read by every
    /// mailbox list, and IMAP clients list them all at start.
    pub mailboxes_per_account_max: u64,
    /// Distinct keywords (IMAP's user flags, JMAP keywords) one mailbox may use. IMAP sends them all in
    /// every SELECT's FLAGS and PERMANENTFLAGS.
    pub keywords_per_mailbox_max: u64,
    /// Bytes of mail an account may store, for accounts without their own quota (`jmail user quota`).
    /// 0: no limit but the disk.
    pub quota_bytes_default: u64,
    /// Messages an account may store, for accounts without their own quota. 0: no limit.
    pub quota_messages_default: u64,
    /// Bytes the data dir's disk keeps free (SQLite; PostgreSQL's disk is its server's). New mail that
    /// would leave less (a delivery, APPEND, a send, an import, a JMAP upload) is refused with a
    /// try-again-later reply, so that on a filling disk expunges, deletes and flag changes, which free
    /// space, still have room to be written. Costs that much disk never used for mail; 0 turns it off.
    pub disk_free_bytes_min: u64,
    /// Bytes of sort keys IMAP keeps in memory, server-wide (by mailbox and UID), so that sorting a
    /// mailbox again reads nothing from the store: about 200 bytes a message, so the default keeps about
    /// 300,000 messages' keys. Held only once a SORT has asked; 0 keeps none (every SORT reads).
    pub sort_cache_bytes_max: u64,
    /// IMAP sessions compressed at once (COMPRESS=DEFLATE). Each holds a compressor and a decompressor,
    /// about 300 KiB together; past it COMPRESS gets `NO [LIMIT]`. 0 turns COMPRESS off.
    pub compressed_sessions_max: usize,
    /// Seconds a message may wait in the outbound queue before it is given up and its sender told
    /// (RFC 5321 §4.5.4.1: at least 4–5 days). Each queued message holds its bytes meanwhile.
    pub queue_lifetime_secs: u64,
    /// Seconds before the first retry of a temporary failure; each later wait doubles, up to
    /// `queue_retry_secs_max`. Shorter waits mean more connections to a destination that is down.
    pub queue_retry_secs_min: u64,
    /// Longest wait between two attempts at a queued message.
    pub queue_retry_secs_max: u64,
    /// Outbound SMTP connections open at once, all destinations together. Each is a socket and a task
    /// reading the message in 64 KiB pieces.
    pub outbound_connections_max: usize,
    /// Outbound connections open at once to one destination domain, so a slow or small receiver is
    /// not flooded (and does not throttle us).
    pub outbound_connections_per_domain_max: usize,
    /// Seconds to wait for an outbound connection to open, and for each reply of the remote server
    /// (RFC 5321 §4.5.3.2 asks for 5 minutes for most; the reply after the data gets twice this).
    pub outbound_reply_secs_max: u64,
    /// Messages to other domains one account may send in an hour; past it, submission gets a
    /// temporary failure (a stolen password cannot send without end). 0: no limit.
    pub outbound_messages_per_hour_max: u64,
    /// Recipients at other domains one account may send to in an hour. 0: no limit.
    pub outbound_recipients_per_hour_max: u64,
}

/// The most connections the server opens when `connections_max` is not set.
pub const CONNECTIONS_DEFAULT_MAX: usize = 60_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            line_bytes_max: 8 * 1024,
            message_bytes_max: 10 * 1024 * 1024,
            recipients_max: 100,
            connections_max: None,
            connections_per_ip_max: 500,
            connections_per_new_ip_max: 50,
            idle_secs_unauth: 60,
            idle_secs_auth: 30 * 60,
            idle_secs_watch: 29 * 60,
            line_secs_max: 60,
            tls_handshake_secs_max: 15,
            write_secs_max: 60,
            list_batch_max: 1000,
            bad_commands_max: 20,
            login_failures_max: 3,
            shutdown_grace_secs: 10,
            login_penalty_secs_max: 15,
            login_block_failures: 10,
            login_block_secs: 5 * 60,
            smtp_data_unauth_max: 64,
            input_bytes_max: 512 << 20,
            smtp_command_idle_secs: 5 * 60,
            smtp_data_idle_secs: 3 * 60,
            smtp_data_unauth_per_ip_max: 8,
            compressed_sessions_max: 1000,
            sort_cache_bytes_max: 64 << 20,
            data_bytes_per_sec_min: 4096,
            smtp_data_unauth_bytes_per_sec_min: 32 * 1024,
            smtp_unauth_bytes_per_ip_hour_max: 1 << 30,
            store_connections_max: 8,
            mailboxes_per_account_max: 1000,
            keywords_per_mailbox_max: 256,
            quota_bytes_default: 0,
            quota_messages_default: 0,
            disk_free_bytes_min: 64 << 20,
            queue_lifetime_secs: 5 * DAY_SECS,
            queue_retry_secs_min: 60,
            queue_retry_secs_max: 3600,
            outbound_connections_max: 100,
            outbound_connections_per_domain_max: 4,
            outbound_reply_secs_max: 300,
            outbound_messages_per_hour_max: 500,
            outbound_recipients_per_hour_max: 2000,
        }
    }
}

/// Seconds in a day and a week: the upper bounds of the time limits. Larger values are no use to anyone
/// and would overflow deadline arithmetic.
const DAY_SECS: u64 = 86_400;
const WEEK_SECS: u64 = 7 * DAY_SECS;

impl Limits {
    /// Every limit with its value and its valid range, inclusive: the one table that `validate`, the
    /// config check and the docs read.
    pub fn ranges(&self) -> Vec<(&'static str, u64, u64, u64)> {
        let n = |v: usize| v as u64;
        vec![
            ("line_bytes_max", n(self.line_bytes_max), 512, 1 << 20),
            (
                "message_bytes_max",
                n(self.message_bytes_max),
                MESSAGE_BYTES_MIN as u64,
                1 << 30,
            ),
            ("recipients_max", n(self.recipients_max), 1, 10_000),
            (
                "connections_max",
                n(self.connections_max.unwrap_or(1)),
                1,
                1_000_000,
            ),
            (
                "connections_per_ip_max",
                n(self.connections_per_ip_max),
                1,
                1_000_000,
            ),
            (
                "connections_per_new_ip_max",
                n(self.connections_per_new_ip_max),
                1,
                1_000_000,
            ),
            ("idle_secs_unauth", self.idle_secs_unauth, 1, DAY_SECS),
            ("idle_secs_auth", self.idle_secs_auth, 1, DAY_SECS),
            ("idle_secs_watch", self.idle_secs_watch, 1, DAY_SECS),
            ("line_secs_max", self.line_secs_max, 1, DAY_SECS),
            (
                "tls_handshake_secs_max",
                self.tls_handshake_secs_max,
                1,
                3600,
            ),
            ("write_secs_max", self.write_secs_max, 1, DAY_SECS),
            ("list_batch_max", n(self.list_batch_max), 1, 100_000),
            (
                "bad_commands_max",
                u64::from(self.bad_commands_max),
                1,
                1_000_000,
            ),
            (
                "login_failures_max",
                u64::from(self.login_failures_max),
                1,
                1_000,
            ),
            ("shutdown_grace_secs", self.shutdown_grace_secs, 0, 3600),
            (
                "login_penalty_secs_max",
                self.login_penalty_secs_max,
                0,
                3600,
            ),
            (
                "login_block_failures",
                u64::from(self.login_block_failures),
                1,
                1_000_000,
            ),
            ("login_block_secs", self.login_block_secs, 1, WEEK_SECS),
            (
                "smtp_data_unauth_max",
                n(self.smtp_data_unauth_max),
                1,
                100_000,
            ),
            ("input_bytes_max", n(self.input_bytes_max), 1 << 20, 1 << 40),
            (
                "compressed_sessions_max",
                n(self.compressed_sessions_max),
                0,
                100_000,
            ),
            (
                "sort_cache_bytes_max",
                self.sort_cache_bytes_max,
                0,
                1 << 36,
            ),
            (
                "smtp_data_unauth_per_ip_max",
                n(self.smtp_data_unauth_per_ip_max),
                1,
                100_000,
            ),
            (
                "smtp_command_idle_secs",
                self.smtp_command_idle_secs,
                1,
                DAY_SECS,
            ),
            ("smtp_data_idle_secs", self.smtp_data_idle_secs, 1, DAY_SECS),
            (
                "data_bytes_per_sec_min",
                self.data_bytes_per_sec_min,
                1,
                1 << 30,
            ),
            (
                "smtp_data_unauth_bytes_per_sec_min",
                self.smtp_data_unauth_bytes_per_sec_min,
                1,
                1 << 30,
            ),
            (
                "smtp_unauth_bytes_per_ip_hour_max",
                self.smtp_unauth_bytes_per_ip_hour_max,
                1 << 20,
                1 << 50,
            ),
            (
                "store_connections_max",
                self.store_connections_max,
                1,
                1_000,
            ),
            (
                "mailboxes_per_account_max",
                self.mailboxes_per_account_max,
                6,
                100_000,
            ),
            (
                "keywords_per_mailbox_max",
                self.keywords_per_mailbox_max,
                1,
                10_000,
            ),
            ("quota_bytes_default", self.quota_bytes_default, 0, 1 << 50),
            ("disk_free_bytes_min", self.disk_free_bytes_min, 0, 1 << 50),
            (
                "quota_messages_default",
                self.quota_messages_default,
                0,
                1 << 32,
            ),
            (
                "queue_lifetime_secs",
                self.queue_lifetime_secs,
                60,
                30 * DAY_SECS,
            ),
            (
                "queue_retry_secs_min",
                self.queue_retry_secs_min,
                1,
                DAY_SECS,
            ),
            (
                "queue_retry_secs_max",
                self.queue_retry_secs_max,
                1,
                DAY_SECS,
            ),
            (
                "outbound_connections_max",
                n(self.outbound_connections_max),
                1,
                10_000,
            ),
            (
                "outbound_connections_per_domain_max",
                n(self.outbound_connections_per_domain_max),
                1,
                1_000,
            ),
            (
                "outbound_reply_secs_max",
                self.outbound_reply_secs_max,
                1,
                3600,
            ),
            (
                "outbound_messages_per_hour_max",
                self.outbound_messages_per_hour_max,
                0,
                10_000_000,
            ),
            (
                "outbound_recipients_per_hour_max",
                self.outbound_recipients_per_hour_max,
                0,
                10_000_000,
            ),
        ]
    }

    /// The input budget in force: `input_bytes_max`, but never so small that a message of
    /// `message_bytes_max` could not arrive.
    pub fn input_budget_bytes(&self) -> usize {
        self.input_bytes_max
            .max(self.message_bytes_max.saturating_mul(2))
    }

    /// Every limit out of its range, as one error naming each.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let wrong: Vec<String> = self
            .ranges()
            .into_iter()
            .filter(|(_, value, min, max)| value < min || value > max)
            .map(|(name, value, min, max)| {
                format!("limits.{name} is {value}; it must be from {min} to {max}")
            })
            .collect();

        if wrong.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(wrong.join("; ")))
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Checks a log level: `error`, `warn`, `info`, `debug`, `trace` or `off`, or comma-separated
/// `target=level` directives (RUST_LOG's syntax). A misspelt level would otherwise be read as a target
/// name and the server would start logging nothing.
pub fn check_log_level(text: &str) -> Result<(), ConfigError> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let is_level = |l: &str| LEVELS.iter().any(|k| k.eq_ignore_ascii_case(l.trim()));
    let ok = !text.trim().is_empty()
        && text.split(',').all(|part| match part.rsplit_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
            None => is_level(part),
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "log level {text:?} is not one of error, warn, info, debug, trace, off (or target=level, ...)"
        )))
    }
}

/// The config file. Every key is optional; flags and environment variables win over it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub port: Option<u16>,
    /// SMTP port for mail from anyone to local users (0 turns it off).
    pub smtp_port: Option<u16>,
    /// Submission port for authenticated users (0 turns it off).
    pub submission_port: Option<u16>,
    /// POP3 port; 0 turns POP3 off.
    pub pop3_port: Option<u16>,
    /// Submission over implicit TLS (0 turns it off).
    pub submissions_port: Option<u16>,
    /// POP3 over implicit TLS (0 turns it off).
    pub pop3s_port: Option<u16>,
    /// The native protocol over implicit TLS (0 turns it off).
    pub native_tls_port: Option<u16>,
    /// IMAP port (STARTTLS); 0 turns IMAP off.
    pub imap_port: Option<u16>,
    /// IMAP over implicit TLS (0 turns it off).
    pub imaps_port: Option<u16>,
    /// HTTPS (health, metrics, client autoconfiguration) (0 turns it off).
    pub https_port: Option<u16>,
    /// Plain HTTP: serves loopback clients, sends everyone else to HTTPS (0 turns it off).
    pub http_port: Option<u16>,
    /// PEM certificate chain; with `tls_key`. Without both, a self-signed certificate is made.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Accept passwords without TLS from non-loopback clients (default false).
    pub allow_plaintext_auth: Option<bool>,
    pub bind: Option<IpAddr>,
    pub data_dir: Option<PathBuf>,
    /// Mail domains this server is the final destination for; the first is used in addresses it writes.
    pub domains: Vec<String>,
    pub log_level: Option<String>,
    /// `text` (default) or `json`.
    pub log_format: Option<LogFormat>,
    /// The welcome message each new user gets; `{user}` is replaced by the user's name.
    pub welcome_message: Option<String>,
    /// Let unmodified Jmail v1.0 clients in on the native port (default true).
    pub legacy_v1: Option<bool>,
    /// The user who receives mail for `postmaster` (RFC 5321 §4.5.1). Default: a user named postmaster,
    /// else the first user created.
    pub postmaster: Option<String>,
    /// This server's host name: said in EHLO to other servers, in Received and Authentication-Results
    /// headers, and the name its MX record should point at. Default: the first domain.
    pub hostname: Option<String>,
    /// Name servers to ask (`ip` or `ip:port`), in order. Default: the system's (/etc/resolv.conf).
    pub dns_servers: Option<Vec<String>>,
    /// Port of other mail servers to deliver to. Default 25; only tests and unusual set-ups change it.
    pub outbound_port: Option<u16>,
    /// Deliver to servers at loopback, private (RFC 1918, unique-local), link-local, shared or
    /// unspecified addresses (default false). Off, a user cannot make the queue connect into this host
    /// or its network (`x@[127.0.0.1]`, or a domain whose MX points there); a LAN-only set-up and tests
    /// of several hosts on 127.0.0.x turn it on. `relay_host` is the administrator's and always used.
    pub outbound_private_addresses: Option<bool>,
    /// Deliver to other servers only over TLS with a certificate valid for their MX host name (default
    /// false: TLS whenever they offer it, as most servers do, verified or not).
    pub outbound_tls_required: Option<bool>,
    /// Domains delivered to only over verified TLS, whatever `outbound_tls_required` says.
    pub outbound_tls_required_domains: Option<Vec<String>>,
    /// Extra PEM certificates trusted when verifying other servers (a private CA, tests).
    pub outbound_tls_roots: Option<PathBuf>,
    /// Send all mail for other domains through this server (`host`, `host:port` or `ip:port`; the port
    /// defaults to `outbound_port`) instead of each domain's MX: a provider's smarthost, Postfix's
    /// `relayhost`. Default: none, delivery by MX.
    pub relay_host: Option<String>,
    /// Where the mail is stored: a PostgreSQL URL (`postgres://user:password@host:port/database`) shared
    /// by several nodes, or absent for the embedded SQLite store in the data dir (the default). The URL
    /// may hold a password: keep the config file readable only by the server's user.
    pub store: Option<String>,
    /// More certificates (a PEM file) to trust for the PostgreSQL server's, when the store URL says
    /// `sslmode=require` (the system's roots always count). Default: none.
    pub store_tls_roots: Option<PathBuf>,
    /// Check SPF, DKIM and DMARC on mail from strangers (port 25) and record the results (default
    /// true). Each message then costs a few DNS lookups (cached by the resolver).
    pub inbound_auth_checks: Option<bool>,
    /// Users who may use the admin page (`/admin`): add and delete users, set passwords and quotas,
    /// see the queue and the server's state. Default: nobody.
    pub admins: Option<Vec<String>>,
    pub limits: Limits,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), one_line(&text, &e)))
    }
}

/// A TOML error as one line (the error goes to stderr as one line): its message, where it is, and no
/// copy of the offending line, which may be a megabyte long.
fn one_line(text: &str, e: &toml::de::Error) -> String {
    let mut message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    if message.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        message.truncate(cut);
        message.push_str("...");
    }
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return message;
    };
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before.len() - line_start + 1;
    // The key the line sets, when it is one: what the reader looks for.
    let key = text[line_start..]
        .split('\n')
        .next()
        .and_then(|this| this.split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty() && key.len() <= 64);
    match key {
        Some(key) => format!("{key}: {message} (line {line}, column {column})"),
        None => format!("{message} (line {line}, column {column})"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("bad config file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("{0}")]
    Invalid(String),
}

/// Reads a `dns_servers` entry: `ip` (port 53) or `ip:port` (`[v6]:port`).
pub fn parse_dns_server(text: &str) -> Result<std::net::SocketAddr, ConfigError> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    text.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "dns_servers: {text:?} is not an IP address or IP:port"
        ))
    })
}

/// The default welcome text; `{user}` becomes the new user's name.
pub const DEFAULT_WELCOME: &str = "Welcome to Jmail, {user}!\r\n\r\nSend mail to another user by name: \
`jmail send --user {user} <name> --message hello`, or from a Jmail v1.0 client: `(name) hello`.\r\n";

/// Everything a running server needs, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    /// SMTP (inbound) port; `None` = off, `Some(0)` = any free port (tests).
    pub smtp_port: Option<u16>,
    /// Submission port; `None` = off, `Some(0)` = any free port (tests).
    pub submission_port: Option<u16>,
    /// POP3 listener: `None` is off; `Some(0)` any free port (tests).
    pub pop3_port: Option<u16>,
    /// Submission over implicit TLS; `None` = off.
    pub submissions_port: Option<u16>,
    /// POP3 over implicit TLS; `None` = off.
    pub pop3s_port: Option<u16>,
    /// The native protocol over implicit TLS; `None` = off.
    pub native_tls_port: Option<u16>,
    /// IMAP listener: `None` is off; `Some(0)` any free port (tests).
    pub imap_port: Option<u16>,
    /// IMAP over implicit TLS; `None` = off.
    pub imaps_port: Option<u16>,
    /// HTTPS; `None` = off.
    pub https_port: Option<u16>,
    /// Plain HTTP; `None` = off.
    pub http_port: Option<u16>,
    /// Certificate and key files; `None` = the self-signed pair in the data dir.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Accept passwords without TLS from non-loopback clients.
    pub allow_plaintext_auth: bool,
    pub data_dir: PathBuf,
    pub domains: Vec<String>,
    pub welcome_message: String,
    /// Accept v1.0 clients on the native port. Their exchange sends passwords in clear and cannot do TLS.
    pub legacy_v1: bool,
    /// Who receives mail for `postmaster` ([`FileConfig::postmaster`]); `None`: the default rule.
    pub postmaster: Option<String>,
    /// [`FileConfig::hostname`]; `None`: the first domain.
    pub hostname: Option<String>,
    /// Name servers as `ip:port`; empty: the system's.
    pub dns_servers: Vec<std::net::SocketAddr>,
    pub outbound_port: u16,
    /// [`FileConfig::outbound_private_addresses`].
    pub outbound_private_addresses: bool,
    pub outbound_tls_required: bool,
    pub outbound_tls_required_domains: Vec<String>,
    pub outbound_tls_roots: Option<PathBuf>,
    /// [`FileConfig::relay_host`].
    pub relay_host: Option<String>,
    /// [`FileConfig::store`].
    pub store: Option<String>,
    /// [`FileConfig::store_tls_roots`].
    pub store_tls_roots: Option<PathBuf>,
    /// [`FileConfig::inbound_auth_checks`].
    pub inbound_auth_checks: bool,
    /// [`FileConfig::admins`], as user names.
    pub admins: Vec<String>,
    pub limits: Limits,
}

/// A domain or host name as it goes into headers, EHLO and file names: dot-separated labels of letters
/// (any script), digits, `-` and `_`, none empty, at most 63 bytes each and 253 in all. Nothing else:
/// a line break in `hostname` would write a header of its own into every message received.
fn plain_domain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// `host`, `host:port`, `ip:port` or `[ip]:port`, a port from 1 to 65535.
fn relay_host_well_formed(relay: &str) -> bool {
    if relay.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let (host, port) = match relay.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (relay, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    port_ok && (host.parse::<std::net::IpAddr>().is_ok() || plain_domain(host))
}

impl Config {
    /// Settings for tests and embedding: loopback, an OS-chosen port, defaults for the rest.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            smtp_port: None,
            submission_port: None,
            pop3_port: None,
            submissions_port: None,
            pop3s_port: None,
            native_tls_port: None,
            imap_port: None,
            imaps_port: None,
            https_port: None,
            http_port: None,
            tls_cert: None,
            tls_key: None,
            allow_plaintext_auth: false,
            data_dir: data_dir.into(),
            domains: vec!["localhost".to_string()],
            welcome_message: DEFAULT_WELCOME.to_string(),
            legacy_v1: true,
            postmaster: None,
            hostname: None,
            // Tests never ask the internet: a name server on loopback that is not there fails fast.
            dns_servers: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 53))],
            outbound_port: DEFAULT_SMTP_PORT,
            outbound_private_addresses: false,
            outbound_tls_required: false,
            outbound_tls_required_domains: Vec::new(),
            outbound_tls_roots: None,
            relay_host: None,
            store: None,
            store_tls_roots: None,
            // Tests and embedders have no DNS of their own unless they say so.
            inbound_auth_checks: false,
            admins: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// This server's host name ([`FileConfig::hostname`]).
    pub fn hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or(self.primary_domain())
    }

    /// Whether mail to `domain` must go over verified TLS.
    pub fn tls_required_for(&self, domain: &str) -> bool {
        self.outbound_tls_required
            || self
                .outbound_tls_required_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The domain written into addresses and Message-IDs.
    pub fn primary_domain(&self) -> &str {
        self.domains
            .first()
            .map(String::as_str)
            .unwrap_or("localhost")
    }

    /// Whether `domain` is one this server is the final destination for.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The local part of `address` when it is local (`bob`, or `bob@` one of our domains); `None` for
    /// another domain's address.
    pub fn local_part<'a>(&self, address: &'a str) -> Option<&'a str> {
        match address.rsplit_once('@') {
            Some((local, domain)) if self.is_local_domain(domain) => Some(local),
            Some(_) => None,
            None => Some(address),
        }
    }

    /// Rejects settings that cannot work: every limit out of its range (see [`Limits::ranges`]), half a
    /// TLS pair, odd domains.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        let bad = |s: &str| Err(ConfigError::Invalid(s.to_string()));
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key go together: give both or neither");
        }
        if !self.domains.iter().all(|d| plain_domain(d)) {
            return bad(
                "domains must be plain domain names (labels of letters, digits, '-' and '_', joined by dots)",
            );
        }
        if self
            .relay_host
            .as_deref()
            .is_some_and(|relay| !relay_host_well_formed(relay))
        {
            return bad("relay_host must be host, host:port, ip:port or [ip]:port");
        }
        if self.welcome_message.len() > self.limits.message_bytes_max {
            return bad("welcome_message is longer than limits.message_bytes_max");
        }
        if self.hostname.as_deref().is_some_and(|h| !plain_domain(h)) {
            return bad(
                "hostname must be a plain host name (labels of letters, digits, '-' and '_', joined by dots)",
            );
        }
        if let Some(url) = &self.store
            && url.parse::<tokio_postgres::Config>().is_err()
        {
            return bad(
                "store must be a PostgreSQL URL (postgres://user:password@host:port/database)",
            );
        }
        if self.limits.queue_retry_secs_min > self.limits.queue_retry_secs_max {
            return bad("limits.queue_retry_secs_min may not exceed limits.queue_retry_secs_max");
        }
        Ok(())
    }

    /// The welcome text for one user.
    pub fn welcome_for(&self, user: &str) -> String {
        self.welcome_message.replace("{user}", user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_at_its_bounds() {
        let defaults = Limits::default();
        assert!(defaults.validate().is_ok());
        for (name, _, min, max) in defaults.ranges() {
            for (value, ok) in [
                (min, true),
                (max, true),
                (max + 1, false),
                (u64::MAX, false),
                (i64::MAX as u64, false),
            ]
            .into_iter()
            .chain(min.checked_sub(1).map(|below| (below, false)))
            {
                let text = format!("[limits]\n{name} = {}\n", value.min(i64::MAX as u64));
                let parsed: Result<FileConfig, _> = toml::from_str(&text);
                let verdict = parsed
                    .map_err(|e| e.to_string())
                    .and_then(|f| f.limits.validate().map_err(|e| e.to_string()));
                assert_eq!(verdict.is_ok(), ok, "{text}: {verdict:?}");
                if let Err(e) = verdict {
                    assert!(e.contains(name), "the error names {name}: {e}");
                }
            }
        }
    }

    #[test]
    fn log_levels() {
        for good in [
            "info",
            "WARN",
            "off",
            "jmail=debug,info",
            "jmail::smtp=trace",
        ] {
            assert!(check_log_level(good).is_ok(), "{good}");
        }
        for bad in ["inof", "", "jmail", "jmail=loud", "=info", "info,"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_config_parses_and_rejects_unknown_keys() {
        let c: FileConfig = toml::from_str(
            "port = 2525\ndomains = [\"example.org\"]\n[limits]\nrecipients_max = 5\n",
        )
        .unwrap();
        assert_eq!(c.port, Some(2525));
        assert_eq!(c.limits.recipients_max, 5);
        assert_eq!(c.limits.line_bytes_max, Limits::default().line_bytes_max);
        assert!(toml::from_str::<FileConfig>("prot = 1").is_err());
        // An error is one line, with where it is and without the line itself.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jmail.toml");
        let long = "x".repeat(100_000);
        std::fs::write(
            &path,
            format!("port = 25\n[limits]\nrecipients_max = \"{long}\"\n"),
        )
        .unwrap();
        let e = FileConfig::load(&path).unwrap_err().to_string();
        assert!(
            !e.contains('\n') && e.len() < 600 && e.ends_with("(line 3, column 18)"),
            "{e}"
        );
        assert!(
            e.contains("recipients_max") || e.contains("invalid type"),
            "{e}"
        );
    }

    #[test]
    fn validation() {
        let mut c = Config::for_data_dir("/tmp/x");
        assert!(c.validate().is_ok());
        c.limits.message_bytes_max = 10;
        assert!(c.validate().is_err());
        let mut zero_per_ip = Config::for_data_dir("/tmp/x");
        zero_per_ip.limits.connections_per_ip_max = 0;
        assert!(
            zero_per_ip.validate().is_err(),
            "no client could ever connect"
        );
        let mut half_tls = Config::for_data_dir("/tmp/x");
        half_tls.tls_cert = Some("/tmp/cert.pem".into());
        assert!(half_tls.validate().is_err(), "tls_cert without tls_key");
        // Names that go into headers and file names: plain labels only.
        for (hostname, ok) in [
            ("mx.example.org", true),
            ("localhost", true),
            ("mx.bücher.de", true),
            ("evil.example\r\nX-Injected: yes", false),
            ("a b", false),
            ("example.org.", false),
            ("a..b", false),
            ("a@b", false),
            ("[127.0.0.1]", false),
        ] {
            let mut c = Config::for_data_dir("/tmp/x");
            c.hostname = Some(hostname.to_string());
            assert_eq!(c.validate().is_ok(), ok, "hostname {hostname:?}");
            let mut c = Config::for_data_dir("/tmp/x");
            c.domains = vec![hostname.to_string()];
            assert_eq!(c.validate().is_ok(), ok, "domain {hostname:?}");
        }
        for (relay, ok) in [
            ("smtp.provider.example:587", true),
            ("smtp.provider.example", true),
            ("127.0.0.9:2525", true),
            ("[::1]:25", true),
            ("", false),
            ("::::", false),
            ("h:99999", false),
            ("h:0", false),
            ("a b:25", false),
        ] {
            let mut c = Config::for_data_dir("/tmp/x");
            c.relay_host = Some(relay.to_string());
            assert_eq!(c.validate().is_ok(), ok, "relay_host {relay:?}");
        }
    }
}
