//! Draws the interactive client: a header, the inbox, the reading pane (or the compose form), the input
//! line and a line of status and keys. Fits an 80×24 terminal and follows resizes.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};

use super::app::{App, Compose, Connection, Field};

/// Inbox rows shown at most; the reading pane gets the rest.
const LIST_ROWS_MAX: u16 = 10;
/// The keys, in the status line when there is room (the full list is in the README).
const KEYS_HELP: &str = "↑↓ read ^U unread Del delete ^N compose Esc quit";

pub fn draw(frame: &mut Frame, app: &App) {
    let messages = u16::try_from(app.messages.len()).unwrap_or(u16::MAX);
    let list_rows = messages.clamp(1, LIST_ROWS_MAX) + 2;
    let [header, list, pane, input, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(list_rows),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, app, header);
    draw_list(frame, app, list);
    match &app.compose {
        Some(compose) => draw_compose(frame, compose, pane),
        None => draw_reading(frame, app, pane),
    }
    draw_input(frame, app, input);
    // The status first; the keys when they fit beside it.
    let width = usize::from(status.width);
    let mut line = app.status.clone();
    if line.chars().count() + KEYS_HELP.chars().count() + 3 <= width {
        line = format!(
            "{line:<w$}{KEYS_HELP}",
            w = width - KEYS_HELP.chars().count()
        );
    } else if line.is_empty() {
        line = KEYS_HELP.to_string();
    }
    frame.render_widget(Paragraph::new(line).reversed(), status);
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let connection = match &app.connection {
        Connection::Connecting => Span::raw("connecting"),
        Connection::Connected => Span::raw("● connected").green(),
        Connection::Lost { retry_secs: 0, .. } => Span::raw("○ offline").red(),
        Connection::Lost { retry_secs, .. } => {
            Span::raw(format!("○ offline, retry in {retry_secs}s")).red()
        }
    };
    let line = Line::from(vec![
        Span::raw(" Jmail ").bold(),
        Span::raw(format!(" {} @ {}  ", app.user, app.server)),
        Span::raw(format!(
            "{} {}, {} unread  ",
            app.messages.len(),
            if app.messages.len() == 1 {
                "message"
            } else {
                "messages"
            },
            app.unread()
        )),
        connection,
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_list(frame: &mut Frame, app: &App, area: Rect) {
    let order = app.order();
    let items: Vec<ListItem> = order
        .iter()
        .map(|id| {
            let m = &app.messages[id];
            // `2026-11-30T12:00:00Z` → `11-30 12:00`
            let date = m.date.get(5..16).unwrap_or(&m.date).replace('T', " ");
            let subject = if m.subject.is_empty() {
                "(no subject)"
            } else {
                m.subject.as_str()
            };
            let marker = if m.seen { "  " } else { "● " };
            let line = Line::from(format!(
                "{marker}{:>4} {date}  {:<18.18}  {subject}",
                m.id, m.from
            ));
            let style = if m.seen {
                Style::default()
            } else {
                Style::default().add_modifier(Modifier::BOLD)
            };
            ListItem::new(line).style(style)
        })
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title(" Inbox "))
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected(
        app.selected
            .and_then(|s| order.iter().position(|&id| id == s)),
    );
    frame.render_stateful_widget(list, area, &mut state);
}

fn draw_reading(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title(" Message ");
    let (text, scroll) = match &app.reading {
        None if app.messages.is_empty() => (Text::raw("No mail yet."), 0),
        None => (Text::raw("Press ↑ or ↓ to read the selected message."), 0),
        Some(r) => match &r.text {
            None => (Text::raw(format!("Loading message {}...", r.id)), 0),
            Some(t) => (Text::raw(t.as_str()), r.scroll),
        },
    };
    let pane = Paragraph::new(text)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0));
    frame.render_widget(pane, area);
}

fn draw_compose(frame: &mut Frame, compose: &Compose, area: Rect) {
    let block = Block::bordered().title(" New message: Tab next field, Ctrl-S send, Esc cancel ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [to, subject, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    let label = |name: &str, field: Field| {
        let style = if compose.field == field {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        Span::styled(format!("{name:<9}"), style)
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label("To:", Field::To),
            Span::raw(&compose.to),
        ])),
        to,
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label("Subject:", Field::Subject),
            Span::raw(&compose.subject),
        ])),
        subject,
    );
    let body_block = Block::default()
        .borders(Borders::TOP)
        .title(label("Text", Field::Body));
    frame.render_widget(
        Paragraph::new(compose.body.as_str())
            .block(body_block)
            .wrap(Wrap { trim: false }),
        body,
    );
    let cursor = match compose.field {
        Field::To => end_of(to, 9 + compose.to.chars().count()),
        Field::Subject => end_of(subject, 9 + compose.subject.chars().count()),
        Field::Body => {
            let last = compose.body.rsplit('\n').next().unwrap_or("");
            let row = compose.body.matches('\n').count();
            let y = (body.y + 1).saturating_add(u16::try_from(row).unwrap_or(u16::MAX));
            Position::new(
                body.x
                    .saturating_add(u16::try_from(last.chars().count()).unwrap_or(u16::MAX)),
                y.min(body.bottom().saturating_sub(1)),
            )
        }
    };
    frame.set_cursor_position(cursor);
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect) {
    // Show the end of a line longer than the terminal, where the cursor is.
    let width = usize::from(area.width.saturating_sub(3));
    let chars = app.input.chars().count();
    let shown: String = app
        .input
        .chars()
        .skip(chars.saturating_sub(width))
        .collect();
    frame.render_widget(Paragraph::new(format!("> {shown}")), area);
    if app.compose.is_none() {
        frame.set_cursor_position(end_of(area, 2 + shown.chars().count()));
    }
}

fn end_of(area: Rect, column: usize) -> Position {
    let x = area
        .x
        .saturating_add(u16::try_from(column).unwrap_or(u16::MAX));
    Position::new(x.min(area.right().saturating_sub(1)), area.y)
}
