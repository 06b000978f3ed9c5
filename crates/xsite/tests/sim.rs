//! Deterministic simulations of two and three sites over a fake network with a virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod harness;

use std::time::Duration;

use harness::{backup_all, site_config, val, Net, Outcome};
use ironrod_xsite::config::{
    AuthConfig, BackupConfig, FailurePolicy, MergePolicy, StateTransferConfig, StateTransferMode,
    Strategy, TakeOfflineConfig,
};
use ironrod_xsite::{EntryValue, Event, LinkPhase, PushStatus, Rng};

fn sync(policy: FailurePolicy, timeout_ms: u64) -> BackupConfig {
    BackupConfig {
        strategy: Strategy::Sync,
        failure_policy: policy,
        timeout_ms,
        ..BackupConfig::default()
    }
}

fn asynchronous(merge: MergePolicy) -> BackupConfig {
    BackupConfig {
        strategy: Strategy::Async,
        merge_policy: merge,
        ..BackupConfig::default()
    }
}

/// Sites `names`, each backing `cache` up to all others with `backup`, links up.
fn mesh(names: &[&str], cache: &str, backup: BackupConfig) -> Net {
    let configs = names
        .iter()
        .map(|n| {
            let mut c = site_config(n, names);
            backup_all(&mut c, cache, backup.clone());
            c
        })
        .collect();
    let mut net = Net::new(configs);
    let all_up = |net: &Net| {
        net.sites.iter().all(|s| {
            s.bridge
                .status(net.now)
                .routes
                .iter()
                .all(|r| r.link == LinkPhase::Up)
        })
    };
    assert!(
        net.run_until(Duration::from_secs(5), all_up),
        "links never came up"
    );
    net
}

#[test]
fn sync_write_is_readable_on_the_backup_when_the_call_returns() {
    let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 4500));
    net.set_delay("LON", "NYC", Duration::from_millis(40));
    let h = net.write("LON", "sessions", "k1", Some(val("v1")));
    assert_eq!(net.outcome(h), None, "a SYNC write waits for the backup");
    assert!(net.run_until(Duration::from_secs(5), |n| n.outcome(h).is_some()));
    assert_eq!(net.outcome(h), Some(&Outcome::Ok { warnings: vec![] }));
    // At the moment the write returned, the backup already holds the value.
    assert_eq!(net.get("NYC", "sessions", "k1"), Some(val("v1")));
    // And a listener on the backup site was told.
    assert_eq!(
        net.site("NYC").listener,
        vec![("sessions".to_string(), b"k1".to_vec())]
    );
    // One round trip (2 × 40 ms), not more.
    // Removal replicates too.
    assert_eq!(
        net.write_wait("NYC", "sessions", "k1", None),
        Outcome::Ok { warnings: vec![] }
    );
    assert_eq!(net.get("LON", "sessions", "k1"), None);
}

#[test]
fn fail_policy_vetoes_until_take_offline_then_writes_succeed() {
    let mut backup = sync(FailurePolicy::Fail, 500);
    backup.take_offline = TakeOfflineConfig {
        after_failures: 2,
        min_wait_ms: 3_000,
    };
    let mut net = mesh(&["LON", "NYC"], "sessions", backup);
    net.cut("LON", "NYC");
    // Failures 1 and 2: timeouts, each an error naming the site and the cause; rolled back.
    for k in ["a", "b"] {
        let Outcome::Failed(msg) = net.write_wait("LON", "sessions", k, Some(val(k))) else {
            panic!("FAIL must fail the write");
        };
        assert!(
            msg.contains("site 'NYC'") && msg.contains("timed out after 500 ms"),
            "{msg}"
        );
        assert_eq!(
            net.get("LON", "sessions", k),
            None,
            "vetoed write rolled back"
        );
    }
    // Two failures but min-wait (3 s since the first) has not passed: still online, still failing.
    let Outcome::Failed(_) = net.write_wait("LON", "sessions", "c", Some(val("c"))) else {
        panic!("min-wait not reached yet");
    };
    net.run_for(Duration::from_secs(3));
    // Now both hold: the next write takes the site offline and commits locally.
    assert_eq!(
        net.write_wait("LON", "sessions", "d", Some(val("d"))),
        Outcome::Ok { warnings: vec![] }
    );
    let now = net.now;
    let status = net.site("LON").bridge.status(now);
    assert!(!status.backups[0].online);
    assert!(net
        .site("LON")
        .log
        .iter()
        .any(|e| matches!(e, Event::BackupStatus { online: false, .. })));
    // Manual bring-online while still cut: writes fail again (FAIL), proving the status is real.
    net.site("LON")
        .bridge
        .bring_online(now, Some("sessions"), "NYC")
        .unwrap();
    assert!(matches!(
        net.write_wait("LON", "sessions", "e", Some(val("e"))),
        Outcome::Failed(_)
    ));
}

