//! The SMTP side of `jmail bench`: a minimal pipelining SMTP client (MAIL, RCPT and DATA in one write, as
//! smtp-source does), counting a message only at the server's 250 after DATA.

use anyhow::bail;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest reply line read from the server.
const REPLY_LINE_BYTES_MAX: u64 = 4096;

pub struct SmtpConn {
    stream: BufReader<TcpStream>,
}

impl SmtpConn {
    /// Connects and says EHLO; with `auth`, logs in with AUTH PLAIN as (user, password).
    pub async fn connect(server: &str, auth: Option<(&str, &str)>) -> anyhow::Result<SmtpConn> {
        let stream = super::bench::dial(server).await?;
        let mut conn = SmtpConn {
            stream: BufReader::new(stream),
        };
        conn.expect(220).await?;
        conn.stream
            .get_mut()
            .write_all(b"EHLO bench.jmail\r\n")
            .await?;
        conn.expect(250).await?;
        if let Some((user, password)) = auth {
            use base64::Engine;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            let line = format!("AUTH PLAIN {token}\r\n");
            conn.stream.get_mut().write_all(line.as_bytes()).await?;
            conn.expect(235).await?;
        }
        Ok(conn)
    }

    /// One message from `from` to `to`; returns once the server has acknowledged it.
    pub async fn send(&mut self, from: &str, to: &str, message: &[u8]) -> anyhow::Result<()> {
        let head = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        self.expect(250).await?;
        self.expect(250).await?;
        self.expect(354).await?;
        let mut body = Vec::with_capacity(message.len() + 5);
        body.extend_from_slice(message);
        body.extend_from_slice(b".\r\n");
        self.stream.get_mut().write_all(&body).await?;
        self.expect(250).await
    }

    pub async fn quit(mut self) {
        let _ = self.stream.get_mut().write_all(b"QUIT\r\n").await;
        let _ = self.expect(221).await;
    }

    /// Reads one reply (all its lines) and checks its code.
    async fn expect(&mut self, code: u16) -> anyhow::Result<()> {
        loop {
            let mut line = String::new();
            let n = (&mut self.stream)
                .take(REPLY_LINE_BYTES_MAX)
                .read_line(&mut line)
                .await?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            if !line.starts_with(&code.to_string()) {
                bail!("expected {code}, got {}", line.trim_end());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
}

/// A message of about `size` bytes with the headers a mail client would write.
pub fn message(from: &str, to: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: bench\r\nMessage-ID: <{}@bench.jmail>\r\n\r\n",
        rand::random::<u64>()
    )
    .into_bytes();
    while m.len() + 2 < size {
        let line = (size - m.len() - 2).min(76);
        m.extend(std::iter::repeat_n(b'x', line));
        m.extend_from_slice(b"\r\n");
    }
    if !m.ends_with(b"\r\n") {
        m.extend_from_slice(b"\r\n");
    }
    m
}
