//! IMAP's COMPRESS=DEFLATE (RFC 4978) as a layer of the connection: raw deflate (RFC 1951) both ways,
//! each write flushed with a sync flush so the client can decode everything it was sent. flate2 with its
//! pure-Rust backend does the work; this is only the glue to tokio's read and write traits.
//!
//! Each compressed connection holds a compressor and a decompressor (a few hundred KiB together), so the
//! number of them is capped (`limits.compressed_sessions_max`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::Stream;

/// Compressed bytes read from the peer at a time, and written out at a time.
const CHUNK_BYTES: usize = 16 * 1024;

/// A stream whose bytes are deflated on the wire.
pub struct Deflated {
    inner: Stream,
    inflate: Decompress,
    deflate: Compress,
    /// Compressed bytes read and not yet inflated: `read_buf[read_pos..read_end]`.
    read_buf: Box<[u8]>,
    read_pos: usize,
    read_end: usize,
    /// Compressed bytes made and not yet written: `write_buf[write_pos..]`.
    write_buf: Vec<u8>,
    write_pos: usize,
}

impl Deflated {
    pub fn new(inner: Stream) -> Deflated {
        Deflated {
            inner,
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::fast(), false),
            read_buf: vec![0; CHUNK_BYTES].into_boxed_slice(),
            read_pos: 0,
            read_end: 0,
            write_buf: Vec::with_capacity(CHUNK_BYTES),
            write_pos: 0,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }

    /// Writes out what is compressed and waiting.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.write_pos < self.write_buf.len() {
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.write_buf[self.write_pos..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_pos += n;
        }
        self.write_buf.clear();
        self.write_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Runs the compressor over `input` (all of it) with `flush`, appending to the write buffer.
    fn compress(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            if self.write_buf.capacity() - self.write_buf.len() < 64 {
                self.write_buf.reserve(CHUNK_BYTES);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut self.write_buf, flush)
                .map_err(io::Error::other)?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            // compress_vec fills only spare capacity: room left over means this input (and the flush)
            // is all out.
            if input.is_empty() && self.write_buf.len() < self.write_buf.capacity() {
                return Ok(());
            }
        }
    }
}

impl AsyncRead for Deflated {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Inflate first, even with no new input: the decompressor may hold output a full buffer
            // left it with.
            let (before_in, before_out) = (this.inflate.total_in(), this.inflate.total_out());
            let status = this
                .inflate
                .decompress(
                    &this.read_buf[this.read_pos..this.read_end],
                    buf.initialize_unfilled(),
                    FlushDecompress::Sync,
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let used = (this.inflate.total_in() - before_in) as usize;
            let made = (this.inflate.total_out() - before_out) as usize;
            this.read_pos += used;
            buf.advance(made);
            if made > 0 || status == Status::StreamEnd || buf.remaining() == 0 {
                // Some bytes, or the client ended its deflate stream (nothing more can come).
                return Poll::Ready(Ok(()));
            }
            if this.read_pos < this.read_end {
                if used == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "deflate stream makes no progress",
                    )));
                }
                continue;
            }
            let mut raw = ReadBuf::new(&mut this.read_buf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
            let n = raw.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.read_pos = 0;
            this.read_end = n;
        }
    }
}

impl AsyncWrite for Deflated {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.compress(data, FlushCompress::None)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_pos == 0 {
            // A sync flush ends everything written so far on a byte boundary the client can decode.
            this.compress(&[], FlushCompress::Sync)?;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
