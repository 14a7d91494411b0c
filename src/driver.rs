//! The one connection driver every line protocol uses (native, SMTP, POP3, IMAP): read, decode, hand each event to
//! the session, gather and write the replies, STARTTLS, deadlines, shutdown and push. A protocol brings
//! only a [`Conversation`]: its decoder and its session. (The v1 exchange, which has no framing at all,
//! keeps its own small loop.)

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use jmail_proto::Pending;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::conn::{End, InputClock, Shared, Stream, write};
use crate::reply_stream::Pieces;

/// What the driver does once a reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Start the TLS handshake now that the reply is out (STARTTLS / STLS).
    StartTls,
    /// Deflate both ways from now on, the reply being the last thing sent plain (IMAP COMPRESS).
    StartCompress,
    Close,
}

/// Reply bytes, a large reply's streamed rest, and what to do next.
pub struct Outcome {
    pub reply: Vec<u8>,
    /// Written after `reply`, piece by piece, before anything else.
    pub stream: Option<Box<dyn Pieces>>,
    pub action: Action,
}

impl Outcome {
    pub fn go_on(reply: impl Into<Vec<u8>>) -> Self {
        Outcome {
            reply: reply.into(),
            stream: None,
            action: Action::Continue,
        }
    }

    pub fn close(reply: impl Into<Vec<u8>>) -> Self {
        Outcome {
            reply: reply.into(),
            stream: None,
            action: Action::Close,
        }
    }

    /// The reply, then the TLS handshake (STARTTLS, STLS).
    pub fn start_tls(reply: impl Into<Vec<u8>>) -> Self {
        Outcome {
            reply: reply.into(),
            stream: None,
            action: Action::StartTls,
        }
    }

    /// The reply, then compression both ways (COMPRESS=DEFLATE).
    pub fn start_compress(reply: impl Into<Vec<u8>>) -> Self {
        Outcome {
            reply: reply.into(),
            stream: None,
            action: Action::StartCompress,
        }
    }

    /// `head`, then the stream's pieces.
    pub fn streaming(head: impl Into<Vec<u8>>, stream: impl Pieces + 'static) -> Self {
        Outcome {
            reply: head.into(),
            stream: Some(Box::new(stream)),
            action: Action::Continue,
        }
    }
}

/// One protocol's side of a connection: its pure decoder and its session state machine.
pub trait Conversation: Send {
    type Event: Send;
    /// The read buffer a fresh (and an idle) connection keeps: each idle connection costs this.
    const READ_BUFFER_BYTES_INITIAL: usize;

    /// Decodes at most one event from the front of `input`; returns how many bytes were used. `(0, None)`:
    /// more input is needed. `(n, None)`: bytes were used (or thrown away); call again.
    fn decode(&mut self, input: &[u8]) -> (usize, Option<Self::Event>);
    /// Bytes of a message body the decoder holds (beyond the read buffer); they count against the
    /// server's input budget.
    fn held_bytes(&self) -> usize {
        0
    }
    /// What the decoder is in the middle of, with `buffered` undecoded bytes: deadlines follow it.
    fn pending(&self, buffered: usize) -> Pending;
    fn on_event(&mut self, event: Self::Event) -> impl Future<Output = Outcome> + Send;
    /// After the TLS handshake that a [`Action::StartTls`] began.
    fn on_tls_started(&mut self);
    /// The slowest a message body may arrive now, when not `data_bytes_per_sec_min`.
    fn body_bytes_per_sec_min(&self) -> Option<u64> {
        None
    }
    /// How long the client may stay silent now.
    fn idle_timeout(&self) -> Duration;
    /// The farewell when the idle time or an input deadline runs out.
    fn on_timeout(&self) -> Vec<u8>;
    /// The farewell when a message body arrives slower than its rate allows.
    fn on_too_slow(&self) -> Vec<u8> {
        self.on_timeout()
    }
    /// The farewell when the server shuts down.
    fn on_shutdown(&self) -> Vec<u8>;
    /// The farewell when the connection needs more of the server's input budget than is left.
    fn on_overload(&self) -> Vec<u8>;
    /// Resolves when there is something to push unasked (native WATCH); by default never.
    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
    /// What to push once [`Conversation::changed`] resolved.
    fn on_change(&mut self) -> impl Future<Output = Outcome> + Send {
        async { Outcome::go_on(Vec::new()) }
    }
}

/// Connections closed for want of input budget since the last warning about it, and when that was
/// (seconds since the epoch): a flood of large messages gets one line a minute saying how many, not a
/// line each (126 a second were seen).
static BUDGET_CLOSES: AtomicU64 = AtomicU64::new(0);
static BUDGET_WARNED_AT: AtomicU64 = AtomicU64::new(0);
const BUDGET_WARN_EVERY_SECS: u64 = 60;

fn warn_budget_spent() {
    BUDGET_CLOSES.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = BUDGET_WARNED_AT.load(Ordering::Relaxed);
    if now >= last.saturating_add(BUDGET_WARN_EVERY_SECS)
        && BUDGET_WARNED_AT
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let closed = BUDGET_CLOSES.swap(0, Ordering::Relaxed);
        tracing::warn!(
            closed,
            "input budget spent (limits.input_bytes_max): connections that needed more were closed (count since the last such warning)"
        );
    }
}

