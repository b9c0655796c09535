//! Command policy (`[[policy]]`, product.md "Command policy"): decides,
//! before an Enter reaches the target, whether the command it completes is
//! denied, must be confirmed, or runs with an alert. Pure: no terminal, no
//! I/O; the relay asks, and acts on the answer.
//!
//! Not to be confused with `crate::core::policy`, which decides who may reach
//! which host (`[[access]]`).
//!
//! What the regexes see: the command as recorded (the whole line, lines of
//! a multi-line command joined by `\n`), then each *simple command* of its
//! normalized form (`normalize`): its words, quotes removed, joined by one
//! space, the program name without its path, one entry per wrapper layer
//! (`sudo rm -rf /` gives `sudo rm -rf /` and `rm -rf /`). A rule matches
//! when any of its regexes finds a match in any of these texts (unanchored
//! search: write `^rm\b` for "the program is rm").
#![forbid(unsafe_code)]

pub mod normalize;

use regex::Regex;
use serde::Serialize;

use crate::core::config::{Host, HostPattern};
use crate::core::policy::Operator;

pub use normalize::{normalize, Normalized};

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The Enter never reaches the target; the line is cancelled there.
    Deny,
    /// The operator must type the host's name for the command to run.
    Confirm,
    /// The command runs; a `policy` record marks it.
    Alert,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Confirm => "confirm",
            Action::Alert => "alert",
        }
    }

    /// How strict: deny > confirm > alert.
    fn strictness(self) -> u8 {
        match self {
            Action::Deny => 2,
            Action::Confirm => 1,
            Action::Alert => 0,
        }
    }
}

/// `[settings] policy_unverified`: what happens to a command Gatehouse
/// could not confirm from the screen (`verified: false`) on a host where a
/// deny rule applies to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unverified {
    /// Matched on its key text like any other command (the default): no
    /// more and no less than the rules say.
    #[default]
    Match,
    /// As `Match`, and when no deny rule matched, the operator must confirm
    /// it (type the host's name).
    Confirm,
    /// As `Match`, and when no deny rule matched, it is blocked.
    Block,
}

impl Unverified {
    pub fn as_str(self) -> &'static str {
        match self {
            Unverified::Match => "match",
            Unverified::Confirm => "confirm",
            Unverified::Block => "block",
        }
    }
}

/// One validated `[[policy]]` rule (built by `config`).
#[derive(Debug, Clone)]
pub struct PolicyRule {
    pub name: String,
    pub action: Action,
    /// The regexes as written, and compiled.
    pub commands: Vec<(String, Regex)>,
    /// `None`: every host.
    pub hosts: Option<Vec<HostPattern>>,
    /// Both `None`: everyone. Otherwise a user listed or in a group listed.
    pub users: Option<Vec<String>>,
    pub unix_groups: Option<Vec<String>>,
    pub message: Option<String>,
}

impl PolicyRule {
    fn applies_to_user(&self, who: &Who<'_>) -> bool {
        if self.users.is_none() && self.unix_groups.is_none() {
            return true;
        }
        self.users.iter().flatten().any(|u| u == who.user)
            || self
                .unix_groups
                .iter()
                .flatten()
                .any(|g| who.groups.iter().any(|og| og == g))
    }

    fn applies_to_host(&self, host: &Host) -> bool {
        match &self.hosts {
            None => true,
            Some(patterns) => patterns.iter().any(|p| p.matches(host)),
        }
    }
}

/// Synthetic rule names, for decisions no `[[policy]]` rule made. Rule
/// names cannot contain `:`, so these never collide with one.
pub const RULE_UNVERIFIED: &str = "gatehouse:unverified";
pub const RULE_TOO_COMPLEX: &str = "gatehouse:too-complex";
pub const RULE_HISTORY: &str = "gatehouse:history-expansion";

/// All `[[policy]]` rules in config order, and the unverified setting.
#[derive(Debug, Clone, Default)]
pub struct CommandPolicy {
    pub rules: Vec<PolicyRule>,
    pub unverified: Unverified,
}

/// Who typed the command: a user name and their unix groups (NSS names).
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
}

