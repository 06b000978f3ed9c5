//! `loadgen`: measures a Hot Rod server (Ironrod, or the echo responder that bounds what
//! loopback allows) and a RESP server (Redis) with one client model, so their numbers compare.
//!
//! * `loadgen hotrod` / `loadgen resp`: `--connections` connections each keep `--pipeline`
//!   requests in flight; after preloading every key, a GET/PUT mix over uniformly drawn keys runs
//!   for `--warmup` (unrecorded) then `--duration`; prints one Markdown table row and one JSON line.
//! * `loadgen fill`: stores `--count` distinct entries and exits (memory measurements).
//! * `loadgen echo`: a Hot Rod responder that decodes each request and answers a canned response.
//! * `loadgen startup`: spawns a server command, polls its port until it accepts, reports the time
//!   taken and the process's idle RSS.
//! * `loadgen conflict`: the latency of the ISPN000299 answer to a write of a key a prepared
//!   remote transaction holds.
//! * `loadgen events`: client-listener events per second and delivery latency.
//! * `loadgen report`: renders the JSON lines of a run as a Markdown table with the target ratios.

mod client;
mod conflict;
mod echo;
mod events;
mod hotrod;
mod keys;
mod report;
mod resp;
mod startup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ironrod_codec::Version;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for Ironrod (Hot Rod) and Redis (RESP)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive a Hot Rod server (Ironrod, Infinispan, or `loadgen echo`).
    Hotrod(LoadArgs),
    /// Drive a RESP server (Redis) with GET/SET.
    Resp(LoadArgs),
    /// Store `--count` distinct entries, then exit.
    Fill(FillArgs),
    /// Serve canned Hot Rod answers: the loopback bound.
    Echo(EchoArgs),
    /// Measure a server's time to accept connections and its idle RSS.
    Startup(StartupArgs),
    /// Render JSON result lines as a Markdown table with the target ratios.
    Report(ReportArgs),
    /// Measure how fast a write to a key locked by a prepared transaction is refused.
    Conflict(ConflictArgs),
    /// Client-listener events per second and delivery latency (p50/p99).
    Events(EventsArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConflictArgs {
    #[arg(long, default_value = "127.0.0.1:11222")]
    pub addr: SocketAddr,
    /// A transactional cache (Keycloak's caches are, out of the box).
    #[arg(long, default_value = "sessions")]
    pub cache: String,
    /// Conflict answers recorded.
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
    /// Conflict answers sent first and not recorded.
    #[arg(long, default_value_t = 2_000)]
    pub warmup: u64,
    #[arg(long, default_value = "4.0", value_parser = parse_version)]
    pub version: Version,
}

/// Options of `loadgen events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    #[arg(long, default_value = "127.0.0.1:11222")]
    pub addr: SocketAddr,
    /// Listener connections, one listener each.
    #[arg(long, default_value_t = 1)]
    pub listeners: usize,
    /// Writer connections.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// PUTs kept in flight on each writer connection.
    #[arg(long, default_value_t = 16)]
    pub pipeline: usize,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    #[arg(long, default_value = "4.0", value_parser = parse_version)]
    pub version: Version,
    #[arg(long, default_value = "default")]
    pub cache: String,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the table header before the row.
    #[arg(long)]
    pub header: bool,
}

