//! Real `ironrod` processes as sites, wired through fault-injecting proxies, and a Hot Rod
//! client (the codec's client side) and REST calls to drive them.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ironrod_codec::{Expiration, Op, Request, RequestHeader, ResponseBody, Status, Version};

use crate::common::Client;
use crate::proxy::Proxy;

pub const BIN: &str = env!("CARGO_BIN_EXE_ironrod");
const SECRET: &str = "a-test-secret-that-is-long-enough";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One site: an `ironrod` process.
pub struct Site {
    pub name: String,
    pub hotrod: SocketAddr,
    pub bridge: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Site {
    fn new(name: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        Site {
            name: name.to_string(),
            hotrod: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            bridge: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            config: dir.path().join("ironrod.toml"),
            log: dir.path().join("ironrod.log"),
            child: None,
            _dir: dir,
        }
    }

    /// Starts (or restarts) the process and waits until Hot Rod answers.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .arg("-c")
            .arg(&self.config)
            .env("IRONROD_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.hotrod).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL: no goodbye on the links).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn client(&self) -> Hr {
        Hr {
            c: Client::connect_with(self.hotrod, Duration::from_secs(30)).await,
            id: 0,
        }
    }

    /// `ironrod site ...` against this site; returns (exit code, stdout).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(BIN)
            .arg("site")
            .args(args)
            .arg("--server")
            .arg(self.hotrod.to_string())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// A REST call; returns (status, body).
    pub fn rest(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.hotrod).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// The `auth` value every site of [`Grid::start`] uses.
pub fn shared_secret() -> String {
    format!("{{ mode = \"shared-secret\", secret = \"{SECRET}\" }}")
}

/// How many sites (this one included) `site`'s `sites_view` lists.
pub fn sites_view_len(site: &Site) -> usize {
    let (_, body) = site.rest("GET", "/rest/v2/container", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["sites_view"].as_array().map_or(0, Vec::len)
}

/// Link timing that notices failures within about a second.
const LINK: &str = "[xsite.link]\nheartbeat_ms = 200\nfailure_timeout_ms = 1000\nreconnect_min_ms = 50\nreconnect_max_ms = 300\n";

/// Several sites, each pair joined by two proxies (one per dialling direction).
pub struct Grid {
    pub sites: Vec<Site>,
    /// (from, to) → the proxy `from` dials to reach `to`.
    pub proxies: BTreeMap<(usize, usize), Proxy>,
}

impl Grid {
    /// Sites named `names`; `caches(i)` is the TOML (cache settings and
    /// `[xsite.caches.*]` backups) of site `i`. Started.
    pub async fn start(names: &[&str], caches: impl Fn(usize) -> String) -> Grid {
        let g = Grid::launch(names, |_| shared_secret(), caches).await;
        g.wait_links().await;
        g
    }

    /// Like [`Grid::start`] with `auth(i)` as site `i`'s `auth = ...` value, and without
    /// waiting for the links.
    pub async fn launch(
        names: &[&str],
        auth: impl Fn(usize) -> String,
        caches: impl Fn(usize) -> String,
    ) -> Grid {
        let mut sites: Vec<Site> = names.iter().map(|n| Site::new(n)).collect();
        let mut proxies = BTreeMap::new();
        for i in 0..sites.len() {
            for (j, target) in sites.iter().enumerate() {
                if i != j {
                    proxies.insert((i, j), Proxy::start("127.0.0.1:0", target.bridge).await);
                }
            }
        }
        for (i, site) in sites.iter().enumerate() {
            let mut text = format!(
                "bind = \"{}\"\n\n[xsite]\nsite = \"{}\"\nlisten = \"{}\"\nauth = {}\n\n",
                site.hotrod,
                site.name,
                site.bridge,
                auth(i)
            );
            for (j, other) in names.iter().enumerate() {
                if i != j {
                    text.push_str(&format!(
                        "[xsite.remote_sites.{other}]\naddress = \"{}\"\n\n",
                        proxies[&(i, j)].addr
                    ));
                }
            }
            text.push_str(LINK);
            text.push('\n');
            text.push_str(&caches(i));
            std::fs::write(&site.config, text).unwrap();
        }
        for s in &mut sites {
            s.start();
        }
        Grid { sites, proxies }
    }

    /// Waits until every site sees every other in its sites view.
    pub async fn wait_links(&self) {
        let n = self.sites.len();
        let deadline = Instant::now() + Duration::from_secs(20);
        for s in &self.sites {
            loop {
                let (_, body) = s.rest("GET", "/rest/v2/container", None);
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if v["sites_view"].as_array().map_or(0, Vec::len) == n {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "links never came up:\n{}",
                    s.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Both proxies between two sites.
    pub fn between(&self, a: usize, b: usize) -> [&Proxy; 2] {
        [&self.proxies[&(a, b)], &self.proxies[&(b, a)]]
    }
}

/// A Hot Rod connection.
pub struct Hr {
    c: Client,
    id: u64,
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl Hr {
    async fn call(&mut self, cache: &str, op: Op) -> ironrod_codec::Response {
        self.id += 1;
        self.c
            .call(Request {
                header: RequestHeader::new(self.id, Version::V4_0, cache),
                op,
            })
            .await
    }

    /// PUT; `Err` carries the server's error text.
    pub async fn put(&mut self, cache: &str, key: &str, value: &str) -> Result<(), String> {
        let r = self
            .call(
                cache,
                Op::Put {
                    key: b(key),
                    expiration: Expiration::DEFAULT,
                    value: b(value),
                },
            )
            .await;
        match r.body {
            ResponseBody::Error(text) => Err(text),
            _ if r.status.is_success() => Ok(()),
            other => Err(format!("{:?} {other:?}", r.status)),
        }
    }

    pub async fn remove(&mut self, cache: &str, key: &str) -> Result<(), String> {
        let r = self.call(cache, Op::Remove { key: b(key) }).await;
        match r.body {
            ResponseBody::Error(text) => Err(text),
            _ => Ok(()),
        }
    }

    /// CLEAR; `Err` carries the server's error text.
    pub async fn clear(&mut self, cache: &str) -> Result<(), String> {
        let r = self.call(cache, Op::Clear).await;
        match r.body {
            ResponseBody::Error(text) => Err(text),
            _ if r.status.is_success() => Ok(()),
            other => Err(format!("{:?} {other:?}", r.status)),
        }
    }

    pub async fn get(&mut self, cache: &str, key: &str) -> Option<String> {
        let r = self.call(cache, Op::Get { key: b(key) }).await;
        match r.body {
            ResponseBody::Value(v) if r.status == Status::SUCCESS => {
                Some(String::from_utf8_lossy(&v).to_string())
            }
            _ => None,
        }
    }

    /// Registers a plain client listener on `cache` (this connection then carries its events).
    pub async fn listen(&mut self, cache: &str, listener: &str) {
        let r = self
            .call(
                cache,
                Op::AddClientListener(Box::new(ironrod_codec::ListenerRegistration {
                    listener_id: b(listener),
                    include_current_state: false,
                    filter: None,
                    converter: None,
                    raw_data: false,
                    interests: 0,
                })),
            )
            .await;
        assert_eq!(r.status, Status::SUCCESS, "{r:?}");
    }

    /// The next event frame on this connection: its kind and key.
    pub async fn event(&mut self) -> (ironrod_codec::EventKind, String) {
        match self.c.recv().await {
            ironrod_codec::ServerMessage::Event(e) => match e.payload {
                ironrod_codec::EventPayload::Plain { key, .. } => {
                    (e.kind, String::from_utf8_lossy(&key).to_string())
                }
                other => panic!("plain event expected, got {other:?}"),
            },
            other => panic!("event expected, got {other:?}"),
        }
    }

    /// Every entry of the cache.
    pub async fn all(&mut self, cache: &str) -> BTreeMap<String, String> {
        let r = self.call(cache, Op::BulkGet { count: 0 }).await;
        match r.body {
            ResponseBody::BulkEntries(e) => e
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).to_string(),
                        String::from_utf8_lossy(&v).to_string(),
                    )
                })
                .collect(),
            other => panic!("BULK_GET answered {other:?}"),
        }
    }
}

/// Polls `f` until it is true or `max` passes; returns whether it became true.
pub async fn eventually(max: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + max;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
