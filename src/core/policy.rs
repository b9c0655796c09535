//! Who may reach what, and do what there: a small pure function over plain
//! data. No rule, no access; `exec` and `transfer` only where a rule that
//! matches both the operator and the host grants them (a grant in one rule
//! never spills over to the hosts of another).
#![forbid(unsafe_code)]

use crate::core::config::{Config, Host, Rule};

/// Who is asking, as plain data. The only constructor outside tests is
/// `identity::Operator::from_real_uid` (the lookup lives there, beside
/// NSS); the decisions here only read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub uid: u32,
    pub name: String,
    /// Names of every group the user is in (primary and supplementary),
    /// as NSS reports them, so LDAP/SSSD groups count. Empty when nothing
    /// asks (`from_real_uid(false)`: no rule names a unix group).
    pub groups: Vec<String>,
}

fn applies_to(rule: &Rule, op: &Operator) -> bool {
    rule.users.contains(&op.name)
        || rule
            .unix_groups
            .iter()
            .any(|g| op.groups.iter().any(|og| og == g))
}

/// What an operator wants to do on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// An interactive session (any matching rule).
    Session,
    /// `HOST -- COMMAND` (a matching rule with `exec = true`).
    Exec,
    /// sftp / scp in sftp mode (a matching rule with `transfer = true`).
    Transfer,
}

fn grants(rule: &Rule, grant: Grant) -> bool {
    match grant {
        Grant::Session => true,
        Grant::Exec => rule.exec,
        Grant::Transfer => rule.transfer,
    }
}

/// May `op` do `grant` on `host`?
pub fn permits_to(config: &Config, op: &Operator, host: &Host, grant: Grant) -> bool {
    config
        .access
        .iter()
        .filter(|r| applies_to(r, op) && grants(r, grant))
        .any(|r| r.hosts.iter().any(|p| p.matches(host)))
}

/// May `op` reach `host`?
pub fn permits(config: &Config, op: &Operator, host: &Host) -> bool {
    permits_to(config, op, host, Grant::Session)
}

/// The hosts `op` may reach, in config order.
pub fn permitted_hosts<'a>(config: &'a Config, op: &Operator) -> Vec<&'a Host> {
    config
        .hosts
        .iter()
        .filter(|h| permits(config, op, h))
        .collect()
}

/// The host named `name` if `op` may reach it. An unknown host and a
/// forbidden one give the same answer, so the inventory cannot be probed.
pub fn lookup<'a>(config: &'a Config, op: &Operator, name: &str) -> Option<&'a Host> {
    config.host(name).filter(|h| permits(config, op, h))
}

/// The host named `name` if `op` may do `grant` there.
pub fn lookup_for<'a>(
    config: &'a Config,
    op: &Operator,
    name: &str,
    grant: Grant,
) -> Option<&'a Host> {
    config
        .host(name)
        .filter(|h| permits_to(config, op, h, grant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        Config::parse(
            Path::new("/c.toml"),
            r#"
[[hosts]]
name = "web01"
address = "a"
user = "u"
key = "/k"
groups = ["web", "prod"]
[[hosts]]
name = "web02"
address = "a"
user = "u"
key = "/k"
groups = ["web"]
[[hosts]]
name = "db01"
address = "a"
user = "u"
key = "/k"
[[hosts]]
name = "db02"
address = "a"
user = "u"
key = "/k"
groups = ["prod"]
[[hosts]]
name = "mail"
address = "a"
user = "u"
key = "/k"

[[access]]
users = ["alice"]
hosts = ["web01"]
[[access]]
unix_groups = ["dba"]
hosts = ["db*"]
[[access]]
users = ["carol"]
unix_groups = ["sre"]
hosts = ["@prod"]
[[access]]
users = ["ci"]
hosts = ["web*"]
exec = true
[[access]]
users = ["ci"]
hosts = ["db01"]
transfer = true
"#,
        )
        .unwrap()
    }

    fn op(name: &str, groups: &[&str]) -> Operator {
        Operator {
            uid: 1000,
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn names(c: &Config, o: &Operator) -> Vec<String> {
        permitted_hosts(c, o)
            .iter()
            .map(|h| h.name.clone())
            .collect()
    }

    #[test]
    fn table() {
        let c = config();
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("alice", &[], &["web01"]),
            ("bob", &["dba"], &["db01", "db02"]),
            ("carol", &[], &["web01", "db02"]),
            ("dave", &["sre"], &["web01", "db02"]),
            ("erin", &["dba", "sre"], &["web01", "db01", "db02"]),
            ("mallory", &["alice", "web01"], &[]),
            ("", &[], &[]),
        ];
        for (user, groups, want) in cases {
            assert_eq!(
                names(&c, &op(user, groups)),
                *want,
                "user {user} {groups:?}"
            );
        }
    }

    #[test]
    fn lookup_hides_unknown_and_forbidden_alike() {
        let c = config();
        let a = op("alice", &[]);
        assert!(lookup(&c, &a, "web01").is_some());
        assert!(lookup(&c, &a, "web02").is_none());
        assert!(lookup(&c, &a, "nosuch").is_none());
        assert!(lookup(&c, &a, "web0*").is_none(), "patterns are not names");
    }

    #[test]
    fn exec_and_transfer_need_their_own_grant() {
        let c = config();
        let ci = op("ci", &[]);
        let alice = op("alice", &[]);
        let names_for = |o: &Operator, g: Grant| -> Vec<String> {
            c.hosts
                .iter()
                .filter(|h| permits_to(&c, o, h, g))
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(names_for(&ci, Grant::Session), ["web01", "web02", "db01"]);
        assert_eq!(names_for(&ci, Grant::Exec), ["web01", "web02"]);
        assert_eq!(names_for(&ci, Grant::Transfer), ["db01"]);
        // Alice may log in to web01 but not run commands or copy files there.
        assert!(lookup_for(&c, &alice, "web01", Grant::Session).is_some());
        assert!(lookup_for(&c, &alice, "web01", Grant::Exec).is_none());
        assert!(lookup_for(&c, &alice, "web01", Grant::Transfer).is_none());
        // The exec grant of one rule does not extend another rule's hosts.
        assert!(lookup_for(&c, &ci, "db01", Grant::Exec).is_none());
        assert!(lookup_for(&c, &ci, "web01", Grant::Transfer).is_none());
        assert!(lookup_for(&c, &ci, "nosuch", Grant::Exec).is_none());
    }

    #[test]
    fn no_rules_no_access() {
        let mut c = config();
        c.access.clear();
        assert!(names(&c, &op("alice", &["dba", "sre"])).is_empty());
    }
}