/// Options of the two load commands.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[arg(long, default_value = "127.0.0.1:11222")]
    pub addr: SocketAddr,
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Requests kept in flight on each connection.
    #[arg(long, default_value_t = 16)]
    pub pipeline: usize,
    /// Fraction of GETs (the rest are PUTs).
    #[arg(long, default_value_t = 0.5)]
    pub get_ratio: f64,
    /// Size of the key space; keys are drawn uniformly from it.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Measured time, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unrecorded time before the measurement.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Hot Rod protocol version (ignored by `resp`).
    #[arg(long, default_value = "4.0", value_parser = parse_version)]
    pub version: Version,
    /// Hot Rod cache name (ignored by `resp`).
    #[arg(long, default_value = "default")]
    pub cache: String,
    /// Name of the server in the output (default: the protocol).
    #[arg(long)]
    pub label: Option<String>,
    /// Skip the preload (the keys are already there).
    #[arg(long)]
    pub no_preload: bool,
    /// Runtime worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the table header before the row.
    #[arg(long)]
    pub header: bool,
    /// The server's process id, to report the CPU it used in the measured window.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FillArgs {
    #[arg(long, default_value = "127.0.0.1:11222")]
    pub addr: SocketAddr,
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,
    /// `hotrod` or `resp`.
    #[arg(long, default_value = "hotrod")]
    pub protocol: String,
    #[arg(long, default_value = "4.0", value_parser = parse_version)]
    pub version: Version,
    #[arg(long, default_value = "default")]
    pub cache: String,
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EchoArgs {
    #[arg(long, default_value = "127.0.0.1:11222")]
    pub bind: SocketAddr,
    /// Size of the value every GET answer carries.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartupArgs {
    /// The address the server will listen on.
    #[arg(long)]
    pub addr: SocketAddr,
    /// How many times to start the server.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// How long to leave the server idle before reading its RSS.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub idle: Duration,
    /// Give up on one start after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The server command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// A file of JSON lines written by `hotrod` and `resp`.
    pub results: PathBuf,
    /// Server labels to compare: Ironrod, the echo responder, Redis.
    #[arg(long, default_value = "ironrod")]
    pub ironrod: String,
    #[arg(long, default_value = "echo")]
    pub echo: String,
    #[arg(long, default_value = "redis")]
    pub redis: String,
}

/// `10s`, `250ms`, `2m`, `1.5s`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    if !value.is_finite() || value < 0.0 {
        bail!("invalid duration {s:?}");
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// `4.0` → Version(40); also accepts the wire byte itself (`40`).
fn parse_version(s: &str) -> Result<Version> {
    let byte = match s.split_once('.') {
        Some((major, minor)) => {
            let major: u8 = major.parse().context("invalid major version")?;
            let minor: u8 = minor.parse().context("invalid minor version")?;
            if minor > 9 {
                bail!("invalid minor version {minor}");
            }
            major
                .checked_mul(10)
                .and_then(|m| m.checked_add(minor))
                .context("version out of range")?
        }
        None => s.parse().context("invalid version")?,
    };
    let version = Version::new(byte);
    if !version.is_known() {
        bail!("unknown Hot Rod version {s}");
    }
    Ok(version)
}

/// A tokio runtime with `threads` workers (default: the CPUs this process may run on, which
/// `taskset` narrows).
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// The load generator's own runtime: single-threaded when it has one CPU (as `benches/run.sh`
/// pins it), which spares the work-stealing scheduler's cost on every wake-up, for both
/// protocols alike.
fn client_runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let cpus = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    if cpus > 1 {
        return runtime(Some(cpus));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Hotrod(args) => {
            client_runtime(args.threads)?.block_on(client::load(client::Protocol::HotRod, args))
        }
        Command::Resp(args) => {
            client_runtime(args.threads)?.block_on(client::load(client::Protocol::Resp, args))
        }
        Command::Fill(args) => client_runtime(args.threads)?.block_on(client::fill(args)),
        Command::Echo(args) => runtime(None)?.block_on(echo::serve(args)),
        Command::Startup(args) => startup::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Conflict(args) => runtime(Some(1))?.block_on(conflict::run(args)),
        Command::Events(args) => runtime(args.threads)?.block_on(events::run(args)),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("4.0").unwrap(), Version::V4_0);
        assert_eq!(parse_version("2.8").unwrap(), Version::V2_8);
        assert_eq!(parse_version("31").unwrap(), Version::V3_1);
        assert!(parse_version("1.3").is_err());
    }
}
