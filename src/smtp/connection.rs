//! Drives one SMTP connection: bytes into the line framer or the DATA receiver, events into the session,
//! replies out. Replies to pipelined commands are gathered and written together, before the connection
//! waits for more input (RFC 2920).

use std::time::Duration;

use bytes::{Buf, BytesMut};
use jmail_proto::smtp::{DataReceiver, Frame, LineFramer};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::session::{Next, Outcome, Session};
use crate::config::Limits;
use crate::conn::{End, InputClock, Stream, write};
use crate::tls::Tls;

/// Read buffer a fresh connection starts with.
const READ_BUFFER_BYTES_INITIAL: usize = 4 * 1024;
/// Read size while a message streams in.
const READ_BUFFER_BYTES_GROW: usize = 64 * 1024;
/// Replies gathered before they are written even though more pipelined commands wait: bounds the memory
/// that a flood of pipelined commands can make the server hold.
const REPLY_BYTES_FLUSH: usize = 16 * 1024;

pub async fn serve(
    mut stream: Stream,
    mut session: Session,
    limits: &Limits,
    shutdown: CancellationToken,
    tls: Arc<Tls>,
) -> End {
    let write_timeout = Duration::from_secs(limits.write_secs_max);
    let command_idle = Duration::from_secs(limits.smtp_command_idle_secs);
    let data_idle = Duration::from_secs(limits.smtp_data_idle_secs);
    let mut out = session.greeting();
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL);
    let mut framer = LineFramer::default();
    let mut data: Option<DataReceiver> = None;
    let mut input_clock = InputClock::new(limits);
    loop {
        // Everything buffered is handled before waiting again: a pipelined burst runs to its end.
        loop {
            let outcome: Outcome = if let Some(receiver) = data.as_mut() {
                let (used, end) = receiver.push(&buf);
                buf.advance(used);
                let Some(end) = end else { break };
                data = None;
                session.on_data(end).await
            } else {
                let (used, frame) = framer.next(&buf);
                let outcome = match frame {
                    None => None,
                    Some(Frame::Line(line)) => Some(session.on_line(line).await),
                    Some(Frame::TooLong) => Some(session.on_too_long()),
                };
                buf.advance(used);
                match outcome {
                    Some(outcome) => outcome,
                    None if used == 0 => break,
                    None => continue,
                }
            };
            out.extend_from_slice(&outcome.reply);
            match outcome.next {
                Next::Command => {}
                Next::Data => data = Some(DataReceiver::new(session.data_bytes_max())),
                Next::StartTls => {
                    if let Err(end) = write(&mut stream, &out, write_timeout).await {
                        return end;
                    }
                    out.clear();
                    stream = match stream.upgrade(&mut buf, &tls).await {
                        Ok(secure) => secure,
                        Err(end) => return end,
                    };
                    session.on_tls_started();
                }
                Next::Close => {
                    let _ = write(&mut stream, &out, write_timeout).await;
                    return End::Closed;
                }
            }
            if out.len() >= REPLY_BYTES_FLUSH {
                if let Err(end) = write(&mut stream, &out, write_timeout).await {
                    return end;
                }
                out.clear();
            }
        }
        if let Err(end) = write(&mut stream, &out, write_timeout).await {
            return end;
        }
        out.clear();
        if data.is_none() && buf.is_empty() && buf.capacity() > READ_BUFFER_BYTES_GROW {
            // A message has gone by: an idle connection goes back to a small buffer.
            buf = BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL);
        } else if buf.capacity() - buf.len() < READ_BUFFER_BYTES_INITIAL / 2 {
            let grow = if data.is_some() {
                READ_BUFFER_BYTES_GROW
            } else {
                READ_BUFFER_BYTES_INITIAL
            };
            buf.reserve(grow);
        }
        let idle = if data.is_some() {
            data_idle
        } else {
            command_idle
        };
        input_clock.observe(match data {
            Some(_) => jmail_proto::Pending::Body,
            None => framer.pending(buf.len()),
        });
        let deadline = input_clock.deadline(tokio::time::Instant::now() + idle);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = write(&mut stream, &session.on_shutdown(), write_timeout).await;
                return End::Shutdown;
            }
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) => return End::PeerGone,
                Ok(n) => input_clock.received(n),
                Err(e) => return End::Io(e),
            },
            _ = tokio::time::sleep_until(deadline) => {
                let _ = write(&mut stream, &session.on_timeout(), write_timeout).await;
                return End::Timeout;
            }
        }
    }
}
