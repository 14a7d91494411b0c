//! IMAP's side of the one connection driver: its command decoder and its session. The decoder is told
//! what the session expects next (a command, a SASL response, IDLE's DONE) and, once logged in, takes
//! literals as large as a message; IDLE is the driver's push.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use jmail_proto::Pending;
use jmail_proto::imap::{Decoder, Event, Limits};

use super::session::Session;
use crate::config::Config;
use crate::conn::{Shared, Stream};
use crate::driver::{Conversation, Outcome, drive};

/// The longest literal taken before login: a user name or password (and a little room).
const LITERAL_BYTES_MAX_UNAUTH: usize = 8 * 1024;

struct Imap {
    decoder: Decoder,
    session: Session,
}

/// How many times `line_bytes_max` a logged-in client's command line may be (64 KiB by default): a
/// UID set of a sparse selection (`UID STORE 3,7,12,...`) grows past 8 KiB in real use, and Dovecot
/// takes 64 KiB. Costs at most that much buffered per connection while such a line arrives; an
/// administrator who lowers `line_bytes_max` lowers it too.
pub const LINE_BYTES_AUTH_FACTOR: usize = 8;

/// The decoder's limits: before login a command is one short line or two; after, a line may be
/// longer and a literal may be a whole message (APPEND).
fn limits(config: &Config, logged_in: bool) -> Limits {
    let l = &config.limits;
    let (literal, line) = if logged_in {
        (
            l.message_bytes_max,
            l.line_bytes_max * LINE_BYTES_AUTH_FACTOR,
        )
    } else {
        (LITERAL_BYTES_MAX_UNAUTH, l.line_bytes_max)
    };
    Limits {
        line_bytes_max: line,
        literal_bytes_max: literal,
        command_bytes_max: literal + line,
    }
}

impl Conversation for Imap {
    type Event = Event;
    /// The decoder frames in place, so the buffer holds one command (lines and literals) plus one read.
    const READ_BUFFER_BYTES_INITIAL: usize = 1024;

    fn decode(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        self.decoder.decode(input)
    }

    fn pending(&self, buffered: usize) -> Pending {
        self.decoder.pending(buffered)
    }

    async fn on_event(&mut self, event: Event) -> Outcome {
        let was_logged_in = self.session.logged_in();
        let outcome = self.session.on_event(event).await;
        if self.session.logged_in() != was_logged_in {
            let logged_in = self.session.logged_in();
            self.decoder
                .set_limits(limits(&self.session.config, logged_in));
        }
        self.decoder.expect(self.session.expect());
        outcome
    }

    fn on_tls_started(&mut self) {
        self.session.on_tls_started();
    }

    fn idle_timeout(&self) -> Duration {
        self.session.idle_timeout()
    }

    fn on_timeout(&self) -> Vec<u8> {
        self.session.on_timeout()
    }

    fn on_shutdown(&self) -> Vec<u8> {
        self.session.on_shutdown()
    }

    fn on_overload(&self) -> Vec<u8> {
        self.session.on_overload()
    }

    async fn changed(&mut self) {
        if self.session.watching() {
            self.session.changed().await
        } else {
            std::future::pending().await
        }
    }

    async fn on_change(&mut self) -> Outcome {
        self.session.on_change().await
    }
}

/// Serves one IMAP connection until it closes.
pub async fn serve(stream: Stream, peer: SocketAddr, ctx: Shared) {
    let session = Session::new(
        ctx.store.clone(),
        ctx.config.clone(),
        ctx.throttle.clone(),
        peer,
        stream.is_tls(),
        ctx.compressed.clone(),
        ctx.input.clone(),
    )
    .with_sort_cache(ctx.sort_cache.clone());
    let greeting = session.greeting();
    let imap = Imap {
        decoder: Decoder::new(limits(&ctx.config, false)),
        session,
    };
    let buf = BytesMut::with_capacity(<Imap as Conversation>::READ_BUFFER_BYTES_INITIAL);
    let end = drive(stream, buf, greeting, imap, &ctx).await;
    tracing::debug!(%peer, ?end, "imap connection ended");
}
