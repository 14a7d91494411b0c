//! `jmail serve`: resolves settings (flag > environment > config file > terminal prompt > default) and runs
//! the server until SIGINT or SIGTERM.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{StoreArgs, prompt};
use crate::config::{
    Config, DEFAULT_DATA_DIR, DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, DEFAULT_IMAP_PORT,
    DEFAULT_IMAPS_PORT, DEFAULT_NATIVE_TLS_PORT, DEFAULT_POP3_PORT, DEFAULT_POP3S_PORT,
    DEFAULT_PORT, DEFAULT_SMTP_PORT, DEFAULT_SUBMISSION_PORT, DEFAULT_SUBMISSIONS_PORT,
    DEFAULT_WELCOME, FileConfig,
};

#[derive(Args)]
pub struct ServeArgs {
    /// Native protocol port [env: JMAIL_PORT; else the config file; else asked on a terminal; else 2005].
    #[arg(long, env = "JMAIL_PORT")]
    port: Option<u16>,
    /// SMTP port for mail to local users from anyone; 0 turns it off [default: the config file's
    /// smtp_port, else 25].
    #[arg(long)]
    smtp_port: Option<u16>,
    /// Submission port for authenticated users sending mail; 0 turns it off [default: the config file's
    /// submission_port, else 587].
    #[arg(long)]
    submission_port: Option<u16>,
    /// POP3 port; 0 turns POP3 off [default: the config file's pop3_port, else 110].
    #[arg(long)]
    pop3_port: Option<u16>,
    /// Submission over implicit TLS; 0 turns it off [default: submissions_port, else 465].
    #[arg(long)]
    submissions_port: Option<u16>,
    /// POP3 over implicit TLS; 0 turns it off [default: pop3s_port, else 995].
    #[arg(long)]
    pop3s_port: Option<u16>,
    /// The native protocol over implicit TLS; 0 turns it off [default: native_tls_port, else 2006].
    #[arg(long)]
    native_tls_port: Option<u16>,
    /// IMAP port (STARTTLS); 0 turns IMAP off [default: the config file's imap_port, else 143].
    #[arg(long)]
    imap_port: Option<u16>,
    /// IMAP over implicit TLS; 0 turns it off [default: imaps_port, else 993].
    #[arg(long)]
    imaps_port: Option<u16>,
    /// HTTPS (health, metrics, client autoconfiguration); 0 turns it off [default: https_port, else 443].
    #[arg(long)]
    https_port: Option<u16>,
    /// Plain HTTP: loopback clients are served, others sent to HTTPS; 0 turns it off [default:
    /// http_port, else 80].
    #[arg(long)]
    http_port: Option<u16>,
    /// TLS certificate chain (PEM) [default: tls_cert; else a self-signed one made in the data dir].
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Accept passwords without TLS from non-loopback clients (logged as a warning).
    #[arg(long)]
    allow_plaintext_auth: bool,
    /// Address to listen on [default: all interfaces].
    #[arg(long)]
    bind: Option<IpAddr>,
    /// A mail domain this server is final destination for (repeatable) [default: localhost].
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Refuse Jmail v1.0 clients (their exchange sends passwords in clear and cannot do TLS).
    #[arg(long)]
    no_legacy: bool,
    /// Log level (error, warn, info, debug, trace, or a RUST_LOG-style filter) [default: RUST_LOG, else the
    /// config file's log_level, else info].
    #[arg(long)]
    log_level: Option<String>,
    /// Log line format [default: the config file's log_format, else text].
    #[arg(long, value_enum)]
    log_format: Option<crate::config::LogFormat>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Settings from the config file, or defaults when there is none.
pub fn file_config(store: &StoreArgs) -> anyhow::Result<FileConfig> {
    match &store.config {
        Some(path) => Ok(FileConfig::load(path)?),
        None => Ok(FileConfig::default()),
    }
}

/// The data dir: flag/environment, then the config file, then the default.
pub fn data_dir(store: &StoreArgs, file: &FileConfig) -> PathBuf {
    store
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// Everything but the port, which only `serve` needs.
pub fn resolve(store: &StoreArgs, domains: Vec<String>) -> anyhow::Result<(Config, FileConfig)> {
    let file = file_config(store)?;
    let domains = if !domains.is_empty() {
        domains
    } else if !file.domains.is_empty() {
        file.domains.clone()
    } else {
        vec!["localhost".to_string()]
    };
    let config = Config {
        bind: file.bind.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        port: DEFAULT_PORT,
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
        tls_cert: file.tls_cert.clone(),
        tls_key: file.tls_key.clone(),
        allow_plaintext_auth: file.allow_plaintext_auth.unwrap_or(false),
        data_dir: data_dir(store, &file),
        domains: domains
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        welcome_message: file
            .welcome_message
            .clone()
            .unwrap_or_else(|| DEFAULT_WELCOME.to_string()),
        legacy_v1: file.legacy_v1.unwrap_or(true),
        postmaster: file.postmaster.clone(),
        hostname: file.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        dns_servers: file
            .dns_servers
            .iter()
            .flatten()
            .map(|s| crate::config::parse_dns_server(s))
            .collect::<Result<_, _>>()?,
        outbound_port: file
            .outbound_port
            .unwrap_or(crate::config::DEFAULT_SMTP_PORT),
        outbound_private_addresses: file.outbound_private_addresses.unwrap_or(false),
        outbound_tls_required: file.outbound_tls_required.unwrap_or(false),
        outbound_tls_required_domains: file
            .outbound_tls_required_domains
            .clone()
            .unwrap_or_default(),
        outbound_tls_roots: file.outbound_tls_roots.clone(),
        relay_host: file.relay_host.clone(),
        // An empty JMAIL_STORE (`JMAIL_STORE= jmail ...`) is no URL: the embedded store, as unset.
        store: store
            .store
            .clone()
            .filter(|url| !url.is_empty())
            .or_else(|| file.store.clone()),
        store_tls_roots: file.store_tls_roots.clone(),
        inbound_auth_checks: file.inbound_auth_checks.unwrap_or(true),
        admins: file
            .admins
            .iter()
            .flatten()
            .map(|name| crate::auth::normalize_name(name))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("admins: {e}"))?,
        limits: file.limits.clone(),
    };
    config.validate()?;
    // A postmaster no user could ever have would leave RFC 5321's one required mailbox unanswerable.
    if let Some(name) = &config.postmaster {
        crate::auth::normalize_name(name).map_err(|e| {
            anyhow::anyhow!("postmaster = {name:?} is not a user name ({e}); name an account")
        })?;
    }
    Ok((config, file))
}

fn port(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<u16> {
    if let Some(p) = args.port.or(file.port) {
        return Ok(p);
    }
    if !prompt::stdin_is_terminal() {
        return Ok(DEFAULT_PORT);
    }
    let answer = prompt::ask(&format!("Port for Jmail [{DEFAULT_PORT}]: "))?;
    if answer.trim().is_empty() {
        return Ok(DEFAULT_PORT);
    }
    answer
        .trim()
        .parse()
        .with_context(|| format!("{answer:?} is not a port number (1-65535)"))
}

/// A listener's port: the flag, else the config file, else the protocol's default; 0 turns it off.
fn listener_port(flag: Option<u16>, file: Option<u16>, default: u16) -> Option<u16> {
    match flag.or(file).unwrap_or(default) {
        0 => None,
        port => Some(port),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (mut config, file) = resolve(&args.store, args.domains.clone())?;
    let level = super::log_level(
        args.log_level.as_deref(),
        file.log_level.as_deref().unwrap_or("info"),
    )?;
    super::init_logging(
        &level,
        args.log_format.or(file.log_format).unwrap_or_default(),
    );
    config.port = port(&args, &file)?;
    config.smtp_port = listener_port(args.smtp_port, file.smtp_port, DEFAULT_SMTP_PORT);
    config.submission_port = listener_port(
        args.submission_port,
        file.submission_port,
        DEFAULT_SUBMISSION_PORT,
    );
    config.pop3_port = listener_port(args.pop3_port, file.pop3_port, DEFAULT_POP3_PORT);
    config.submissions_port = listener_port(
        args.submissions_port,
        file.submissions_port,
        DEFAULT_SUBMISSIONS_PORT,
    );
    config.pop3s_port = listener_port(args.pop3s_port, file.pop3s_port, DEFAULT_POP3S_PORT);
    config.imap_port = listener_port(args.imap_port, file.imap_port, DEFAULT_IMAP_PORT);
    config.imaps_port = listener_port(args.imaps_port, file.imaps_port, DEFAULT_IMAPS_PORT);
    config.https_port = listener_port(args.https_port, file.https_port, DEFAULT_HTTPS_PORT);
    config.http_port = listener_port(args.http_port, file.http_port, DEFAULT_HTTP_PORT);
    config.native_tls_port = listener_port(
        args.native_tls_port,
        file.native_tls_port,
        DEFAULT_NATIVE_TLS_PORT,
    );
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert.clone();
        config.tls_key = args.tls_key.clone();
    }
    if args.allow_plaintext_auth {
        config.allow_plaintext_auth = true;
    }
    if config.allow_plaintext_auth {
        tracing::warn!(
            "allow_plaintext_auth is on: passwords are accepted without TLS from any address"
        );
    }
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if args.no_legacy {
        config.legacy_v1 = false;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    crate::datadir::prepare(&config.data_dir)?;
    // Held until the process ends: a second server on this data dir is refused.
    let _lock = crate::datadir::lock_for_serving(&config.data_dir)?;
    runtime.block_on(async move {
        let opened = crate::store::open::open_for_serving(&config).await;
        let (store, shared_failures) = opened.with_context(|| {
            format!(
                "opening the store in {}",
                crate::store::open::describe(&config)
            )
        })?;
        // SQLite made any new database file with its own default mode.
        crate::datadir::prepare(&config.data_dir)?;
        let domains = config.domains.clone();
        let server = crate::server::start(
            config,
            store,
            crate::throttle::LoginThrottle::system_shared(shared_failures),
        )
        .await?;
        server.prepare_dkim_keys(domains);
        wait_for_signal(&server).await?;
        server.shutdown().await;
        Ok(())
    })
}

/// Runs until SIGTERM or SIGINT; SIGHUP reloads the TLS certificate.
async fn wait_for_signal(server: &crate::server::RunningServer) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                return Ok(());
            }
            _ = int.recv() => {
                tracing::info!("SIGINT received");
                return Ok(());
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading the TLS certificate");
                server.reload_tls();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_port_flag_beats_file_beats_default_and_0_is_off() {
        assert_eq!(listener_port(None, None, 110), Some(110));
        assert_eq!(listener_port(None, Some(1110), 110), Some(1110));
        assert_eq!(listener_port(Some(2110), Some(1110), 110), Some(2110));
        assert_eq!(listener_port(Some(0), Some(1110), 110), None);
        assert_eq!(listener_port(None, Some(0), 25), None);
        assert_eq!(listener_port(Some(995), Some(0), 110), Some(995));
    }
}