impl<'a> From<&'a Operator> for Who<'a> {
    fn from(op: &'a Operator) -> Who<'a> {
        Who {
            user: &op.name,
            groups: &op.groups,
        }
    }
}

/// Why a decision was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Because<'p> {
    /// `pattern` found a match in `text`: the whole line when `whole_line`,
    /// else one normalized simple command.
    Matched {
        pattern: &'p str,
        text: String,
        whole_line: bool,
    },
    /// The command is unverified and `policy_unverified` says so.
    Unverified,
    /// The normalizer hit a limit (`normalize::Normalized::complete`) on a
    /// host where a deny rule applies: blocked, fail closed.
    TooComplex,
    /// The line uses history expansion (`!!`, `!rm`, `^a^b`) on a host
    /// where a deny rule applies: the shell would run text no rule can
    /// see, so it is blocked (the arrow keys recall it visibly instead).
    HistoryExpansion,
}

/// What the relay must do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    /// The rule's name (for the operator line and the `policy` record), or
    /// `RULE_UNVERIFIED` / `RULE_TOO_COMPLEX`.
    pub rule: &'p str,
    pub action: Action,
    /// The rule's message, if it has one (control characters removed).
    pub message: Option<&'p str>,
    pub because: Because<'p>,
}

impl Decision<'_> {
    /// The one line shown to the operator for a deny or a confirm (no
    /// newline, no `\r`): the rule's name and message. An alert is silent
    /// to the operator; it is for the log.
    pub fn operator_line(&self) -> String {
        let what = match self.action {
            Action::Deny => "blocked",
            Action::Confirm => "needs confirmation",
            Action::Alert => "allowed, and flagged",
        };
        let message = match (self.message, &self.because) {
            (Some(m), _) => m.to_string(),
            (None, Because::Unverified) => {
                "Gatehouse could not confirm this command from the screen.".to_string()
            }
            (None, Because::TooComplex) => {
                "This command is too complex to check; split it up.".to_string()
            }
            (None, Because::HistoryExpansion) => {
                "History expansion (!!, !n, ^a^b) cannot be checked; recall the command with the arrow keys or type it out.".to_string()
            }
            (None, _) => String::new(),
        };
        if message.is_empty() {
            format!("gatehouse: {what} by policy \"{}\"", self.rule)
        } else {
            format!("gatehouse: {what} by policy \"{}\": {message}", self.rule)
        }
    }

    /// The question for a `confirm` (no newline; the answer follows on the
    /// same line): the rule, its message, and the host name to type.
    pub fn confirm_prompt(&self, host: &Host) -> String {
        let mut line = format!("gatehouse: policy \"{}\"", self.rule);
        if let Some(m) = self.message {
            line.push_str(": ");
            line.push_str(m);
        }
        if !line.ends_with(['.', '!', '?']) {
            line.push('.');
        }
        line.push_str(&format!(" Type the host name ({}) to run it: ", host.name));
        line
    }
}

/// Does the operator's answer to `confirm_prompt` confirm? Only the host's
/// exact name (surrounding blanks ignored); anything else cancels.
pub fn confirms(answer: &str, host: &Host) -> bool {
    answer.trim() == host.name
}

/// How one rule fared, for `gatehouse check --explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trace<'p> {
    NotForUser,
    NotForHost,
    NoMatch,
    Matched(Because<'p>),
}

/// Everything `decide` considered, for `gatehouse check --explain`.
#[derive(Debug, Clone)]
pub struct Explanation<'p> {
    /// `None` when no rule applies to this user on this host (nothing was
    /// normalized).
    pub normalized: Option<Normalized>,
    /// The rules tried, in order, up to the one that decided.
    pub tried: Vec<(&'p PolicyRule, Trace<'p>)>,
    pub decision: Option<Decision<'p>>,
}

