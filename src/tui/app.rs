//! The interactive client's state and key handling. Pure: keys and network events in, requests out, so it
//! is tested without a terminal or a server.

use std::collections::BTreeMap;

use jmail_proto::legacy::{Input, parse_input};
use jmail_proto::native::reply::{Summary, Untagged};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::client::Listing;
use crate::message::render;

/// Longest subject made from the first line of a quick `(bob) text` message, in characters.
const QUICK_SUBJECT_CHARS_MAX: usize = 60;
/// Longest input line or compose field, in characters; a paste beyond it is cut, not buffered without end.
pub const INPUT_CHARS_MAX: usize = 64 * 1024;

/// What the client asks the network side to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Refresh,
    Read(u32),
    Mark {
        id: u32,
        seen: bool,
    },
    Delete(u32),
    Send {
        to: Vec<String>,
        subject: String,
        body: String,
    },
}

/// What the network side reports.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// Logged in (again): the whole mailbox.
    Connected(Listing),
    /// The answer to a refresh: changes since the last known state.
    Changes(Listing),
    /// A change pushed by the server while watching.
    Pushed(Untagged),
    /// The bytes of a message asked for with [`Request::Read`].
    Message { id: u32, raw: Vec<u8> },
    /// A request succeeded; the text says what happened.
    Done(String),
    /// A request was refused; the connection is fine.
    Failed(String),
    /// The connection is gone; another try follows in `retry_secs`.
    Lost { reason: String, retry_secs: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Connected,
    Lost { reason: String, retry_secs: u64 },
}

/// The message shown in the reading pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub id: u32,
    /// Header lines and body as text; `None` while loading.
    pub text: Option<String>,
    pub scroll: u16,
}

/// Which compose field has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    To,
    Subject,
    Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub field: Field,
}

pub struct App {
    pub user: String,
    pub server: String,
    /// The mailbox by id; shown newest first.
    pub messages: BTreeMap<u32, Summary>,
    pub selected: Option<u32>,
    pub reading: Option<Reading>,
    pub input: String,
    pub compose: Option<Compose>,
    /// Delete asked for this message; waiting for y/n.
    pub confirm_delete: Option<u32>,
    pub status: String,
    pub connection: Connection,
    pub quit: bool,
}

impl App {
    pub fn new(user: &str, server: &str) -> App {
        App {
            user: user.to_string(),
            server: server.to_string(),
            messages: BTreeMap::new(),
            selected: None,
            reading: None,
            input: String::new(),
            compose: None,
            confirm_delete: None,
            status: "connecting...".to_string(),
            connection: Connection::Connecting,
            quit: false,
        }
    }

    /// Ids in display order: newest first.
    pub fn order(&self) -> Vec<u32> {
        self.messages.keys().rev().copied().collect()
    }

    pub fn unread(&self) -> usize {
        self.messages.values().filter(|m| !m.seen).count()
    }

