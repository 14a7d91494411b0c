//! SASL mechanisms shared by SMTP AUTH (RFC 4954) and POP3 AUTH (RFC 5034): PLAIN (RFC 4616) and LOGIN.
//! Pure: base64 text in, credentials out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Longest base64 response accepted, in bytes. PLAIN carries authzid, authcid and password (each at most
/// 255 octets per RFC 4616), so 1,024 base64 characters are plenty; anything longer is refused unread.
pub const RESPONSE_BYTES_MAX: usize = 1024;

/// The LOGIN mechanism's two prompts, already base64 (`Username:` and `Password:`).
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// The mechanisms Jmail offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// Case-insensitive, as SASL mechanism names are.
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }
}

/// Credentials a client presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Who the client wants to act as; empty means the same as `user`.
    pub authzid: String,
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4, RFC 5034 §4).
    #[error("authentication cancelled")]
    Cancelled,
    #[error("response is not valid base64")]
    BadBase64,
    #[error("response is longer than {RESPONSE_BYTES_MAX} bytes")]
    TooLong,
    #[error("response is not authzid NUL user NUL password in UTF-8")]
    Malformed,
}

/// Decodes one base64 client response (line end already removed). `=` alone is the empty response.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    if line.len() > RESPONSE_BYTES_MAX {
        return Err(SaslError::TooLong);
    }
    let line = line.trim_ascii();
    if line == b"*" {
        return Err(SaslError::Cancelled);
    }
    if line == b"=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| SaslError::BadBase64)
}

/// Decodes a PLAIN response: base64 of `authzid NUL authcid NUL password`.
pub fn decode_plain(line: &[u8]) -> Result<Credentials, SaslError> {
    let bytes = decode_response(line)?;
    let mut parts = bytes.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed);
    let credentials = Credentials {
        authzid: text(authzid)?,
        user: text(user)?,
        password: text(password)?,
    };
    if credentials.user.is_empty() {
        return Err(SaslError::Malformed);
    }
    Ok(credentials)
}

/// Decodes one LOGIN step (the user name or the password) as UTF-8 text.
pub fn decode_login_step(line: &[u8]) -> Result<String, SaslError> {
    String::from_utf8(decode_response(line)?).map_err(|_| SaslError::Malformed)
}

/// Base64 of `bytes`, for challenges and for clients.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_round_trip() {
        let line = encode(b"\0bob\0secret pass");
        let c = decode_plain(line.as_bytes()).unwrap();
        assert_eq!(c.user, "bob");
        assert_eq!(c.password, "secret pass");
        assert_eq!(c.authzid, "");
        let c = decode_plain(encode(b"bob\0bob\0pw").as_bytes()).unwrap();
        assert_eq!(c.authzid, "bob");
    }

    #[test]
    fn plain_rejects_bad_input() {
        assert_eq!(decode_plain(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_plain(b"!!!"), Err(SaslError::BadBase64));
        assert_eq!(
            decode_plain(encode(b"bob\0pw").as_bytes()),
            Err(SaslError::Malformed)
        );
        assert_eq!(
            decode_plain(encode(b"\0\0pw").as_bytes()),
            Err(SaslError::Malformed)
        );
        assert_eq!(
            decode_plain(encode(b"\0bob\0\xff").as_bytes()),
            Err(SaslError::Malformed)
        );
        assert_eq!(
            decode_plain(&[b'A'; RESPONSE_BYTES_MAX + 1]),
            Err(SaslError::TooLong)
        );
    }

    #[test]
    fn login_steps() {
        assert_eq!(decode_login_step(b"Ym9i").unwrap(), "bob");
        assert_eq!(decode_login_step(b"=").unwrap(), "");
        assert_eq!(
            String::from_utf8(STANDARD.decode(LOGIN_USERNAME_CHALLENGE).unwrap()).unwrap(),
            "Username:"
        );
        assert_eq!(
            String::from_utf8(STANDARD.decode(LOGIN_PASSWORD_CHALLENGE).unwrap()).unwrap(),
            "Password:"
        );
    }
}
