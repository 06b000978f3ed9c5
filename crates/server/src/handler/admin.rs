//! EXEC: the administrative tasks clients run (`@@cache@names`, `@@cache@getorcreate`, ...).
//! Server-side scripts and user tasks are not supported.

use bytes::Bytes;
use ironrod_codec::{RequestHeader, ResponseBody, Status};
use ironrod_engine::{CacheConfig, EngineError};

use super::{engine_refusal, Outcome, Reply};
use crate::errors::Refusal;
use crate::state::State;

impl State {
    pub(super) fn exec(
        &self,
        _h: &RequestHeader,
        task: &str,
        params: &[(String, Bytes)],
    ) -> Outcome {
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let done = |result: Bytes| Ok(Reply::bare(Status::SUCCESS, ResponseBody::Value(result)));
        match task {
            "@@cache@names" => {
                let names: Vec<String> = self
                    .caches
                    .names()
                    .into_iter()
                    .filter(|n| !n.starts_with("___"))
                    .map(|n| json_string(&n))
                    .collect();
                done(Bytes::from(format!("[{}]", names.join(","))))
            }
            "@@cache@getorcreate" | "@@cache@create" => {
                let name = param("name").ok_or_else(|| missing_param(task, "name"))?;
                let config = CacheConfig {
                    media_type: CacheConfig::PROTOSTREAM.to_string(),
                    ..CacheConfig::default()
                };
                match self.caches.create(&name, config) {
                    Ok(_) => done(Bytes::new()),
                    Err(EngineError::CacheExists(_)) if task == "@@cache@getorcreate" => {
                        done(Bytes::new())
                    }
                    Err(e) => Err(engine_refusal(e)),
                }
            }
            "@@cache@remove" => {
                let name = param("name").ok_or_else(|| missing_param(task, "name"))?;
                self.caches.remove(&name).map_err(engine_refusal)?;
                done(Bytes::new())
            }
            other => Err(Refusal::server(format!(
                "java.lang.IllegalArgumentException: ISPN027002: Unknown task '{other}'"
            ))),
        }
    }
}

fn missing_param(task: &str, name: &str) -> Refusal {
    Refusal::illegal_argument(format!("task {task} requires the parameter '{name}'"))
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(super::json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
