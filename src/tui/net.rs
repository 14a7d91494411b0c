//! The interactive client's network side: one connection for commands and one that WATCHes, so pushed mail
//! arrives while a command runs. A lost connection is reported and retried with growing pauses.

use std::sync::mpsc::Sender;
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::app::{NetEvent, Request};
use crate::client::{Client, ClientError};
use crate::client_tls::TrustSettings;

/// First pause before reconnecting; it doubles up to [`RETRY_SECS_MAX`].
const RETRY_SECS_FIRST: u64 = 1;
/// Longest pause between reconnection attempts.
const RETRY_SECS_MAX: u64 = 15;
/// Pushed changes queued between the watching connection and the command loop. A burst beyond it waits in
/// the socket buffer (the server's write deadline applies), so memory stays bounded.
const PUSH_QUEUE_MAX: usize = 1024;

/// Starts the network side on its own thread. Requests go in through the returned sender; dropping it
/// logs out and ends the thread. Events come out through `events`.
pub fn spawn(
    server: String,
    user: String,
    password: String,
    trust: TrustSettings,
    events: Sender<NetEvent>,
) -> std::io::Result<UnboundedSender<Request>> {
    let (requests, rx) = mpsc::unbounded_channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("jmail-client-net".into())
        .spawn(move || {
            runtime.block_on(run(
                Login {
                    server,
                    user,
                    password,
                    trust,
                },
                rx,
                events,
            ))
        })?;
    Ok(requests)
}

struct Login {
    server: String,
    user: String,
    password: String,
    trust: TrustSettings,
}

impl Login {
    async fn connect(&self) -> Result<Client, ClientError> {
        let mut client = Client::connect_secure(&self.server, &self.trust).await?;
        client.login(&self.user, &self.password).await?;
        Ok(client)
    }
}

async fn run(login: Login, mut requests: UnboundedReceiver<Request>, events: Sender<NetEvent>) {
    let mut retry_secs = RETRY_SECS_FIRST;
    loop {
        match session(&login, &mut requests, &events, &mut retry_secs).await {
            Ok(()) => return,
            // A refused login or a changed certificate will not mend by itself, and retrying a wrong
            // password would get this address blocked: say so once and stop.
            Err(e) if will_not_mend(&e) => {
                let _ = events.send(NetEvent::Lost {
                    reason: format!("{e}; not retrying (restart jmail client)"),
                    retry_secs: 0,
                });
                return;
            }
            Err(e) => {
                if events
                    .send(NetEvent::Lost {
                        reason: e.to_string(),
                        retry_secs,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
        // While disconnected, requests are answered at once rather than queued behind the pause.
        let pause = tokio::time::sleep(Duration::from_secs(retry_secs));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                request = requests.recv() => match request {
                    None => return,
                    Some(_) => {
                        let _ = events.send(NetEvent::Failed("not connected; retrying".into()));
                    }
                },
            }
        }
        retry_secs = (retry_secs * 2).min(RETRY_SECS_MAX);
    }
}

/// Whether retrying is pointless: a refused login (`AUTH`, `PRIVACY`), a version the server does not
/// speak, or a changed certificate. Everything else, a `BYE SHUTDOWN` from a server that is restarting
/// among it, is retried.
fn will_not_mend(e: &ClientError) -> bool {
    match e {
        ClientError::CertificateChanged { .. } => true,
        ClientError::Refused { code, .. } => {
            matches!(code.as_str(), "AUTH" | "PRIVACY" | "VERSION")
        }
        _ => false,
    }
}

/// One connected stretch: returns `Ok` when the user quits, `Err` when the connection is lost.
async fn session(
    login: &Login,
    requests: &mut UnboundedReceiver<Request>,
    events: &Sender<NetEvent>,
    retry_secs: &mut u64,
) -> Result<(), ClientError> {
    let mut commands = login.connect().await?;
    let listing = commands.list(0).await?;
    let mut modseq = listing.modseq;
    let mut watcher = login.connect().await?;
    watcher.watch(modseq).await?;
    // Reading pushes in a task of its own keeps the watcher's reads from being cut off mid-line by select.
    let (push_tx, mut pushes) = mpsc::channel(PUSH_QUEUE_MAX);
    let watching = tokio::spawn(async move {
        loop {
            let change = watcher.next_change().await;
            let failed = change.is_err();
            if push_tx.send(change).await.is_err() || failed {
                return;
            }
        }
    });
    let _stop_watching = AbortOnDrop(watching);
    *retry_secs = RETRY_SECS_FIRST;
    if events.send(NetEvent::Connected(listing)).is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else {
                    let _ = commands.logout().await;
                    return Ok(());
                };
                let event = match execute(&mut commands, request, &mut modseq).await {
                    Ok(event) => event,
                    Err(ClientError::Refused { text, .. }) => NetEvent::Failed(text),
                    Err(e) => return Err(e),
                };
                if events.send(event).is_err() {
                    return Ok(());
                }
            }
            push = pushes.recv() => {
                let change = push.ok_or(ClientError::Closed)??;
                if events.send(NetEvent::Pushed(change)).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

async fn execute(
    client: &mut Client,
    request: Request,
    modseq: &mut u64,
) -> Result<NetEvent, ClientError> {
    Ok(match request {
        Request::Refresh => {
            let listing = client.list(*modseq).await?;
            *modseq = listing.modseq;
            NetEvent::Changes(listing)
        }
        Request::Read(id) => NetEvent::Message {
            id,
            raw: client.read(id).await?,
        },
        Request::Mark { id, seen } => {
            client.mark(id, seen).await?;
            let state = if seen { "read" } else { "unread" };
            NetEvent::Done(format!("message {id} marked {state}"))
        }
        Request::Delete(id) => {
            client.delete(id).await?;
            NetEvent::Done(format!("message {id} deleted"))
        }
        Request::Send { to, subject, body } => {
            client.send_and_keep(&to, &subject, body.as_bytes()).await?;
            NetEvent::Done(format!("sent to {}", to.join(", ")))
        }
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarting_server_is_retried_and_a_refused_login_is_not() {
        let refused = |code: &str| ClientError::Refused {
            code: code.into(),
            text: "x".into(),
        };
        for code in ["SHUTDOWN", "LIMIT", "TIMEOUT", "TRYLATER", "REVOKED"] {
            assert!(!will_not_mend(&refused(code)), "{code}");
        }
        for code in ["AUTH", "PRIVACY", "VERSION"] {
            assert!(will_not_mend(&refused(code)), "{code}");
        }
        assert!(!will_not_mend(&ClientError::Closed));
    }
}
