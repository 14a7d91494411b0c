//! Who really sent a message from a stranger (port 25): SPF (RFC 7208) for the client's address and
//! envelope sender, DKIM (RFC 6376) signatures, and the From domain's DMARC policy (RFC 7489) over both,
//! recorded in an Authentication-Results header (RFC 8601) that the stored copy carries first.

use std::net::IpAddr;

use jmail_proto::header_fields::{field_named, keep_fields};
use jmail_proto::mime::AuthorProblem;

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
    /// Refused at the end of DATA before any check: the From field names no one domain to ask (see
    /// [`jmail_proto::mime::author_domain`]); the reason for the reply.
    Refuse(&'static str),
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
    let author = match jmail_proto::mime::author_domain(message) {
        Ok(domain) => domain,
        Err(problem) => {
            return Verdict {
                header: String::new(),
                disposition: Disposition::Refuse(problem.reason()),
                from_domain: String::new(),
                sender_proven: false,
            };
        }
    };
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
    // What DMARC judged must be the domain a reader sees (the two parse the field alike; were they
    // ever to differ, the policy asked would not be the author's).
    let author_a_label = mail_auth::common::to_a_label(&author);
    if !dmarc.domain().eq_ignore_ascii_case(&author_a_label) && !author.starts_with('[') {
        return Verdict {
            header,
            disposition: Disposition::Refuse(AuthorProblem::Unreadable.reason()),
            from_domain: author,
            sender_proven,
        };
    }
    let disposition = match (failed, dmarc.policy()) {
        (true, Policy::Reject) => Disposition::Reject,
        (true, Policy::Quarantine) => Disposition::Quarantine,
        // No domain's policy can speak for an address literal, and no one's mail comes From one.
        _ if author.starts_with('[') => Disposition::Quarantine,
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

/// What DKIM verification reads of `message`: all of it but the signatures past the first
/// [`DKIM_SIGNATURES_MAX`].
fn bounded_signatures(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut seen = 0;
    keep_fields(message, |field| {
        if !field_named(field, "DKIM-Signature") {
            return true;
        }
        seen += 1;
        seen <= DKIM_SIGNATURES_MAX
    })
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
}
