//! A native-protocol client, used by the `jmail` client commands, the benchmarks and the tests.

use jmail_proto::native::reply::{Folder, Line, Status, Summary, Untagged, parse_line};
use jmail_proto::native::{GREETING, VERSION_MAJOR, VERSION_MINOR, quote};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf,
    WriteHalf,
};
use tokio::net::TcpStream;

use crate::client_tls::{Pin, TrustSettings, client_config, pin};

/// The connection under the client: TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Longest reply line the client accepts from a server.
pub const REPLY_LINE_BYTES_MAX: usize = 64 * 1024;
/// Most `* CAPA` lines read before the server is taken to be misbehaving.
const CAPA_LINES_MAX: usize = 256;
/// Most `* FOLDER` lines read before the server is taken to be misbehaving: the most mailboxes a server
/// may allow an account (`limits.mailboxes_per_account_max`).
const FOLDER_LINES_MAX: usize = 100_000;
/// Largest message the client will download.
pub const MESSAGE_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Bodies up to this size are sent without waiting for the server's go-ahead (every server accepts them).
const NONSYNC_LITERAL_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    /// The server said NO, BAD or BYE.
    #[error("{text} ({code})")]
    Refused { code: String, text: String },
    #[error("unexpected reply from server: {0}")]
    Protocol(String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error(
        "the TLS certificate of {server} changed: pinned SHA-256 {pinned}, now {presented}. If the server's \
         certificate was replaced on purpose, remove the line for {server} from {file}"
    )]
    CertificateChanged {
        server: String,
        pinned: String,
        presented: String,
        file: String,
    },
}

/// The result of a LIST: current state of changed messages (by id), deletions, and where to continue from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub messages: Vec<Summary>,
    pub gone: Vec<u32>,
    pub modseq: u64,
}

/// A logged-in (or about to be) native connection.
pub struct Client {
    reader: BufReader<ReadHalf<Box<dyn Io>>>,
    writer: WriteHalf<Box<dyn Io>>,
    /// The server's address as connected (for the loopback check).
    peer: Option<std::net::SocketAddr>,
    /// The protocol minor version agreed in the greeting: 2.1 servers have folders and SEND ... KEEP.
    minor: u32,
}

