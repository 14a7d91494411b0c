//! The client commands: send, inbox, read, delete, mark, watch, folders, move, copy. Each is one
//! native-protocol session.

use std::collections::HashSet;
use std::io::{Read, Write};

use anyhow::Context;
use clap::Args;
use jmail_proto::native::reply::{Summary, Untagged};

use super::prompt;
use crate::client::Client;
use crate::client_tls::TrustSettings;
use crate::message::render;
use jmail_proto::mime::attachment_contents;

#[derive(Args)]
pub struct ConnArgs {
    /// Server address.
    #[arg(long, env = "JMAIL_SERVER", default_value = "127.0.0.1:2005")]
    server: String,
    /// Your user name. The password comes from JMAIL_PASSWORD or a prompt.
    #[arg(long, env = "JMAIL_USER")]
    user: String,
    /// Trust this CA (PEM) for the server's certificate instead of the system's roots. A certificate no
    /// root vouches for is pinned on first use in ~/.config/jmail/known_servers (JMAIL_KNOWN_SERVERS).
    #[arg(long, env = "JMAIL_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
}

impl ConnArgs {
    fn trust(&self) -> TrustSettings {
        TrustSettings {
            ca_file: self.ca_file.clone(),
            known_servers: TrustSettings::default_known_servers(),
        }
    }
}

/// The folder a message command works on.
#[derive(Args)]
pub struct FolderArg {
    /// The folder (`jmail folders` lists them); INBOX by default.
    #[arg(long, default_value = "INBOX", value_name = "NAME")]
    folder: String,
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long, default_value = "")]
    subject: String,
    /// The message text; read from standard input when absent.
    #[arg(long)]
    message: Option<String>,
    /// Recipients: `bob` or `bob@domain`.
    #[arg(required = true)]
    recipients: Vec<String>,
}

#[derive(Args)]
pub struct InboxArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    folder: FolderArg,
    /// Print JSON (see README, "JSON output").
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ReadArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    folder: FolderArg,
    id: u32,
    /// Print the stored RFC 5322 bytes unchanged.
    #[arg(long)]
    raw: bool,
    /// Save every attachment into this folder, each under its own file name (never overwriting a file).
    #[arg(long, value_name = "DIR")]
    save_attachments: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct IdArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    folder: FolderArg,
    id: u32,
}

#[derive(Args)]
pub struct MarkArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    folder: FolderArg,
    id: u32,
    /// Mark unread instead of read.
    #[arg(long)]
    unread: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    folder: FolderArg,
    /// Print one JSON object per new message.
    #[arg(long)]
    json: bool,
}

/// Connects and logs in, then runs `f` on the session.
fn session<T>(
    conn: &ConnArgs,
    f: impl AsyncFnOnce(&mut Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let password = prompt::login_password(&conn.user)?;
    session_with(conn, &password, None, f)
}

/// [`session`] working on a folder other than INBOX when one is named.
fn session_in<T>(
    conn: &ConnArgs,
    folder: &FolderArg,
    f: impl AsyncFnOnce(&mut Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let password = prompt::login_password(&conn.user)?;
    session_with(conn, &password, Some(&folder.folder), f)
}

fn session_with<T>(
    conn: &ConnArgs,
    password: &str,
    folder: Option<&str>,
    f: impl AsyncFnOnce(&mut Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    super::runtime()?.block_on(async {
        let mut client = Client::connect_secure(&conn.server, &conn.trust()).await?;
        client
            .login(&conn.user, password)
            .await
            .context("login failed")?;
        // INBOX is where a session starts: a 2.0 server is still usable without SELECT.
        if let Some(folder) = folder.filter(|f| !f.eq_ignore_ascii_case("INBOX")) {
            client
                .select(folder)
                .await
                .with_context(|| format!("opening folder {folder:?}"))?;
        }
        let result = f(&mut client).await?;
        let _ = client.logout().await;
        Ok(result)
    })
}

/// `jmail client`: the interactive terminal client.
pub fn interactive(conn: ConnArgs) -> anyhow::Result<()> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("jmail client needs a terminal; use send, inbox and read in scripts");
    }
    // Logging in once before the screen opens makes a wrong password a plain error, not a screen that
    // keeps retrying.
    let password = prompt::login_password(&conn.user)?;
    session_with(&conn, &password, None, async |_| Ok(()))?;
    crate::tui::run(&conn.server, &conn.user, &password, conn.trust())
        .context("running the terminal client")
}

pub fn send(args: SendArgs) -> anyhow::Result<()> {
    let body = match &args.message {
        Some(m) => m.clone().into_bytes(),
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the message from standard input")?;
            body
        }
    };
    let sent = session(&args.conn, async |c| {
        Ok(c.send_and_keep(&args.recipients, &args.subject, &body)
            .await?)
    })?;
    println!("{sent}");
    Ok(())
}

