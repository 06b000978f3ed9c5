//! Authorization as Infinispan's: roles grant permissions, every operation needs one.
//!
//! The five built-in roles and their permission sets are the reference server's defaults
//! (admin ALL; deployer ALL_READ, ALL_WRITE, LISTEN, EXEC, MONITOR, CREATE; application the
//! same without CREATE; observer ALL_READ, MONITOR; monitor MONITOR). A user's roles come from
//! the credential store, plus the role named like the user if there is one (the reference's
//! cluster role mapper maps a principal named `admin` to the role `admin`). `[authorization]`
//! may define more roles or redefine these, and `[caches.NAME] roles` limits which roles count
//! on that cache. A refusal carries the reference text, `ISPN000287: Unauthorized access:
//! subject '…' lacks 'WRITE' permission`.
//!
//! Authorization runs only while authentication is on (there is no subject otherwise).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use ironrod_codec::{Op, OpCode};
use serde::Deserialize;

use crate::errors::Refusal;

/// One permission, as `AuthorizationPermission` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Lifecycle,
    Read,
    Write,
    Exec,
    Listen,
    BulkRead,
    BulkWrite,
    Admin,
    Create,
    Monitor,
}

impl Permission {
    const fn bit(self) -> u32 {
        1 << (self as u32)
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::Lifecycle => "LIFECYCLE",
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::Exec => "EXEC",
            Permission::Listen => "LISTEN",
            Permission::BulkRead => "BULK_READ",
            Permission::BulkWrite => "BULK_WRITE",
            Permission::Admin => "ADMIN",
            Permission::Create => "CREATE",
            Permission::Monitor => "MONITOR",
        }
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u32);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub const ALL: Permissions = Permissions(u32::MAX);
    pub const ALL_READ: Permissions =
        Permissions(Permission::Read.bit() | Permission::BulkRead.bit());
    pub const ALL_WRITE: Permissions =
        Permissions(Permission::Write.bit() | Permission::BulkWrite.bit());

    pub const fn of(p: Permission) -> Permissions {
        Permissions(p.bit())
    }

    pub const fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    pub fn allows(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Parses a permission name as the reference spells it, including the synthetic ones
    /// (`ALL`, `ALL_READ`, `ALL_WRITE`, `NONE`).
    pub fn parse(name: &str) -> Option<Permissions> {
        let single = |p: Permission| Some(Permissions::of(p));
        match name.to_ascii_uppercase().as_str() {
            "ALL" => Some(Permissions::ALL),
            "ALL_READ" => Some(Permissions::ALL_READ),
            "ALL_WRITE" => Some(Permissions::ALL_WRITE),
            "NONE" => Some(Permissions::NONE),
            "LIFECYCLE" => single(Permission::Lifecycle),
            "READ" => single(Permission::Read),
            "WRITE" => single(Permission::Write),
            "EXEC" => single(Permission::Exec),
            "LISTEN" => single(Permission::Listen),
            "BULK_READ" => single(Permission::BulkRead),
            "BULK_WRITE" => single(Permission::BulkWrite),
            "ADMIN" => single(Permission::Admin),
            "CREATE" => single(Permission::Create),
            "MONITOR" => single(Permission::Monitor),
            _ => None,
        }
    }
}

/// The reference server's default roles.
pub fn builtin_role(name: &str) -> Option<Permissions> {
    use Permission::{Create, Exec, Listen, Monitor};
    let application = Permissions::ALL_READ
        .union(Permissions::ALL_WRITE)
        .union(Permissions::of(Listen))
        .union(Permissions::of(Exec))
        .union(Permissions::of(Monitor));
    match name {
        "admin" => Some(Permissions::ALL),
        "deployer" => Some(application.union(Permissions::of(Create))),
        "application" => Some(application),
        "observer" => Some(Permissions::ALL_READ.union(Permissions::of(Monitor))),
        "monitor" => Some(Permissions::of(Monitor)),
        _ => None,
    }
}

/// The `[authorization]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Default true: with authentication on, operations need a role that grants them, as on
    /// an Infinispan server whose cache container has `<authorization/>`. False: any
    /// authenticated user may do anything.
    pub enabled: Option<bool>,
    /// Roles beyond (or replacing) the built-in ones: name to permission names.
    pub roles: BTreeMap<String, Vec<String>>,
}

