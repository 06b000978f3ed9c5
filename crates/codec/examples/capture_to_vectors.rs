//! Turns capture logs recorded by `conformance/capture/` into vector files.
//!
//! Usage: `cargo run -p ironrod-codec --example capture_to_vectors -- OUT_DIR LOG.jsonl...`
//!
//! Each connection's client-to-server bytes are cut into requests with the server-side decoder,
//! and its server-to-client bytes into responses and events with the client-side decoder, using
//! the requests for context. Every request becomes a vector with the frames that answered it
//! (include-current-state events with it, later events of a listener appended to the vector
//! that registered it). A stream that fails to decode is reported on stderr with its bytes: that
//! is a codec bug or a client sending what its version's grammar lacks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use ironrod_codec::{Limits, Op, Request, RequestContext, ResponseBody, ServerMessage, Version};

#[derive(Default)]
struct Conn {
    c2s: Vec<u8>,
    s2c: Vec<u8>,
    c2s_dead: bool,
    s2c_dead: bool,
    /// message id → vector index, for requests waiting for their response.
    pending: HashMap<u64, usize>,
    contexts: HashMap<u64, RequestContext>,
    /// listener id → vector index of the registration.
    listeners: HashMap<Vec<u8>, usize>,
}

struct Vector {
    family: &'static str,
    name: String,
    source: String,
    request: Vec<u8>,
    response: Vec<u8>,
    answered: bool,
    events: usize,
    key: String,
}

fn family(op: &Op) -> &'static str {
    use Op::*;
    match op {
        Ping => "ping",
        Put { .. }
        | Get { .. }
        | PutIfAbsent { .. }
        | Replace { .. }
        | ReplaceIfUnmodified { .. }
        | Remove { .. }
        | RemoveIfUnmodified { .. }
        | ContainsKey { .. } => "basic",
        GetWithVersion { .. } | GetWithMetadata { .. } => "metadata",
        Clear
        | Stats
        | Size
        | BulkGet { .. }
        | BulkGetKeys { .. }
        | PutAll { .. }
        | GetAll { .. } => "bulk",
        IterationStart { .. } | IterationNext { .. } | IterationEnd { .. } => "iteration",
        GetStream { .. }
        | PutStream { .. }
        | PutStreamStart { .. }
        | PutStreamNext { .. }
        | PutStreamEnd { .. }
        | GetStreamStart { .. }
        | GetStreamNext { .. }
        | GetStreamEnd { .. } => "streams",
        AddClientListener(_) | RemoveClientListener { .. } => "listeners",
        AuthMechList | Auth { .. } => "auth",
        Exec { .. } | Query { .. } => "exec-query",
        PrepareTx { .. }
        | PrepareTx2 { .. }
        | CommitTx { .. }
        | RollbackTx { .. }
        | ForgetTx { .. }
        | FetchTxRecovery => "transactions",
        AddBloomFilterListener { .. } | UpdateBloomFilter { .. } => "bloom",
        MultimapGet { .. }
        | MultimapGetWithMetadata { .. }
        | MultimapPut { .. }
        | MultimapRemoveKey { .. }
        | MultimapRemoveEntry { .. }
        | MultimapSize { .. }
        | MultimapContainsEntry { .. }
        | MultimapContainsKey { .. }
        | MultimapContainsValue { .. } => "multimap",
        _ => "counters",
    }
}

fn pretty_client(id: &str) -> String {
    if let Some(v) = id.strip_prefix("js-") {
        format!("npm infinispan {v}")
    } else if let Some(v) = id.strip_prefix("java-") {
        format!("java {v} (org.infinispan:infinispan-client-hotrod)")
    } else {
        id.to_string()
    }
}