impl CommandPolicy {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The decision for `command` (as it will be recorded) typed by `who`
    /// on `host`; `verified` as in the `command` record. `None`: no rule
    /// matched, the command runs without a `policy` record.
    ///
    /// Rules are tried in order and the first that matches decides. Cheap
    /// when no rule applies to this user and host (nothing is normalized).
    pub fn decide(
        &self,
        who: &Who<'_>,
        host: &Host,
        command: &str,
        verified: bool,
    ) -> Option<Decision<'_>> {
        self.evaluate(who, host, command, verified, false).decision
    }

    /// As `decide`, with the normalized commands and every rule tried.
    pub fn explain(
        &self,
        who: &Who<'_>,
        host: &Host,
        command: &str,
        verified: bool,
    ) -> Explanation<'_> {
        self.evaluate(who, host, command, verified, true)
    }

    fn evaluate(
        &self,
        who: &Who<'_>,
        host: &Host,
        command: &str,
        verified: bool,
        trace: bool,
    ) -> Explanation<'_> {
        let mut ex = Explanation {
            normalized: None,
            tried: Vec::new(),
            decision: None,
        };
        let mut applicable = false;
        let mut deny_applies = false;
        for rule in &self.rules {
            let verdict = if !rule.applies_to_user(who) {
                Trace::NotForUser
            } else if !rule.applies_to_host(host) {
                Trace::NotForHost
            } else {
                applicable = true;
                deny_applies |= rule.action == Action::Deny;
                if ex.decision.is_some() {
                    // Decided already; only deny_applies is still wanted.
                    continue;
                }
                let normalized = ex.normalized.get_or_insert_with(|| normalize(command));
                match find_match(rule, command, normalized) {
                    Some(b) => {
                        ex.decision = Some(Decision {
                            rule: &rule.name,
                            action: rule.action,
                            message: rule.message.as_deref(),
                            because: b.clone(),
                        });
                        Trace::Matched(b)
                    }
                    None => Trace::NoMatch,
                }
            };
            if trace && (ex.decision.is_none() || matches!(verdict, Trace::Matched(_))) {
                ex.tried.push((rule, verdict));
            }
        }
        if !applicable || !deny_applies {
            return ex;
        }
        if ex
            .decision
            .as_ref()
            .is_some_and(|d| d.action == Action::Deny)
        {
            return ex;
        }
        // A deny rule applies here and none matched: a line we could not
        // read fully, or could not confirm, may be one it would have.
        let complete = ex.normalized.as_ref().map_or(true, |n| n.complete);
        let history = ex.normalized.as_ref().is_some_and(|n| n.history_expansion);
        let guard = if !complete {
            Some((Action::Deny, RULE_TOO_COMPLEX, Because::TooComplex))
        } else if history {
            Some((Action::Deny, RULE_HISTORY, Because::HistoryExpansion))
        } else if !verified {
            match self.unverified {
                Unverified::Match => None,
                Unverified::Confirm => {
                    Some((Action::Confirm, RULE_UNVERIFIED, Because::Unverified))
                }
                Unverified::Block => Some((Action::Deny, RULE_UNVERIFIED, Because::Unverified)),
            }
        } else {
            None
        };
        if let Some((action, rule, because)) = guard {
            let stricter = match &ex.decision {
                None => true,
                Some(d) => action.strictness() > d.action.strictness(),
            };
            if stricter {
                ex.decision = Some(Decision {
                    rule,
                    action,
                    message: None,
                    because,
                });
            }
        }
        ex
    }
}

