//! `loadgen startup`: how long a server takes from spawn to accepting a connection, and how
//! much memory it holds once idle.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::StartupArgs;

/// Kills the child when dropped, so an error never leaves a server behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// One start: milliseconds to the first accepted connection, and idle RSS in KiB.
fn once(args: &StartupArgs) -> Result<(f64, u64)> {
    let (program, rest) = args.command.split_first().context("no command")?;
    if TcpStream::connect(args.addr).is_ok() {
        bail!("something already listens on {}", args.addr);
    }
    let started = Instant::now();
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let mut guard = Guard(child);
    let deadline = started + args.timeout;
    let elapsed = loop {
        if TcpStream::connect(args.addr).is_ok() {
            break started.elapsed();
        }
        if let Some(status) = guard.0.try_wait()? {
            bail!("{program} exited with {status} before accepting connections");
        }
        if Instant::now() >= deadline {
            bail!(
                "{program} did not accept connections within {:?}",
                args.timeout
            );
        }
        std::hint::spin_loop();
    };
    std::thread::sleep(args.idle);
    let rss = rss_kib(guard.0.id())?;
    Ok((elapsed.as_secs_f64() * 1000.0, rss))
}

pub fn run(args: &StartupArgs) -> Result<()> {
    let mut ms = Vec::with_capacity(args.runs);
    let mut rss = Vec::with_capacity(args.runs);
    for _ in 0..args.runs.max(1) {
        let (t, r) = once(args)?;
        ms.push(t);
        rss.push(r);
        // Let the port be released before the next start.
        std::thread::sleep(Duration::from_millis(100));
    }
    ms.sort_by(f64::total_cmp);
    rss.sort_unstable();
    let median_ms = ms.get(ms.len() / 2).copied().unwrap_or_default();
    let median_rss = rss.get(rss.len() / 2).copied().unwrap_or_default();
    println!(
        "{}",
        serde_json::json!({
            "startup_ms_median": median_ms,
            "startup_ms_min": ms.first().copied().unwrap_or_default(),
            "startup_ms_max": ms.last().copied().unwrap_or_default(),
            "startup_ms_all": ms,
            "idle_rss_kib_median": median_rss,
            "idle_rss_kib_all": rss,
            "idle_s": args.idle.as_secs_f64(),
            "runs": ms.len(),
        })
    );
    Ok(())
}