fn body_kind(b: &ResponseBody) -> String {
    // SASL steps differ by what the challenge starts with (server-first, SCRAM's final `v=`,
    // DIGEST-MD5's `rspauth=`), which matters more than its length.
    if let ResponseBody::Auth {
        completed,
        challenge,
    } = b
    {
        let head: String = challenge.iter().take(2).map(|&c| c as char).collect();
        return format!("Auth {completed} {head}");
    }
    let dbg = format!("{b:?}");
    dbg.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out_dir, logs) = args.split_first().expect("usage: OUT_DIR LOG.jsonl...");
    let limits = Limits::DEFAULT;
    let mut vectors: Vec<Vector> = Vec::new();
    let mut problems = 0;
    for log in logs {
        let text = std::fs::read_to_string(log).expect("readable log");
        let mut conns: HashMap<u64, Conn> = HashMap::new();
        let (mut client, mut server, mut scenario) = (String::new(), String::new(), String::new());
        for line in text.lines() {
            let rec: serde_json::Value = serde_json::from_str(line).expect("json line");
            match rec["type"].as_str().unwrap_or("") {
                "scenario" => {
                    client = rec["client"].as_str().unwrap_or("").to_string();
                    server = rec["server"].as_str().unwrap_or("").to_string();
                    scenario = rec["name"].as_str().unwrap_or("").to_string();
                }
                "data" => {
                    let id = rec["conn"].as_u64().unwrap_or(0);
                    let bytes = hex::decode(rec["hex"].as_str().unwrap_or("")).expect("hex");
                    let conn = conns.entry(id).or_default();
                    let source = format!("captured: {} -> {}", pretty_client(&client), server);
                    if rec["dir"] == "c2s" {
                        conn.c2s.extend_from_slice(&bytes);
                        while !conn.c2s_dead && !conn.c2s.is_empty() {
                            match Request::decode(&conn.c2s, &limits) {
                                Ok((req, len)) => {
                                    let raw: Vec<u8> = conn.c2s.drain(..len).collect();
                                    let v = req.header.version;
                                    conn.contexts.insert(
                                        req.header.message_id,
                                        RequestContext {
                                            version: v,
                                            intelligence: req.header.intelligence,
                                        },
                                    );
                                    let idx = vectors.len();
                                    conn.pending.insert(req.header.message_id, idx);
                                    if let Op::AddClientListener(reg) = &req.op {
                                        conn.listeners.insert(reg.listener_id.to_vec(), idx);
                                    }
                                    if let Op::AddBloomFilterListener { listener_id, .. } = &req.op
                                    {
                                        conn.listeners.insert(listener_id.to_vec(), idx);
                                    }
                                    vectors.push(Vector {
                                        family: family(&req.op),
                                        name: format!("{client}/{v}/{scenario}/{}", req.opcode()),
                                        source: source.clone(),
                                        request: raw,
                                        response: Vec::new(),
                                        answered: false,
                                        events: 0,
                                        key: format!("{client} {v} {}", req.opcode()),
                                    });
                                }
                                Err(e) if e.is_incomplete() => break,
                                Err(e) => {
                                    problems += 1;
                                    eprintln!(
                                        "{log}: conn {id} c2s [{client} {scenario}]: {e}\n  bytes: {}",
                                        hex::encode(&conn.c2s[..conn.c2s.len().min(200)])
                                    );
                                    conn.c2s_dead = true;
                                }
                            }
                        }
                    } else {
                        conn.s2c.extend_from_slice(&bytes);
                        while !conn.s2c_dead && !conn.s2c.is_empty() {
                            let contexts = &conn.contexts;
                            match ServerMessage::decode(
                                &conn.s2c,
                                |m| contexts.get(&m).copied(),
                                &limits,
                            ) {
                                Ok((msg, len)) => {
                                    let raw: Vec<u8> = conn.s2c.drain(..len).collect();
                                    let target = match &msg {
                                        ServerMessage::Response(r) => {
                                            conn.contexts.remove(&r.message_id);
                                            conn.pending.remove(&r.message_id).inspect(|&i| {
                                                let v = &mut vectors[i];
                                                v.answered = true;
                                                v.key = format!(
                                                    "{} -> {} {} {}",
                                                    v.key,
                                                    r.opcode,
                                                    r.status,
                                                    body_kind(&r.body)
                                                );
                                                v.name = format!("{}/{}", v.name, r.status);
                                            })
                                        }
                                        ServerMessage::Event(ev) => conn
                                            .pending
                                            .get(&ev.message_id)
                                            .copied()
                                            .filter(|_| ev.message_id != 0)
                                            .or_else(|| {
                                                conn.listeners.get(ev.listener_id.as_ref()).copied()
                                            }),
                                        ServerMessage::CounterEvent(_) => None,
                                    };
                                    if let Some(i) = target {
                                        let v = &mut vectors[i];
                                        let is_event = !matches!(msg, ServerMessage::Response(_));
                                        if !is_event || v.events < 6 {
                                            v.response.extend_from_slice(&raw);
                                            v.events += usize::from(is_event);
                                        }
                                    }
                                }
                                Err(e) if e.is_incomplete() => break,
                                Err(e) => {
                                    problems += 1;
                                    eprintln!(
                                        "{log}: conn {id} s2c [{client} {scenario}]: {e}\n  bytes: {}",
                                        hex::encode(&conn.s2c[..conn.s2c.len().min(200)])
                                    );
                                    conn.s2c_dead = true;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Keep the two smallest vectors per distinct (client, version, request, response shape),
    // in capture order.
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, v) in vectors.iter().enumerate() {
        by_key.entry(v.key.as_str()).or_default().push(i);
    }
    let mut keep = vec![false; vectors.len()];
    for idx in by_key.values_mut() {
        idx.sort_by_key(|&i| (vectors[i].request.len() + vectors[i].response.len(), i));
        for &i in idx.iter().take(2) {
            keep[i] = true;
        }
    }
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut kept = 0;
    for v in vectors
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(v, _)| v)
    {
        let n = names.entry(v.name.clone()).or_default();
        *n += 1;
        let name = if *n > 1 {
            format!("{}#{}", v.name, n)
        } else {
            v.name.clone()
        };
        let out = files.entry(v.family).or_insert_with(|| {
            "# Generated by crates/codec/examples/capture_to_vectors.rs from conformance/capture logs.\n".to_string()
        });
        let _ = write!(
            out,
            "\n[[vector]]\nname = {:?}\nsource = {:?}\nrequest = \"{}\"\n",
            name,
            v.source,
            hex::encode(&v.request)
        );
        if v.answered || !v.response.is_empty() {
            let _ = writeln!(out, "response = \"{}\"", hex::encode(&v.response));
        }
        kept += 1;
    }
    for (family, text) in files {
        let path = format!("{out_dir}/captured-{family}.toml");
        std::fs::write(&path, text).expect("write vector file");
    }
    let versions: std::collections::BTreeSet<Version> = vectors
        .iter()
        .filter_map(|v| {
            Request::decode(&v.request, &limits)
                .ok()
                .map(|(r, _)| r.header.version)
        })
        .collect();
    eprintln!(
        "{} requests, {kept} vectors kept, versions {:?}, {problems} streams failed to decode",
        vectors.len(),
        versions
    );
}