#[test]
fn warn_and_ignore_never_fail_the_client() {
    for policy in [FailurePolicy::Warn, FailurePolicy::Ignore] {
        let mut net = mesh(&["LON", "NYC"], "sessions", sync(policy, 300));
        net.cut("LON", "NYC");
        for i in 0..3 {
            let out = net.write_wait("LON", "sessions", &format!("k{i}"), Some(val("v")));
            match (policy, out) {
                (FailurePolicy::Warn, Outcome::Ok { warnings }) => {
                    assert_eq!(warnings.len(), 1);
                    assert_eq!(warnings[0].site, "NYC");
                }
                (FailurePolicy::Ignore, Outcome::Ok { warnings }) => assert!(warnings.is_empty()),
                (p, o) => panic!("{p:?}: {o:?}"),
            }
        }
        assert_eq!(net.cache("LON", "sessions").len(), 3);
        // Take-offline is disabled by default: the backup stays online.
        let now = net.now;
        assert!(net.site("LON").bridge.status(now).backups[0].online);
    }
}

#[test]
fn a_refusal_on_the_backup_is_a_failure_that_does_not_count_towards_offline() {
    let mut backup = sync(FailurePolicy::Fail, 1000);
    backup.take_offline = TakeOfflineConfig {
        after_failures: 1,
        min_wait_ms: 0,
    };
    let mut net = mesh(&["LON", "NYC"], "sessions", backup);
    net.site("NYC").refuse_applies = true;
    for _ in 0..3 {
        let Outcome::Failed(msg) = net.write_wait("LON", "sessions", "k", Some(val("v"))) else {
            panic!("refused");
        };
        assert!(msg.contains("apply failed: injected failure"), "{msg}");
    }
    let now = net.now;
    assert!(net.site("LON").bridge.status(now).backups[0].online);
}

#[test]
fn concurrent_sync_writes_with_zero_acquire_timeout_fail_fast_and_retry_succeeds() {
    let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 4500));
    net.set_delay("LON", "NYC", Duration::from_millis(20));
    let start = net.now;
    let a = net.write("LON", "sessions", "k", Some(val("from-lon")));
    let b = net.write("NYC", "sessions", "k", Some(val("from-nyc")));
    assert!(
        net.run_until(Duration::from_secs(1), |n| n.outcome(a).is_some()
            && n.outcome(b).is_some())
    );
    // Both hold their local lock while the other's apply arrives: both fail fast (one round
    // trip, far below the 4.5 s backup timeout), none hangs.
    assert!(net.now - start < Duration::from_millis(100));
    let failed: Vec<usize> = [a, b]
        .into_iter()
        .filter(|h| matches!(net.outcome(*h), Some(Outcome::Failed(_))))
        .collect();
    assert!(!failed.is_empty());
    if let Some(Outcome::Failed(msg)) = net.outcome(a) {
        assert!(msg.contains("lock timeout"), "{msg}");
    }
    // The retry (Keycloak's loop) succeeds and both sites agree.
    assert_eq!(
        net.write_wait("LON", "sessions", "k", Some(val("retry"))),
        Outcome::Ok { warnings: vec![] }
    );
    assert_eq!(net.get("LON", "sessions", "k"), Some(val("retry")));
    assert_eq!(net.get("NYC", "sessions", "k"), Some(val("retry")));
    assert_eq!(net.divergent_keys("sessions"), 0);
}

#[test]
fn async_active_active_converges_to_the_merge_policy() {
    for (policy, expected) in [
        (MergePolicy::Default, Some(val("from-A"))),
        (MergePolicy::PreferNonNull, Some(val("from-A"))),
        (MergePolicy::PreferNull, None),
        (MergePolicy::AlwaysRemove, None),
    ] {
        let mut net = mesh(&["A", "B"], "work", asynchronous(policy));
        net.set_delay("A", "B", Duration::from_millis(50));
        // Concurrent: neither has seen the other's write.
        net.write("A", "work", "conflict", Some(val("from-A")));
        net.write("B", "work", "conflict", None);
        // A value against a value as well.
        net.write("A", "work", "both", Some(val("a")));
        net.write("B", "work", "both", Some(val("b")));
        net.run_for(Duration::from_secs(2));
        assert_eq!(net.divergent_keys("work"), 0, "{policy:?}");
        assert_eq!(net.get("A", "work", "conflict"), expected, "{policy:?}");
        let both = net.get("B", "work", "both");
        match policy {
            MergePolicy::AlwaysRemove => assert_eq!(both, None),
            _ => assert_eq!(both, Some(val("a")), "{policy:?}: smaller site name wins"),
        }
    }
}

