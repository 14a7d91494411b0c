//! Mail to and from the rest of the internet: the outbound queue's delivery worker, the SMTP client it
//! speaks, DNS routes, DKIM signing, delivery status notifications, the per-account sending limit, and
//! the TLS policy for other servers. Inbound checks (SPF, DKIM, DMARC) are in `crate::smtp::verify`;
//! both use the one resolver here.

pub mod client;
pub mod delivered;
pub mod dkim;
pub mod dns;
pub mod dsn;
pub mod dsn_request;
pub mod limiter;
pub mod tls;
pub mod worker;

use std::sync::Arc;

use mail_auth::MessageAuthenticator;

use crate::config::Config;

/// What sessions and the worker share for mail beyond this server.
pub struct Mailer {
    pub dns: Arc<MessageAuthenticator>,
    pub dkim: dkim::Dkim,
    pub tls: client::TlsPolicy,
    pub limiter: limiter::SendLimiter,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error(transparent)]
    Dns(#[from] dns::DnsSetupError),
    #[error("outbound TLS: {0}")]
    Tls(String),
}

impl Mailer {
    pub fn new(config: &Config) -> Result<Mailer, MailerError> {
        let dns = match dns::authenticator(config) {
            Ok(dns) => dns,
            // No resolv.conf (a bare container): the server still serves local mail, and every
            // delivery elsewhere waits in the queue, its error saying why.
            Err(e) if config.dns_servers.is_empty() => {
                tracing::warn!(error = %e, "no system DNS; mail to other domains will wait in the queue");
                Arc::new(
                    MessageAuthenticator::new(
                        mail_auth::hickory_resolver::config::ResolverConfig::from_parts(
                            None,
                            Vec::new(),
                            Vec::new(),
                        ),
                        Default::default(),
                    )
                    .map_err(|e| MailerError::Dns(dns::DnsSetupError::Resolver(e.to_string())))?,
                )
            }
            Err(e) => return Err(e.into()),
        };
        let limits = &config.limits;
        Ok(Mailer {
            dns,
            dkim: dkim::Dkim::new(&config.data_dir),
            tls: tls::policy(config.outbound_tls_roots.as_deref()).map_err(MailerError::Tls)?,
            limiter: limiter::SendLimiter::new(
                limits.outbound_messages_per_hour_max,
                limits.outbound_recipients_per_hour_max,
            ),
        })
    }
}

/// The IP address of an address-literal domain (`[192.0.2.1]`, `[IPv6:2001:db8::1]`, RFC 5321
/// §4.1.3), which names a host without DNS.
pub fn address_literal(domain: &str) -> Option<std::net::IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..]
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(Into::into),
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(Into::into),
    }
}

/// Whether `address` looks like one another server could take: `local@domain`, a domain of dotted
/// labels or an address literal, no spaces (RCPT's parser has checked the rest). An address literal
/// must be public unless `private_ok` ([`dns::is_public`], `outbound_private_addresses`).
pub fn plausible_address(address: &str, private_ok: bool) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    if let Some(ip) = address_literal(domain) {
        return !local.is_empty() && local.len() <= 64 && (private_ok || dns::is_public(ip));
    }
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
        })
}

/// Recipients grouped by domain (lower-cased), in first-seen order: one queue entry each.
pub fn by_domain(recipients: &[String]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for rcpt in recipients {
        let domain = rcpt
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("")
            .to_ascii_lowercase();
        match groups.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, list)) => list.push(rcpt.clone()),
            None => groups.push((domain, vec![rcpt.clone()])),
        }
    }
    groups
}

/// Puts `domain`'s DKIM signatures in front of `message` (off the async workers: RSA takes a moment,
/// and the first use may make the keys).
pub async fn sign(
    mailer: &Arc<Mailer>,
    domain: &str,
    message: &mut crate::store::NewMessage,
) -> Result<(), dkim::DkimError> {
    // Signed as it will be sent: the relay's encoder makes every bare CR or LF a CRLF, and a
    // signature over the other bytes would fail at the receiver (a message from IMAP APPEND or JMAP
    // may have them; SMTP's are already canonical).
    let (mailer, domain, raw) = (
        mailer.clone(),
        domain.to_string(),
        jmail_proto::smtp::chunk::canonical_line_ends(std::mem::take(&mut message.raw)),
    );
    let (raw, signed) = tokio::task::spawn_blocking(move || {
        let signed = mailer.dkim.sign(&domain, &raw);
        (raw, signed)
    })
    .await
    .map_err(|e| dkim::DkimError::Sign(e.to_string()))?;
    let headers = match signed {
        Ok(headers) => headers,
        Err(e) => {
            message.raw = raw;
            return Err(e);
        }
    };
    let mut signed_raw = headers.into_bytes();
    signed_raw.extend_from_slice(&raw);
    *message = crate::store::NewMessage::new(
        signed_raw,
        std::mem::take(&mut message.from),
        std::mem::take(&mut message.subject),
        message.message_id.take(),
        message.internal_date_micros,
    );
    Ok(())
}