impl AuthorizationConfig {
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    pub fn validate(&self) -> Result<(), String> {
        for (role, perms) in &self.roles {
            for p in perms {
                if Permissions::parse(p).is_none() {
                    return Err(format!(
                        "authorization.roles.{role}: unknown permission '{p}'"
                    ));
                }
            }
        }
        Ok(())
    }

    /// What a role grants: the configured definition, else the built-in one, else nothing.
    pub fn role(&self, name: &str) -> Option<Permissions> {
        match self.roles.get(name) {
            Some(perms) => Some(
                perms
                    .iter()
                    .filter_map(|p| Permissions::parse(p))
                    .fold(Permissions::NONE, Permissions::union),
            ),
            None => builtin_role(name),
        }
    }

    /// Each role the user holds with what it grants, computed once at authentication: the
    /// stored roles, plus the role named like the user.
    pub fn grants(&self, user: &str, roles: &[String]) -> Vec<(String, Permissions)> {
        let mut out: Vec<(String, Permissions)> = Vec::new();
        for role in roles.iter().map(String::as_str).chain([user]) {
            if out.iter().any(|(r, _)| r == role) {
                continue;
            }
            if let Some(p) = self.role(role) {
                out.push((role.to_owned(), p));
            }
        }
        out
    }
}

/// What the user may do on a cache: the union of its roles' grants, counting only the roles
/// the cache admits (all of them when the cache lists none).
pub fn effective(grants: &[(String, Permissions)], admitted: Option<&[String]>) -> Permissions {
    grants
        .iter()
        .filter(|(role, _)| admitted.is_none_or(|a| a.iter().any(|r| r == role)))
        .fold(Permissions::NONE, |acc, (_, p)| acc.union(*p))
}

/// The permission an operation needs; `None` for the ones that come before authentication.
/// Follows the cache API call each operation makes in the reference server.
pub fn required(op: &Op) -> Option<Permission> {
    use Permission::*;
    let opcode = op.opcode();
    Some(match opcode {
        OpCode::PING | OpCode::AUTH_MECH_LIST | OpCode::AUTH => return None,
        OpCode::GET
        | OpCode::GET_WITH_VERSION
        | OpCode::GET_WITH_METADATA
        | OpCode::CONTAINS_KEY
        | OpCode::GET_ALL
        | OpCode::GET_STREAM
        | OpCode::GET_STREAM_START
        | OpCode::GET_STREAM_NEXT
        | OpCode::GET_STREAM_END => Read,
        OpCode::PUT
        | OpCode::PUT_IF_ABSENT
        | OpCode::REPLACE
        | OpCode::REPLACE_IF_UNMODIFIED
        | OpCode::REMOVE
        | OpCode::REMOVE_IF_UNMODIFIED
        | OpCode::PUT_STREAM
        | OpCode::PUT_STREAM_START
        | OpCode::PUT_STREAM_NEXT
        | OpCode::PUT_STREAM_END
        | OpCode::PREPARE_TX
        | OpCode::PREPARE_TX_2
        | OpCode::COMMIT_TX
        | OpCode::ROLLBACK_TX
        | OpCode::FORGET_TX
        | OpCode::FETCH_TX_RECOVERY => Write,
        OpCode::PUT_ALL | OpCode::CLEAR => BulkWrite,
        OpCode::BULK_GET
        | OpCode::BULK_GET_KEYS
        | OpCode::SIZE
        | OpCode::QUERY
        | OpCode::ITERATION_START
        | OpCode::ITERATION_NEXT
        | OpCode::ITERATION_END => BulkRead,
        OpCode::STATS => Monitor,
        OpCode::ADD_CLIENT_LISTENER
        | OpCode::REMOVE_CLIENT_LISTENER
        | OpCode::ADD_BLOOM_FILTER_LISTENER
        | OpCode::UPDATE_BLOOM_FILTER
        | OpCode::COUNTER_ADD_LISTENER
        | OpCode::COUNTER_REMOVE_LISTENER => Listen,
        OpCode::EXEC => match op {
            Op::Exec { task, .. } => match task.as_str() {
                // Listing the caches is what every client does on start.
                "@@cache@names" => return None,
                "@@cache@create" | "@@cache@getorcreate" | "@@cache@remove" => Create,
                _ => Exec,
            },
            _ => Exec,
        },
        OpCode::COUNTER_CREATE | OpCode::COUNTER_REMOVE => Create,
        OpCode::COUNTER_ADD_AND_GET
        | OpCode::COUNTER_RESET
        | OpCode::COUNTER_CAS
        | OpCode::COUNTER_GET_AND_SET
        | OpCode::MULTIMAP_PUT
        | OpCode::MULTIMAP_REMOVE_KEY
        | OpCode::MULTIMAP_REMOVE_ENTRY => Write,
        _ => Read,
    })
}