#[test]
fn an_async_clear_removes_what_it_saw_and_keeps_concurrent_writes() {
    let mut net = mesh(&["A", "B", "C"], "work", asynchronous(MergePolicy::Default));
    for k in 0..20 {
        net.write("A", "work", &format!("a{k}"), Some(val("1")));
        net.write("B", "work", &format!("b{k}"), Some(val("1")));
    }
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.divergent_keys("work"), 0);
    net.set_delay("A", "B", Duration::from_millis(200));
    net.set_delay("A", "C", Duration::from_millis(200));
    // B writes before A's clear reaches it (and A had not seen that write): it survives.
    net.write("B", "work", "during", Some(val("2")));
    net.clear_async("A", "work");
    net.write("A", "work", "after", Some(val("3")));
    net.write("B", "work", "b0", Some(val("4")));
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.divergent_keys("work"), 0);
    for site in ["A", "B", "C"] {
        assert_eq!(net.get(site, "work", "a1"), None, "{site}");
        assert_eq!(net.get(site, "work", "b1"), None, "{site}");
        assert_eq!(net.get(site, "work", "during"), Some(val("2")), "{site}");
        assert_eq!(net.get(site, "work", "after"), Some(val("3")), "{site}");
    }
}

#[test]
fn an_async_clear_is_not_sent_over_a_link_without_clear() {
    let names = ["LON", "NYC"];
    let configs = names
        .iter()
        .map(|n| {
            let mut c = site_config(n, &names);
            backup_all(&mut c, "work", asynchronous(MergePolicy::Default));
            if *n == "NYC" {
                c.max_protocol_version = 2;
            }
            c
        })
        .collect();
    let mut net = Net::new(configs);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.link_version("LON", "NYC"), Some(2));
    net.write("LON", "work", "old", Some(val("1")));
    net.run_for(Duration::from_secs(1));
    net.clear_async("LON", "work");
    net.write("LON", "work", "new", Some(val("2")));
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.get("NYC", "work", "old"), Some(val("1")));
    assert_eq!(net.get("NYC", "work", "new"), Some(val("2")));
    assert!(net
        .log("LON")
        .iter()
        .any(|e| matches!(e, Event::ClearNotReplicated { site, .. } if site == "NYC")));
}

#[test]
fn three_sites_async_with_faults_have_no_divergent_keys_after_quiescence() {
    let policies = [
        MergePolicy::Default,
        MergePolicy::PreferNonNull,
        MergePolicy::PreferNull,
        MergePolicy::AlwaysRemove,
    ];
    for seed in 0..8u64 {
        let policy = policies[(seed % 4) as usize];
        let mut net = mesh(&["A", "B", "C"], "work", asynchronous(policy));
        let mut rng = Rng::new(seed);
        net.set_delay("A", "B", Duration::from_millis(5));
        net.set_delay("B", "C", Duration::from_millis(30));
        net.set_delay("A", "C", Duration::from_millis(70));
        let sites = ["A", "B", "C"];
        for step in 0..300 {
            let site = sites[(rng.next_u64() % 3) as usize];
            let key = format!("k{}", rng.next_u64() % 12);
            let value = (rng.next_u64() % 4 != 0).then(|| val(&format!("{site}{step}")));
            net.write(site, "work", &key, value);
            match rng.next_u64() % 40 {
                0 => net.cut("A", "C"),
                1 => net.heal("A", "C"),
                2 => net.reset("A", "B"),
                _ => {}
            }
            net.run_for(Duration::from_millis(rng.next_u64() % 40));
        }
        net.heal("A", "C");
        net.run_for(Duration::from_secs(60));
        assert_eq!(net.divergent_keys("work"), 0, "seed {seed}, {policy:?}");
        for s in ["A", "B", "C"] {
            let now = net.now;
            assert!(net
                .site(s)
                .bridge
                .status(now)
                .backups
                .iter()
                .all(|b| b.queued == 0 && b.online));
        }
    }
}

