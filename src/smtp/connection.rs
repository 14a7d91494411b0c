//! SMTP's side of the one connection driver: command lines through the line framer, a message through the
//! DATA receiver once the session has said 354 (or a BDAT chunk through the chunk receiver), and the
//! session. The driver gathers the replies to
//! pipelined commands and writes them before it waits for more input (RFC 2920).

use std::time::Duration;

use bytes::BytesMut;
use jmail_proto::Pending;
use jmail_proto::smtp::chunk::{ChunkEnd, ChunkReceiver};
use jmail_proto::smtp::{DataEnd, DataReceiver, Frame, LineFramer};

use super::session::{Next, Session};
use crate::conn::{End, Shared, Stream};
use crate::driver::{Action, Conversation, Outcome, drive};

/// What SMTP's input decodes into.
enum Input {
    Line(Vec<u8>),
    TooLong,
    Message(DataEnd),
    Chunk(ChunkEnd),
}

struct Smtp {
    framer: LineFramer,
    /// Set while a message is being received (after 354).
    data: Option<DataReceiver>,
    /// Set while a BDAT chunk is being read.
    chunk: Option<ChunkReceiver>,
    session: Session,
    command_idle: Duration,
    data_idle: Duration,
    /// The slowest a stranger's message may arrive when DATA slots run short
    /// (`smtp_data_unauth_bytes_per_sec_min`).
    stranger_rate_min: u64,
}

impl Smtp {
    /// A message is arriving: DATA's, or BDAT's from its first chunk to its last, the BDAT commands
    /// between chunks included. The input clock counts it all as one body, so a message sent in tiny
    /// chunks must keep `data_bytes_per_sec_min` as DATA must, and cannot hold its slot for ever.
    fn in_message(&self) -> bool {
        self.data.is_some() || self.chunk.is_some() || self.session.in_chunked_message()
    }
}

impl Conversation for Smtp {
    type Event = Input;
    const READ_BUFFER_BYTES_INITIAL: usize = 4 * 1024;

    fn decode(&mut self, input: &[u8]) -> (usize, Option<Input>) {
        if let Some(receiver) = self.data.as_mut() {
            let (used, end) = receiver.push(input);
            if end.is_some() {
                self.data = None;
            }
            return (used, end.map(Input::Message));
        }
        if let Some(receiver) = self.chunk.as_mut() {
            let (used, end) = receiver.push(input);
            if end.is_some() {
                self.chunk = None;
            }
            return (used, end.map(Input::Chunk));
        }
        let (used, frame) = self.framer.next(input);
        let input = match frame {
            None => None,
            Some(Frame::Line(line)) => Some(Input::Line(line.to_vec())),
            Some(Frame::TooLong) => Some(Input::TooLong),
        };
        (used, input)
    }

    fn held_bytes(&self) -> usize {
        self.data.as_ref().map_or(0, DataReceiver::held_bytes)
            + self.chunk.as_ref().map_or(0, ChunkReceiver::held_bytes)
            + self.session.chunk_bytes_held()
    }

    fn pending(&self, buffered: usize) -> Pending {
        match self.in_message() {
            true => Pending::Body,
            false => self.framer.pending(buffered),
        }
    }

    async fn on_event(&mut self, input: Input) -> Outcome {
        let mut outcome = match input {
            Input::Line(line) => self.session.on_line(&line).await,
            Input::TooLong => self.session.on_too_long(),
            Input::Message(end) => self.session.on_data(end).await,
            Input::Chunk(end) => self.session.on_chunk(end).await,
        };
        let action = loop {
            match outcome.next {
                Next::Command => break Action::Continue,
                Next::Data => {
                    self.data = Some(DataReceiver::new(self.session.data_bytes_max()));
                    break Action::Continue;
                }
                Next::Chunk { size, keep } => {
                    let mut receiver = ChunkReceiver::new(size, keep, self.session.chunk_room());
                    if !receiver.is_done() {
                        self.chunk = Some(receiver);
                        break Action::Continue;
                    }
                    // `BDAT 0`: nothing to wait for.
                    let mut then = self.session.on_chunk(receiver.end()).await;
                    outcome.reply.append(&mut then.reply);
                    outcome.next = then.next;
                }
                Next::StartTls => break Action::StartTls,
                Next::Close => break Action::Close,
            }
        };
        Outcome {
            reply: outcome.reply,
            stream: None,
            action,
        }
    }

    fn on_tls_started(&mut self) {
        self.session.on_tls_started();
    }

    fn body_bytes_per_sec_min(&self) -> Option<u64> {
        self.session.must_hurry().then_some(self.stranger_rate_min)
    }

    fn on_too_slow(&self) -> Vec<u8> {
        self.session.on_too_slow()
    }

    fn idle_timeout(&self) -> Duration {
        match self.in_message() {
            true => self.data_idle,
            false => self.command_idle,
        }
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

pub async fn serve(stream: Stream, session: Session, shared: &Shared) -> End {
    let limits = &shared.config.limits;
    let greeting = session.greeting();
    let smtp = Smtp {
        framer: LineFramer::default(),
        data: None,
        chunk: None,
        session,
        command_idle: Duration::from_secs(limits.smtp_command_idle_secs),
        data_idle: Duration::from_secs(limits.smtp_data_idle_secs),
        stranger_rate_min: limits
            .smtp_data_unauth_bytes_per_sec_min
            .max(limits.data_bytes_per_sec_min),
    };
    let buf = BytesMut::with_capacity(<Smtp as Conversation>::READ_BUFFER_BYTES_INITIAL);
    drive(stream, buf, greeting, smtp, shared).await
}
