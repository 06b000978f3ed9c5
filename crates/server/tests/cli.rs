//! The `ironrod` binary end to end: a server with a users file, and `ironrod cache ...`
//! commands against it over REST with Digest authentication, checking output and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ironrod");

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_secured() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let out = Command::new(BIN)
        .args([
            "user",
            "create",
            "admin",
            "--password",
            "pw",
            "--roles",
            "admin",
            "--users-file",
        ])
        .arg(&users)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("ironrod.toml");
    std::fs::write(
        &config,
        format!("[security]\nusers_file = \"{}\"\n", users.display()),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .args(["--bind", &addr, "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        addr,
        _dir: dir,
    }
}

fn cli(server: &Server, user: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("cache").args(args).args(["--server", &server.addr]);
    c.env_remove("IRONROD_CLI_USER")
        .env_remove("IRONROD_CLI_PASSWORD");
    if let Some((u, p)) = user {
        c.args(["--user", u]).env("IRONROD_CLI_PASSWORD", p);
    }
    c.output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[test]
fn cache_commands_with_digest_authentication_and_exit_codes() {
    let s = start_secured();
    let admin = Some(("admin", "pw"));
    let put = cli(&s, admin, &["put", "work", "k 1", "v1", "--ttl", "120"]);
    assert_eq!(code(&put), 0, "{}", String::from_utf8_lossy(&put.stderr));
    let get = cli(&s, admin, &["get", "work", "k 1"]);
    assert_eq!(code(&get), 0);
    assert_eq!(String::from_utf8_lossy(&get.stdout), "v1\n");
    let list = cli(&s, admin, &["list"]);
    assert!(String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l == "work"));
    let stats = cli(&s, admin, &["stats", "work"]);
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(v["current_number_of_entries"], 1);
    assert_eq!(code(&cli(&s, admin, &["remove", "work", "k 1"])), 0);
    assert_eq!(code(&cli(&s, admin, &["get", "work", "k 1"])), 3);
    assert_eq!(code(&cli(&s, admin, &["get", "nocache", "k"])), 3);
    assert_eq!(code(&cli(&s, admin, &["clear", "work"])), 0);
    // Wrong or missing credentials: 4, with a message that says so.
    let bad = cli(&s, Some(("admin", "wrong")), &["list"]);
    assert_eq!(code(&bad), 4);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("authentication failed"));
    assert_eq!(code(&cli(&s, None, &["list"])), 4);
}

#[test]
fn unreachable_server_exits_1_and_bad_usage_2() {
    let port = free_port();
    let out = Command::new(BIN)
        .args(["cache", "list", "--server", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    let out = Command::new(BIN)
        .args(["cache", "get", "onlycache"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
}
