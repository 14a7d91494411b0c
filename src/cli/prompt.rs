//! Questions asked on a terminal: port, passwords, confirmations.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether there is a terminal to ask a password on: the controlling terminal, which rpassword reads
/// (`/dev/tty`), even when standard input is a pipe (`echo text | jmail send ...`).
fn has_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// Asks a question on the terminal and returns the answer without its line end.
pub fn ask(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the answer")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one line from standard input (for `--password-stdin`).
pub fn stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// A new password: from stdin, or asked twice on a terminal.
pub fn new_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        return stdin_line();
    }
    if !has_terminal() {
        bail!("no terminal to ask for a password; use --password-stdin");
    }
    let first = rpassword::prompt_password("New password: ")?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

/// The password for a client command: `JMAIL_PASSWORD`, else a prompt.
pub fn login_password(user: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("JMAIL_PASSWORD") {
        return Ok(p);
    }
    if !has_terminal() {
        bail!("set JMAIL_PASSWORD or run in a terminal to be asked for the password");
    }
    Ok(rpassword::prompt_password(format!(
        "Password for {user}: "
    ))?)
}
