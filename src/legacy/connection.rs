//! Drives a v1 connection. v1 has no framing: each read is one client message, and each reply must be
//! its own write, far enough apart that the client's `recv(1024)` takes them one at a time.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::session::LegacySession;
use crate::config::Limits;

/// Largest client message read at once. v1 clients send at most a few hundred bytes.
const CHUNK_BYTES_MAX: usize = 4096;
/// How long a lone user-name chunk waits for the password chunk before it is read as both.
const PASSWORD_WAIT: Duration = Duration::from_millis(300);
/// Pause between two replies to one client message (`1969`, then the mailbox), so they arrive as two reads.
const SEND_GAP: Duration = Duration::from_millis(50);

/// Serves a v1 client whose first message (its version) is `first`.
pub async fn serve<S>(
    mut stream: S,
    first: BytesMut,
    mut session: LegacySession,
    limits: &Limits,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let write_timeout = Duration::from_secs(limits.write_secs_max);
    let mut chunk = first;
    loop {
        let reply = if chunk.is_empty() {
            session.on_password_wait_over().await
        } else {
            session.on_chunk(&chunk).await
        };
        for (i, send) in reply.sends.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(SEND_GAP).await;
            }
            match tokio::time::timeout(write_timeout, stream.write_all(send)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        if reply.close {
            return;
        }
        chunk = BytesMut::with_capacity(CHUNK_BYTES_MAX);
        let wait = if session.awaiting_password() {
            PASSWORD_WAIT
        } else {
            session.idle_timeout()
        };
        tokio::select! {
            biased;
            // v1 has no way to say goodbye; the connection just closes.
            _ = shutdown.cancelled() => return,
            read = stream.read_buf(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = tokio::time::sleep(wait) => {
                if !session.awaiting_password() {
                    return;
                }
                // chunk stays empty: the credentials arrived as one chunk.
            }
        }
    }
}