#[test]
fn state_push_fills_the_backup_without_overwriting_newer_writes_or_deleting() {
    let backup = BackupConfig {
        state_transfer: StateTransferConfig {
            chunk_size: 16,
            ..StateTransferConfig::default()
        },
        ..sync(FailurePolicy::Warn, 500)
    };
    let mut net = mesh(&["LON", "NYC"], "sessions", backup);
    net.set_delay("LON", "NYC", Duration::from_millis(10));
    let now = net.now;
    net.site("LON")
        .bridge
        .take_offline(now, Some("sessions"), "NYC")
        .unwrap();
    for i in 0..100 {
        assert!(matches!(
            net.write_wait("LON", "sessions", &format!("k{i:03}"), Some(val("lon"))),
            Outcome::Ok { .. }
        ));
    }
    // NYC has keys of its own that LON never had: a push must not delete them.
    net.site("NYC")
        .bridge
        .take_offline(now, Some("sessions"), "LON")
        .unwrap();
    net.write_wait("NYC", "sessions", "nyc-only", Some(val("nyc")));
    net.write_wait("NYC", "sessions", "k050", Some(val("nyc-old")));
    let now = net.now;
    // A client write on NYC holds k010's lock while the push arrives: the push skips that key.
    net.site("NYC")
        .locked
        .insert(("sessions".to_string(), b"k010".to_vec()));
    net.site("LON")
        .bridge
        .start_push(now, Some("sessions"), "NYC")
        .unwrap();
    assert_eq!(
        net.site("LON").bridge.push_status("sessions")[0].1,
        Some(PushStatus::Sending)
    );
    // Let the push begin, then write on NYC while it runs.
    net.run_for(Duration::from_millis(25));
    net.write_wait("NYC", "sessions", "k099", Some(val("nyc-during-push")));
    net.write_wait("NYC", "sessions", "k098", None);
    assert!(net.run_until(Duration::from_secs(10), |n| n.sites[0]
        .bridge
        .push_status("sessions")[0]
        .1
        == Some(PushStatus::Ok)));
    let lon = net.cache("LON", "sessions");
    let nyc = net.cache("NYC", "sessions");
    for (k, v) in &lon {
        match k.as_slice() {
            b"k099" => assert_eq!(nyc.get(k), Some(&val("nyc-during-push"))),
            b"k098" => assert_eq!(nyc.get(k), None, "a removal during the push stays"),
            b"k010" => {}
            _ => assert_eq!(nyc.get(k), Some(v), "{}", String::from_utf8_lossy(k)),
        }
    }
    assert_eq!(
        nyc.get(b"k010".as_slice()),
        None,
        "a key locked by a local write is skipped"
    );
    assert_eq!(
        nyc.get(b"k050".as_slice()),
        Some(&val("lon")),
        "older entries are overwritten"
    );
    assert_eq!(
        nyc.get(b"nyc-only".as_slice()),
        Some(&val("nyc")),
        "a push never deletes"
    );
    net.run_for(Duration::from_millis(50));
    assert!(net.site("NYC").log.iter().any(|e| matches!(
        e,
        Event::PushReceived {
            completed: true,
            ..
        }
    )));
    // LON told NYC when it took it offline, and when the push brought it back online.
    let notices: Vec<bool> = net
        .site("NYC")
        .log
        .iter()
        .filter_map(|e| match e {
            Event::Notice {
                from,
                cache,
                online,
            } if from == "LON" && cache == "sessions" => Some(*online),
            _ => None,
        })
        .collect();
    assert_eq!(notices, vec![false, true]);
    // The push brought the backup online; status can be cleared once finished.
    let now = net.now;
    assert!(net.site("LON").bridge.status(now).backups[0].online);
    assert_eq!(net.site("LON").bridge.clear_push_status("sessions"), 1);
    assert_eq!(net.site("LON").bridge.push_status("sessions")[0].1, None);
}

#[test]
fn push_cancel_and_link_loss_set_the_status() {
    let backup = BackupConfig {
        state_transfer: StateTransferConfig {
            chunk_size: 4,
            ..StateTransferConfig::default()
        },
        ..asynchronous(MergePolicy::Default)
    };
    let mut net = mesh(&["LON", "NYC"], "work", backup);
    net.set_delay("LON", "NYC", Duration::from_millis(10));
    for i in 0..40 {
        net.write("LON", "work", &format!("k{i:02}"), Some(val("x")));
    }
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    net.site("LON")
        .bridge
        .start_push(now, Some("work"), "NYC")
        .unwrap();
    assert!(matches!(
        net.site("LON").bridge.start_push(now, Some("work"), "NYC"),
        Err(ironrod_xsite::AdminError::PushRunning { .. })
    ));
    net.run_for(Duration::from_millis(30));
    net.site("LON")
        .bridge
        .cancel_push(now, Some("work"), "NYC")
        .unwrap();
    assert_eq!(
        net.site("LON").bridge.push_status("work")[0].1,
        Some(PushStatus::Canceled)
    );
    net.run_for(Duration::from_millis(100));
    assert!(net.site("NYC").log.iter().any(|e| matches!(
        e,
        Event::PushReceived {
            completed: false,
            ..
        }
    )));

    let now = net.now;
    net.site("LON").bridge.start_push(now, None, "NYC").unwrap();
    net.run_for(Duration::from_millis(15));
    net.reset("LON", "NYC");
    net.run_for(Duration::from_millis(1));
    let status = net.site("LON").bridge.push_status("work")[0].1.clone();
    assert!(
        matches!(status, Some(PushStatus::Error(ref m)) if m.contains("link down")),
        "{status:?}"
    );
}

#[test]
fn bringing_an_auto_backup_online_pushes_by_itself() {
    let backup = BackupConfig {
        state_transfer: StateTransferConfig {
            mode: StateTransferMode::Auto,
            chunk_size: 8,
            ..StateTransferConfig::default()
        },
        ..asynchronous(MergePolicy::Default)
    };
    let mut net = mesh(&["LON", "NYC"], "work", backup);
    let now = net.now;
    net.site("LON")
        .bridge
        .take_offline(now, None, "NYC")
        .unwrap();
    for i in 0..20 {
        net.write("LON", "work", &format!("k{i}"), Some(val("x")));
    }
    net.run_for(Duration::from_secs(1));
    assert!(
        net.cache("NYC", "work").is_empty(),
        "offline: nothing replicated"
    );
    let now = net.now;
    net.site("LON")
        .bridge
        .bring_online(now, None, "NYC")
        .unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.cache("NYC", "work").len(), 20);
}