/// The first of `rule`'s regexes (in order) that finds a match in the line
/// or, failing that, in one of its simple commands.
fn find_match<'p>(
    rule: &'p PolicyRule,
    line: &str,
    normalized: &Normalized,
) -> Option<Because<'p>> {
    for (pattern, re) in &rule.commands {
        if re.is_match(line) {
            return Some(Because::Matched {
                pattern,
                text: line.to_string(),
                whole_line: true,
            });
        }
        if let Some(c) = normalized.commands.iter().find(|c| re.is_match(c)) {
            return Some(Because::Matched {
                pattern,
                text: c.clone(),
                whole_line: false,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::core::config::Config;

    const CONFIG: &str = r#"
[settings]
policy_unverified = "block"

[[hosts]]
name = "web01"
address = "a"
user = "u"
key = "/k"
groups = ["web", "prod"]
[[hosts]]
name = "dev01"
address = "a"
user = "u"
key = "/k"

[[access]]
users = ["alice"]
hosts = ["*"]

[[policy]]
name = "no-root-wipe"
action = "deny"
commands = ['^rm\s+(-\w+\s+)*/\s*$', '^(shutdown|reboot|halt)\b']
hosts = ["@prod"]
message = "Not on production."

[[policy]]
name = "ops-restart"
action = "confirm"
commands = ['^systemctl\s+restart\b']
unix_groups = ["ops"]

[[policy]]
name = "watch-sudo"
action = "alert"
commands = ['^sudo\b']
users = ["alice"]
"#;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("/c.toml"), text).unwrap()
    }

    fn who<'a>(user: &'a str, groups: &'a [String]) -> Who<'a> {
        Who { user, groups }
    }

    fn rule_of(c: &Config, user: &str, groups: &[&str], host: &str, cmd: &str) -> Option<String> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let h = c.host(host).unwrap();
        c.policy
            .decide(&who(user, &groups), h, cmd, true)
            .map(|d| format!("{}:{}", d.rule, d.action.as_str()))
    }

    #[test]
    fn first_match_decides_in_order() {
        let c = config(CONFIG);
        let r = |u: &str, g: &[&str], h: &str, cmd: &str| rule_of(&c, u, g, h, cmd);
        assert_eq!(
            r("bob", &[], "web01", "rm -rf /").as_deref(),
            Some("no-root-wipe:deny")
        );
        // The deny rule comes first, so alice's sudo alert does not win.
        assert_eq!(
            r("alice", &[], "web01", "sudo rm -rf /").as_deref(),
            Some("no-root-wipe:deny")
        );
        assert_eq!(
            r("alice", &[], "dev01", "sudo rm -rf /").as_deref(),
            Some("watch-sudo:alert")
        );
        assert_eq!(r("bob", &[], "dev01", "rm -rf /"), None, "host scope");
        assert_eq!(
            r("bob", &["ops"], "dev01", "systemctl restart nginx").as_deref(),
            Some("ops-restart:confirm")
        );
        assert_eq!(r("bob", &["dev"], "dev01", "systemctl restart nginx"), None);
        assert_eq!(r("bob", &[], "web01", "echo \"rm -rf /\""), None);
        assert_eq!(r("bob", &[], "web01", "ls -l /"), None);
    }

    #[test]
    fn matches_line_or_normalized_command() {
        let c = config(CONFIG);
        let g: Vec<String> = vec![];
        let h = c.host("web01").unwrap();
        let d = c
            .policy
            .decide(&who("bob", &g), h, "cd /tmp && \\rm -rf /", true)
            .unwrap();
        assert_eq!(
            d.because,
            Because::Matched {
                pattern: r"^rm\s+(-\w+\s+)*/\s*$",
                text: "rm -rf /".into(),
                whole_line: false
            }
        );
        assert_eq!(d.message, Some("Not on production."));
        assert_eq!(
            d.operator_line(),
            "gatehouse: blocked by policy \"no-root-wipe\": Not on production."
        );
        let d = c.policy.decide(&who("bob", &g), h, "reboot", true).unwrap();
        assert!(matches!(
            d.because,
            Because::Matched {
                whole_line: true,
                ..
            }
        ));
    }

    #[test]
    fn confirm_asks_for_the_host_name() {
        let c = config(CONFIG);
        let g: Vec<String> = vec!["ops".into()];
        let h = c.host("dev01").unwrap();
        let d = c
            .policy
            .decide(&who("bob", &g), h, "systemctl restart x", true)
            .unwrap();
        assert_eq!(d.action, Action::Confirm);
        assert_eq!(
            d.confirm_prompt(h),
            "gatehouse: policy \"ops-restart\". Type the host name (dev01) to run it: "
        );
        assert!(confirms("dev01", h));
        assert!(confirms(" dev01 \r", h));
        for wrong in ["", "y", "yes", "dev0", "DEV01", "dev01x", "web01"] {
            assert!(!confirms(wrong, h), "{wrong:?}");
        }
    }

    #[test]
    fn unverified_on_a_host_with_a_deny_rule() {
        let c = config(CONFIG);
        let g: Vec<String> = vec![];
        let web = c.host("web01").unwrap();
        let dev = c.host("dev01").unwrap();
        let bob = who("bob", &g);
        let d = c.policy.decide(&bob, web, "ls", false).unwrap();
        assert_eq!((d.rule, d.action), (RULE_UNVERIFIED, Action::Deny));
        assert!(
            d.operator_line().contains("could not confirm"),
            "{}",
            d.operator_line()
        );
        // A verified line is not affected; nor is a host without deny rules.
        assert_eq!(c.policy.decide(&bob, web, "ls", true), None);
        assert_eq!(c.policy.decide(&bob, dev, "ls", false), None);
        // A deny that matches keeps its own name.
        let d = c.policy.decide(&bob, web, "reboot", false).unwrap();
        assert_eq!(d.rule, "no-root-wipe");

        let mut c2 = config(CONFIG);
        c2.policy.unverified = Unverified::Match;
        assert_eq!(c2.policy.decide(&bob, web, "ls", false), None);
        assert_eq!(
            c2.policy
                .decide(&bob, web, "rm -rf /", false)
                .map(|d| d.rule),
            Some("no-root-wipe"),
            "unverified text is still matched"
        );
        c2.policy.unverified = Unverified::Confirm;
        let d = c2.policy.decide(&bob, web, "ls", false).unwrap();
        assert_eq!((d.rule, d.action), (RULE_UNVERIFIED, Action::Confirm));
    }

    #[test]
    fn too_complex_fails_closed_only_where_deny_applies() {
        let c = config(CONFIG);
        let g: Vec<String> = vec![];
        let bob = who("bob", &g);
        let line = "$(".repeat(normalize::MAX_DEPTH + 3) + "rm -rf /";
        let d = c
            .policy
            .decide(&bob, c.host("web01").unwrap(), &line, true)
            .unwrap();
        assert_eq!((d.rule, d.action), (RULE_TOO_COMPLEX, Action::Deny));
        assert_eq!(
            c.policy.decide(&bob, c.host("dev01").unwrap(), &line, true),
            None
        );
    }

    #[test]
    fn history_expansion_blocked_only_where_deny_applies() {
        let c = config(CONFIG);
        let g: Vec<String> = vec![];
        let bob = who("bob", &g);
        let d = c
            .policy
            .decide(&bob, c.host("web01").unwrap(), "sudo !!", true)
            .unwrap();
        assert_eq!((d.rule, d.action), (RULE_HISTORY, Action::Deny));
        assert!(
            d.operator_line().contains("arrow keys"),
            "{}",
            d.operator_line()
        );
        assert_eq!(
            c.policy
                .decide(&bob, c.host("dev01").unwrap(), "sudo !!", true),
            None
        );
        assert_eq!(
            c.policy
                .decide(&bob, c.host("web01").unwrap(), "echo 'hi!'", true),
            None
        );
    }

    #[test]
    fn explain_lists_rules_up_to_the_decision() {
        let c = config(CONFIG);
        let g: Vec<String> = vec!["ops".into()];
        let ex = c.policy.explain(
            &who("alice", &g),
            c.host("dev01").unwrap(),
            "sudo systemctl restart x",
            true,
        );
        let names: Vec<(&str, bool)> = ex
            .tried
            .iter()
            .map(|(r, t)| (r.name.as_str(), matches!(t, Trace::Matched(_))))
            .collect();
        assert_eq!(names, [("no-root-wipe", false), ("ops-restart", true)]);
        assert_eq!(ex.tried[0].1, Trace::NotForHost);
        assert_eq!(
            ex.normalized.unwrap().commands,
            ["sudo systemctl restart x", "systemctl restart x"]
        );
    }

    #[test]
    fn no_rules_no_work() {
        let c = config(CONFIG);
        let g: Vec<String> = vec![];
        // carol on dev01: only rules for others apply; nothing normalized.
        let ex = c.policy.explain(
            &who("carol", &g),
            c.host("dev01").unwrap(),
            "rm -rf /",
            false,
        );
        assert!(ex.normalized.is_none());
        assert!(ex.decision.is_none());
    }
}
