//! `/metrics`: Prometheus text exposition (format 0.0.4).
//!
//! Cache metrics use Infinispan's tagged names (`infinispan_statistics_*{cache_manager,cache}`,
//! the form Infinispan exports once its legacy names are off) so that dashboards built for it
//! keep working; what Infinispan has no metric for is named `ironrod_*`. Process metrics use
//! the Prometheus client conventions (`process_*`), read from `/proc`.

use std::fmt::Write as _;

use super::reply::{self, Reply};
use crate::state::State;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub fn scrape(state: &State) -> Reply {
    reply::with_body(hyper::StatusCode::OK, CONTENT_TYPE, render(state))
}

/// The whole exposition.
pub fn render(state: &State) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let mut caches = state.caches.caches();
    caches.sort_by(|a, b| a.name().cmp(b.name()));
    let stats: Vec<_> = caches.iter().map(|c| (c.name(), c.stats())).collect();

    type Field = fn(&ironrod_engine::Stats) -> u64;
    let families: [(&str, &str, &str, Field); 10] = [
        (
            "infinispan_statistics_approximate_entries",
            "gauge",
            "Entries in the cache.",
            |s| s.current_entries,
        ),
        (
            "infinispan_statistics_approximate_entries_in_memory",
            "gauge",
            "Entries held in memory (all of them).",
            |s| s.current_entries,
        ),
        (
            "infinispan_statistics_stores",
            "counter",
            "Writes that stored a value.",
            |s| s.stores,
        ),
        (
            "infinispan_statistics_retrievals",
            "counter",
            "Key reads.",
            |s| s.retrievals,
        ),
        (
            "infinispan_statistics_hits",
            "counter",
            "Key reads that found an entry.",
            |s| s.hits,
        ),
        (
            "infinispan_statistics_misses",
            "counter",
            "Key reads that found nothing.",
            |s| s.misses,
        ),
        (
            "infinispan_statistics_remove_hits",
            "counter",
            "Removes that removed an entry.",
            |s| s.remove_hits,
        ),
        (
            "infinispan_statistics_remove_misses",
            "counter",
            "Removes that found nothing.",
            |s| s.remove_misses,
        ),
        (
            "ironrod_cache_expirations_total",
            "counter",
            "Entries removed because they expired.",
            |s| s.expirations,
        ),
        (
            "ironrod_cache_lock_conflicts_total",
            "counter",
            "Writes refused because their key stayed locked (ISPN000299).",
            |s| s.lock_conflicts,
        ),
    ];
    for (name, kind, help, field) in families {
        family(&mut out, name, kind, help);
        for (cache, s) in &stats {
            let _ = writeln!(
                out,
                "{name}{{cache_manager=\"default\",cache=\"{}\"}} {}",
                escape(cache),
                field(s)
            );
        }
    }
    family(
        &mut out,
        "ironrod_cache_time_since_start_seconds",
        "gauge",
        "Seconds since the cache started.",
    );
    for (cache, s) in &stats {
        let _ = writeln!(
            out,
            "ironrod_cache_time_since_start_seconds{{cache=\"{}\"}} {}",
            escape(cache),
            s.time_since_start
        );
    }

    let listened: Vec<_> = caches
        .iter()
        .filter_map(|c| {
            state
                .listeners
                .registry_of(c.name())
                .map(|r| (c.name(), r.len(), r.queue_depth()))
        })
        .collect();
    family(
        &mut out,
        "ironrod_cache_listeners",
        "gauge",
        "Client listeners registered on the cache.",
    );
    for (cache, n, _) in &listened {
        let _ = writeln!(
            out,
            "ironrod_cache_listeners{{cache=\"{}\"}} {n}",
            escape(cache)
        );
    }
    family(
        &mut out,
        "ironrod_cache_listener_queue_depth",
        "gauge",
        "Events queued for the cache's listeners, all together.",
    );
    for (cache, _, (total, _)) in &listened {
        let _ = writeln!(
            out,
            "ironrod_cache_listener_queue_depth{{cache=\"{}\"}} {total}",
            escape(cache)
        );
    }
    family(
        &mut out,
        "ironrod_cache_listener_queue_max",
        "gauge",
        "Events queued for the cache's slowest listener.",
    );
    for (cache, _, (_, max)) in &listened {
        let _ = writeln!(
            out,
            "ironrod_cache_listener_queue_max{{cache=\"{}\"}} {max}",
            escape(cache)
        );
    }

    family(
        &mut out,
        "ironrod_bytes_read_total",
        "counter",
        "Bytes read from Hot Rod connections.",
    );
    let _ = writeln!(
        out,
        "ironrod_bytes_read_total {}",
        state.bytes_read.load(std::sync::atomic::Ordering::Relaxed)
    );
    family(
        &mut out,
        "ironrod_bytes_written_total",
        "counter",
        "Bytes written to Hot Rod connections.",
    );
    let _ = writeln!(
        out,
        "ironrod_bytes_written_total {}",
        state
            .bytes_written
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    family(
        &mut out,
        "ironrod_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    let _ = writeln!(
        out,
        "ironrod_uptime_seconds {:.3}",
        state.started.elapsed().as_secs_f64()
    );
    xsite(state, &mut out);
    process(&mut out);
    out
}

/// `infinispan_x_site_admin_status{cache,site}` (1 online, 0 offline) and the ASYNC queue
/// depth, when the site bridge runs.
fn xsite(state: &State, out: &mut String) {
    let Some(xs) = &state.xsite else { return };
    let backups = xs.with_bridge(|b, now| b.status(now)).backups;
    family(
        out,
        "infinispan_x_site_admin_status",
        "gauge",
        "Whether the backup of the cache to the site is online (1) or offline (0).",
    );
    for v in &backups {
        let _ = writeln!(
            out,
            "infinispan_x_site_admin_status{{cache=\"{}\",site=\"{}\"}} {}",
            escape(&v.cache),
            escape(&v.site),
            u8::from(v.online)
        );
    }
    family(
        out,
        "ironrod_x_site_async_queued",
        "gauge",
        "Changes waiting for an ASYNC backup to acknowledge them.",
    );
    for v in &backups {
        let _ = writeln!(
            out,
            "ironrod_x_site_async_queued{{cache=\"{}\",site=\"{}\"}} {}",
            escape(&v.cache),
            escape(&v.site),
            v.queued
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `process_*` from `/proc/self` (Linux); absent elsewhere.
fn process(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let Some(after) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // stat(5): utime 14, stime 15, starttime 22, vsize 23, rss 24 (1-based over the whole
    // line; the slice starts at field 3).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = 100.0; // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    let page = 4096u64;
    if let (Some(u), Some(s)) = (field(14), field(15)) {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time.",
        );
        let _ = writeln!(
            out,
            "process_cpu_seconds_total {:.2}",
            (u + s) as f64 / ticks
        );
    }
    if let Some(v) = field(23) {
        family(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size.",
        );
        let _ = writeln!(out, "process_virtual_memory_bytes {v}");
    }
    if let Some(r) = field(24) {
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {}", r * page);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        let _ = writeln!(out, "process_open_fds {}", dir.count());
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time()) {
        family(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time since the epoch.",
        );
        let _ = writeln!(
            out,
            "process_start_time_seconds {:.2}",
            boot as f64 + start as f64 / ticks
        );
    }
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
