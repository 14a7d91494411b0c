//! The runtime: listeners, accept loops, connection caps and graceful shutdown.

mod caps;
mod fd_limit;
mod native_port;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::store::MailStore;
use caps::{ConnectionCaps, Refusal};

/// A server that is accepting connections.
pub struct RunningServer {
    /// Where the native listener is bound (the real port when 0 was asked for).
    pub native_addr: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    store: Arc<dyn MailStore>,
    grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} (native port; change it with --port or JMAIL_PORT): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds every listener and starts serving.
pub async fn start(config: Config, store: Arc<dyn MailStore>) -> Result<RunningServer, StartError> {
    fd_limit::raise_for(config.limits.connections_max);
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = listen(addr).map_err(|source| StartError::Bind { addr, source })?;
    let native_addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let grace = Duration::from_secs(config.limits.shutdown_grace_secs);
    let caps = Arc::new(ConnectionCaps::new(
        config.limits.connections_max,
        config.limits.connections_per_ip_max,
    ));
    let config = Arc::new(config);
    tracker.spawn(accept_native(
        listener,
        config.clone(),
        store.clone(),
        caps,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracing::info!(
        "jmail ready: native on {native_addr}; data dir {}",
        config.data_dir.display()
    );
    Ok(RunningServer {
        native_addr,
        shutdown,
        tracker,
        store,
        grace,
    })
}

/// Connections the kernel completes and queues before the accept loop takes them (capped by the system's
/// `net.core.somaxconn`). The usual default, 128, overflows under a burst of clients, and an overflowed
/// handshake waits for the kernel's SYN-ACK retries: seconds of stall for the client.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl RunningServer {
    /// Stops accepting, tells connected clients, waits up to the grace period for in-flight commands, then
    /// closes the store (which commits everything already acknowledged... and nothing else is pending).
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.tracker.len(),
                "connections still busy after the grace period; closing anyway"
            );
        }
        self.store.close().await;
        tracing::info!("stopped");
    }

    /// A token that is cancelled when shutdown begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

async fn accept_native(
    listener: TcpListener,
    config: Arc<Config>,
    store: Arc<dyn MailStore>,
    caps: Arc<ConnectionCaps>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admission = match caps.admit(peer.ip()) {
            Ok(a) => a,
            Err(refusal) => {
                tracker.spawn(refuse(stream, refusal));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (store, config, shutdown) = (store.clone(), config.clone(), shutdown.clone());
        tracker.spawn(async move {
            native_port::serve(stream, peer, store, config, shutdown).await;
            drop(admission);
        });
    }
}

/// Tells a refused client why, briefly, and closes.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let reply: &[u8] = match refusal {
        Refusal::ServerFull => b"BYE LIMIT server is at its connection limit; try again later\r\n",
        Refusal::TooManyFromIp => b"BYE LIMIT too many connections from your address\r\n",
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(reply)).await;
}
