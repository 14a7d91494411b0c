//! Who really sent a message from a stranger (port 25): SPF (RFC 7208) for the client's address and
//! envelope sender, DKIM (RFC 6376) signatures, and the From domain's DMARC policy (RFC 7489) over both,
//! recorded in an Authentication-Results header (RFC 8601) that the stored copy carries first.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator, SpfResult,
};

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
    /// The envelope sender is proven: SPF passed for its domain, or a DKIM signature of that domain (or
    /// a parent of it) did. Only such a sender gets an automatic reply.
    pub sender_proven: bool,
}

/// Checks `message` from `ip`, which said `helo` and `MAIL FROM:<sender>`. `hostname` names this
/// server in the header (its authserv-id); `is_local` says whether a domain is one of this server's.
pub async fn check(
    dns: &MessageAuthenticator,
    hostname: &str,
    is_local: impl Fn(&str) -> bool,
    (ip, helo, sender): (IpAddr, &str, &str),
    message: &[u8],
) -> Verdict {
    let spf = dns
        .verify_spf(SpfParameters::verify(ip, helo, hostname, sender))
        .await;
    let spf_passed = !sender.is_empty() && spf.result() == SpfResult::Pass;
    let checked = bounded_signatures(message);
    let Some(parsed) = AuthenticatedMessage::parse(&checked) else {
        let header = AuthenticationResults::new(hostname)
            .with_spf_mailfrom_result(&spf, ip, sender, helo)
            .to_header();
        return Verdict {
            header,
            disposition: Disposition::Deliver,
            from_domain: String::new(),
            sender_proven: spf_passed,
        };
    };
    let dkim = dns.verify_dkim(&parsed).await;
    let mail_from_domain = match sender.rsplit_once('@') {
        Some((_, domain)) => domain,
        None => helo,
    };
    let sender_proven = !sender.is_empty()
        && (spf_passed || signed_by(&dkim, &mail_from_domain.to_ascii_lowercase()));
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
        _ if spoofs_local(&parsed, &dkim, is_local) => {
            tracing::info!(from = %first_from, "a stranger's mail From a local domain without its DKIM signature: to Junk");
            Disposition::Quarantine
        }
        _ => Disposition::Deliver,
    };
    Verdict {
        header,
        disposition,
        from_domain: dmarc.domain().to_string(),
        sender_proven,
    }
}

/// Whether a stranger's message says it is From one of this server's own domains without a passing
/// DKIM signature of that domain (or a parent of it). This server knows its own mail: its users send
/// after AUTH and it signs what leaves, so such a message is a forgery of a colleague, or at best its
/// own mail altered on the way back (a mailing list that adds a footer). It goes to Junk, as if the
/// domain published `p=quarantine`, which a small server's owner often has not.
fn spoofs_local(
    message: &AuthenticatedMessage<'_>,
    dkim: &[mail_auth::DkimOutput<'_>],
    is_local: impl Fn(&str) -> bool,
) -> bool {
    let local_froms: Vec<String> = message
        .froms()
        .iter()
        .filter_map(|from| from.rsplit_once('@'))
        .map(|(_, domain)| domain.to_ascii_lowercase())
        .filter(|domain| is_local(domain))
        .collect();
    local_froms.iter().any(|domain| !signed_by(dkim, domain))
}

/// Whether a passing DKIM signature is of `domain` (lower case) or a parent of it.
fn signed_by(dkim: &[mail_auth::DkimOutput<'_>], domain: &str) -> bool {
    dkim.iter().any(|output| {
        matches!(output.result(), mail_auth::DkimResult::Pass)
            && output.signature().is_some_and(|signature| {
                let d = signature.d.to_ascii_lowercase();
                domain == d || domain.ends_with(&format!(".{d}"))
            })
    })
}

/// DKIM signatures checked per message: each costs a DNS lookup and a hash of the body, so a stranger's
/// message with thousands of them must not make the server do thousands. Those past it are not
/// checked (they are kept in the message).
pub const DKIM_SIGNATURES_MAX: usize = 5;

/// `message` without the Authentication-Results fields that claim to come from `hostname` (RFC 8601
/// §5: a forger could otherwise hand readers a "pass" of ours). Others' are kept.
pub fn strip_own_results(message: &[u8], hostname: &str) -> Vec<u8> {
    keep_fields(message, |field| !is_own_result(field, hostname))
}

/// What DKIM verification reads of `message`: all of it but the signatures past the first
/// [`DKIM_SIGNATURES_MAX`].
fn bounded_signatures(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut seen = 0;
    let mut over = false;
    let kept = keep_fields(message, |field| {
        if !field_named(field, "DKIM-Signature") {
            return true;
        }
        seen += 1;
        over |= seen > DKIM_SIGNATURES_MAX;
        seen <= DKIM_SIGNATURES_MAX
    });
    match over {
        true => std::borrow::Cow::Owned(kept),
        false => std::borrow::Cow::Borrowed(message),
    }
}

fn field_named(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && field[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && field[name.len()..]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t'))
            == Some(&b':')
}

/// `message` with only the header fields (each with its folded lines) that `keep` says yes to.
fn keep_fields(message: &[u8], mut keep: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
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
        if keep(field) {
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
    fn signatures_past_the_limit_are_not_checked() {
        let mut m = Vec::new();
        for i in 0..DKIM_SIGNATURES_MAX + 3 {
            m.extend_from_slice(format!("DKIM-Signature: v=1; s={i};\r\n\tb=x\r\n").as_bytes());
        }
        m.extend_from_slice(b"Subject: many\r\n\r\nDKIM-Signature: in the body\r\n");
        let bounded = bounded_signatures(&m);
        let text = String::from_utf8_lossy(&bounded);
        assert_eq!(
            text.matches("DKIM-Signature:").count(),
            DKIM_SIGNATURES_MAX + 1,
            "{text}"
        );
        assert!(text.contains("s=4;") && !text.contains("s=5;"));
        assert!(text.ends_with("Subject: many\r\n\r\nDKIM-Signature: in the body\r\n"));
        let few = b"DKIM-Signature: v=1\r\n\r\nx";
        assert!(matches!(
            bounded_signatures(few),
            std::borrow::Cow::Borrowed(_)
        ));
    }

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
