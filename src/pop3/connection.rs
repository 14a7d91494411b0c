//! Drives one POP3 connection: greeting, socket bytes into the line decoder, lines into the session,
//! replies out. Idle time-outs follow the session state; writes have a deadline; shutdown ends the session
//! without applying deletions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use jmail_proto::pop3::Decoder;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::session::{GREETING, Session};
use crate::config::Config;
use crate::conn::{End, InputClock, Stream, write};
use crate::native::{Action, READ_BUFFER_BYTES_INITIAL};
use crate::store::MailStore;
use crate::tls::Tls;

/// Serves one POP3 connection until it closes.
pub async fn serve(
    stream: Stream,
    peer: SocketAddr,
    store: Arc<dyn MailStore>,
    config: Arc<Config>,
    shutdown: CancellationToken,
    tls: Arc<Tls>,
) {
    let session = Session::new(store, config.clone(), peer, stream.is_tls());
    let end = drive(stream, session, &config, shutdown, tls).await;
    tracing::debug!(%peer, ?end, "pop3 connection ended");
}

async fn drive(
    mut stream: Stream,
    mut session: Session,
    config: &Config,
    shutdown: CancellationToken,
    tls: Arc<Tls>,
) -> End {
    let write_timeout = Duration::from_secs(config.limits.write_secs_max);
    if let Err(end) = write(&mut stream, GREETING, write_timeout).await {
        return end;
    }
    let mut decoder = Decoder::new();
    let mut input_clock = InputClock::new(&config.limits);
    // The decoder consumes every whole line before the next read, so the buffer holds at most one
    // unfinished line (bounded by the decoder's limit) plus one read.
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL);
    loop {
        // Everything already buffered is handled before waiting again: pipelined commands run to the end,
        // and a command in flight always finishes, even when shutdown has begun.
        loop {
            let (used, event) = decoder.decode(&buf);
            buf.advance(used);
            let Some(event) = event else {
                if used == 0 {
                    break;
                }
                continue;
            };
            let outcome = session.on_event(event).await;
            if let Err(end) = write(&mut stream, &outcome.reply, write_timeout).await {
                return end;
            }
            match outcome.action {
                Action::Continue => {}
                Action::Close => return End::Closed,
                Action::StartTls => {
                    stream = match stream.upgrade(&mut buf, &tls).await {
                        Ok(secure) => secure,
                        Err(end) => return end,
                    };
                    session.on_tls_started();
                    break;
                }
            }
        }
        if buf.capacity() - buf.len() < READ_BUFFER_BYTES_INITIAL / 2 {
            buf.reserve(READ_BUFFER_BYTES_INITIAL);
        }
        input_clock.observe(decoder.pending(buf.len()));
        let deadline = input_clock.deadline(tokio::time::Instant::now() + session.idle_timeout());
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = write(&mut stream, &session.on_shutdown(), write_timeout).await;
                return End::Shutdown;
            }
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) => return End::PeerGone,
                Ok(_) => {}
                Err(e) => return End::Io(e),
            },
            _ = tokio::time::sleep_until(deadline) => {
                let _ = write(&mut stream, &session.on_timeout(), write_timeout).await;
                return End::Timeout;
            }
        }
    }
}
