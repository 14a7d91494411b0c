//! Drives one native connection: socket bytes into the decoder, events into the session, replies out.

use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, BytesMut};
use jmail_proto::native::{Decoder, Limits as DecoderLimits};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::session::{Action, Session};
use crate::config::Limits;
use crate::conn::{End, InputClock, Stream, write};
use crate::tls::Tls;

/// Read buffer a fresh connection starts with; idle connections keep only this.
pub const READ_BUFFER_BYTES_INITIAL: usize = 1024;
/// Read size once a client is sending more than a line.
const READ_BUFFER_BYTES_GROW: usize = 16 * 1024;
/// An emptied buffer larger than this is given back, so one large message does not pin memory.
const READ_BUFFER_BYTES_KEEP: usize = 64 * 1024;

/// Serves one connection, whose greeting was sent and whose first bytes are `buf`, until it closes.
/// Returns why it ended.
pub async fn serve(
    mut stream: Stream,
    mut buf: BytesMut,
    mut session: Session,
    limits: &Limits,
    shutdown: CancellationToken,
    tls: Arc<Tls>,
) -> End {
    let write_timeout = Duration::from_secs(limits.write_secs_max);
    let mut decoder = Decoder::new(DecoderLimits {
        line_bytes_max: limits.line_bytes_max,
        recipients_max: limits.recipients_max,
    });
    // Idle time counts from the client's last bytes: pushed mail does not keep a silent client alive.
    let mut last_input = Instant::now();
    let mut input_clock = InputClock::new(limits);
    loop {
        // Everything already buffered is handled before waiting again: a pipelined burst runs to the end,
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
                }
            }
            if let Some(max) = session.literal_bytes_max() {
                decoder.allow_literals(max);
            }
        }
        if buf.is_empty() && buf.capacity() > READ_BUFFER_BYTES_KEEP {
            buf = BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL);
        } else if buf.capacity() - buf.len() < READ_BUFFER_BYTES_INITIAL / 2 {
            buf.reserve(READ_BUFFER_BYTES_GROW);
        }
        let idle = session.idle_timeout();
        input_clock.observe(decoder.pending(buf.len()));
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = write(&mut stream, &session.on_shutdown(), write_timeout).await;
                return End::Shutdown;
            }
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) => return End::PeerGone,
                Ok(n) => {
                    last_input = Instant::now();
                    input_clock.received(n);
                }
                Err(e) => return End::Io(e),
            },
            _ = session.changed() => {
                let outcome = session.on_change().await;
                if let Err(end) = write(&mut stream, &outcome.reply, write_timeout).await {
                    return end;
                }
                if outcome.action == Action::Close {
                    return End::Closed;
                }
            }
            _ = tokio::time::sleep_until(input_clock.deadline(last_input + idle)) => {
                let _ = write(&mut stream, &session.on_timeout(), write_timeout).await;
                return End::Timeout;
            }
        }
    }
}
