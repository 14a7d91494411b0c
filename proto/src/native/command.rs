//! Commands of the native protocol, version 2, as the decoder yields them.

/// One client command, fully read (a SEND includes its whole body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `JMAIL <major>.<minor> [client-name]`: must be the first command.
    Hello { major: u32, minor: u32 },
    /// `LOGIN <user> <password>`.
    Login { user: String, password: String },
    /// `SEND <rcpt>[,<rcpt>...] [<subject> [KEEP]] {<n>}` followed by `n` body bytes. `KEEP` (2.1): keep
    /// a copy in the sender's Sent folder.
    Send {
        recipients: Vec<String>,
        subject: String,
        keep_sent: bool,
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
    /// `FOLDERS` (2.1): every folder with its counts.
    Folders,
    /// `SELECT <folder>` (2.1): the folder LIST, READ, MARK, DELETE, COPY, MOVE and WATCH work on.
    Select { folder: String },
    /// `CREATE <folder>` (2.1).
    Create { folder: String },
    /// `RENAME <folder> <new-name>` (2.1).
    Rename { from: String, to: String },
    /// `REMOVE <folder>` (2.1): deletes a folder and its messages.
    Remove { folder: String },
    /// `COPY <id> <folder>` (2.1).
    Copy { id: u32, folder: String },
    /// `MOVE <id> <folder>` (2.1).
    Move { id: u32, folder: String },
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
            Command::Folders => "FOLDERS",
            Command::Select { .. } => "SELECT",
            Command::Create { .. } => "CREATE",
            Command::Rename { .. } => "RENAME",
            Command::Remove { .. } => "REMOVE",
            Command::Copy { .. } => "COPY",
            Command::Move { .. } => "MOVE",
        }
    }

    /// The protocol minor version that introduced the command: a session that agreed on an older one
    /// answers it as unknown, as that version's servers did.
    pub fn since_minor(&self) -> u32 {
        match self {
            Command::Send {
                keep_sent: true, ..
            }
            | Command::Folders
            | Command::Select { .. }
            | Command::Create { .. }
            | Command::Rename { .. }
            | Command::Remove { .. }
            | Command::Copy { .. }
            | Command::Move { .. } => 1,
            _ => 0,
        }
    }
}