#[test]
fn an_old_version_peer_still_replicates() {
    let names = ["LON", "NYC"];
    let configs = names
        .iter()
        .map(|n| {
            let mut c = site_config(n, &names);
            backup_all(&mut c, "sessions", sync(FailurePolicy::Fail, 2000));
            backup_all(&mut c, "work", asynchronous(MergePolicy::Default));
            if *n == "NYC" {
                c.max_protocol_version = 1; // NYC has not been upgraded yet
            }
            c
        })
        .collect();
    let mut net = Net::new(configs);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.link_version("LON", "NYC"), Some(1));
    assert_eq!(net.link_version("NYC", "LON"), Some(1));
    let v = EntryValue {
        bytes: b"v".to_vec(),
        lifespan_ms: Some(60_000),
        max_idle_ms: Some(5_000),
    };
    assert_eq!(
        net.write_wait("LON", "sessions", "s", Some(v.clone())),
        Outcome::Ok { warnings: vec![] }
    );
    net.write("NYC", "work", "w", Some(val("from-old")));
    net.run_for(Duration::from_secs(1));
    // Version 1 carries the lifespan but has no max-idle field.
    let got = net.get("NYC", "sessions", "s").unwrap();
    assert_eq!(
        (got.bytes, got.lifespan_ms, got.max_idle_ms),
        (b"v".to_vec(), Some(60_000), None)
    );
    assert_eq!(net.get("LON", "work", "w"), Some(val("from-old")));
}

#[test]
fn both_new_peers_use_the_newest_version_and_carry_max_idle() {
    let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 2000));
    assert_eq!(
        net.link_version("LON", "NYC"),
        Some(ironrod_xsite::wire::MAX_VERSION)
    );
    let v = EntryValue {
        bytes: b"v".to_vec(),
        lifespan_ms: None,
        max_idle_ms: Some(5_000),
    };
    net.write_wait("LON", "sessions", "s", Some(v.clone()));
    assert_eq!(net.get("NYC", "sessions", "s"), Some(v));
}

#[test]
fn partition_with_sync_fail_loses_no_acknowledged_write() {
    let mut backup = sync(FailurePolicy::Fail, 400);
    backup.take_offline = TakeOfflineConfig {
        after_failures: 3,
        min_wait_ms: 0,
    };
    let mut net = mesh(&["LON", "NYC"], "sessions", backup);
    let mut acked = Vec::new();
    for i in 0..30 {
        if i == 10 {
            net.cut("LON", "NYC");
        }
        let k = format!("k{i}");
        if let Outcome::Ok { .. } = net.write_wait("LON", "sessions", &k, Some(val(&k))) {
            acked.push(k);
        }
        net.run_for(Duration::from_millis(100));
    }
    net.heal("LON", "NYC");
    net.run_for(Duration::from_secs(20));
    let now = net.now;
    net.site("LON")
        .bridge
        .start_push(now, Some("sessions"), "NYC")
        .unwrap();
    assert!(net.run_until(Duration::from_secs(10), |n| n.sites[0]
        .bridge
        .push_status("sessions")[0]
        .1
        == Some(PushStatus::Ok)));
    assert!(acked.len() >= 20, "writes after take-offline succeed");
    for k in &acked {
        assert_eq!(net.get("LON", "sessions", k), Some(val(k)), "{k}");
        assert_eq!(net.get("NYC", "sessions", k), Some(val(k)), "{k} lost");
    }
    assert_eq!(net.divergent_keys("sessions"), 0);
}

#[test]
fn silent_peer_is_detected_after_the_failure_timeout_and_the_link_comes_back() {
    let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Warn, 1000));
    let cut_at = net.now;
    net.cut("LON", "NYC");
    // Silence counts from the last frame received, at most one heartbeat interval (2 s) before
    // the cut: the peer is declared dead 6 to 8 s after the cut, never earlier.
    net.run_for(Duration::from_millis(5_900));
    let now = net.now;
    assert_eq!(
        net.site("LON").bridge.status(now).routes[0].link,
        LinkPhase::Up,
        "too early"
    );
    assert!(net.run_until(Duration::from_secs(3), |n| n.sites[0]
        .bridge
        .status(n.now)
        .routes[0]
        .link
        != LinkPhase::Up));
    assert!(net.now - cut_at <= Duration::from_secs(8));
    net.heal("LON", "NYC");
    assert!(
        net.run_until(Duration::from_secs(40), |n| n.sites.iter().all(|s| s
            .bridge
            .status(n.now)
            .routes[0]
            .link
            == LinkPhase::Up))
    );
    assert_eq!(
        net.write_wait("LON", "sessions", "k", Some(val("v"))),
        Outcome::Ok { warnings: vec![] }
    );
    assert_eq!(net.get("NYC", "sessions", "k"), Some(val("v")));
}

