//! The receiving end of `jmail bench --sink`: an SMTP server that takes every message and counts it,
//! so that relaying is timed from the first submission to the last `250` the destination gave.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Messages received so far, and a bell rung at each.
#[derive(Default)]
pub struct Sink {
    pub received: AtomicUsize,
    pub bell: Notify,
}

/// Starts the sink on `addr`; it runs until the process ends.
pub async fn start(addr: &str) -> anyhow::Result<Arc<Sink>> {
    let listener = TcpListener::bind(addr).await?;
    let sink = Arc::new(Sink::default());
    let counting = sink.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sink = counting.clone();
            tokio::spawn(async move {
                let _ = serve(stream, &sink).await;
            });
        }
    });
    Ok(sink)
}

async fn serve(stream: tokio::net::TcpStream, sink: &Sink) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.bench ESMTP\r\n").await?;
    let mut line = Vec::new();
    let mut in_data = false;
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        if in_data {
            if line == b".\r\n" {
                in_data = false;
                write.write_all(b"250 2.0.0 taken\r\n").await?;
                sink.received.fetch_add(1, Ordering::Relaxed);
                sink.bell.notify_waiters();
            }
            continue;
        }
        let verb = line.get(..4).map(|v| v.to_ascii_uppercase());
        let reply: &[u8] = match verb.as_deref() {
            Some(b"EHLO") => b"250-sink.bench\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n",
            Some(b"DATA") => {
                in_data = true;
                b"354 go on\r\n"
            }
            Some(b"QUIT") => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(reply).await?;
    }
}
