//! HTTP on the Hot Rod port: the REST v2 subset operators and Keycloak's tooling use, health
//! probes and Prometheus metrics.
//!
//! Infinispan Server answers REST and Hot Rod on one port (11222), telling them apart by the
//! first bytes; runbooks, Kubernetes probes and the keycloak-benchmark scripts rely on that, so
//! Ironrod does the same (`crate::detect`). This module owns the HTTP side: one hyper
//! connection per socket (HTTP/1.1, or HTTP/2 when the client opens with the HTTP/2 preface),
//! authentication with Basic and Digest against the users Hot Rod authenticates
//! ([`credentials`]), routing ([`route`]) and the handlers ([`caches`], [`container`],
//! [`metrics`]). Handlers call the engine synchronously, as Hot Rod's do: the engine never
//! blocks on I/O.
//!
//! Paths, query actions, status codes and JSON field names follow Infinispan's REST v2
//! resources (`CacheResourceV2`, `BaseCacheResource`, `ContainerResource`); departures are in
//! `protocol-spec/compatibility.md`.

pub mod caches;
pub mod container;
pub mod credentials;
pub mod metrics;
pub mod reply;
pub mod request;
pub mod route;
pub mod xsite;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::session::Session;
use crate::state::State;

/// Serves HTTP on one connection until the peer closes it or `shutdown` fires (requests in
/// flight are finished first).
pub async fn serve<S>(io: S, session: Session, state: Arc<State>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = session.peer;
    let tls = session.transport.tls;
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route::handle(req, peer, tls, &state).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                debug!(%peer, "HTTP connection ended: {e}");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                debug!(%peer, "HTTP connection ended during shutdown: {e}");
            }
        }
    }
}
