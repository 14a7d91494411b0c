//! BDAT (CHUNKING, RFC 3030): a message sent in chunks of sizes announced in advance, with no dot-stuffing
//! and no end marker. Each chunk is exactly its announced bytes, read whether or not it is wanted (a
//! refused BDAT's bytes still arrive and must not be read as commands); what is kept is bounded by the
//! room left under the message size limit.

/// The end of one chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkEnd {
    /// The chunk's bytes, as sent.
    Bytes(Vec<u8>),
    /// The chunk did not fit in the room left; its bytes were read and dropped.
    TooBig,
    /// The chunk was not wanted (its BDAT was refused); its bytes were read and dropped.
    Dropped,
}

/// Reads the `size` bytes of one chunk.
#[derive(Debug)]
pub struct ChunkReceiver {
    left: u64,
    keep: bool,
    too_big: bool,
    room: usize,
    body: Vec<u8>,
}

impl ChunkReceiver {
    /// A chunk of `size` bytes, kept when `keep` and it fits in `room` bytes.
    pub fn new(size: u64, keep: bool, room: usize) -> ChunkReceiver {
        let too_big = keep && size > room as u64;
        ChunkReceiver {
            left: size,
            keep,
            too_big,
            room,
            body: Vec::new(),
        }
    }

    /// Bytes held now (what a server counts against its budget for input in flight).
    pub fn held_bytes(&self) -> usize {
        self.body.capacity()
    }

    /// Whether nothing is left to read (a chunk of size 0).
    pub fn is_done(&self) -> bool {
        self.left == 0
    }

    /// Takes bytes; returns how many were used and, once the chunk is complete, its end. Bytes after it
    /// are not used: they are the next command.
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<ChunkEnd>) {
        let used = (input.len() as u64).min(self.left) as usize;
        if self.keep && !self.too_big {
            debug_assert!(self.body.len() + used <= self.room);
            self.body.extend_from_slice(&input[..used]);
        }
        self.left -= used as u64;
        if self.left > 0 {
            return (used, None);
        }
        (used, Some(self.end()))
    }

    /// The end of a complete chunk.
    pub fn end(&mut self) -> ChunkEnd {
        match (self.keep, self.too_big) {
            (false, _) => ChunkEnd::Dropped,
            (true, true) => ChunkEnd::TooBig,
            (true, false) => ChunkEnd::Bytes(std::mem::take(&mut self.body)),
        }
    }
}

/// `message` with every bare LF and every bare CR made CRLF, so every stored message has canonical
/// line ends whichever way it came (RFC 5322 §2.3: CR and LF only together). A bare CR kept would be a
/// line end to some readers and not to others (a POP3 client could see a message end early), and the
/// relay's encoder turns it into CRLF anyway, which broke a DKIM signature made over the stored bytes.
pub fn canonical_line_ends(message: Vec<u8>) -> Vec<u8> {
    let bare_lf = |m: &[u8]| memchr::memchr_iter(b'\n', m).any(|at| at == 0 || m[at - 1] != b'\r');
    let bare_cr = |m: &[u8]| memchr::memchr_iter(b'\r', m).any(|at| m.get(at + 1) != Some(&b'\n'));
    if !bare_lf(&message) && !bare_cr(&message) {
        return message;
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / 16);
    let mut bytes = message.iter().peekable();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if bytes.peek() == Some(&&b'\n') {
                    bytes.next();
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(byte),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_line_ends_become_crlf_as_the_relay_would_send_them() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb", b"a\r\nb"),
            (b"hello\r.\r\n+OK\r\n", b"hello\r\n.\r\n+OK\r\n"),
            (b"\r\r\n", b"\r\n\r\n"),
            (b"end\r", b"end\r\n"),
            (b"\n\r", b"\r\n\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical_line_ends(input.to_vec()), want, "{input:?}");
            // The relay's encoder sends the same lines (before its own dot-stuffing and end).
            let (mut stored, mut sent) = (Vec::new(), Vec::new());
            let mut encoder = crate::smtp_client::DataEncoder::default();
            encoder.encode(&canonical_line_ends(input.to_vec()), &mut stored);
            let mut encoder = crate::smtp_client::DataEncoder::default();
            encoder.encode(input, &mut sent);
            assert_eq!(stored, sent, "{input:?}");
        }
    }

    #[test]
    fn a_chunk_is_exactly_its_size_in_any_split() {
        let input = b"Subject: x\r\n\r\nhi\r\nQUIT\r\n";
        let size = 18;
        let mut whole = ChunkReceiver::new(size, true, 100);
        assert_eq!(
            whole.push(input),
            (18, Some(ChunkEnd::Bytes(input[..18].to_vec())))
        );
        let mut bytewise = ChunkReceiver::new(size, true, 100);
        let mut end = None;
        for (n, b) in input[..18].iter().enumerate() {
            let (used, got) = bytewise.push(std::slice::from_ref(b));
            assert_eq!(used, 1);
            assert_eq!(got.is_some(), n == 17);
            end = got.or(end);
        }
        assert_eq!(end, Some(ChunkEnd::Bytes(input[..18].to_vec())));
    }

    #[test]
    fn too_big_and_unwanted_chunks_are_read_and_dropped() {
        let mut big = ChunkReceiver::new(10, true, 4);
        assert_eq!(big.push(b"0123456789NOOP"), (10, Some(ChunkEnd::TooBig)));
        assert_eq!(big.held_bytes(), 0);
        let mut unwanted = ChunkReceiver::new(u64::MAX, false, 4);
        assert_eq!(unwanted.push(&[b'x'; 1000]), (1000, None));
        assert_eq!(unwanted.held_bytes(), 0);
        let mut empty = ChunkReceiver::new(0, true, 4);
        assert!(empty.is_done());
        assert_eq!(empty.end(), ChunkEnd::Bytes(vec![]));
    }

    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(
            canonical_line_ends(b"a\nb\r\n\nc".to_vec()),
            b"a\r\nb\r\n\r\nc"
        );
        assert_eq!(canonical_line_ends(b"\n".to_vec()), b"\r\n");
        assert_eq!(canonical_line_ends(b"a\r\nb".to_vec()), b"a\r\nb");
        assert_eq!(canonical_line_ends(b"a\rb".to_vec()), b"a\r\nb");
    }
}
