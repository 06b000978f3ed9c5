//! `ironrod site ...`: cross-site administration of a running server over REST, like
//! Infinispan's CLI `site` command (`site status`, `site take-offline`, `site bring-online`,
//! `site push-site-state`, `site push-site-status`, `site clear-push-site-status`).
//!
//! `--cache C` acts on one cache's backup, `--all-caches` on every cache backed up to the site
//! (the container-wide endpoints). Exit codes as for `ironrod cache`.

use std::process::ExitCode;

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use super::rest_client::RestClient;
use super::{block_on, enc, failure, Connection};

/// Which backups a command acts on.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["cache", "all_caches"])))]
pub struct Scope {
    /// One cache.
    #[arg(long)]
    pub cache: Option<String>,
    /// Every cache with a backup to the site.
    #[arg(long)]
    pub all_caches: bool,
}

/// `ironrod site ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SiteCommand {
    /// Print whether backups are online or offline (JSON).
    Status {
        #[command(flatten)]
        scope: Scope,
        /// Only this backup site.
        #[arg(long)]
        site: Option<String>,
    },
    /// Stop backing up to a site (writes no longer wait for or fail on it).
    TakeOffline {
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        site: String,
    },
    /// Resume backing up to a site (push the state afterwards to fill what it missed).
    BringOnline {
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        site: String,
    },
    /// Copy the cache's entries to a site.
    PushSiteState {
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        site: String,
    },
    /// Cancel a running state push.
    CancelPushState {
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        site: String,
    },
    /// Print the state push status per site (SENDING, OK, ERROR, CANCELED).
    PushSiteStatus {
        #[command(flatten)]
        scope: Scope,
    },
    /// Forget finished push statuses.
    ClearPushSiteStatus {
        #[command(flatten)]
        scope: Scope,
    },
}

impl SiteCommand {
    pub fn run(self, conn: &Connection) -> ExitCode {
        block_on(self.execute(&conn.client()))
    }

    async fn execute(self, client: &RestClient) -> ExitCode {
        match self {
            SiteCommand::Status { scope, site } => {
                let target = match (&scope.cache, &site) {
                    (Some(c), None) => format!("/rest/v2/caches/{}/x-site/backups/", enc(c)),
                    (Some(c), Some(s)) => {
                        format!("/rest/v2/caches/{}/x-site/backups/{}", enc(c), enc(s))
                    }
                    (None, None) => "/rest/v2/container/x-site/backups/".to_string(),
                    (None, Some(s)) => format!("/rest/v2/container/x-site/backups/{}", enc(s)),
                };
                print_json(client, Method::GET, &target).await
            }
            SiteCommand::TakeOffline { scope, site } => {
                action(client, &scope, &site, "take-offline").await
            }
            SiteCommand::BringOnline { scope, site } => {
                action(client, &scope, &site, "bring-online").await
            }
            SiteCommand::PushSiteState { scope, site } => {
                action(client, &scope, &site, "start-push-state").await
            }
            SiteCommand::CancelPushState { scope, site } => {
                action(client, &scope, &site, "cancel-push-state").await
            }
            SiteCommand::PushSiteStatus { scope } => {
                per_cache(client, &scope, |c| {
                    (
                        Method::GET,
                        format!(
                            "/rest/v2/caches/{}/x-site/backups/?action=push-state-status",
                            enc(c)
                        ),
                    )
                })
                .await
            }
            SiteCommand::ClearPushSiteStatus { scope } => {
                per_cache(client, &scope, |c| {
                    (
                        Method::POST,
                        format!(
                            "/rest/v2/caches/{}/x-site/local?action=clear-push-state-status",
                            enc(c)
                        ),
                    )
                })
                .await
            }
        }
    }
}

async fn action(client: &RestClient, scope: &Scope, site: &str, action: &str) -> ExitCode {
    let target = match &scope.cache {
        Some(c) => format!(
            "/rest/v2/caches/{}/x-site/backups/{}?action={action}",
            enc(c),
            enc(site)
        ),
        None => format!(
            "/rest/v2/container/x-site/backups/{}?action={action}",
            enc(site)
        ),
    };
    print_json(client, Method::POST, &target).await
}

/// Runs the request for one cache, or for every cache (skipping those without backups).
async fn per_cache(
    client: &RestClient,
    scope: &Scope,
    request: impl Fn(&str) -> (Method, String),
) -> ExitCode {
    let caches = match &scope.cache {
        Some(c) => vec![c.clone()],
        None => match client
            .call(Method::GET, "/rest/v2/caches", &[], Bytes::new())
            .await
        {
            Ok(a) if a.status.is_success() => {
                serde_json::from_slice::<Vec<String>>(&a.body).unwrap_or_default()
            }
            Ok(a) => return failure(&a),
            Err(e) => {
                eprintln!("ironrod: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let mut all = serde_json::Map::new();
    for c in &caches {
        let (method, target) = request(c);
        let answer = match client.call(method, &target, &[], Bytes::new()).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ironrod: {e}");
                return ExitCode::from(1);
            }
        };
        if answer.status == hyper::StatusCode::NOT_FOUND && scope.cache.is_none() {
            continue;
        }
        if !answer.status.is_success() {
            return failure(&answer);
        }
        let v = serde_json::from_slice::<Value>(&answer.body).unwrap_or(Value::Null);
        all.insert(c.clone(), v);
    }
    let out = match &scope.cache {
        Some(c) => all.remove(c).unwrap_or(Value::Null),
        None => Value::Object(all),
    };
    if !out.is_null() {
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    ExitCode::SUCCESS
}

async fn print_json(client: &RestClient, method: Method, target: &str) -> ExitCode {
    let answer = match client.call(method, target, &[], Bytes::new()).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ironrod: {e}");
            return ExitCode::from(1);
        }
    };
    if !answer.status.is_success() {
        return failure(&answer);
    }
    if !answer.body.is_empty() {
        match serde_json::from_slice::<Value>(&answer.body)
            .and_then(|v| serde_json::to_string_pretty(&v))
        {
            Ok(pretty) => println!("{pretty}"),
            Err(_) => println!("{}", answer.text()),
        }
    }
    ExitCode::SUCCESS
}
