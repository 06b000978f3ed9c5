//! `ironrod`: the command line.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ironrod_sasl::CredentialStore;
use ironrod_server::cli::{CacheCommand, Connection, SiteCommand};
use ironrod_server::{auth, server, Config, State};
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
    /// Manage the users file that authentication checks against.
    #[command(subcommand)]
    User(UserCommand),
    /// Read and write a running server's caches over REST (exit codes: 0 ok, 1 unreachable or
    /// server error, 2 usage, 3 not found, 4 authentication refused, 5 other refusal).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Cross-site administration of a running server over REST (exit codes as for `cache`).
    Site {
        #[command(subcommand)]
        command: SiteCommand,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user to the users file, or replace it (new salts, new verifiers).
    Create(CreateUser),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["password", "password_stdin"])))]
struct CreateUser {
    /// The user name.
    name: String,
    /// The password (visible in the process list; prefer --password-stdin).
    #[arg(long)]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Roles, comma-separated.
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// The users file (default: the configuration's `security.users_file`, else `users.toml`).
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// A TOML configuration file, for `security.users_file` and the DIGEST-MD5 realms.
    #[arg(long, short = 'c', env = "IRONROD_CONFIG")]
    config: Option<PathBuf>,
}

impl CreateUser {
    /// Exit code 0 on success, 1 when the file cannot be read or written, 2 for bad input.
    fn run(self) -> ExitCode {
        let config = match &self.config {
            Some(path) => match Config::from_file(path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ironrod: {e}");
                    return ExitCode::from(2);
                }
            },
            None => Config::default(),
        };
        let path = self
            .users_file
            .clone()
            .or_else(|| config.security.users_file.clone())
            .unwrap_or_else(|| PathBuf::from("users.toml"));
        let password = match (self.password, self.password_stdin) {
            (Some(p), _) => p,
            (None, _) => {
                let mut line = String::new();
                if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                    eprintln!("ironrod: cannot read the password from standard input: {e}");
                    return ExitCode::from(1);
                }
                line.trim_end_matches(['\r', '\n']).to_string()
            }
        };
        let mut store = if path.exists() {
            match CredentialStore::load(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ironrod: {e}");
                    return ExitCode::from(1);
                }
            }
        } else {
            CredentialStore::new()
        };
        let roles: Vec<String> = self
            .roles
            .into_iter()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        if let Err(e) = store.set_user(&self.name, &password, &roles, &config.security.realms) {
            eprintln!("ironrod: {e}");
            return ExitCode::from(2);
        }
        if let Err(e) = store.save(&path) {
            eprintln!("ironrod: {e}");
            return ExitCode::from(1);
        }
        println!("user '{}' written to {}", self.name, path.display());
        if roles.is_empty() {
            eprintln!(
                "ironrod: note: '{}' has no roles; with authorization on it may only do what a role \
                 named like it grants (see --roles: admin, deployer, application, observer, monitor)",
                self.name
            );
        }
        ExitCode::SUCCESS
    }
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
        let mut config = Config::load(self.config.as_deref(), |var| std::env::var(var).ok())?;
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
        Some(Command::User(UserCommand::Create(create))) => return create.run(),
        Some(Command::Cache {
            command,
            connection,
        }) => return command.run(&connection),
        Some(Command::Site {
            command,
            connection,
        }) => return command.run(&connection),
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
    let env_user = std::env::var("IRONROD_USER").ok();
    let env_password = std::env::var("IRONROD_PASSWORD").ok();
    let credentials = match auth::load_credentials(
        &config.security,
        env_user.as_deref(),
        env_password.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            error!("cannot load users: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = if config.tls.enabled() {
        match ironrod_server::tls::Tls::load(&config.tls) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let mut state = match State::new(config) {
        Ok(s) => s,
        Err(e) => {
            error!("invalid cache configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if state.config.xsite.enabled() {
        match ironrod_server::xsite::Xsite::start(state.config.xsite.clone(), &state.caches) {
            Ok(xs) => state.xsite = Some(xs),
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(tls) = &tls {
        info!(
            "TLS enabled ({:?}); SIGHUP reloads the certificates",
            tls.mode()
        );
        state.tls = Some(tls.clone());
        tokio::spawn(ironrod_server::tls::reload_on_sighup(
            tls.clone(),
            tokio_util::sync::CancellationToken::new(),
        ));
    }
    let state = match credentials {
        Some(store) => {
            let users = store.user_names().count();
            match state.with_credentials(store) {
                Ok(s) => {
                    info!("authentication enabled ({users} users)");
                    Arc::new(s)
                }
                Err(e) => {
                    error!("cannot enable authentication: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        None => {
            info!("authentication disabled: no [security] users_file and no IRONROD_USER");
            Arc::new(state)
        }
    };
    if let Some(xs) = &state.xsite {
        let stop = tokio_util::sync::CancellationToken::new();
        if let Err(e) = ironrod_server::xsite::driver::spawn(xs.clone(), state.clone(), stop).await
        {
            error!("cannot start the site bridge: {e}");
            return ExitCode::from(1);
        }
    }
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
