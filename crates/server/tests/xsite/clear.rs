//! CLEAR on a cache with backups: a SYNC clear is done on the backup site when the call returns
//! (and fails the call with FAIL when the site is gone); an ASYNC clear converges, in order with
//! the writes around it.

use std::time::Duration;

use crate::backup;
use crate::sites::{eventually, Grid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clears_replicate_sync_and_async() {
    let mut g = Grid::start(&["site1", "site2"], |i| {
        let other = if i == 0 { "site2" } else { "site1" };
        backup(
            "sessions",
            other,
            "strategy = \"SYNC\"\nfailure_policy = \"FAIL\"\ntimeout_ms = 2000",
        ) + &backup("work", other, "strategy = \"ASYNC\"")
    })
    .await;
    let mut c1 = g.sites[0].client().await;
    let mut c2 = g.sites[1].client().await;
    let mut l2 = g.sites[1].client().await;
    l2.listen("sessions", "site2-listener").await;

    // SYNC: cleared on site2 when CLEAR returns on site1, with a removal event per entry.
    for i in 0..5 {
        c1.put("sessions", &format!("s{i}"), "v").await.unwrap();
        l2.event().await;
    }
    c2.put("sessions", "from-site2", "v").await.unwrap();
    l2.event().await;
    c1.clear("sessions").await.unwrap();
    assert!(c1.all("sessions").await.is_empty());
    assert!(c2.all("sessions").await.is_empty());
    for _ in 0..6 {
        assert_eq!(l2.event().await.0, ironrod_codec::EventKind::Removed);
    }
    // Keys written after the clear replicate as usual.
    c1.put("sessions", "s1", "again").await.unwrap();
    assert_eq!(c2.get("sessions", "s1").await.as_deref(), Some("again"));

    // ASYNC, over REST: the clear comes in order with the writes before and after it. site2's
    // own write survives only if it had not reached site1 before the clear (concurrent); either
    // way both sites agree.
    for i in 0..50 {
        c1.put("work", &format!("w{i}"), "v").await.unwrap();
    }
    c2.put("work", "w-site2", "v").await.unwrap();
    let (status, _) = g.sites[0].rest("POST", "/rest/v2/caches/work?action=clear", None);
    assert_eq!(status, 204);
    c1.put("work", "after", "clear").await.unwrap();
    let converged = eventually(Duration::from_secs(10), async || {
        let a = c1.all("work").await;
        let b = c2.all("work").await;
        a == b && a.contains_key("after") && a.keys().all(|k| k == "after" || k == "w-site2")
    })
    .await;
    assert!(
        converged,
        "site1 {:?}\nsite2 {:?}",
        c1.all("work").await,
        c2.all("work").await
    );
    assert_eq!(c2.get("work", "after").await.as_deref(), Some("clear"));

    // SYNC + FAIL with site2 gone: the clear fails and nothing is cleared on site1.
    g.sites[1].kill();
    let e = c1.clear("sessions").await.unwrap_err();
    assert!(e.contains("site2"), "{e}");
    assert_eq!(c1.get("sessions", "s1").await.as_deref(), Some("again"));
}
