//! `gatehouse check --explain USER HOST 'COMMAND'`: an admin's way to try
//! the `[[policy]]` rules before shipping them. Prints the simple commands
//! the regexes see, every rule tried in order with why it did or did not
//! match, and the decision the relay would act on.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use crate::core::command_policy::{Action, Because, Trace, Unverified, Who};
use crate::core::config::{Config, Host};

/// Control characters shown escaped, so a command cannot act on the
/// admin's terminal.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn because(b: &Because<'_>) -> String {
    match b {
        Because::Matched {
            pattern,
            text,
            whole_line,
        } => {
            let what = if *whole_line {
                "the command as recorded"
            } else {
                "simple command"
            };
            format!(
                "'{}' matches {what} '{}'",
                shown(pattern),
                shown(text)
            )
        }
        Because::Unverified => {
            "the command is unverified, a deny rule applies here, and policy_unverified says so"
                .to_string()
        }
        Because::HistoryExpansion => {
            "the line uses history expansion (!!, !n, ^a^b), which no rule can see through, and a deny rule applies here".to_string()
        }
        Because::TooComplex => {
            "the command is too complex to take apart (a normalizer limit), and a deny rule applies here: fail closed".to_string()
        }
    }
}

/// The explanation as text (lines end with `\n`). Pure.
pub fn render(
    config: &Config,
    who: &Who<'_>,
    host: &Host,
    command: &str,
    verified: bool,
) -> String {
    let policy = &config.policy;
    let ex = policy.explain(who, host, command, verified);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "user:     {} (groups: {})",
        shown(who.user),
        shown(&who.groups.join(", "))
    );
    let _ = writeln!(
        o,
        "host:     {} (groups: {})",
        host.name,
        host.groups.join(", ")
    );
    let _ = writeln!(o, "command:  '{}'", shown(command));
    let _ = writeln!(
        o,
        "verified: {}",
        if verified {
            "yes"
        } else {
            "no (as a line the screen did not confirm)"
        }
    );
    if policy.is_empty() {
        let _ = writeln!(
            o,
            "decision: none: there are no [[policy]] rules; the command runs"
        );
        return o;
    }
    match &ex.normalized {
        None => {
            let _ = writeln!(
                o,
                "simple commands: (not needed: no rule applies to this user on this host)"
            );
        }
        Some(n) => {
            let _ = writeln!(
                o,
                "simple commands (what the regexes see, after the command as recorded):"
            );
            if n.commands.is_empty() {
                let _ = writeln!(o, "  (none)");
            }
            for (i, c) in n.commands.iter().enumerate() {
                let _ = writeln!(o, "  {:>2}. '{}'", i + 1, shown(c));
            }
            if !n.complete {
                let _ = writeln!(
                    o,
                    "  (a limit was reached: the command was not fully taken apart)"
                );
            }
        }
    }
    let _ = writeln!(o, "rules, in order (the first match decides):");
    for (rule, trace) in &ex.tried {
        let why = match trace {
            Trace::NotForUser => "skipped: not for this user".to_string(),
            Trace::NotForHost => "skipped: not for this host".to_string(),
            Trace::NoMatch => "no regex matches".to_string(),
            Trace::Matched(b) => format!("MATCH: {}", because(b)),
        };
        let _ = writeln!(o, "  {} ({}): {why}", rule.name, rule.action.as_str());
    }
    if ex.tried.len() < policy.rules.len() {
        let _ = writeln!(o, "  (the rules after the match are not tried)");
    }
    match &ex.decision {
        None => {
            let _ = writeln!(
                o,
                "decision: none: no rule matches; the command runs (recorded as usual)"
            );
        }
        Some(d) => {
            let effect = match d.action {
                Action::Deny => "blocked: the Enter never reaches the host (policy record: blocked)",
                Action::Confirm => {
                    "the operator must type the host's name to run it (policy record: confirmed or cancelled)"
                }
                Action::Alert => "runs, flagged (policy record: allowed)",
            };
            let _ = writeln!(
                o,
                "decision: {} by \"{}\": {effect}",
                d.action.as_str(),
                d.rule
            );
            if !matches!(d.because, Because::Matched { .. }) {
                let _ = writeln!(o, "  because {}", because(&d.because));
            }
            if d.action == Action::Alert {
                let _ = writeln!(o, "the operator sees: nothing (an alert is for the log)");
            } else {
                let _ = writeln!(o, "the operator sees: {}", shown(&d.operator_line()));
            }
        }
    }
    if !verified && policy.unverified == Unverified::Match {
        let _ = writeln!(
            o,
            "note: policy_unverified = \"match\": an unverified command is matched like any other"
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
[[hosts]]
name = "web01"
address = "a"
user = "u"
key = "/k"
groups = ["prod"]
[[hosts]]
name = "dev01"
address = "a"
user = "u"
key = "/k"

[[policy]]
name = "ops-only"
action = "alert"
commands = ['.']
unix_groups = ["ops"]

[[policy]]
name = "no-root-wipe"
action = "deny"
commands = ['^rm\s+(-\w+\s+)*/\s*$']
hosts = ["@prod"]
message = "Not on production."

[[policy]]
name = "later"
action = "alert"
commands = ['rm']
"#;

    fn render_for(user: &str, host: &str, cmd: &str) -> String {
        let c = Config::parse(Path::new("/c.toml"), CONFIG).unwrap();
        let groups: Vec<String> = vec!["staff".into()];
        render(
            &c,
            &Who {
                user,
                groups: &groups,
            },
            c.host(host).unwrap(),
            cmd,
            true,
        )
    }

    #[test]
    fn shows_normalized_commands_rules_and_decision() {
        let out = render_for("alice", "web01", "sudo \\rm -rf / 2>/dev/null");
        assert!(
            out.contains("   1. 'sudo rm -rf /'\n   2. 'rm -rf /'\n"),
            "{out}"
        );
        assert!(
            out.contains("  ops-only (alert): skipped: not for this user\n"),
            "{out}"
        );
        assert!(
            out.contains("  no-root-wipe (deny): MATCH: '^rm\\s+(-\\w+\\s+)*/\\s*$' matches simple command 'rm -rf /'\n"),
            "{out}"
        );
        assert!(
            out.contains("(the rules after the match are not tried)"),
            "{out}"
        );
        assert!(
            out.contains("decision: deny by \"no-root-wipe\": blocked"),
            "{out}"
        );
        assert!(
            out.contains("the operator sees: gatehouse: blocked by policy \"no-root-wipe\": Not on production."),
            "{out}"
        );
    }

    #[test]
    fn says_when_nothing_matches() {
        let out = render_for("alice", "dev01", "echo \"rm -rf /\"\u{1b}[2J");
        assert!(
            out.contains("  no-root-wipe (deny): skipped: not for this host\n"),
            "{out}"
        );
        // `later` matches the raw text `rm` inside the echo: a deliberately
        // loose rule, and explain shows why.
        assert!(
            out.contains("later (alert): MATCH: 'rm' matches the command as recorded"),
            "{out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "escape sequences are shown escaped"
        );
        let out = render_for("alice", "web01", "ls -l /");
        assert!(out.contains("decision: none: no rule matches"), "{out}");
    }
}
