//! Who may reach what: a small pure function over plain data.
//! No rule, no access.
#![forbid(unsafe_code)]

use crate::config::{Config, Host, Rule};
use crate::identity::Operator;

fn applies_to(rule: &Rule, op: &Operator) -> bool {
    rule.users.contains(&op.name)
        || rule
            .unix_groups
            .iter()
            .any(|g| op.groups.iter().any(|og| og == g))
}

/// May `op` reach `host`?
pub fn permits(config: &Config, op: &Operator, host: &Host) -> bool {
    config
        .access
        .iter()
        .filter(|r| applies_to(r, op))
        .any(|r| r.hosts.iter().any(|p| p.matches(host)))
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
    fn no_rules_no_access() {
        let mut c = config();
        c.access.clear();
        assert!(names(&c, &op("alice", &["dba", "sre"])).is_empty());
    }
}