/// The stable JSON form of a listed message (README, "JSON output").
fn summary_json(s: &Summary) -> serde_json::Value {
    serde_json::json!({
        "id": s.id, "date": s.date, "from": s.from, "subject": s.subject, "size": s.size, "seen": s.seen,
    })
}

pub fn inbox(args: InboxArgs) -> anyhow::Result<()> {
    let listing = session_in(&args.conn, &args.folder, async |c| Ok(c.list(0).await?))?;
    // Written, not printed: a reader that goes away (`| head`) ends the command quietly (see main).
    let mut out = std::io::stdout().lock();
    let mut messages = listing.messages;
    messages.sort_by_key(|m| m.id);
    if args.json {
        let list: Vec<_> = messages.iter().map(summary_json).collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"modseq": listing.modseq, "messages": list})
        )?;
        return Ok(());
    }
    if messages.is_empty() {
        writeln!(out, "no messages")?;
        return Ok(());
    }
    writeln!(
        out,
        "  {:>5}  {:<20}  {:<28}  {:>8}  SUBJECT",
        "ID", "DATE", "FROM", "SIZE"
    )?;
    for m in &messages {
        let unread = if m.seen { ' ' } else { '*' };
        writeln!(
            out,
            "{unread} {:>5}  {:<20}  {:<28}  {:>8}  {}",
            m.id, m.date, m.from, m.size, m.subject
        )?;
    }
    Ok(())
}

pub fn read(args: ReadArgs) -> anyhow::Result<()> {
    let raw = session_in(&args.conn, &args.folder, async |c| {
        Ok(c.read(args.id).await?)
    })?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        out.write_all(&raw)?;
        return Ok(());
    }
    let rendered = render(&raw);
    out.write_all(rendered.to_terminal_text().as_bytes())?;
    if let Some(dir) = &args.save_attachments {
        for (index, attachment) in rendered.attachments.iter().enumerate() {
            let bytes = attachment_contents(&raw, index).unwrap_or_default();
            let path = save_attachment(dir, attachment.name.as_deref(), index, &bytes)?;
            writeln!(out, "saved {}", path.display())?;
        }
    }
    Ok(())
}

/// Writes one attachment into `dir` under the last component of the sender's file name (so a name like
/// `../../.bashrc` stays inside `dir`), or `attachment-N` without one; an existing file is never
/// overwritten: `name (2).ext` and so on is tried instead.
fn save_attachment(
    dir: &std::path::Path,
    name: Option<&str>,
    index: usize,
    bytes: &[u8],
) -> anyhow::Result<std::path::PathBuf> {
    let base = name
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|n| n.trim_start_matches('.').trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("attachment-{}", index + 1));
    let (stem, ext) = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (base.clone(), String::new()),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for n in 1..=ATTACHMENT_NAME_TRIES_MAX {
        let file = if n == 1 {
            base.clone()
        } else {
            format!("{stem} ({n}){ext}")
        };
        let path = dir.join(file);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        }
    }
    anyhow::bail!(
        "{} already holds {ATTACHMENT_NAME_TRIES_MAX} files named like {base}",
        dir.display()
    )
}

/// How many `name (N).ext` variants are tried before saving an attachment gives up.
const ATTACHMENT_NAME_TRIES_MAX: usize = 1000;

pub fn delete(args: IdArgs) -> anyhow::Result<()> {
    session_in(&args.conn, &args.folder, async |c| {
        Ok(c.delete(args.id).await?)
    })?;
    println!("deleted message {}", args.id);
    Ok(())
}

