//! The native port speaks two protocols: the native protocol v2 and, for unmodified Jmail v1.0 clients,
//! the v1 exchange. Both start with the same greeting; the client's first bytes tell them apart (a v1
//! client sends its version number, a native one `JMAIL ...`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use jmail_proto::legacy::is_v1_start;
use jmail_proto::native::GREETING;
use tokio::io::AsyncReadExt;

use crate::conn::{Shared, Stream, write};
use crate::{legacy, native};

pub async fn serve(mut stream: Stream, peer: SocketAddr, ctx: Shared) {
    let Shared {
        config,
        store,
        shutdown,
        throttle,
        ..
    } = ctx.clone();
    let limits = &config.limits;
    let write_timeout = Duration::from_secs(limits.write_secs_max);
    let session = native::Session::new(
        store.clone(),
        config.clone(),
        throttle.clone(),
        peer,
        stream.is_tls(),
    )
    .with_mailer(ctx.mailer.clone());
    if write(&mut stream, GREETING, write_timeout).await.is_err() {
        return;
    }
    let mut first = BytesMut::with_capacity(native::READ_BUFFER_BYTES_INITIAL);
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => {
            let _ = write(&mut stream, &session.on_shutdown(), write_timeout).await;
            return;
        }
        read = stream.read_buf(&mut first) => match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        },
        _ = tokio::time::sleep(session.idle_timeout()) => {
            let _ = write(&mut stream, &session.on_timeout(), write_timeout).await;
            return;
        }
    }
    // Each dialect's future is boxed apart: inline, both would sit in this one, the larger for every
    // connection.
    if config.legacy_v1 && is_v1_start(&first) {
        let session =
            legacy::LegacySession::new(store, config.clone(), throttle, peer, stream.is_tls());
        Box::pin(legacy::serve(stream, first, session, limits, shutdown)).await;
        tracing::debug!(%peer, "legacy v1 connection ended");
    } else {
        let end = Box::pin(native::serve(stream, first, session, &ctx)).await;
        tracing::debug!(%peer, ?end, "native connection ended");
    }
}
