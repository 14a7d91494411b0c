//! SMTP: inbound mail for local users (RFC 5321) and authenticated submission (RFC 6409), both delivering
//! through the store's one durable path.

mod connection;
mod envelope;
mod session;
pub mod verify;

use std::net::SocketAddr;

use crate::conn::{Shared, Stream};
pub use session::{Mode, Session};

pub async fn serve(stream: Stream, peer: SocketAddr, shared: Shared, mode: Mode) {
    let session = Session::new(
        shared.store.clone(),
        shared.config.clone(),
        shared.throttle.clone(),
        peer,
        mode,
        stream.is_tls(),
    )
    .with_local_ip(stream.local_addr().map(|a| a.ip()))
    .with_data_slots(shared.smtp_data_slots.clone())
    .with_unauth_volume(shared.smtp_unauth_volume.clone())
    .with_mailer(shared.mailer.clone());
    let end = connection::serve(stream, session, &shared).await;
    tracing::debug!(%peer, ?mode, ?end, "SMTP connection ended");
}
