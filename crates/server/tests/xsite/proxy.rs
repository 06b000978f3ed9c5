//! A fault-injecting userspace TCP proxy between two sites' bridges: it forwards bytes with an
//! optional delay, and can *cut* the path (bytes silently vanish while connections stay open,
//! as in a partition where nobody is told), *reset* it (close every connection and refuse new
//! ones, as when a site dies) and *heal* it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const PASS: u8 = 0;
const CUT: u8 = 1;
const RESET: u8 = 2;

struct Shared {
    target: SocketAddr,
    delay_ms: AtomicU64,
    mode: AtomicU8,
    /// Cancelled to close every current connection.
    conns: Mutex<CancellationToken>,
}

/// One proxy; dropping it stops it.
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.shared.conns.lock().cancel();
    }
}

impl Proxy {
    /// Listens on `listen` (`127.0.0.1:0` for any port) and forwards to `target`.
    pub async fn start(listen: &str, target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            delay_ms: AtomicU64::new(0),
            mode: AtomicU8::new(PASS),
            conns: Mutex::new(CancellationToken::new()),
        });
        let stop = CancellationToken::new();
        let (s, st) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    _ = st.cancelled() => return,
                    a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
                };
                if s.mode.load(Ordering::SeqCst) == RESET {
                    drop(inbound);
                    continue;
                }
                let Ok(Ok(outbound)) =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(s.target))
                        .await
                else {
                    drop(inbound);
                    continue;
                };
                let token = s.conns.lock().child_token();
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, s.clone(), token.clone()));
                tokio::spawn(pump(ro, wi, s.clone(), token));
            }
        });
        Proxy { addr, shared, stop }
    }

    pub fn set_delay(&self, d: Duration) {
        self.shared
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Bytes vanish; connections stay open; new connections are accepted (and go nowhere).
    pub fn cut(&self) {
        self.shared.mode.store(CUT, Ordering::SeqCst);
    }

    /// Closes every connection and refuses new ones.
    pub fn reset(&self) {
        self.shared.mode.store(RESET, Ordering::SeqCst);
        let mut t = self.shared.conns.lock();
        t.cancel();
        *t = CancellationToken::new();
    }

    /// Back to forwarding.
    pub fn heal(&self) {
        self.shared.mode.store(PASS, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    s: Arc<Shared>,
    token: CancellationToken,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            _ = token.cancelled() => break,
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
        };
        if s.mode.load(Ordering::SeqCst) == CUT {
            continue;
        }
        let delay = s.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if s.mode.load(Ordering::SeqCst) == CUT {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
