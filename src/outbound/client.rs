//! One outbound SMTP transaction (RFC 5321 as a client): greeting, EHLO, STARTTLS when offered (required
//! when the settings say so), MAIL, one RCPT per recipient, DATA with the message read from the store in
//! pieces, QUIT. Every wait has a deadline; every reply is read by the pure reader in `jmail_proto`.

use std::sync::Arc;
use std::time::Duration;

use jmail_proto::smtp_client::{DataEncoder, Reply, ReplyReader, path_address};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes of the message read from the store and written at a time.
const PIECE_BYTES: usize = 64 * 1024;

/// A connection in clear or in TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The TLS a transaction uses.
pub struct TlsPolicy {
    /// Verifies the server's certificate against the roots and its MX host name.
    pub verified: Arc<rustls::ClientConfig>,
    /// Encrypts whatever the certificate (opportunistic TLS, RFC 7435): better than clear text.
    pub opportunistic: Arc<rustls::ClientConfig>,
}

/// What a transaction is to carry.
pub struct Envelope<'a> {
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub size: u64,
    /// The sender's delivery report parameters, passed on to a server that offers DSN.
    pub dsn: &'a super::dsn_request::Request,
    /// Whether the message's header holds bytes past ASCII (RFC 6532): SMTPUTF8 is asked for when
    /// offered. Sent without it otherwise, as Postfix does: only an address is refused there.
    pub utf8_header: bool,
}

/// The message's bytes, read in pieces.
#[async_trait::async_trait]
pub trait Body: Send + Sync {
    async fn piece(&self, offset: u64, max: usize) -> Result<Vec<u8>, String>;
}

/// The fate of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    Temporary(String),
    Permanent(String),
}

/// A failure of the whole transaction: every recipient not yet decided shares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Another MX host may do better, or a later attempt (connection refused, a 4xx, a timeout).
    Temporary(String),
    /// The server refused the message outright (a 5xx to MAIL or DATA).
    Permanent(String),
}

struct Conn {
    io: Box<dyn Io>,
    reader: ReplyReader,
    buf: Vec<u8>,
    deadline: Duration,
    host: String,
}

