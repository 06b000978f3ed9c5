//! `ironrod`: the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ironrod_server::{server, Config, State};
use tracing::{error, info};

/// A Hot Rod data grid server: a drop-in replacement for an external Infinispan server.
#[derive(Debug, Parser)]
#[command(name = "ironrod", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Hot Rod (the default when no command is given).
    Serve(ServeArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// A TOML configuration file; without one the embedded default is used.
    #[arg(long, short = 'c', env = "IRONROD_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on (default 0.0.0.0:11222).
    #[arg(long, env = "IRONROD_BIND")]
    bind: Option<SocketAddr>,
    /// Host name or address clients are told to dial (default: the address they connected to).
    #[arg(long, env = "IRONROD_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// Port clients are told to dial (default: the port they connected to).
    #[arg(long, env = "IRONROD_ADVERTISE_PORT")]
    advertise_port: Option<u16>,
    /// Most simultaneous connections.
    #[arg(long, env = "IRONROD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Largest frame a request may have, in bytes.
    #[arg(long, env = "IRONROD_MAX_FRAME_LEN")]
    max_frame_len: Option<usize>,
    /// Log filter, e.g. `info` or `ironrod_server=debug`.
    #[arg(long, env = "IRONROD_LOG")]
    log: Option<String>,
}

impl ServeArgs {
    fn load(&self) -> Result<Config, ironrod_server::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(b) = self.bind {
            config.bind = b;
        }
        if let Some(h) = &self.advertise_host {
            config.advertise_host = Some(h.clone());
        }
        if let Some(p) = self.advertise_port {
            config.advertise_port = Some(p);
        }
        if let Some(n) = self.max_connections {
            config.max_connections = n;
        }
        if let Some(n) = self.max_frame_len {
            config.limits.max_frame_len = n;
        }
        if let Some(l) = &self.log {
            config.log = l.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ironrod: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironrod: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let bind = config.bind;
    let state = match State::new(config) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            error!("invalid cache configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen on {bind}: {e}");
            return ExitCode::from(1);
        }
    };
    info!(
        "ironrod {} listening for Hot Rod on {}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr().unwrap_or(bind)
    );
    server::serve(listener, state, shutdown_signal()).await;
    info!("stopped");
    ExitCode::SUCCESS
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    info!("shutdown requested");
}