/// The subject as the reference prints it in ISPN000287.
pub struct Subject<'a> {
    pub user: &'a str,
    pub roles: &'a [(String, Permissions)],
    pub peer: SocketAddr,
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject with principal(s): [{}", self.user)?;
        for (role, _) in self.roles {
            write!(f, ", RolePrincipal{{name='{role}'}}")?;
        }
        let ip = self.peer.ip();
        write!(f, ", InetAddressPrincipal [address={ip}/{ip}]]")
    }
}

/// The reference server's refusal.
pub fn unauthorized(subject: &Subject<'_>, permission: Permission) -> Refusal {
    Refusal::server(format!(
        "java.lang.SecurityException: ISPN000287: Unauthorized access: subject '{subject}' lacks '{}' permission",
        permission.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn builtin_roles_grant_what_the_reference_grants() {
        let observer = builtin_role("observer").unwrap();
        assert!(observer.allows(Permission::Read) && observer.allows(Permission::BulkRead));
        assert!(!observer.allows(Permission::Write));
        let app = builtin_role("application").unwrap();
        assert!(app.allows(Permission::Write) && app.allows(Permission::Listen));
        assert!(!app.allows(Permission::Create));
        assert!(builtin_role("deployer").unwrap().allows(Permission::Create));
        assert!(builtin_role("admin").unwrap().allows(Permission::Admin));
        let monitor = builtin_role("monitor").unwrap();
        assert!(monitor.allows(Permission::Monitor) && !monitor.allows(Permission::Read));
        assert!(builtin_role("reader").is_none());
    }

    #[test]
    fn grants_include_the_role_named_like_the_user_and_custom_roles() {
        let mut c = AuthorizationConfig::default();
        c.roles
            .insert("reader".into(), vec!["READ".into(), "monitor".into()]);
        let g = c.grants("admin", &["reader".to_string(), "nosuch".to_string()]);
        let names: Vec<&str> = g.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(names, ["reader", "admin"]);
        let reader = c.role("reader").unwrap();
        assert!(reader.allows(Permission::Read) && !reader.allows(Permission::BulkRead));
        assert!(c.validate().is_ok());
        c.roles.insert("bad".into(), vec!["FLY".into()]);
        assert!(c.validate().unwrap_err().contains("FLY"));
    }

    #[test]
    fn cache_restrictions_count_only_admitted_roles() {
        let c = AuthorizationConfig::default();
        let g = c.grants("u", &["observer".to_string(), "application".to_string()]);
        assert!(effective(&g, None).allows(Permission::Write));
        let only_observer = ["observer".to_string()];
        let p = effective(&g, Some(&only_observer));
        assert!(p.allows(Permission::Read) && !p.allows(Permission::Write));
        assert_eq!(effective(&g, Some(&[])), Permissions::NONE);
    }

    #[test]
    fn operations_need_their_permission() {
        let put = Op::Clear;
        assert_eq!(required(&put), Some(Permission::BulkWrite));
        assert_eq!(required(&Op::Ping), None);
        let exec = |task: &str| Op::Exec {
            task: task.into(),
            params: vec![("name".into(), Bytes::new())],
        };
        assert_eq!(
            required(&exec("@@cache@getorcreate")),
            Some(Permission::Create)
        );
        assert_eq!(required(&exec("@@cache@names")), None);
        assert_eq!(required(&exec("mytask")), Some(Permission::Exec));
    }

    #[test]
    fn the_refusal_names_subject_and_permission_as_the_reference_does() {
        let roles = vec![("observer".to_string(), Permissions::NONE)];
        let s = Subject {
            user: "reader",
            roles: &roles,
            peer: "127.0.0.1:5000".parse().unwrap(),
        };
        let r = unauthorized(&s, Permission::Write);
        assert_eq!(
            r.message,
            "java.lang.SecurityException: ISPN000287: Unauthorized access: subject 'Subject with principal(s): [reader, RolePrincipal{name='observer'}, InetAddressPrincipal [address=127.0.0.1/127.0.0.1]]' lacks 'WRITE' permission"
        );
    }
}