/// Why mail an account sends to other domains was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The account's hourly sending limit is reached.
    HourlyLimit,
    /// DKIM signing failed (nothing is sent unsigned).
    Signing,
}

/// The domain mail from `sender` is signed for: its own when it is one of ours, else the first.
pub fn signing_domain(config: &Config, sender: &str) -> String {
    match sender.rsplit_once('@') {
        Some((_, d)) if config.is_local_domain(d) => d.to_ascii_lowercase(),
        _ => config.primary_domain().to_string(),
    }
}

/// The queue entries for an account's message to `remote` recipients, once its hourly limit allows
/// them; the message is DKIM-signed for the sender's domain on the way. Every protocol that lets an
/// account send (submission, JMAP) comes through here.
pub async fn queue_remote(
    mailer: &Arc<Mailer>,
    config: &Config,
    user: crate::store::UserId,
    sender: &str,
    remote: &[String],
    message: &mut crate::store::NewMessage,
) -> Result<crate::store::Outbound, NotQueued> {
    let domain = signing_domain(config, sender);
    queue_signed(mailer, user, sender, &domain, remote, message).await
}

/// [`queue_remote`] with the message signed for `domain` (a local one) whatever the envelope sender: an
/// automatic reply goes with the null sender (RFC 3834 §3.3) and is signed for its author's domain.
pub async fn queue_signed(
    mailer: &Arc<Mailer>,
    user: crate::store::UserId,
    sender: &str,
    domain: &str,
    remote: &[String],
    message: &mut crate::store::NewMessage,
) -> Result<crate::store::Outbound, NotQueued> {
    if !mailer.limiter.admit(user, remote.len() as u64) {
        return Err(NotQueued::HourlyLimit);
    }
    sign(mailer, domain, message).await.map_err(|e| {
        tracing::warn!(error = %e, "DKIM signing failed; nothing stored");
        NotQueued::Signing
    })?;
    Ok(crate::store::Outbound {
        user: Some(user),
        sender: sender.to_string(),
        domains: by_domain(remote),
        dsn: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_other_servers_can_take() {
        for good in [
            "a@b.example",
            "x.y+z@sub.b-c.example",
            "a@[192.0.2.1]",
            "a@[IPv6:2001:db8::1]",
            "a@[193.0.2.1]",
        ] {
            assert!(plausible_address(good, true), "{good}");
        }
        assert!(plausible_address("a@[193.0.2.1]", false));
        // Literals that lead into this host or its network, unless the config allows them.
        for inside in [
            "a@[127.0.0.1]",
            "a@[10.1.2.3]",
            "a@[192.168.0.1]",
            "a@[169.254.169.254]",
            "a@[100.64.0.1]",
            "a@[0.0.0.0]",
            "a@[192.0.2.1]",
            "a@[IPv6:::1]",
            "a@[IPv6:fe80::1]",
            "a@[IPv6:fd00::1]",
            "a@[IPv6:::ffff:127.0.0.1]",
        ] {
            assert!(!plausible_address(inside, false), "{inside}");
            assert!(plausible_address(inside, true), "{inside}");
        }
        for bad in [
            "a",
            "a@b",
            "@b.example",
            "a@b..example",
            "a@-",
            "a@[999.1.1.1]",
            "a@b example.org",
        ] {
            assert!(!plausible_address(bad, true), "{bad}");
        }
        assert_eq!(
            address_literal("[192.0.2.1]"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(address_literal("example.org"), None);
    }

    #[test]
    fn recipients_grouped_by_domain_in_order() {
        let rcpts = ["a@X.example", "b@y.example", "c@x.example"].map(String::from);
        assert_eq!(
            by_domain(&rcpts),
            vec![
                (
                    "x.example".to_string(),
                    vec!["a@X.example".to_string(), "c@x.example".to_string()]
                ),
                ("y.example".to_string(), vec!["b@y.example".to_string()]),
            ]
        );
    }
}
