//! POP3's side of the one connection driver: its line decoder and its session. The greeting goes first;
//! idle time-outs follow the session state; shutdown ends the session without applying deletions.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use jmail_proto::Pending;
use jmail_proto::pop3::{Decoder, Event};

use super::session::{GREETING, Session};
use crate::conn::{Shared, Stream};
use crate::driver::{Conversation, Outcome, drive};

struct Pop3 {
    decoder: Decoder,
    session: Session,
}

impl Conversation for Pop3 {
    type Event = Event;
    /// The decoder consumes every whole line before the next read, so the buffer holds at most one
    /// unfinished line (bounded by the decoder's limit) plus one read.
    const READ_BUFFER_BYTES_INITIAL: usize = 1024;

    fn decode(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        self.decoder.decode(input)
    }

    fn pending(&self, buffered: usize) -> Pending {
        self.decoder.pending(buffered)
    }

    async fn on_event(&mut self, event: Event) -> Outcome {
        self.session.on_event(event).await
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
}

/// Serves one POP3 connection until it closes.
pub async fn serve(stream: Stream, peer: SocketAddr, ctx: Shared) {
    let session = Session::new(
        ctx.store.clone(),
        ctx.config.clone(),
        ctx.throttle.clone(),
        peer,
        stream.is_tls(),
    );
    let pop3 = Pop3 {
        decoder: Decoder::new(),
        session,
    };
    let buf = BytesMut::with_capacity(<Pop3 as Conversation>::READ_BUFFER_BYTES_INITIAL);
    let end = drive(stream, buf, GREETING.to_vec(), pop3, &ctx).await;
    tracing::debug!(%peer, ?end, "pop3 connection ended");
}
