//! Large replies streamed from the store: a READ or RETR of a 10 MiB message holds one piece of it per
//! connection at a time, never the whole, so memory stays bounded however many large downloads run (and
//! however slowly their clients read). The driver writes a stream's pieces as it yields them.

use std::sync::Arc;

use async_trait::async_trait;

use jmail_proto::pop3::DotStuffer;

use crate::store::{BodyRef, MailStore, StoreError};

/// Messages at least this large are streamed; smaller ones are sent whole (one read, one write).
pub const STREAM_BYTES_MIN: u64 = 256 * 1024;
/// Bytes read from the store per piece: the memory one streaming connection holds (twice, with the
/// transformed copy).
pub const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// A reply written in pieces as they are made: the driver asks for the next piece only once the last is
/// written, so a connection holds one piece at a time.
#[async_trait]
pub trait Pieces: Send {
    /// The next bytes to write; `None` once everything was yielded. An error means the reply cannot be
    /// completed (a message went meanwhile): the connection must end.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
}

/// How the stored bytes are shaped on the wire.
pub enum Shape {
    /// As stored (the native READ literal).
    AsStored,
    /// POP3's multi-line form: CRLF line ends, dot-stuffed, ended by `.` CRLF.
    DotStuffed(DotStuffer),
}

/// A message's bytes, read piece by piece, then `trailer`.
pub struct ReplyStream {
    store: Arc<dyn MailStore>,
    body: BodyRef,
    offset: u64,
    shape: Option<Shape>,
    trailer: Vec<u8>,
}

impl std::fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyStream")
            .field("body", &self.body)
            .field("offset", &self.offset)
            .finish()
    }
}

impl ReplyStream {
    pub fn new(store: Arc<dyn MailStore>, body: BodyRef, shape: Shape, trailer: Vec<u8>) -> Self {
        ReplyStream {
            store,
            body,
            offset: 0,
            shape: Some(shape),
            trailer,
        }
    }
}

#[async_trait]
impl Pieces for ReplyStream {
    /// The message's bytes, then the trailer.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(shape) = &mut self.shape else {
            return Ok(None);
        };
        if self.offset >= self.body.len {
            let mut out = Vec::new();
            if let Some(Shape::DotStuffed(stuffer)) = self.shape.take() {
                stuffer.finish(&mut out);
            }
            out.append(&mut self.trailer);
            return Ok(Some(out));
        }
        let piece = self
            .store
            .body_chunk(self.body, self.offset, STREAM_CHUNK_BYTES)
            .await?;
        if piece.is_empty() {
            return Err(StoreError::Backend("message shorter than announced".into()));
        }
        self.offset += piece.len() as u64;
        Ok(Some(match shape {
            Shape::AsStored => piece,
            Shape::DotStuffed(stuffer) => {
                let mut out = Vec::with_capacity(piece.len() + piece.len() / 16);
                stuffer.feed(&piece, &mut out);
                out
            }
        }))
    }
}
