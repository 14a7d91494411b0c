//! The native protocol's side of the one connection driver: its decoder and its session.

use std::time::Duration;

use bytes::BytesMut;
use jmail_proto::Pending;
use jmail_proto::native::{Decoder, Event, Limits as DecoderLimits};

use super::session::Session;
use crate::conn::{End, Shared, Stream};
use crate::driver::{Conversation, Outcome, drive};

/// Read buffer a fresh connection starts with; idle connections keep only this.
pub const READ_BUFFER_BYTES_INITIAL: usize = 1024;

struct Native {
    decoder: Decoder,
    session: Session,
}

impl Conversation for Native {
    type Event = Event;
    const READ_BUFFER_BYTES_INITIAL: usize = READ_BUFFER_BYTES_INITIAL;

    fn decode(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        self.decoder.decode(input)
    }

    fn held_bytes(&self) -> usize {
        self.decoder.held_bytes()
    }

    fn pending(&self, buffered: usize) -> Pending {
        self.decoder.pending(buffered)
    }

    async fn on_event(&mut self, event: Event) -> Outcome {
        let outcome = self.session.on_event(event).await;
        // SEND bodies are accepted only once logged in.
        if let Some(max) = self.session.literal_bytes_max() {
            self.decoder.allow_literals(max);
        }
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
        self.session.changed().await
    }

    async fn on_change(&mut self) -> Outcome {
        self.session.on_change().await
    }
}

/// Serves one connection, whose greeting was sent and whose first bytes are `buf`, until it closes.
/// Returns why it ended.
pub async fn serve(stream: Stream, buf: BytesMut, session: Session, shared: &Shared) -> End {
    let limits = &shared.config.limits;
    let decoder = Decoder::new(DecoderLimits {
        line_bytes_max: limits.line_bytes_max,
        recipients_max: limits.recipients_max,
    });
    let native = Native { decoder, session };
    drive(stream, buf, Vec::new(), native, shared).await
}