#[test]
fn a_wrong_secret_never_brings_the_link_up() {
    let names = ["LON", "NYC"];
    let configs = names
        .iter()
        .map(|n| {
            let mut c = site_config(n, &names);
            if *n == "NYC" {
                c.auth = AuthConfig::SharedSecret {
                    secret: "not-the-same-secret-at-all".into(),
                };
            }
            c
        })
        .collect();
    let mut net = Net::new(configs);
    net.run_for(Duration::from_secs(30));
    let now = net.now;
    assert_ne!(
        net.site("LON").bridge.status(now).routes[0].link,
        LinkPhase::Up
    );
    assert!(net
        .site("NYC")
        .log
        .iter()
        .all(|e| !matches!(e, Event::LinkUp { .. })));
    assert!(
        net.site("LON")
            .log
            .iter()
            .filter(|e| matches!(e, Event::LinkDown { .. }))
            .count()
            >= 3,
        "it keeps retrying"
    );
}

#[test]
fn frames_relay_through_a_site_master() {
    // LON reaches PAR only through NYC's site master.
    let mut lon = site_config("LON", &["LON", "NYC"]);
    lon.remote_sites.insert(
        "PAR".into(),
        ironrod_xsite::config::RemoteSiteConfig {
            address: String::new(),
            via: Some("NYC".into()),
        },
    );
    backup_all(&mut lon, "sessions", sync(FailurePolicy::Fail, 2000));
    let nyc = site_config("NYC", &["LON", "NYC", "PAR"]);
    let mut par = site_config("PAR", &["NYC", "PAR"]);
    par.remote_sites.get_mut("NYC").unwrap().address = "127.0.0.1:7901".into();
    par.remote_sites.insert(
        "LON".into(),
        ironrod_xsite::config::RemoteSiteConfig {
            address: String::new(),
            via: Some("NYC".into()),
        },
    );
    let mut net = Net::new(vec![lon, nyc, par]);
    net.run_for(Duration::from_secs(2));
    let now = net.now;
    let routes = net.site("LON").bridge.status(now).routes;
    let par_route = routes.iter().find(|r| r.route.site == "PAR").unwrap();
    assert_eq!(par_route.route.next_hop, "NYC");
    assert_eq!(par_route.link, LinkPhase::Up);
    assert_eq!(
        net.write_wait("LON", "sessions", "k", Some(val("v"))),
        Outcome::Ok { warnings: vec![] }
    );
    assert_eq!(net.get("PAR", "sessions", "k"), Some(val("v")));
    assert_eq!(net.get("NYC", "sessions", "k"), Some(val("v")));
    // With PAR gone behind NYC, the site master answers for it and the write fails at once.
    net.cut("NYC", "PAR");
    net.reset("NYC", "PAR");
    let Outcome::Failed(msg) = net.write_wait("LON", "sessions", "k2", Some(val("v"))) else {
        panic!("PAR unreachable");
    };
    assert!(
        msg.contains("site 'PAR'") && msg.contains("unreachable"),
        "{msg}"
    );
}

#[test]
fn an_impostor_cannot_displace_a_live_link() {
    use ironrod_xsite::wire::{self, AuthMode, Frame, Message, Route};
    let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 1000));
    let now = net.now;
    let nyc = net.site("NYC");
    let rogue = nyc.bridge.accept(now);
    let mut bytes = Vec::new();
    wire::encode(
        &Frame {
            route: Route {
                from: "LON".into(),
                to: "NYC".into(),
            },
            message: Message::Hello {
                min_version: 1,
                max_version: 2,
                auth: AuthMode::SharedSecret,
                nonce: [9; 32],
            },
        },
        0,
        &mut bytes,
    );
    nyc.bridge.handle_data(now, rogue, &bytes);
    let mut closed = false;
    while let Some(e) = nyc.bridge.poll_event() {
        closed |= e == Event::Close { conn: rogue };
    }
    assert!(closed, "the impostor's connection is closed");
    assert_eq!(
        net.site("NYC").bridge.status(now).routes[0].link,
        LinkPhase::Up
    );
    assert_eq!(
        net.write_wait("LON", "sessions", "k", Some(val("v"))),
        Outcome::Ok { warnings: vec![] }
    );
}

