//! Command-line clients of a running server: `ironrod cache ...` over REST on the Hot Rod
//! port, the way Infinispan's CLI talks to its server.
//!
//! Exit codes: 0 success; 1 the server could not be reached or failed (5xx); 2 bad usage;
//! 3 the cache or key does not exist (404); 4 authentication or permission refused (401/403);
//! 5 the request was refused for another reason (other 4xx, e.g. 409).

pub mod rest_client;
pub mod site;

pub use site::SiteCommand;

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use rest_client::{Answer, RestClient};

/// How to reach the server.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The server's `host:port`.
    #[arg(
        long,
        env = "IRONROD_SERVER",
        default_value = "127.0.0.1:11222",
        global = true
    )]
    pub server: String,
    /// User name, when the server requires authentication.
    #[arg(long, env = "IRONROD_CLI_USER", global = true)]
    pub user: Option<String>,
    /// Password (prefer the IRONROD_CLI_PASSWORD environment variable).
    #[arg(
        long,
        env = "IRONROD_CLI_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 30, global = true)]
    pub timeout: u64,
}

impl Connection {
    fn client(&self) -> RestClient {
        RestClient {
            server: self.server.clone(),
            credentials: self
                .user
                .clone()
                .map(|u| (u, self.password.clone().unwrap_or_default())),
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

/// `ironrod cache ...`.
#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// List the cache names.
    List,
    /// Print an entry's value.
    Get { cache: String, key: String },
    /// Store a value (replacing any).
    Put {
        cache: String,
        key: String,
        value: String,
        /// Lifespan in seconds (default: the cache's; negative: never expires).
        #[arg(long, allow_negative_numbers = true)]
        ttl: Option<i64>,
        /// Max idle time in seconds (default: the cache's; negative: none).
        #[arg(long, allow_negative_numbers = true)]
        max_idle: Option<i64>,
    },
    /// Remove an entry.
    Remove { cache: String, key: String },
    /// Remove every entry of a cache.
    Clear { cache: String },
    /// Print a cache's statistics (JSON).
    Stats { cache: String },
}

impl CacheCommand {
    pub fn run(self, conn: &Connection) -> ExitCode {
        block_on(self.execute(&conn.client()))
    }

    async fn execute(self, client: &RestClient) -> ExitCode {
        let (method, target, headers, body) = match &self {
            CacheCommand::List => (
                Method::GET,
                "/rest/v2/caches".to_string(),
                vec![],
                Bytes::new(),
            ),
            CacheCommand::Get { cache, key } => {
                (Method::GET, entry(cache, key), vec![], Bytes::new())
            }
            CacheCommand::Put {
                cache,
                key,
                value,
                ttl,
                max_idle,
            } => {
                let mut h = vec![("content-type", "text/plain; charset=utf-8".to_string())];
                if let Some(t) = ttl {
                    h.push(("timeToLiveSeconds", t.to_string()));
                }
                if let Some(m) = max_idle {
                    h.push(("maxIdleTimeSeconds", m.to_string()));
                }
                (
                    Method::PUT,
                    entry(cache, key),
                    h,
                    Bytes::from(value.clone()),
                )
            }
            CacheCommand::Remove { cache, key } => {
                (Method::DELETE, entry(cache, key), vec![], Bytes::new())
            }
            CacheCommand::Clear { cache } => (
                Method::POST,
                format!("/rest/v2/caches/{}?action=clear", enc(cache)),
                vec![],
                Bytes::new(),
            ),
            CacheCommand::Stats { cache } => (
                Method::GET,
                format!("/rest/v2/caches/{}?action=stats", enc(cache)),
                vec![],
                Bytes::new(),
            ),
        };
        let answer = match client.call(method, &target, &headers, body).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ironrod: {e}");
                return ExitCode::from(1);
            }
        };
        if !answer.status.is_success() {
            return failure(&answer);
        }
        match self {
            CacheCommand::List => match serde_json::from_slice::<Vec<String>>(&answer.body) {
                Ok(names) => {
                    for n in names {
                        println!("{n}");
                    }
                }
                Err(_) => println!("{}", answer.text()),
            },
            CacheCommand::Get { .. } => {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&answer.body);
                let _ = out.write_all(b"\n");
            }
            CacheCommand::Stats { .. } => {
                match serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                {
                    Ok(pretty) => println!("{pretty}"),
                    Err(_) => println!("{}", answer.text()),
                }
            }
            CacheCommand::Put { .. } | CacheCommand::Remove { .. } | CacheCommand::Clear { .. } => {
            }
        }
        ExitCode::SUCCESS
    }
}

/// Runs a command's request on a one-thread runtime; exit code 1 if there is none to be had.
pub(crate) fn block_on(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            eprintln!("ironrod: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

fn entry(cache: &str, key: &str) -> String {
    format!("/rest/v2/caches/{}/{}", enc(cache), enc(key))
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Says what went wrong and picks the exit code.
fn failure(answer: &Answer) -> ExitCode {
    let text = answer.text();
    let detail = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    let (code, what) = match answer.status {
        StatusCode::NOT_FOUND => (3, "not found"),
        StatusCode::UNAUTHORIZED => (4, "authentication failed (check --user and --password)"),
        StatusCode::FORBIDDEN => (4, "permission denied"),
        s if s.is_server_error() => (1, "server error"),
        _ => (5, "refused"),
    };
    eprintln!("ironrod: {what} ({}){detail}", answer.status);
    ExitCode::from(code)
}
