//! Whether the server's own certificate is inside its validity dates. rustls serves whatever it is
//! given, and clients refuse an expired certificate with errors that never reach the server's log: so
//! the operator is told at start and on every reload, and a week or more ahead.

use std::time::{Duration, SystemTime};

use x509_cert::Certificate;
use x509_cert::der::Decode;

/// Warn this long before a certificate expires.
pub const WARN_AHEAD: Duration = Duration::from_secs(14 * 86_400);

/// What an operator should hear about a certificate's dates, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Dates {
    Fine,
    NotYetValid {
        from: SystemTime,
    },
    ExpiresSoon {
        at: SystemTime,
    },
    Expired {
        at: SystemTime,
    },
    /// Not X.509 that this reader understands (rustls may still accept it).
    Unreadable,
}

/// Reads a DER certificate's validity against `now`.
pub fn dates(der: &[u8], now: SystemTime) -> Dates {
    let Ok(cert) = Certificate::from_der(der) else {
        return Dates::Unreadable;
    };
    let validity = &cert.tbs_certificate.validity;
    let from = validity.not_before.to_system_time();
    let until = validity.not_after.to_system_time();
    if now < from {
        Dates::NotYetValid { from }
    } else if now >= until {
        Dates::Expired { at: until }
    } else if now + WARN_AHEAD >= until {
        Dates::ExpiresSoon { at: until }
    } else {
        Dates::Fine
    }
}

/// Logs a warning when the certificate at `path` (its leaf `der`) is out of date or nearly so.
pub fn warn_if_due(path: &std::path::Path, der: &[u8]) {
    let day = |t: SystemTime| chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%d %H:%M UTC");
    let path = path.display();
    match dates(der, SystemTime::now()) {
        Dates::Fine | Dates::Unreadable => {}
        Dates::NotYetValid { from } => tracing::warn!(
            "the TLS certificate {path} is not valid until {}: clients will refuse it",
            day(from)
        ),
        Dates::ExpiresSoon { at } => tracing::warn!(
            "the TLS certificate {path} expires {}: renew it (SIGHUP loads the new one)",
            day(at)
        ),
        Dates::Expired { at } => tracing::warn!(
            "the TLS certificate {path} expired {}: clients will refuse it; renew it (SIGHUP loads the new one)",
            day(at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(from: (i32, u8, u8), until: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mail.example.test".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn at(y: i32, m: u32, d: u32) -> SystemTime {
        chrono::NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .into()
    }

    #[test]
    fn tells_expired_soon_not_yet_and_fine_apart() {
        let der = cert((2026, 1, 1), (2027, 1, 1));
        assert_eq!(dates(&der, at(2026, 6, 1)), Dates::Fine);
        assert!(matches!(
            dates(&der, at(2026, 12, 25)),
            Dates::ExpiresSoon { .. }
        ));
        assert!(matches!(dates(&der, at(2027, 1, 2)), Dates::Expired { .. }));
        assert!(matches!(
            dates(&der, at(2025, 12, 31)),
            Dates::NotYetValid { .. }
        ));
        assert_eq!(
            dates(b"not a certificate", at(2026, 6, 1)),
            Dates::Unreadable
        );
    }
}