#[test]
fn async_retries_while_unreachable_until_take_offline() {
    let mut backup = asynchronous(MergePolicy::Default);
    backup.take_offline = TakeOfflineConfig {
        after_failures: 5,
        min_wait_ms: 2_000,
    };
    let mut net = mesh(&["LON", "NYC"], "work", backup);
    net.cut("LON", "NYC");
    net.write("LON", "work", "a", Some(val("1")));
    net.write("LON", "work", "b", Some(val("1")));
    // The batch vanishes; after the ack timeout it is retried, and the dead link is detected.
    net.run_for(Duration::from_secs(9));
    let now = net.now;
    let view = net.site("LON").bridge.status(now).backups[0].clone();
    assert!(
        view.online,
        "min-wait and failures not both reached yet: {view:?}"
    );
    assert_eq!(view.queued, 2, "changes kept for the retry");
    net.run_for(Duration::from_secs(30));
    let now = net.now;
    let view = net.site("LON").bridge.status(now).backups[0].clone();
    assert!(!view.online, "{view:?}");
    assert_eq!(view.queued, 0, "an offline backup's queue is dropped");
    assert!(net.cache("NYC", "work").is_empty());
    // Healed and brought online, new writes flow again; the dropped ones need a push.
    net.heal("LON", "NYC");
    net.run_for(Duration::from_secs(40));
    let now = net.now;
    net.site("LON")
        .bridge
        .bring_online(now, Some("work"), "NYC")
        .unwrap();
    net.write("LON", "work", "c", Some(val("2")));
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.get("NYC", "work", "c"), Some(val("2")));
    assert_eq!(net.get("NYC", "work", "a"), None);
}

#[test]
fn a_full_async_queue_takes_the_backup_offline_without_failing_writes() {
    let names = ["LON", "NYC"];
    let configs = names
        .iter()
        .map(|n| {
            let mut c = site_config(n, &names);
            c.async_replication.queue_capacity = 10;
            backup_all(&mut c, "work", asynchronous(MergePolicy::Default));
            c
        })
        .collect();
    let mut net = Net::new(configs);
    net.run_for(Duration::from_secs(1));
    net.cut("LON", "NYC");
    // k0 leaves at once as a batch (lost in the cut); k1..k10 fill the 10 waiting places.
    for i in 0..11 {
        assert!(matches!(
            net.write_wait("LON", "work", &format!("k{i}"), Some(val("v"))),
            Outcome::Ok { .. }
        ));
    }
    // Rewriting a waiting key coalesces and does not overflow.
    assert!(matches!(
        net.write_wait("LON", "work", "k3", Some(val("w"))),
        Outcome::Ok { .. }
    ));
    let now = net.now;
    assert!(net.site("LON").bridge.status(now).backups[0].online);
    // One more distinct key does.
    assert!(matches!(
        net.write_wait("LON", "work", "k11", Some(val("v"))),
        Outcome::Ok { .. }
    ));
    let now = net.now;
    let view = net.site("LON").bridge.status(now).backups[0].clone();
    assert!(!view.online && view.queued == 0, "{view:?}");
    assert!(net
        .site("LON")
        .log
        .iter()
        .any(|e| matches!(e, Event::BackupStatus { online: false, reason, .. } if reason.contains("queue full"))));
}

#[test]
fn take_offline_thresholds_can_be_amended_at_run_time() {
    let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 200));
    assert_eq!(
        net.site("LON")
            .bridge
            .take_offline_config("sessions", "NYC"),
        Some(TakeOfflineConfig::default())
    );
    net.site("LON")
        .bridge
        .amend_take_offline(
            "sessions",
            "NYC",
            TakeOfflineConfig {
                after_failures: 1,
                min_wait_ms: 0,
            },
        )
        .unwrap();
    net.cut("LON", "NYC");
    assert!(matches!(
        net.write_wait("LON", "sessions", "a", Some(val("v"))),
        Outcome::Failed(_)
    ));
    assert_eq!(
        net.write_wait("LON", "sessions", "b", Some(val("v"))),
        Outcome::Ok { warnings: vec![] }
    );
    assert!(matches!(
        net.site("LON")
            .bridge
            .amend_take_offline("nope", "NYC", TakeOfflineConfig::default()),
        Err(ironrod_xsite::AdminError::NoSuchBackup { .. })
    ));
    let now = net.now;
    assert!(matches!(
        net.site("LON").bridge.take_offline(now, None, "TYO"),
        Err(ironrod_xsite::AdminError::NoSuchSite(_))
    ));
}

mod hostile_peer {
    use super::*;
    use ironrod_xsite::wire::{self, Cause, Frame, Message, Route};
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;

    fn frame_bytes(m: Message) -> Vec<u8> {
        let mut out = Vec::new();
        wire::encode(
            &Frame {
                route: Route {
                    from: "LON".into(),
                    to: "NYC".into(),
                },
                message: m,
            },
            2,
            &mut out,
        );
        out
    }