impl Conn {
    async fn reply(&mut self, wait: Duration) -> Result<Reply, Failure> {
        let host = self.host.clone();
        tokio::time::timeout(wait, async {
            loop {
                let (used, reply) = self.reader.next(&self.buf);
                self.buf.drain(..used);
                if let Some(reply) = reply {
                    return reply.map_err(|e| Failure::Temporary(format!("{host}: {e}")));
                }
                let mut chunk = [0u8; 4096];
                let n = self
                    .io
                    .read(&mut chunk)
                    .await
                    .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?;
                if n == 0 {
                    return Err(Failure::Temporary(format!("{host} closed the connection")));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .map_err(|_| Failure::Temporary(format!("{host} did not answer in time")))?
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let host = self.host.clone();
        tokio::time::timeout(self.deadline, self.io.write_all(bytes))
            .await
            .map_err(|_| Failure::Temporary(format!("{host} stopped reading")))?
            .map_err(|e| Failure::Temporary(format!("{host}: {e}")))
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.in_step()?;
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.reply(self.deadline).await
    }

    /// Fails when the server has said more than it was asked (one reply a command, RFC 5321 §4.2;
    /// the client does not pipeline): a reply sent early, such as a `250` right behind `354`, would
    /// be read as the answer to the next command, and a message taken for delivered or one sender's
    /// refusal told to another. The connection is then given up.
    fn in_step(&self) -> Result<(), Failure> {
        match self.buf.is_empty() {
            true => Ok(()),
            false => Err(Failure::Temporary(format!(
                "{} sent a reply before it was asked (out of step); connection closed",
                self.host
            ))),
        }
    }
}

/// Whether a reply is the success a transaction's step needs: 2xx only (RFC 5321 §4.3.2: a 3xx is no
/// answer to MAIL or to the end of the data).
fn succeeded(reply: &Reply) -> bool {
    (200..300).contains(&reply.code)
}

/// A reply's failure: 5xx permanent, anything else unexpected temporary.
fn failure(host: &str, what: &str, reply: &Reply) -> Failure {
    let text = format!("{host} said after {what}: {}", reply.text());
    if reply.code >= 500 {
        Failure::Permanent(text)
    } else {
        Failure::Temporary(text)
    }
}

/// A connection to another server, greeted, EHLO said and TLS started as the policy asks: ready for
/// one transaction after another (RFC 5321 §4.1.4: a new MAIL after the last one's reply).
pub struct Session {
    conn: Conn,
    /// The server's EHLO keywords (after STARTTLS, the second EHLO's), each with its parameters.
    extensions: Vec<(String, String)>,
    /// Set when the connection can carry no further transaction (an RSET refused).
    spent: bool,
}

/// What a connection needs besides the socket.
pub struct Opening<'a> {
    pub host: &'a str,
    pub hostname: &'a str,
    pub tls: &'a TlsPolicy,
    pub tls_required: bool,
    pub deadline: Duration,
}

impl Session {
    /// Greeting, EHLO (HELO if refused) and STARTTLS when offered, on `tcp`, connected to `host`.
    pub async fn open(tcp: TcpStream, o: &Opening<'_>) -> Result<Session, Failure> {
        let host = o.host;
        let mut conn = Conn {
            io: Box::new(tcp),
            reader: ReplyReader::default(),
            buf: Vec::new(),
            deadline: o.deadline,
            host: host.to_string(),
        };
        let greeting = conn.reply(o.deadline).await?;
        if greeting.code != 220 {
            return Err(Failure::Temporary(format!(
                "{host} greeted with {}",
                greeting.text()
            )));
        }
        let mut ehlo = conn.command(&format!("EHLO {}", o.hostname)).await?;
        if !ehlo.is_positive() {
            let helo = conn.command(&format!("HELO {}", o.hostname)).await?;
            if !helo.is_positive() {
                return Err(failure(host, "HELO", &helo));
            }
            ehlo = helo;
        }
        let offers = |reply: &Reply, what: &str| reply.extensions().iter().any(|(k, _)| k == what);
        if offers(&ehlo, "STARTTLS") {
            let start = conn.command("STARTTLS").await?;
            if start.code == 220 {
                conn = start_tls(conn, host, o.tls, o.tls_required).await?;
                ehlo = conn.command(&format!("EHLO {}", o.hostname)).await?;
                if !ehlo.is_positive() {
                    return Err(failure(host, "EHLO", &ehlo));
                }
            } else if o.tls_required {
                return Err(Failure::Temporary(format!(
                    "{host} refused STARTTLS ({}) and TLS is required",
                    start.text()
                )));
            }
        } else if o.tls_required {
            return Err(Failure::Temporary(format!(
                "{host} does not offer STARTTLS and TLS is required"
            )));
        }
        let extensions = ehlo
            .extensions()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Session {
            conn,
            extensions,
            spent: false,
        })
    }

    fn offers(&self, keyword: &str) -> bool {
        self.extensions.iter().any(|(k, _)| k == keyword)
    }

    /// The largest message the server takes, when it says (RFC 1870 `SIZE n`, 0 meaning no limit).
    fn size_max(&self) -> Option<u64> {
        let (_, value) = self.extensions.iter().find(|(k, _)| k == "SIZE")?;
        value.trim().parse().ok().filter(|n| *n > 0)
    }

    /// Whether the connection can carry another transaction.
    pub fn usable(&self) -> bool {
        !self.spent
    }

    /// Whether the server takes DSN parameters (RFC 3461): it then reports delivery itself.
    pub fn offers_dsn(&self) -> bool {
        self.offers("DSN")
    }

    /// The name of the server this session is with.
    pub fn host(&self) -> &str {
        &self.conn.host
    }

    /// One transaction: each recipient's fate in order. An `Err` leaves the connection unusable.
    pub async fn send(
        &mut self,
        envelope: &Envelope<'_>,
        body: &dyn Body,
    ) -> Result<Vec<Fate>, Failure> {
        let host = self.conn.host.clone();
        let smtputf8 = self.offers("SMTPUTF8");
        let unfit = |what: &str| {
            Fate::Permanent(format!(
                "5.6.7 {host} does not take a non-ASCII {what} (it offers no SMTPUTF8)"
            ))
        };
        let Some(sender) = wire_address(envelope.sender, smtputf8) else {
            return Ok(vec![unfit("sender address"); envelope.recipients.len()]);
        };
        if let Some(max) = self.size_max().filter(|max| envelope.size > *max) {
            // RFC 1870 §6: not sent to a server that said it would refuse it.
            let fate = Fate::Permanent(format!(
                "5.3.4 {host} takes messages of {max} bytes at most; this one has {}",
                envelope.size
            ));
            return Ok(vec![fate; envelope.recipients.len()]);
        }
        if !self.offers("8BITMIME") && has_8bit(body, envelope.size).await? {
            // RFC 6152 §3: convert or return it. It was DKIM-signed as it is, and a conversion now
            // would break the signature.
            let fate = Fate::Permanent(format!(
                "5.6.3 {host} does not take 8-bit mail (it offers no 8BITMIME)"
            ));
            return Ok(vec![fate; envelope.recipients.len()]);
        }
        // Each recipient as it goes, or its fate already: known before MAIL, so a transaction none of
        // whose recipients can go is not begun, and a refused MAIL leaves those fates as they are.
        let wire: Vec<Result<_, Fate>> = envelope
            .recipients
            .iter()
            .map(|rcpt| wire_address(rcpt, smtputf8).ok_or_else(|| unfit("recipient address")))
            .collect();
        if wire.iter().all(Result::is_err) {
            return Ok(wire.into_iter().filter_map(Result::err).collect());
        }
        let mut mail = format!("MAIL FROM:<{}>", path_address(&sender));
        if self.offers("SIZE") {
            mail.push_str(&format!(" SIZE={}", envelope.size));
        }
        if self.offers("8BITMIME") {
            mail.push_str(" BODY=8BITMIME");
        }
        let utf8_envelope =
            !envelope.sender.is_ascii() || envelope.recipients.iter().any(|r| !r.is_ascii());
        if smtputf8 && (utf8_envelope || envelope.utf8_header) {
            mail.push_str(" SMTPUTF8");
        }
        let dsn = self.offers_dsn();
        if dsn {
            mail.push_str(&envelope.dsn.mail_params());
        }
        let reply = self.conn.command(&mail).await?;
        if !succeeded(&reply) {
            // The server refused this message, not the connection: say so for its recipients.
            let failed: Fate = failure(&host, "MAIL FROM", &reply).into();
            self.reset().await;
            return Ok(wire
                .into_iter()
                .map(|w| w.err().unwrap_or_else(|| failed.clone()))
                .collect());
        }
        let mut fates = Vec::with_capacity(envelope.recipients.len());
        for (rcpt, address) in envelope.recipients.iter().zip(wire) {
            let address = match address {
                Ok(address) => address,
                Err(fate) => {
                    fates.push(fate);
                    continue;
                }
            };
            let params = match dsn {
                true => envelope.dsn.rcpt_params(rcpt),
                false => String::new(),
            };
            let reply = self
                .conn
                .command(&format!("RCPT TO:<{}>{params}", path_address(&address)))
                .await?;
            fates.push(match reply.code {
                250 | 251 => Fate::Delivered,
                500.. => Fate::Permanent(format!("{host} said: {}", reply.text())),
                _ => Fate::Temporary(format!("{host} said: {}", reply.text())),
            });
        }
        if !fates.contains(&Fate::Delivered) {
            self.reset().await;
            return Ok(fates);
        }
        let reply = self.conn.command("DATA").await?;
        if reply.code != 354 {
            let failed: Fate = failure(&host, "DATA", &reply).into();
            self.reset().await;
            return Ok(fates
                .into_iter()
                .map(|f| {
                    if f == Fate::Delivered {
                        failed.clone()
                    } else {
                        f
                    }
                })
                .collect());
        }
        // Nothing may come between 354 and the end of the data (an early 250 would be taken for the
        // message's acceptance).
        self.conn.in_step()?;
        let mut encoder = DataEncoder::default();
        let mut out = Vec::with_capacity(PIECE_BYTES + PIECE_BYTES / 8);
        let mut pieces = Pieces::new(body, envelope.size);
        while let Some(piece) = pieces.next().await? {
            out.clear();
            encoder.encode(&piece, &mut out);
            self.conn.send(&out).await?;
        }
        out.clear();
        encoder.finish(&mut out);
        self.conn.send(&out).await?;
        // RFC 5321 §4.5.3.2.6: 10 minutes for the reply to the end of data.
        let done = self.conn.reply(self.conn.deadline * 2).await?;
        if !succeeded(&done) {
            let failed: Fate = failure(&host, "the message", &done).into();
            for fate in fates.iter_mut().filter(|f| **f == Fate::Delivered) {
                *fate = failed.clone();
            }
        }
        Ok(fates)
    }

    /// RSET after a transaction that stopped half-way, so the next one starts clean. Refused (or lost),
    /// the connection is spent; the recipients' fates stand as they are.
    async fn reset(&mut self) {
        let reset = self.conn.command("RSET").await;
        if !reset.is_ok_and(|reply| succeeded(&reply)) {
            self.spent = true;
        }
    }

    pub async fn quit(mut self) {
        let _ = self.conn.command("QUIT").await;
    }
}

/// `address` as it goes to a server: as it is to one with SMTPUTF8; to one without, its domain in
/// A-labels (RFC 5890), and one whose local part is not ASCII not at all (RFC 6531 §3.2: no downgrade
/// exists for it).
fn wire_address(address: &str, smtputf8: bool) -> Option<std::borrow::Cow<'_, str>> {
    if smtputf8 || address.is_ascii() {
        return Some(address.into());
    }
    let (local, domain) = address.rsplit_once('@')?;
    if !local.is_ascii() {
        return None;
    }
    let domain = idna::domain_to_ascii(domain).ok()?;
    Some(format!("{local}@{domain}").into())
}

/// Whether the message holds a byte past ASCII, read through once.
async fn has_8bit(body: &dyn Body, size: u64) -> Result<bool, Failure> {
    let mut pieces = Pieces::new(body, size);
    while let Some(piece) = pieces.next().await? {
        if !piece.is_ascii() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A message's bytes from the store, `PIECE_BYTES` at a time.
struct Pieces<'a> {
    body: &'a dyn Body,
    size: u64,
    offset: u64,
}

impl<'a> Pieces<'a> {
    fn new(body: &'a dyn Body, size: u64) -> Self {
        Pieces {
            body,
            size,
            offset: 0,
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        if self.offset >= self.size {
            return Ok(None);
        }
        let piece = self
            .body
            .piece(self.offset, PIECE_BYTES)
            .await
            .map_err(Failure::Temporary)?;
        self.offset += piece.len() as u64;
        Ok((!piece.is_empty()).then_some(piece))
    }
}

impl From<Failure> for Fate {
    fn from(f: Failure) -> Fate {
        match f {
            Failure::Permanent(t) => Fate::Permanent(t),
            Failure::Temporary(t) => Fate::Temporary(t),
        }
    }
}

/// TLS on the connection after `220` to STARTTLS: verified when required, else whatever the server has.
async fn start_tls(
    conn: Conn,
    host: &str,
    tls: &TlsPolicy,
    required: bool,
) -> Result<Conn, Failure> {
    let config = if required {
        tls.verified.clone()
    } else {
        tls.opportunistic.clone()
    };
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Failure::Temporary(format!("{host} is not a name TLS can check")))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = tokio::time::timeout(conn.deadline, connector.connect(name, conn.io))
        .await
        .map_err(|_| Failure::Temporary(format!("{host}: TLS handshake timed out")))?
        .map_err(|e| Failure::Temporary(format!("{host}: TLS handshake failed: {e}")))?;
    Ok(Conn {
        io: Box::new(stream),
        reader: ReplyReader::default(),
        buf: Vec::new(),
        deadline: conn.deadline,
        host: conn.host,
    })
}

#[cfg(test)]
mod tests {
    use super::wire_address;

    #[test]
    fn addresses_for_a_server_without_smtputf8() {
        let plain = |a| wire_address(a, false).map(|a| a.into_owned());
        assert_eq!(plain("bob@b.test").as_deref(), Some("bob@b.test"));
        assert_eq!(
            plain("bob@bücher.example").as_deref(),
            Some("bob@xn--bcher-kva.example")
        );
        assert_eq!(plain("jösé@b.test"), None);
        assert_eq!(plain(""), Some(String::new()), "the null sender");
        assert_eq!(
            wire_address("jösé@bücher.example", true).as_deref(),
            Some("jösé@bücher.example")
        );
    }
}