    pub fn on_net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected(listing) => {
                self.messages.clear();
                self.merge(listing);
                self.connection = Connection::Connected;
                self.status = "connected".to_string();
                if self
                    .selected
                    .is_none_or(|id| !self.messages.contains_key(&id))
                {
                    self.selected = self.order().first().copied();
                }
            }
            NetEvent::Changes(listing) => {
                let before = self.messages.len();
                self.merge(listing);
                let new = self.messages.len().saturating_sub(before);
                self.status = format!("refreshed; {new} new");
            }
            NetEvent::Pushed(Untagged::Msg(m)) => {
                if !self.messages.contains_key(&m.id) {
                    self.status = format!("new mail from {}", m.from);
                    if self.selected.is_none() {
                        self.selected = Some(m.id);
                    }
                }
                self.messages.insert(m.id, m);
            }
            NetEvent::Pushed(Untagged::Gone(id)) => self.forget(id),
            NetEvent::Pushed(_) => {}
            NetEvent::Message { id, raw } => {
                if let Some(reading) = self.reading.as_mut().filter(|r| r.id == id) {
                    reading.text = Some(reading_text(&raw));
                }
                if let Some(m) = self.messages.get_mut(&id) {
                    m.seen = true;
                }
            }
            NetEvent::Done(text) => self.status = text,
            NetEvent::Failed(text) => self.status = format!("refused: {text}"),
            NetEvent::Lost { reason, retry_secs } => {
                self.status = format!("connection lost: {reason}");
                self.connection = Connection::Lost { reason, retry_secs };
            }
        }
    }

    fn merge(&mut self, listing: Listing) {
        for id in listing.gone {
            self.forget(id);
        }
        for m in listing.messages {
            self.messages.insert(m.id, m);
        }
    }

    fn forget(&mut self, id: u32) {
        if self.messages.remove(&id).is_none() {
            return;
        }
        if self.reading.as_ref().is_some_and(|r| r.id == id) {
            self.reading = None;
        }
        if self.selected == Some(id) {
            self.selected = self.order().first().copied();
        }
    }

    /// Handles one key press; returns what to ask of the server.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
            self.quit = true;
            return Vec::new();
        }
        if let Some(id) = self.confirm_delete.take() {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.status = format!("deleting message {id}...");
                    vec![Request::Delete(id)]
                }
                _ => {
                    self.status = "not deleted".to_string();
                    Vec::new()
                }
            };
        }
        if self.compose.is_some() {
            return self.on_compose_key(key, ctrl);
        }
        match key.code {
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::Home => self.move_selection(isize::MIN),
            KeyCode::End => self.move_selection(isize::MAX),
            KeyCode::PageUp => self.scroll(-10),
            KeyCode::PageDown => self.scroll(10),
            KeyCode::Delete => self.ask_delete(),
            KeyCode::Char('d') if ctrl => self.ask_delete(),
            KeyCode::Char('u') if ctrl => self.toggle_seen(),
            KeyCode::Char('n') if ctrl => {
                self.compose = Some(Compose {
                    to: String::new(),
                    subject: String::new(),
                    body: String::new(),
                    field: Field::To,
                });
                self.status = "compose: Tab next field, Ctrl-S send, Esc cancel".to_string();
                Vec::new()
            }
            KeyCode::Esc if !self.input.is_empty() => {
                self.input.clear();
                Vec::new()
            }
            KeyCode::Esc => {
                self.quit = true;
                Vec::new()
            }
            KeyCode::Enter => self.submit_input(),
            KeyCode::Backspace => {
                self.input.pop();
                Vec::new()
            }
            KeyCode::Char(c) if !ctrl => {
                push_bounded(&mut self.input, c);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Text pasted into the terminal (bracketed paste): goes where typing would. A line break becomes `\n`
    /// on the input line (which turns it back into a line break when sent), a space in one-line fields.
    pub fn on_paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let (target, line_break) = match self.compose.as_mut() {
            Some(c) => match c.field {
                Field::To => (&mut c.to, " "),
                Field::Subject => (&mut c.subject, " "),
                Field::Body => (&mut c.body, "\n"),
            },
            None => (&mut self.input, "\\n"),
        };
        for c in text.replace('\n', line_break).chars() {
            push_bounded(target, c);
        }
    }

    fn submit_input(&mut self) -> Vec<Request> {
        let line = std::mem::take(&mut self.input);
        if line.trim().is_empty() {
            self.status = "refreshing...".to_string();
            return vec![Request::Refresh];
        }
        match parse_input(line.as_bytes()) {
            Input::Send { to, text } => {
                let to: Vec<String> = to.split(',').map(|t| t.trim().to_string()).collect();
                self.status = format!("sending to {}...", to.join(", "));
                vec![Request::Send {
                    to,
                    subject: quick_subject(&text),
                    body: text,
                }]
            }
            Input::Refresh | Input::Invalid => {
                self.input = line;
                self.status =
                    "type (name) message to send, Ctrl-N to compose, Enter on an empty line to refresh"
                        .to_string();
                Vec::new()
            }
        }
    }

    fn on_compose_key(&mut self, key: KeyEvent, ctrl: bool) -> Vec<Request> {
        let Some(compose) = self.compose.as_mut() else {
            return Vec::new();
        };
        let field = match compose.field {
            Field::To => &mut compose.to,
            Field::Subject => &mut compose.subject,
            Field::Body => &mut compose.body,
        };
        match key.code {
            KeyCode::Esc => {
                self.compose = None;
                self.status = "message discarded".to_string();
            }
            KeyCode::Char('s') if ctrl => return self.send_compose(),
            KeyCode::Tab => compose.field = next_field(compose.field),
            KeyCode::BackTab => compose.field = next_field(next_field(compose.field)),
            KeyCode::Enter if compose.field == Field::Body => push_bounded(field, '\n'),
            KeyCode::Enter => compose.field = next_field(compose.field),
            KeyCode::Backspace => {
                field.pop();
            }
            KeyCode::Char(c) if !ctrl => push_bounded(field, c),
            _ => {}
        }
        Vec::new()
    }

    fn send_compose(&mut self) -> Vec<Request> {
        let Some(compose) = self.compose.take() else {
            return Vec::new();
        };
        let to: Vec<String> = compose
            .to
            .split([',', ' '])
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if to.is_empty() {
            self.status = "say who the message is for".to_string();
            self.compose = Some(Compose {
                field: Field::To,
                ..compose
            });
            return Vec::new();
        }
        self.status = format!("sending to {}...", to.join(", "));
        vec![Request::Send {
            to,
            subject: compose.subject,
            body: compose.body,
        }]
    }

    fn move_selection(&mut self, by: isize) -> Vec<Request> {
        let order = self.order();
        if order.is_empty() {
            return Vec::new();
        }
        let current = self
            .selected
            .and_then(|id| order.iter().position(|&o| o == id));
        let next = match current {
            None => 0,
            Some(i) => i.saturating_add_signed(by).min(order.len() - 1),
        };
        let id = order[next];
        if current == Some(next) && self.reading.as_ref().is_some_and(|r| r.id == id) {
            return Vec::new();
        }
        self.selected = Some(id);
        self.reading = Some(Reading {
            id,
            text: None,
            scroll: 0,
        });
        vec![Request::Read(id)]
    }

    fn scroll(&mut self, by: i32) -> Vec<Request> {
        if let Some(r) = self.reading.as_mut() {
            r.scroll = (i32::from(r.scroll) + by).clamp(0, i32::from(u16::MAX)) as u16;
        }
        Vec::new()
    }

    fn ask_delete(&mut self) -> Vec<Request> {
        if let Some(id) = self.selected {
            self.confirm_delete = Some(id);
            self.status = format!("delete message {id}? y/n");
        }
        Vec::new()
    }

    fn toggle_seen(&mut self) -> Vec<Request> {
        let Some(m) = self.selected.and_then(|id| self.messages.get_mut(&id)) else {
            return Vec::new();
        };
        m.seen = !m.seen;
        vec![Request::Mark {
            id: m.id,
            seen: m.seen,
        }]
    }
}