    fn stray() -> impl proptest::strategy::Strategy<Value = Message> {
        prop_oneof![
            any::<u64>().prop_map(|id| Message::SyncAck { id }),
            (any::<u64>(), any::<u8>()).prop_map(|(id, c)| Message::SyncNack {
                id,
                cause: Cause(c),
                message: "x".into()
            }),
            any::<u64>().prop_map(|id| Message::AsyncAck { id }),
            (any::<u64>(), any::<u32>()).prop_map(|(push, seq)| Message::PushAck { push, seq }),
            (any::<u64>(), any::<u32>()).prop_map(|(push, seq)| Message::PushChunk {
                push,
                seq,
                changes: vec![]
            }),
            any::<u64>().prop_map(|push| Message::PushDone { push }),
            any::<u64>().prop_map(|push| Message::PushCancel { push }),
            Just(Message::Heartbeat),
            Just(Message::AsyncBatch {
                id: 1,
                changes: vec![]
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Well-formed but unsolicited frames on a live link are ignored or answered; the link
        /// stays up and replication still works.
        #[test]
        fn stray_frames_do_not_disturb_a_live_link(msgs in proptest::collection::vec(stray(), 1..20)) {
            let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 1000));
            for m in msgs {
                net.inject("NYC", "LON", &frame_bytes(m));
            }
            net.run_for(Duration::from_millis(10));
            let now = net.now;
            prop_assert_eq!(net.site("NYC").bridge.status(now).routes[0].link, LinkPhase::Up);
            prop_assert_eq!(net.write_wait("NYC", "sessions", "k", Some(val("v"))), Outcome::Ok { warnings: vec![] });
        }

        /// Garbage on a live link closes it with a protocol error (never a panic), and the sites
        /// reconnect and replicate afterwards.
        #[test]
        fn garbage_closes_the_link_and_it_recovers(garbage in proptest::collection::vec(any::<u8>(), 1..64)) {
            let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 1000));
            // A length prefix that promises a whole frame, then garbage: never "incomplete".
            let mut bytes = (garbage.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&garbage);
            net.inject("NYC", "LON", &bytes);
            net.run_for(Duration::from_secs(5));
            let now = net.now;
            prop_assert_eq!(net.site("NYC").bridge.status(now).routes[0].link, LinkPhase::Up);
            prop_assert_eq!(net.write_wait("LON", "sessions", "k", Some(val("v"))), Outcome::Ok { warnings: vec![] });
        }
    }
}

#[test]
fn an_accepted_connection_that_never_says_hello_is_closed() {
    let mut net = mesh(&["LON", "NYC"], "sessions", sync(FailurePolicy::Fail, 1000));
    let now = net.now;
    let idle = net.site("NYC").bridge.accept(now);
    net.site("NYC").bridge.handle_data(now, idle, &[0, 0]);
    net.run_for(Duration::from_millis(7_900));
    assert!(!net.site("NYC").log.contains(&Event::Close { conn: idle }));
    net.run_for(Duration::from_millis(200));
    let closed = net.site("NYC").log.contains(&Event::Close { conn: idle });
    assert!(closed, "closed once the failure timeout passed");
}

#[test]
fn sync_to_two_sites_applies_each_failure_policy() {
    let names = ["A", "B", "C"];
    let mut a = site_config("A", &names);
    let ca = a.caches.entry("sessions".into()).or_default();
    ca.backups
        .insert("B".into(), sync(FailurePolicy::Warn, 300));
    ca.backups
        .insert("C".into(), sync(FailurePolicy::Fail, 300));
    let mut net = Net::new(vec![a, site_config("B", &names), site_config("C", &names)]);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.sites_view("A"), vec!["A", "B", "C"]);
    net.cut("A", "B");
    let out = net.write_wait("A", "sessions", "k", Some(val("v")));
    let Outcome::Ok { warnings } = out else {
        panic!("{out:?}")
    };
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].site, "B");
    assert_eq!(net.get("C", "sessions", "k"), Some(val("v")));
    net.heal("A", "B");
    net.cut("A", "C");
    let Outcome::Failed(msg) = net.write_wait("A", "sessions", "k2", Some(val("v"))) else {
        panic!("C is FAIL");
    };
    assert!(msg.contains("site 'C'"), "{msg}");
    // B applied it before A rolled back: the documented SYNC hazard a push repairs.
    assert_eq!(net.get("A", "sessions", "k2"), None);
    assert_eq!(net.get("B", "sessions", "k2"), Some(val("v")));
    net.run_for(Duration::from_secs(10));
    assert_eq!(net.sites_view("A"), vec!["A", "B"]);
}

#[test]
fn the_simulation_is_deterministic() {
    let run = || {
        let mut net = mesh(&["A", "B", "C"], "work", asynchronous(MergePolicy::Default));
        let mut rng = Rng::new(42);
        for step in 0..100 {
            let site = ["A", "B", "C"][(rng.next_u64() % 3) as usize];
            net.write(
                site,
                "work",
                &format!("k{}", rng.next_u64() % 5),
                Some(val(&format!("{step}"))),
            );
            if step == 50 {
                net.cut("A", "B");
            }
            net.run_for(Duration::from_millis(rng.next_u64() % 30));
        }
        net.heal("A", "B");
        net.run_for(Duration::from_secs(30));
        let logs: Vec<String> = net
            .sites
            .iter()
            .map(|s| format!("{:?}{:?}", s.log, s.caches))
            .collect();
        (logs, net.now - net.t0)
    };
    assert_eq!(run(), run());
}
