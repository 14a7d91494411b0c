//! Who really sent a message from a stranger (port 25): SPF (RFC 7208) for the client's address and
//! envelope sender, DKIM (RFC 6376) signatures, and the From domain's DMARC policy (RFC 7489) over both,
//! recorded in an Authentication-Results header (RFC 8601) that the stored copy carries first.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator};

/// What the From domain's owner asks be done with mail that fails DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Deliver,
    /// `p=quarantine`: to the recipient's Junk mailbox.
    Quarantine,
    /// `p=reject`: refused at the end of DATA.
    Reject,
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The `Authentication-Results:` header field, line end included.
    pub header: String,
    pub disposition: Disposition,
    /// The From domain, for the log and the reply.
    pub from_domain: String,
}

/// Checks `message` from `ip`, which said `helo` and `MAIL FROM:<sender>`. `hostname` names this
/// server in the header (its authserv-id).
pub async fn check(
    dns: &MessageAuthenticator,
    hostname: &str,
    ip: IpAddr,
    helo: &str,
    sender: &str,
    message: &[u8],
) -> Verdict {
    let spf = dns
        .verify_spf(SpfParameters::verify(ip, helo, hostname, sender))
        .await;
    let Some(parsed) = AuthenticatedMessage::parse(message) else {
        let header = AuthenticationResults::new(hostname)
            .with_spf_mailfrom_result(&spf, ip, sender, helo)
            .to_header();
        return Verdict {
            header,
            disposition: Disposition::Deliver,
            from_domain: String::new(),
        };
    };
    let dkim = dns.verify_dkim(&parsed).await;
    let mail_from_domain = match sender.rsplit_once('@') {
        Some((_, domain)) => domain,
        None => helo,
    };
    let dmarc = dns
        .verify_dmarc(DmarcParameters::new(&parsed, &dkim, mail_from_domain, &spf))
        .await;
    let first_from = parsed.from();
    let header = AuthenticationResults::new(hostname)
        .with_dkim_results(&dkim, first_from)
        .with_spf_mailfrom_result(&spf, ip, sender, helo)
        .with_dmarc_result(&dmarc)
        .to_header();
    let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
    let disposition = match (failed, dmarc.policy()) {
        (true, Policy::Reject) => Disposition::Reject,
        (true, Policy::Quarantine) => Disposition::Quarantine,
        _ => Disposition::Deliver,
    };
    Verdict {
        header,
        disposition,
        from_domain: dmarc.domain().to_string(),
    }
}

/// `message` without the Authentication-Results fields that claim to come from `hostname` (RFC 8601
/// §5: a forger could otherwise hand readers a "pass" of ours). Others' are kept.
pub fn strip_own_results(message: &[u8], hostname: &str) -> Vec<u8> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(message.len());
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < header_end {
        // One field: its first line and the folded lines after it.
        let mut end = i;
        loop {
            match memchr_nl(&message[end..header_end]) {
                Some(n) => end += n + 1,
                None => {
                    end = header_end;
                    break;
                }
            }
            if end >= header_end || !matches!(message[end], b' ' | b'\t') {
                break;
            }
        }
        let field = &message[i..end];
        if !is_own_result(field, hostname) {
            out.extend_from_slice(field);
        }
        i = end;
    }
    out.extend_from_slice(&message[header_end..]);
    out
}

fn memchr_nl(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn is_own_result(field: &[u8], hostname: &str) -> bool {
    let text = String::from_utf8_lossy(field);
    let Some((name, value)) = text.split_once(':') else {
        return false;
    };
    if !name.trim().eq_ignore_ascii_case("Authentication-Results") {
        return false;
    }
    // The authserv-id is the first token of the value, before `;` (comments aside).
    let id: String = value
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    id.eq_ignore_ascii_case(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_results_are_removed_others_kept() {
        let m = b"Authentication-Results: mx.b.test;\r\n\tdmarc=pass header.from=a.test\r\n\
AUTHENTICATION-RESULTS: MX.B.TEST; spf=pass\r\n\
Authentication-Results: other.example; dkim=fail\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.b.test; in the body stays\r\n";
        let out = String::from_utf8(strip_own_results(m, "mx.b.test")).unwrap();
        assert_eq!(
            out,
            "Authentication-Results: other.example; dkim=fail\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.b.test; in the body stays\r\n"
        );
    }
}
