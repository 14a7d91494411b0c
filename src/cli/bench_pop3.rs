//! The POP3 side of `jmail bench`: each operation is one RETR of a message from the user's maildrop, timed
//! from the command to the end of the message (with a new connection per operation, the connect, login and
//! QUIT are part of its time).

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest reply line read from the server (message lines included).
const LINE_BYTES_MAX: u64 = 64 * 1024;

pub struct Pop3Conn {
    stream: BufReader<TcpStream>,
    /// Messages in the maildrop at login.
    count: u32,
    next: u32,
}

impl Pop3Conn {
    pub async fn connect(server: &str, user: &str, password: &str) -> anyhow::Result<Pop3Conn> {
        let stream = super::bench::dial(server).await?;
        let mut conn = Pop3Conn {
            stream: BufReader::new(stream),
            count: 0,
            next: 0,
        };
        conn.ok().await?;
        let login = format!("USER {user}\r\nPASS {password}\r\nSTAT\r\n");
        conn.stream.get_mut().write_all(login.as_bytes()).await?;
        conn.ok().await?;
        conn.ok().await?;
        let stat = conn.ok().await?;
        conn.count = stat
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .context("STAT reply")?;
        if conn.count == 0 {
            bail!("{user} has no messages to retrieve");
        }
        Ok(conn)
    }

    /// Retrieves the next message (cycling through the maildrop); returns its size in bytes.
    pub async fn retrieve(&mut self) -> anyhow::Result<usize> {
        self.next = self.next % self.count + 1;
        let command = format!("RETR {}\r\n", self.next);
        self.stream.get_mut().write_all(command.as_bytes()).await?;
        self.ok().await?;
        let mut size = 0;
        loop {
            let line = self.line().await?;
            if line == ".\r\n" {
                return Ok(size);
            }
            size += line.len();
        }
    }

    pub async fn quit(mut self) {
        let _ = self.stream.get_mut().write_all(b"QUIT\r\n").await;
        let _ = self.ok().await;
    }

    async fn ok(&mut self) -> anyhow::Result<String> {
        let line = self.line().await?;
        if !line.starts_with("+OK") {
            bail!("expected +OK, got {}", line.trim_end());
        }
        Ok(line.trim_end().to_string())
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let n = (&mut self.stream)
            .take(LINE_BYTES_MAX)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(line)
    }
}
