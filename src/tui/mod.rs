//! `jmail client`: the interactive terminal client. [`app`] holds state and handles keys (pure), [`view`]
//! draws it, [`net`] talks to the server on a thread of its own.

pub mod app;
mod net;
mod view;

use std::sync::mpsc;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::execute;

use app::{App, NetEvent};

use crate::client_tls::TrustSettings;

/// How long the screen waits for a key before looking for network events: the delay of pushed mail.
const EVENT_POLL_MILLIS: u64 = 50;

/// Runs the client until the user quits. The terminal is restored on every way out, panics included.
pub fn run(server: &str, user: &str, password: &str, trust: TrustSettings) -> std::io::Result<()> {
    let (events_tx, events) = mpsc::channel();
    let mut events = Some(events);
    let requests = net::spawn(
        server.to_string(),
        user.to_string(),
        password.to_string(),
        trust,
        events_tx,
    )?;
    let mut terminal = ratatui::init();
    let _ = execute!(std::io::stdout(), EnableBracketedPaste);
    let mut app = App::new(user, server);
    let result = (|| -> std::io::Result<()> {
        let mut dirty = true;
        while !app.quit {
            if dirty {
                terminal.draw(|frame| view::draw(frame, &app))?;
                dirty = false;
            }
            if event::poll(Duration::from_millis(EVENT_POLL_MILLIS))? {
                dirty = true;
                let asked = match event::read()? {
                    Event::Key(key) if key.kind != KeyEventKind::Release => app.on_key(key),
                    Event::Paste(text) => {
                        app.on_paste(&text);
                        Vec::new()
                    }
                    _ => Vec::new(), // resizes and the like: just redraw
                };
                for request in asked {
                    // A send fails only when the network thread has ended; its last event says why.
                    let _ = requests.send(request);
                }
            }
            while let Some(receiver) = &events {
                match receiver.try_recv() {
                    Ok(event) => {
                        app.on_net(event);
                        dirty = true;
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        app.on_net(NetEvent::Lost {
                            reason: "network thread ended".into(),
                            retry_secs: 0,
                        });
                        dirty = true;
                        events = None;
                    }
                }
            }
        }
        Ok(())
    })();
    let _ = execute!(std::io::stdout(), DisableBracketedPaste);
    ratatui::restore();
    // Dropping the sender logs the network side out.
    drop(requests);
    result
}
