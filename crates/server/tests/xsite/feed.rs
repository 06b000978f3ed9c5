//! In-process: a change applied from another site is published on the receiving cache's change
//! feed (what client listeners are fed from), and is not replicated back.

use std::sync::Arc;
use std::time::Duration;

use ironrod_engine::{Change, ChangeKind, Subscriber, WriteOptions};
use ironrod_server::xsite::{driver, Xsite};
use ironrod_server::{Config, State};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::sites::{eventually, free_port};

type Seen = (ChangeKind, Vec<u8>, Vec<u8>);

#[derive(Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl Subscriber for Recorder {
    fn on_change(&self, c: &Change<'_>) {
        self.0
            .lock()
            .push((c.kind, c.key.to_vec(), c.value.to_vec()));
    }
}

async fn site(name: &str, own: u16, other: (&str, u16)) -> (Arc<State>, Arc<Xsite>) {
    let text = format!(
        "bind = \"127.0.0.1:0\"\n[xsite]\nsite = \"{name}\"\nlisten = \"127.0.0.1:{own}\"\n\
         auth = {{ mode = \"shared-secret\", secret = \"0123456789abcdef0123\" }}\n\
         [xsite.link]\nheartbeat_ms = 200\nfailure_timeout_ms = 1000\nreconnect_min_ms = 50\nreconnect_max_ms = 200\n\
         [xsite.remote_sites.{}]\naddress = \"127.0.0.1:{}\"\n\
         [xsite.caches.sessions.backups.{}]\nstrategy = \"SYNC\"\nfailure_policy = \"FAIL\"\n",
        other.0, other.1, other.0
    );
    let config = Config::from_toml(&text).unwrap();
    let mut state = State::new(config.clone()).unwrap();
    let xs = Xsite::start(config.xsite, &state.caches).unwrap();
    state.xsite = Some(xs.clone());
    let state = Arc::new(state);
    driver::spawn(xs.clone(), state.clone(), CancellationToken::new())
        .await
        .unwrap();
    (state, xs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_changes_reach_the_change_feed_and_are_not_echoed() {
    let (p1, p2) = (free_port(), free_port());
    let (s1, x1) = site("site1", p1, ("site2", p2)).await;
    let (s2, _x2) = site("site2", p2, ("site1", p1)).await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            x1.with_bridge(|b, _| b.sites_view()).len() == 2
        })
        .await
    );
    let rec1 = Arc::new(Recorder::default());
    let rec2 = Arc::new(Recorder::default());
    s1.caches.cache("sessions").unwrap().subscribe(rec1.clone());
    s2.caches.cache("sessions").unwrap().subscribe(rec2.clone());

    let c1 = s1.caches.cache("sessions").unwrap();
    tokio::task::block_in_place(|| c1.put(b"k", b"v", &WriteOptions::default())).unwrap();
    // SYNC: applied (and published) on site2 before the write returned on site1.
    assert_eq!(
        rec2.0.lock().clone(),
        vec![(ChangeKind::Created, b"k".to_vec(), b"v".to_vec())]
    );
    tokio::task::block_in_place(|| c1.remove(b"k", &WriteOptions::default())).unwrap();
    assert_eq!(rec2.0.lock().len(), 2);
    assert_eq!(rec2.0.lock()[1].0, ChangeKind::Removed);
    // Nothing came back to site1: its feed holds its own two writes only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rec1.0.lock().len(), 2);
    assert_eq!(s2.caches.cache("sessions").unwrap().size(), 0);
}