fn next_field(field: Field) -> Field {
    match field {
        Field::To => Field::Subject,
        Field::Subject => Field::Body,
        Field::Body => Field::To,
    }
}

fn push_bounded(text: &mut String, c: char) {
    if text.len() < INPUT_CHARS_MAX {
        text.push(c);
    }
}

/// The subject of a quick message: its first line, cut at a word when long.
fn quick_subject(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    if first.chars().count() <= QUICK_SUBJECT_CHARS_MAX {
        return first.to_string();
    }
    let cut: String = first.chars().take(QUICK_SUBJECT_CHARS_MAX).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}...")
}

/// What the reading pane shows of a message: a few headers, a blank line, the text, the attachments.
fn reading_text(raw: &[u8]) -> String {
    render(raw).to_terminal_text().replace('\t', "    ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn summary(id: u32, seen: bool) -> Summary {
        Summary {
            id,
            modseq: u64::from(id),
            seen,
            size: 10,
            date: "2026-11-30T12:00:00Z".into(),
            from: "bob@localhost".into(),
            subject: format!("s{id}"),
        }
    }

    fn typed(app: &mut App, text: &str) -> Vec<Request> {
        for c in text.chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter))
    }

    fn connected(app: &mut App, ids: &[u32]) {
        app.on_net(NetEvent::Connected(Listing {
            messages: ids.iter().map(|&i| summary(i, false)).collect(),
            gone: vec![],
            modseq: 9,
        }));
    }

    #[test]
    fn quick_send_and_refresh() {
        let mut app = App::new("alice", "x");
        assert_eq!(
            typed(&mut app, "(bob) hello there\\nsecond"),
            vec![Request::Send {
                to: vec!["bob".into()],
                subject: "hello there".into(),
                body: "hello there\nsecond".into(),
            }]
        );
        assert!(app.input.is_empty());
        assert_eq!(typed(&mut app, ""), vec![Request::Refresh]);
        assert_eq!(typed(&mut app, "no parens"), vec![]);
        assert_eq!(app.input, "no parens", "a line that is not a send is kept");
    }

    #[test]
    fn navigation_reads_and_marks() {
        let mut app = App::new("alice", "x");
        connected(&mut app, &[1, 2, 3]);
        assert_eq!(app.selected, Some(3), "newest first");
        assert_eq!(app.on_key(key(KeyCode::Down)), vec![Request::Read(2)]);
        app.on_net(NetEvent::Message {
            id: 2,
            raw: b"From: bob@localhost\r\nSubject: s2\r\n\r\nbody text\r\n".to_vec(),
        });
        assert!(app.messages[&2].seen);
        assert!(
            app.reading
                .as_ref()
                .unwrap()
                .text
                .as_ref()
                .unwrap()
                .contains("body text")
        );
        assert_eq!(
            app.on_key(ctrl('u')),
            vec![Request::Mark { id: 2, seen: false }]
        );
        assert_eq!(app.on_key(key(KeyCode::Delete)), vec![]);
        assert_eq!(
            app.on_key(key(KeyCode::Char('y'))),
            vec![Request::Delete(2)]
        );
        app.on_net(NetEvent::Pushed(Untagged::Gone(2)));
        assert!(app.reading.is_none());
        assert_eq!(app.order(), vec![3, 1]);
    }

    #[test]
    fn push_adds_mail_and_compose_sends() {
        let mut app = App::new("alice", "x");
        connected(&mut app, &[]);
        app.on_net(NetEvent::Pushed(Untagged::Msg(summary(7, false))));
        assert_eq!(app.unread(), 1);
        assert_eq!(app.selected, Some(7));
        app.on_key(ctrl('n'));
        for c in "bob, carol".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Tab));
        app.on_paste("Plans");
        app.on_key(key(KeyCode::Enter));
        for c in "a".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter));
        app.on_key(key(KeyCode::Char('b')));
        assert_eq!(
            app.on_key(ctrl('s')),
            vec![Request::Send {
                to: vec!["bob".into(), "carol".into()],
                subject: "Plans".into(),
                body: "a\nb".into(),
            }]
        );
        assert!(app.compose.is_none());
    }

    #[test]
    fn quit_keys() {
        let mut app = App::new("alice", "x");
        app.on_key(key(KeyCode::Char('x')));
        app.on_key(key(KeyCode::Esc));
        assert!(!app.quit, "Esc first clears the input line");
        app.on_key(key(KeyCode::Esc));
        assert!(app.quit);
    }

    #[test]
    fn long_quick_subject_is_cut_at_a_word() {
        let s = quick_subject(&"word ".repeat(30));
        assert!(s.ends_with("word...") && s.chars().count() <= QUICK_SUBJECT_CHARS_MAX + 3);
    }
}