/// Read size while a message body streams in.
const READ_BUFFER_BYTES_BODY: usize = 64 * 1024;
/// An emptied buffer larger than this is given back, so one large message does not pin memory.
const READ_BUFFER_BYTES_KEEP: usize = 64 * 1024;
/// Replies gathered before they are written even though more pipelined commands wait: bounds the memory a
/// flood of pipelined commands can make the server hold.
const REPLY_BYTES_FLUSH: usize = 16 * 1024;

/// Serves one connection until it ends, and says why. `out` is written first (a greeting), `buf` holds
/// bytes already read (the native port reads the first ones to tell native from v1).
pub async fn drive<C: Conversation>(
    mut stream: Stream,
    mut buf: BytesMut,
    mut out: Vec<u8>,
    mut conversation: C,
    shared: &Shared,
) -> End {
    let (limits, shutdown, tls) = (&shared.config.limits, &shared.shutdown, &*shared.tls);
    // What this connection holds of message bodies beyond the free part, drawn from the server's budget.
    let mut input_share = shared.input.share();
    let write_timeout = Duration::from_secs(limits.write_secs_max);
    // Idle time counts from the client's last bytes: pushed mail does not keep a silent client alive.
    let mut last_input = Instant::now();
    let mut input_clock = InputClock::new(limits);
    loop {
        // Everything buffered is handled before waiting again: a pipelined burst runs to its end (its
        // replies gathered, RFC 2920), and a command in flight finishes even when shutdown has begun.
        loop {
            let (used, event) = conversation.decode(&buf);
            buf.advance(used);
            let Some(event) = event else {
                if used == 0 {
                    break;
                }
                continue;
            };
            // Boxed: held inline, the largest command's future would sit in every idle connection.
            let outcome = Box::pin(conversation.on_event(event)).await;
            out.extend_from_slice(&outcome.reply);
            if let Some(reply) = outcome.stream
                && let Err(end) = stream_reply(&mut stream, &mut out, reply, write_timeout).await
            {
                return end;
            }
            match outcome.action {
                Action::Continue => {}
                Action::Close => {
                    let _ = write(&mut stream, &out, write_timeout).await;
                    return End::Closed;
                }
                Action::StartTls => {
                    if let Err(end) = flush(&mut stream, &mut out, write_timeout).await {
                        return end;
                    }
                    // Boxed as commands are: a TLS handshake's state is large and brief.
                    stream = match Box::pin(stream.upgrade(&mut buf, tls)).await {
                        Ok(secure) => secure,
                        Err(end) => return end,
                    };
                    conversation.on_tls_started();
                }
                Action::StartCompress => {
                    if let Err(end) = flush(&mut stream, &mut out, write_timeout).await {
                        return end;
                    }
                    stream = stream.deflated();
                }
            }
            if out.len() >= REPLY_BYTES_FLUSH
                && let Err(end) = flush(&mut stream, &mut out, write_timeout).await
            {
                return end;
            }
        }
        if let Err(end) = flush(&mut stream, &mut out, write_timeout).await {
            return end;
        }
        let pending = conversation.pending(buf.len());
        if buf.is_empty() && buf.capacity() > READ_BUFFER_BYTES_KEEP {
            buf = BytesMut::with_capacity(C::READ_BUFFER_BYTES_INITIAL);
        } else if buf.capacity() - buf.len() < C::READ_BUFFER_BYTES_INITIAL / 2 {
            buf.reserve(match pending {
                Pending::Body => READ_BUFFER_BYTES_BODY,
                _ => C::READ_BUFFER_BYTES_INITIAL,
            });
        }
        let held = buf.capacity() + conversation.held_bytes();
        if input_share.hold(held).is_err() {
            warn_budget_spent();
            let _ = write(&mut stream, &conversation.on_overload(), write_timeout).await;
            return End::Overloaded;
        }
        input_clock.observe(pending);
        input_clock.body_rate_min(
            conversation
                .body_bytes_per_sec_min()
                .unwrap_or(limits.data_bytes_per_sec_min),
        );
        let idle_deadline = last_input + conversation.idle_timeout();
        let deadline = input_clock.deadline(idle_deadline);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = write(&mut stream, &conversation.on_shutdown(), write_timeout).await;
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
            _ = conversation.changed() => {
                let outcome = Box::pin(conversation.on_change()).await;
                if let Err(end) = write(&mut stream, &outcome.reply, write_timeout).await {
                    return end;
                }
                if outcome.action == Action::Close {
                    return End::Closed;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let farewell = match pending == Pending::Body && deadline < idle_deadline {
                    true => conversation.on_too_slow(),
                    false => conversation.on_timeout(),
                };
                let _ = write(&mut stream, &farewell, write_timeout).await;
                return End::Timeout;
            }
        }
    }
}

/// Writes what is gathered, then a streamed reply piece by piece (each within the write deadline). A
/// stream that fails midway ends the connection: the client was promised bytes it cannot get.
async fn stream_reply(
    stream: &mut Stream,
    out: &mut Vec<u8>,
    mut reply: Box<dyn Pieces>,
    timeout: Duration,
) -> Result<(), End> {
    flush(stream, out, timeout).await?;
    loop {
        match reply.next().await {
            Ok(Some(piece)) => write(stream, &piece, timeout).await?,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "a streamed reply could not be completed; closing");
                return Err(End::Closed);
            }
        }
    }
}

/// Writes what is gathered, if anything, and empties it.
async fn flush(stream: &mut Stream, out: &mut Vec<u8>, timeout: Duration) -> Result<(), End> {
    if out.is_empty() {
        return Ok(());
    }
    write(stream, out, timeout).await?;
    out.clear();
    Ok(())
}
