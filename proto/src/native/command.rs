//! Commands of the native protocol, version 2, as the decoder yields them.

/// One client command, fully read (a SEND includes its whole body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `JMAIL <major>.<minor> [client-name]`: must be the first command.
    Hello { major: u32, minor: u32 },
    /// `LOGIN <user> <password>`.
    Login { user: String, password: String },
    /// `SEND <rcpt>[,<rcpt>...] <subject> {<n>}` followed by `n` body bytes.
    Send {
        recipients: Vec<String>,
        subject: String,
        body: Vec<u8>,
    },
    /// `LIST [<modseq>]`: changes after `since` (0 = everything).
    List { since: u64 },
    /// `READ <id>`: the stored RFC 5322 bytes; marks the message seen.
    Read { id: u32 },
    /// `MARK <id> SEEN|UNSEEN`.
    Mark { id: u32, seen: bool },
    /// `DELETE <id>`.
    Delete { id: u32 },
    /// `WATCH [<modseq>]`: push changes after `since` until `DONE`.
    Watch { since: u64 },
    /// `DONE`: ends WATCH.
    Done,
    /// `NOOP`.
    Noop,
    /// `CAPA`: lists limits and extensions.
    Capa,
    /// `STARTTLS`: the TLS handshake follows the OK.
    StartTls,
    /// `LOGOUT`.
    Logout,
}

impl Command {
    /// The command's keyword, for logs and error replies.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Hello { .. } => "JMAIL",
            Command::Login { .. } => "LOGIN",
            Command::Send { .. } => "SEND",
            Command::List { .. } => "LIST",
            Command::Read { .. } => "READ",
            Command::Mark { .. } => "MARK",
            Command::Delete { .. } => "DELETE",
            Command::Watch { .. } => "WATCH",
            Command::Done => "DONE",
            Command::Noop => "NOOP",
            Command::Capa => "CAPA",
            Command::StartTls => "STARTTLS",
            Command::Logout => "LOGOUT",
        }
    }
}
