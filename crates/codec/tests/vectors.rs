//! Loads every vector file in `protocol-spec/vectors/` and checks that decoding then encoding
//! gives back the same bytes, in both directions (see `protocol-spec/vectors/README.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use ironrod_codec::{DecodeError, Limits, OpCode, Request, RequestContext, ServerMessage, Version};
use serde::Deserialize;

#[derive(Deserialize)]
struct VectorFile {
    source: Option<String>,
    #[serde(default)]
    vector: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    source: Option<String>,
    request: String,
    response: Option<String>,
    error: Option<String>,
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocol-spec/vectors")
}

fn hex(s: &str, what: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&clean).unwrap_or_else(|e| panic!("{what}: bad hex: {e}"))
}

struct Loaded {
    file: String,
    source: String,
    v: Vector,
}

fn load_all() -> Vec<Loaded> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(vectors_dir())
        .expect("protocol-spec/vectors exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable vector file");
        let file: VectorFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let fname = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut names = BTreeSet::new();
        for v in file.vector {
            assert!(
                names.insert(v.name.clone()),
                "{fname}: duplicate vector name {}",
                v.name
            );
            let source = v
                .source
                .clone()
                .or_else(|| file.source.clone())
                .unwrap_or_else(|| panic!("{fname}/{}: no source", v.name));
            assert!(
                source.starts_with("captured:") || source.starts_with("hand-written:"),
                "{fname}/{}: source must start with captured: or hand-written:",
                v.name
            );
            out.push(Loaded {
                file: fname.clone(),
                source,
                v,
            });
        }
    }
    out
}

fn error_kind(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Incomplete { .. } => "incomplete",
        DecodeError::BadMagic { .. } => "bad-magic",
        DecodeError::UnknownVersion { .. } => "unknown-version",
        DecodeError::UnknownOpcode { .. } => "unknown-opcode",
        DecodeError::Malformed { .. } => "malformed",
        DecodeError::TooLarge { .. } => "too-large",
        _ => "other",
    }
}

/// Decodes and re-encodes one vector; returns the (version, opcode) of each request seen.
fn check(l: &Loaded) -> Result<Vec<(Version, OpCode)>, String> {
    let name = format!("{}/{}", l.file, l.v.name);
    let limits = Limits::DEFAULT;
    let req_bytes = hex(&l.v.request, &name);
    if let Some(kind) = &l.v.error {
        return match Request::decode(&req_bytes, &limits) {
            Ok((r, _)) => Err(format!("{name}: expected {kind}, decoded {r:?}")),
            Err(e) if error_kind(&e) == kind => Ok(Vec::new()),
            Err(e) => Err(format!("{name}: expected {kind}, got {e}")),
        };
    }
    let mut seen = Vec::new();
    let mut contexts = HashMap::new();
    let mut pos = 0;
    while pos < req_bytes.len() {
        let rest = req_bytes.get(pos..).unwrap_or_default();
        let (req, len) = Request::decode(rest, &limits)
            .map_err(|e| format!("{name}: request at byte {pos}: {e}"))?;
        let mut again = BytesMut::new();
        req.encode(&mut again)
            .map_err(|e| format!("{name}: encode: {e}"))?;
        if again.as_ref() != rest.get(..len).unwrap_or_default() {
            return Err(format!(
                "{name}: request re-encodes differently\n  wire: {}\n  ours: {}",
                hex::encode(rest.get(..len).unwrap_or_default()),
                hex::encode(&again)
            ));
        }
        contexts.insert(
            req.header.message_id,
            RequestContext {
                version: req.header.version,
                intelligence: req.header.intelligence,
            },
        );
        seen.push((req.header.version, req.opcode()));
        pos += len;
    }
    if let Some(resp) = &l.v.response {
        let resp_bytes = hex(resp, &name);
        let mut pos = 0;
        while pos < resp_bytes.len() {
            let rest = resp_bytes.get(pos..).unwrap_or_default();
            let (msg, len) = ServerMessage::decode(rest, |id| contexts.get(&id).copied(), &limits)
                .map_err(|e| format!("{name}: response at byte {pos}: {e}"))?;
            let mut again = BytesMut::new();
            msg.encode(&mut again);
            if again.as_ref() != rest.get(..len).unwrap_or_default() {
                return Err(format!(
                    "{name}: response re-encodes differently\n  wire: {}\n  ours: {}\n  {msg:?}",
                    hex::encode(rest.get(..len).unwrap_or_default()),
                    hex::encode(&again)
                ));
            }
            pos += len;
        }
    }
    Ok(seen)
}

#[test]
fn every_vector_round_trips() {
    let all = load_all();
    assert!(!all.is_empty(), "no vectors found");
    let failures: Vec<String> = all.iter().filter_map(|l| check(l).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// The version families of the codec issue, and the opcodes each has.
fn family(v: Version) -> &'static str {
    match v.byte() {
        20..=21 => "2.0-2.1",
        22..=27 => "2.2-2.7",
        28..=29 => "2.8-2.9",
        30..=39 => "3.x",
        _ => "4.x",
    }
}

fn introduced(op: OpCode) -> Version {
    match op.0 {
        0x2B | 0x2D | 0x2F => Version::V2_1,
        0x31 | 0x33 | 0x35 => Version::V2_3,
        0x37 | 0x39 => Version::V2_6,
        0x3B | 0x3D | 0x3F | 0x4B..=0x78 => Version::V2_7,
        0x79 | 0x7B | 0x7D => Version::V2_9,
        0x41 | 0x43 | 0x7F => Version::V3_1,
        0xE4..=0xEF => Version::V4_1,
        _ => Version::V2_0,
    }
}

/// Families in which an opcode exists: from the one that introduced it; the 2.6 streams end
/// before 4.1 but 4.0 still has them.
fn families_of(op: OpCode) -> Vec<&'static str> {
    let first = introduced(op);
    ["2.0-2.1", "2.2-2.7", "2.8-2.9", "3.x", "4.x"]
        .into_iter()
        .zip([
            Version::V2_1,
            Version::V2_7,
            Version::V2_9,
            Version::V3_1,
            Version::V4_1,
        ])
        .filter(|(_, last)| *last >= first)
        .map(|(f, _)| f)
        .collect()
}

#[test]
fn every_opcode_has_vectors_in_every_family() {
    let mut covered: BTreeSet<(String, u8)> = BTreeSet::new();
    for l in load_all() {
        if let Ok(seen) = check(&l) {
            for (v, op) in seen {
                covered.insert((family(v).to_string(), op.0));
            }
        }
    }
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for op in OpCode::REQUESTS {
        for fam in families_of(*op) {
            if !covered.contains(&(fam.to_string(), op.0)) {
                missing.entry(fam).or_default().push(op.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "opcodes without vectors, by family: {missing:#?}"
    );
}

#[test]
fn captures_from_every_client_line() {
    let sources: BTreeSet<String> = load_all().into_iter().map(|l| l.source).collect();
    for client in [
        "npm infinispan 0.16.3",
        "java 14.0",
        "java 15.0",
        "java 16.0",
    ] {
        assert!(
            sources
                .iter()
                .any(|s| s.starts_with("captured:") && s.contains(client)),
            "no captured vectors from {client}"
        );
    }
}
