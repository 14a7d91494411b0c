//! mbox (the mboxrd variant): a push splitter for reading and an entry writer, both pure.
//!
//! Reading: lines go in one at a time; a line starting `From ` begins a new message; `>From `, `>>From `...
//! lose one `>`; the newline before a separator belongs to the separator. Writing does the reverse, so
//! export then import gives back every message byte for byte.

/// What the splitter hands back when a message is complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Split {
    Message(Vec<u8>),
    /// A message was larger than the limit; its bytes were dropped as they came.
    TooLarge,
}

/// Splits an mbox into messages, holding at most one message (up to `message_bytes_max`).
pub struct Splitter {
    message_bytes_max: usize,
    current: Option<Vec<u8>>,
    too_large: bool,
}

fn is_separator(line: &[u8]) -> bool {
    line.starts_with(b"From ")
}

/// `>From `, `>>From `, ...: a quoted body line.
fn is_quoted_from(line: &[u8]) -> bool {
    let gt = line.iter().take_while(|&&b| b == b'>').count();
    gt > 0 && line[gt..].starts_with(b"From ")
}

impl Splitter {
    pub fn new(message_bytes_max: usize) -> Self {
        Splitter {
            message_bytes_max,
            current: None,
            too_large: false,
        }
    }

    /// Feeds one line, line end included. Returns the previous message when this line starts a new one.
    pub fn push_line(&mut self, line: &[u8]) -> Option<Split> {
        if is_separator(line) {
            let done = self.take();
            self.current = Some(Vec::new());
            return done;
        }
        let current = self.current.as_mut()?; // text before the first separator is not mail
        let line = if is_quoted_from(line) {
            &line[1..]
        } else {
            line
        };
        if current.len() + line.len() > self.message_bytes_max {
            self.too_large = true;
            current.clear();
        }
        if !self.too_large {
            current.extend_from_slice(line);
        }
        None
    }

    /// Feeds the rest of an over-long line (one that did not fit a read): never a separator or a quote.
    pub fn push_more(&mut self, bytes: &[u8]) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        if current.len() + bytes.len() > self.message_bytes_max {
            self.too_large = true;
            current.clear();
        }
        if !self.too_large {
            current.extend_from_slice(bytes);
        }
    }

    /// The last message, at the end of the input.
    pub fn finish(&mut self) -> Option<Split> {
        self.take()
    }

    fn take(&mut self) -> Option<Split> {
        let mut message = self.current.take()?;
        if std::mem::take(&mut self.too_large) {
            return Some(Split::TooLarge);
        }
        if message.last() == Some(&b'\n') {
            message.pop();
        }
        Some(Split::Message(message))
    }
}

/// One message as an mbox entry: the `From ` line, the message with `From ` lines quoted, and the
/// separating newline.
pub fn entry(sender: &str, asctime: &str, raw: &[u8]) -> Vec<u8> {
    let sender = if sender.is_empty() || sender.contains(char::is_whitespace) {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let mut out = format!("From {sender} {asctime}\n").into_bytes();
    out.reserve(raw.len() + 16);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if is_separator(line) || is_quoted_from(line) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], max: usize) -> Vec<Split> {
        let mut s = Splitter::new(max);
        let mut out: Vec<Split> = input
            .split_inclusive(|&b| b == b'\n')
            .filter_map(|l| s.push_line(l))
            .collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn round_trip_is_exact() {
        let messages: Vec<&[u8]> = vec![
            b"Subject: a\r\n\r\nFrom me\r\n>From you\r\n",
            b"Subject: b\n\nno newline at the end",
            b"",
            b"Subject: c\r\n\r\n\r\n\r\n",
        ];
        let mut mbox = b"preamble that is not mail\n".to_vec();
        for m in &messages {
            mbox.extend(entry("a@b", "Mon Nov 30 12:00:00 2026", m));
        }
        let got = split(&mbox, 1000);
        let want: Vec<Split> = messages
            .iter()
            .map(|m| Split::Message(m.to_vec()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn oversized_messages_are_reported_not_held() {
        let mut mbox = entry("a", "x", &[b'y'; 50]);
        mbox.extend(entry("a", "x", b"small"));
        assert_eq!(
            split(&mbox, 20),
            vec![Split::TooLarge, Split::Message(b"small".to_vec())]
        );
    }
}