impl Client {
    /// Connects, checks the greeting and agrees on the protocol version.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(addr.to_string(), e))?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr().ok();
        let (read, writer) = tokio::io::split(Box::new(stream) as Box<dyn Io>);
        let mut client = Client {
            reader: BufReader::new(read),
            writer,
            peer,
            minor: 0,
        };
        let mut greeting = vec![0; GREETING.len()];
        let got = read_up_to(&mut client.reader, &mut greeting).await?;
        if &greeting[..got] != GREETING {
            // A refusal (BYE LIMIT ...) arrives instead of the greeting.
            let mut rest = String::from_utf8_lossy(&greeting[..got]).into_owned();
            if let Ok(line) = client.line().await {
                rest.push_str(&line);
            }
            return Err(match parse_line(rest.trim_end()) {
                Some(Line::Final { code, text, .. }) => ClientError::Refused { code, text },
                _ => ClientError::Protocol(rest),
            });
        }
        let agreed = client
            .command(&format!(
                "JMAIL {VERSION_MAJOR}.{VERSION_MINOR} jmail-cli/{}",
                env!("CARGO_PKG_VERSION")
            ))
            .await?;
        // `JMAIL 2.<minor> jmail/<version> ready`
        client.minor = agreed
            .split([' ', '.'])
            .nth(2)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Ok(client)
    }

    /// Connects and, when the server offers STARTTLS, switches to TLS before anything else is said. The
    /// certificate must pass the system's roots (or `trust.ca_file`) or match the pin for `addr`; a first
    /// certificate is pinned (noted on stderr), a changed one refused.
    pub async fn connect_secure(addr: &str, trust: &TrustSettings) -> Result<Client, ClientError> {
        let mut client = Client::connect(addr).await?;
        client.send_line("CAPA").await?;
        let mut starttls = false;
        for lines in 0.. {
            if lines > CAPA_LINES_MAX {
                return Err(ClientError::Protocol("CAPA reply too long".into()));
            }
            match client.reply_line().await? {
                Line::Untagged(Untagged::Capa(name, _)) => starttls |= name == "STARTTLS",
                other => {
                    final_text(other)?;
                    break;
                }
            }
        }
        if !starttls {
            // Without TLS the password would cross the network in clear. That is allowed only to a
            // loopback server, and never to one whose certificate is pinned (a stripped STARTTLS offer).
            let pinned = crate::client_tls::pinned(&trust.known_servers, addr)
                .map_err(|e| ClientError::Tls(addr.to_string(), e.to_string()))?;
            let loopback = client.peer.is_some_and(|peer| peer.ip().is_loopback());
            if pinned.is_some() || !loopback {
                return Err(ClientError::Tls(
                    addr.to_string(),
                    "the server does not offer TLS; refusing to send the password in clear".into(),
                ));
            }
            return Ok(client);
        }
        client.command("STARTTLS").await?;
        let tls_error = |e: String| ClientError::Tls(addr.to_string(), e);
        let (config, verifier) =
            client_config(trust, addr).map_err(|e| tls_error(e.to_string()))?;
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| tls_error(e.to_string()))?;
        let io = client.reader.into_inner().unsplit(client.writer);
        let connector = tokio_rustls::TlsConnector::from(config);
        let handshake = connector.connect(name, io).await;
        let outcome = verifier
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let tls = match (handshake, outcome) {
            (Err(_), Some(Pin::Changed { pinned, presented })) => {
                return Err(ClientError::CertificateChanged {
                    server: addr.to_string(),
                    pinned,
                    presented,
                    file: trust.known_servers.display().to_string(),
                });
            }
            (Err(e), _) => return Err(tls_error(e.to_string())),
            (Ok(tls), outcome) => {
                if let Some(Pin::New(fingerprint)) = outcome {
                    pin(&trust.known_servers, addr, &fingerprint)
                        .map_err(|e| tls_error(e.to_string()))?;
                    eprintln!(
                        "jmail: first TLS connection to {addr}: certificate SHA-256 {fingerprint} pinned in {}",
                        trust.known_servers.display()
                    );
                }
                tls
            }
        };
        let (read, writer) = tokio::io::split(Box::new(tls) as Box<dyn Io>);
        Ok(Client {
            reader: BufReader::new(read),
            writer,
            peer: client.peer,
            minor: client.minor,
        })
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        let mut line = String::from("LOGIN ");
        quote(user, &mut line);
        line.push(' ');
        quote(password, &mut line);
        self.command(&line).await.map(drop)
    }

    /// Sends a message; returns the server's `SENT ...` text.
    pub async fn send(
        &mut self,
        recipients: &[String],
        subject: &str,
        body: &[u8],
    ) -> Result<String, ClientError> {
        self.send_with(recipients, subject, body, false).await
    }

    /// [`Client::send`] that also keeps a copy in the sender's Sent folder where the server can (2.1).
    pub async fn send_and_keep(
        &mut self,
        recipients: &[String],
        subject: &str,
        body: &[u8],
    ) -> Result<String, ClientError> {
        let keep = self.minor >= 1;
        self.send_with(recipients, subject, body, keep).await
    }

    async fn send_with(
        &mut self,
        recipients: &[String],
        subject: &str,
        body: &[u8],
        keep_sent: bool,
    ) -> Result<String, ClientError> {
        let mut line = format!("SEND {} ", recipients.join(","));
        quote(subject, &mut line);
        if keep_sent {
            line.push_str(" KEEP");
        }
        if body.len() <= NONSYNC_LITERAL_BYTES_MAX {
            line.push_str(&format!(" {{{}+}}\r\n", body.len()));
            let mut out = line.into_bytes();
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
            self.writer.write_all(&out).await?;
        } else {
            line.push_str(&format!(" {{{}}}\r\n", body.len()));
            self.writer.write_all(line.as_bytes()).await?;
            match self.reply_line().await? {
                Line::Continue(_) => {}
                other => return Err(unexpected(other)),
            }
            self.writer.write_all(body).await?;
            self.writer.write_all(b"\r\n").await?;
        }
        self.final_ok().await
    }

    /// Every change after `since`, following MORE until the listing is complete.
    pub async fn list(&mut self, since: u64) -> Result<Listing, ClientError> {
        let mut listing = Listing {
            modseq: since,
            ..Listing::default()
        };
        loop {
            self.send_line(&format!("LIST {}", listing.modseq)).await?;
            let text = loop {
                match self.reply_line().await? {
                    Line::Untagged(Untagged::Msg(s)) => {
                        listing.gone.retain(|&g| g != s.id);
                        listing.messages.retain(|m| m.id != s.id);
                        listing.messages.push(s);
                    }
                    Line::Untagged(Untagged::Gone(id)) => {
                        listing.messages.retain(|m| m.id != id);
                        listing.gone.push(id);
                    }
                    other => break final_text(other)?,
                }
            };
            let mut words = text.split(' ').skip(1);
            listing.modseq = words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| ClientError::Protocol(text.clone()))?;
            if words.next() != Some("MORE") {
                listing.messages.sort_by_key(|m| m.id);
                return Ok(listing);
            }
        }
    }

    /// The stored RFC 5322 bytes of a message (marks it read).
    pub async fn read(&mut self, id: u32) -> Result<Vec<u8>, ClientError> {
        self.send_line(&format!("READ {id}")).await?;
        let len = match self.reply_line().await? {
            Line::Untagged(Untagged::Message { len, .. }) if len <= MESSAGE_BYTES_MAX => len,
            other => return Err(unexpected(other)),
        };
        let mut raw = vec![0; len as usize];
        self.reader.read_exact(&mut raw).await?;
        let end = self.line().await?;
        if !end.is_empty() {
            return Err(ClientError::Protocol(end));
        }
        self.final_ok().await?;
        Ok(raw)
    }

    /// Chooses the folder the message commands work on (2.1); INBOX until then.
    pub async fn select(&mut self, folder: &str) -> Result<(), ClientError> {
        self.folder_command("SELECT", &[folder]).await.map(drop)
    }

    /// Every folder with its counts (2.1).
    pub async fn folders(&mut self) -> Result<Vec<Folder>, ClientError> {
        self.send_line("FOLDERS").await?;
        let mut folders = Vec::new();
        loop {
            match self.reply_line().await? {
                Line::Untagged(Untagged::Folder(_)) if folders.len() >= FOLDER_LINES_MAX => {
                    return Err(ClientError::Protocol("too many folders".into()));
                }
                Line::Untagged(Untagged::Folder(f)) => folders.push(f),
                other => {
                    final_text(other)?;
                    return Ok(folders);
                }
            }
        }
    }

    /// CREATE, RENAME or REMOVE of a folder (2.1).
    pub async fn folder_command(
        &mut self,
        command: &str,
        names: &[&str],
    ) -> Result<String, ClientError> {
        let mut line = command.to_string();
        for name in names {
            line.push(' ');
            quote(name, &mut line);
        }
        self.command(&line).await
    }

    /// Copies (or moves) a message of the selected folder into another; returns its id there (2.1).
    pub async fn copy(&mut self, id: u32, folder: &str, remove: bool) -> Result<u32, ClientError> {
        let mut line = format!("{} {id} ", if remove { "MOVE" } else { "COPY" });
        quote(folder, &mut line);
        let text = self.command(&line).await?;
        text.split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or(ClientError::Protocol(text))
    }

    pub async fn mark(&mut self, id: u32, seen: bool) -> Result<(), ClientError> {
        let flag = if seen { "SEEN" } else { "UNSEEN" };
        self.command(&format!("MARK {id} {flag}")).await.map(drop)
    }

    pub async fn delete(&mut self, id: u32) -> Result<(), ClientError> {
        self.command(&format!("DELETE {id}")).await.map(drop)
    }

    /// Starts WATCH from `since`; then call [`Client::next_change`].
    pub async fn watch(&mut self, since: u64) -> Result<(), ClientError> {
        self.send_line(&format!("WATCH {since}")).await?;
        match self.reply_line().await? {
            Line::Continue(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The next pushed change while watching.
    pub async fn next_change(&mut self) -> Result<Untagged, ClientError> {
        match self.reply_line().await? {
            Line::Untagged(u) => Ok(u),
            other => Err(unexpected(other)),
        }
    }

    pub async fn logout(mut self) -> Result<(), ClientError> {
        self.send_line("LOGOUT").await?;
        match self.reply_line().await? {
            Line::Final {
                status: Status::Bye,
                ..
            } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends one command line and waits for its OK, returning the OK's text.
    pub async fn command(&mut self, line: &str) -> Result<String, ClientError> {
        self.send_line(line).await?;
        self.final_ok().await
    }

    async fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        let mut out = Vec::with_capacity(line.len() + 2);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.writer.write_all(&out).await?;
        Ok(())
    }

    async fn final_ok(&mut self) -> Result<String, ClientError> {
        let line = self.reply_line().await?;
        final_text(line)
    }

    async fn reply_line(&mut self) -> Result<Line, ClientError> {
        let line = self.line().await?;
        parse_line(&line).ok_or(ClientError::Protocol(line))
    }

    /// One line without its line end, at most [`REPLY_LINE_BYTES_MAX`].
    async fn line(&mut self) -> Result<String, ClientError> {
        let mut raw = Vec::new();
        let n = (&mut self.reader)
            .take(REPLY_LINE_BYTES_MAX as u64)
            .read_until(b'\n', &mut raw)
            .await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        if raw.last() != Some(&b'\n') {
            return Err(ClientError::Protocol("reply line too long or cut".into()));
        }
        raw.pop();
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        String::from_utf8(raw).map_err(|_| ClientError::Protocol("reply is not UTF-8".into()))
    }
}

fn final_text(line: Line) -> Result<String, ClientError> {
    match line {
        Line::Final {
            status: Status::Ok,
            text,
            ..
        } => Ok(text),
        Line::Final { code, text, .. } => Err(ClientError::Refused { code, text }),
        other => Err(unexpected(other)),
    }
}

fn unexpected(line: Line) -> ClientError {
    match line {
        Line::Final {
            status: Status::Ok,
            text,
            ..
        } => ClientError::Protocol(text),
        Line::Final { code, text, .. } => ClientError::Refused { code, text },
        other => ClientError::Protocol(format!("{other:?}")),
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
async fn read_up_to(
    reader: &mut BufReader<ReadHalf<Box<dyn Io>>>,
    buf: &mut [u8],
) -> Result<usize, ClientError> {
    let mut got = 0;
    while got < buf.len() {
        let n = reader.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
        // A refusal line ends early; stop at its line end.
        if buf[..got].ends_with(b"\n") {
            break;
        }
    }
    Ok(got)
}
