//! SMTP: inbound mail for local users (RFC 5321) and authenticated submission (RFC 6409), both delivering
//! through the store's one durable path.

mod connection;
mod envelope;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::conn::Stream;
use crate::store::MailStore;
use crate::tls::Tls;
pub use session::{Mode, Session};

pub async fn serve(
    stream: Stream,
    peer: SocketAddr,
    store: Arc<dyn MailStore>,
    config: Arc<Config>,
    shutdown: CancellationToken,
    tls: Arc<Tls>,
    mode: Mode,
) {
    let session = Session::new(store, config.clone(), peer, mode, stream.is_tls());
    let end = connection::serve(stream, session, &config.limits, shutdown, tls).await;
    tracing::debug!(%peer, ?mode, ?end, "SMTP connection ended");
}