pub fn mark(args: MarkArgs) -> anyhow::Result<()> {
    session_in(&args.conn, &args.folder, async |c| {
        Ok(c.mark(args.id, !args.unread).await?)
    })?;
    println!(
        "marked message {} {}",
        args.id,
        if args.unread { "unread" } else { "read" }
    );
    Ok(())
}

pub fn watch(args: WatchArgs) -> anyhow::Result<()> {
    session_in(&args.conn, &args.folder, async |c| {
        let listing = c.list(0).await?;
        let mut known: HashSet<u32> = listing.messages.iter().map(|m| m.id).collect();
        c.watch(listing.modseq).await?;
        // On stderr, so it never mixes with --json output; it also tells scripts that WATCH is in place.
        eprintln!("watching {} for new mail (Ctrl-C to stop)", args.conn.user);
        loop {
            let Untagged::Msg(m) = c.next_change().await? else {
                continue;
            };
            if !known.insert(m.id) {
                continue; // a flag change of a message already shown
            }
            if args.json {
                println!("{}", summary_json(&m));
            } else {
                println!(
                    "new message {}  {}  from {}: {}",
                    m.id, m.date, m.from, m.subject
                );
            }
            std::io::stdout().flush()?;
        }
    })
}

#[derive(Args)]
pub struct FoldersArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Print JSON: [{"name", "role" (or null), "messages", "unseen", "bytes"}].
    #[arg(long)]
    json: bool,
}

/// `jmail folders`: every folder with its counts.
pub fn folders(args: FoldersArgs) -> anyhow::Result<()> {
    let folders = session(&args.conn, async |c| Ok(c.folders().await?))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = folders
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "role": f.role, "messages": f.messages, "unseen": f.unseen,
                    "bytes": f.bytes,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<32} {:<8} {:>8} {:>8} {:>12}",
        "FOLDER", "ROLE", "MESSAGES", "UNREAD", "BYTES"
    )?;
    for f in &folders {
        writeln!(
            out,
            "{:<32} {:<8} {:>8} {:>8} {:>12}",
            f.name,
            f.role.as_deref().unwrap_or(""),
            f.messages,
            f.unseen,
            f.bytes
        )?;
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum FolderCommand {
    /// Create a folder (and any missing parents: `Work/2026`).
    Create(FolderNameArgs),
    /// Rename a folder; its subfolders move with it. Renaming INBOX moves its mail into the new folder.
    Rename(FolderRenameArgs),
    /// Remove a folder and the mail in it (not INBOX).
    Remove(FolderNameArgs),
}

#[derive(Args)]
pub struct FolderNameArgs {
    #[command(flatten)]
    conn: ConnArgs,
    name: String,
}

#[derive(Args)]
pub struct FolderRenameArgs {
    #[command(flatten)]
    conn: ConnArgs,
    from: String,
    to: String,
}

pub fn folder(command: FolderCommand) -> anyhow::Result<()> {
    let (conn, word, names, done) = match &command {
        FolderCommand::Create(a) => (&a.conn, "CREATE", vec![a.name.as_str()], "created"),
        FolderCommand::Rename(a) => (
            &a.conn,
            "RENAME",
            vec![a.from.as_str(), a.to.as_str()],
            "renamed",
        ),
        FolderCommand::Remove(a) => (&a.conn, "REMOVE", vec![a.name.as_str()], "removed"),
    };
    session(conn, async |c| Ok(c.folder_command(word, &names).await?))?;
    println!("{done} folder {}", names.join(" -> "));
    Ok(())
}

#[derive(Args)]
pub struct MoveArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The folder the message is in now.
    #[command(flatten)]
    folder: FolderArg,
    id: u32,
    /// The folder to put it in.
    to: String,
}

/// `jmail move` and `jmail copy`: prints the message's id in its new folder.
pub fn copy(args: MoveArgs, remove: bool) -> anyhow::Result<()> {
    let new = session_in(&args.conn, &args.folder, async |c| {
        Ok(c.copy(args.id, &args.to, remove).await?)
    })?;
    let verb = if remove { "moved" } else { "copied" };
    println!("{verb} message {} to {} as {new}", args.id, args.to);
    Ok(())
}
