//! `loadgen report`: the JSON lines of a run as a Markdown table, with the ratios the project
//! targets: unpipelined Ironrod at ≥ 0.95× the echo responder, pipelined Ironrod at ≥ 1.25×
//! Redis.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::ReportArgs;

const ECHO_TARGET: f64 = 0.95;
const REDIS_TARGET: f64 = 1.25;
/// A server below this share of its CPU, while the load generator is at or above it, was not
/// saturated: its row is bounded by the client.
const SATURATED_PCT: f64 = 95.0;

#[derive(Debug, Clone, Deserialize)]
struct Row {
    server: String,
    workload: String,
    pipeline: usize,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    #[serde(default)]
    server_cpu_pct: Option<f64>,
    #[serde(default)]
    client_cpu_pct: Option<f64>,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("bad result line")?;
    if rows.is_empty() {
        bail!("no results in {}", args.results.display());
    }
    print!("{}", render(&rows, args));
    Ok(())
}

fn render(rows: &[Row], args: &ReportArgs) -> String {
    let mut workloads: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        if !workloads.iter().any(|(w, _)| *w == r.workload) {
            workloads.push((&r.workload, r.pipeline));
        }
    }
    let servers = [&args.ironrod, &args.echo, &args.redis];
    let mut by_key: BTreeMap<(&str, &str), &Row> = BTreeMap::new();
    for r in rows {
        by_key.insert((r.workload.as_str(), r.server.as_str()), r);
    }
    let mut out = String::new();
    out.push_str(
        "| workload | server | ops/s | p50 µs | p99 µs | p99.9 µs | server CPU | loadgen CPU |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    let cpu = |c: Option<f64>| c.map_or("–".to_string(), |c| format!("{c:.0}%"));
    for (w, _) in &workloads {
        let mut names: Vec<&str> = servers.iter().map(|s| s.as_str()).collect();
        for r in rows {
            if r.workload == *w && !names.contains(&r.server.as_str()) {
                names.push(&r.server);
            }
        }
        for s in names {
            if let Some(r) = by_key.get(&(*w, s)) {
                let client_bound = matches!(
                    (r.server_cpu_pct, r.client_cpu_pct),
                    (Some(srv), Some(cli)) if srv < SATURATED_PCT && cli >= SATURATED_PCT
                );
                let s = if client_bound {
                    format!("{s} (client-bound)")
                } else {
                    s.to_string()
                };
                out.push_str(&format!(
                    "| {w} | {s} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} |\n",
                    r.ops_per_s,
                    r.p50_us,
                    r.p99_us,
                    r.p999_us,
                    cpu(r.server_cpu_pct),
                    cpu(r.client_cpu_pct)
                ));
            }
        }
    }
    out.push_str(&format!(
        "\n(client-bound): the server used less than {SATURATED_PCT:.0}% of its CPU while the load \
         generator used more, so the row is a lower bound on the server's capacity.\n\n"
    ));
    out.push_str("| workload | ironrod/echo | ironrod/redis | target | met |\n");
    out.push_str("|---|---:|---:|---|---|\n");
    let ratio = |w: &str, other: &str| -> Option<f64> {
        let a = by_key.get(&(w, args.ironrod.as_str()))?.ops_per_s;
        let b = by_key.get(&(w, other))?.ops_per_s;
        (b > 0.0).then_some(a / b)
    };
    let fmt = |r: Option<f64>| r.map_or("–".to_string(), |r| format!("{r:.2}×"));
    for (w, pipeline) in &workloads {
        let echo = ratio(w, &args.echo);
        let redis = ratio(w, &args.redis);
        let (target, got) = if *pipeline <= 1 {
            (
                format!("≥ {ECHO_TARGET}× echo"),
                echo.map(|r| r >= ECHO_TARGET),
            )
        } else {
            (
                format!("≥ {REDIS_TARGET}× redis"),
                redis.map(|r| r >= REDIS_TARGET),
            )
        };
        let met = match got {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        out.push_str(&format!(
            "| {w} | {} | {} | {target} | {met} |\n",
            fmt(echo),
            fmt(redis)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(server: &str, workload: &str, pipeline: usize, ops: f64) -> Row {
        Row {
            server: server.into(),
            workload: workload.into(),
            pipeline,
            ops_per_s: ops,
            p50_us: 1.0,
            p99_us: 2.0,
            p999_us: 3.0,
            server_cpu_pct: None,
            client_cpu_pct: None,
        }
    }

    #[test]
    fn ratios_against_the_right_baseline() {
        let args = ReportArgs {
            results: "x".into(),
            ironrod: "ironrod".into(),
            echo: "echo".into(),
            redis: "redis".into(),
        };
        let rows = vec![
            row("ironrod", "GET 100B p1", 1, 96.0),
            row("echo", "GET 100B p1", 1, 100.0),
            row("redis", "GET 100B p1", 1, 90.0),
            row("ironrod", "GET 100B p16", 16, 120.0),
            row("redis", "GET 100B p16", 16, 100.0),
        ];
        let text = render(&rows, &args);
        assert!(text.contains("| GET 100B p1 | 0.96× | 1.07× | ≥ 0.95× echo | yes |"));
        assert!(text.contains("| GET 100B p16 | – | 1.20× | ≥ 1.25× redis | **no** |"));
    }
}
