//! The bypass table of the command policy (issue 10): for each way an
//! operator might dress up a denied command, the decision the library
//! makes — against the same API the relay calls at Enter
//! (`CommandPolicy::decide`). Rows marked `LIMIT` pass on purpose: they are
//! what a text policy cannot stop, and README "Command policy" says so.
//!
//! Tab completion and history recall by the arrow keys are decided on the
//! text the capture engine records (the screen-true line): those rows give
//! that text. History *expansion* (`!!`) is text the shell replaces after
//! Enter, so the policy refuses it where a deny rule applies.

use std::path::Path;

use gatehouse::core::command_policy::{Action, Who, RULE_HISTORY, RULE_UNVERIFIED};
use gatehouse::core::config::Config;

const CONFIG: &str = r#"
[settings]
policy_unverified = "POLICY_UNVERIFIED"

[[hosts]]
name = "web01"
address = "10.0.0.1"
user = "deploy"
key = "/k"
groups = ["prod"]

[[hosts]]
name = "dev01"
address = "10.0.0.2"
user = "deploy"
key = "/k"

[[policy]]
name = "no-root-wipe"
action = "deny"
commands = ['^rm\s+(-\w+\s+)*/\s*$']
hosts = ["@prod"]
message = "Not on production."

[[policy]]
name = "no-reboot"
action = "deny"
commands = ['^(shutdown|reboot|halt|poweroff)\b']
hosts = ["@prod"]

[[policy]]
name = "restart"
action = "confirm"
commands = ['^systemctl\s+(restart|stop)\b']

[[policy]]
name = "sudo-alert"
action = "alert"
commands = ['^sudo\b']
"#;

fn config(unverified: &str) -> Config {
    Config::parse(
        Path::new("/bypass.toml"),
        &CONFIG.replace("POLICY_UNVERIFIED", unverified),
    )
    .unwrap()
}

/// The rule that decides `command` typed by alice on `host`, if any.
fn decided(c: &Config, host: &str, command: &str, verified: bool) -> Option<(String, Action)> {
    let groups = vec!["staff".to_string()];
    let who = Who {
        user: "alice",
        groups: &groups,
    };
    c.policy
        .decide(&who, c.host(host).unwrap(), command, verified)
        .map(|d| (d.rule.to_string(), d.action))
}

const WIPE: Option<&str> = Some("no-root-wipe");
const REBOOT: Option<&str> = Some("no-reboot");
const NONE: Option<&str> = None;

/// (what it tries, the command as recorded, the rule that must decide).
/// Every row on web01 (prod), verified.
const TABLE: &[(&str, &str, Option<&str>)] = &[
    ("plain", "rm -rf /", WIPE),
    ("plain", "rm -r -f /", WIPE),
    ("quoting", "r''m -rf /", WIPE),
    ("quoting", "\"rm\" -rf /", WIPE),
    ("quoting", "'rm' '-rf' '/'", WIPE),
    ("quoting", "r\"m\" -r\"f\" /", WIPE),
    ("quoting", "rm -rf \"/\"", WIPE),
    ("ansi-c quoting", "$'rm' -rf /", WIPE),
    ("ansi-c hex", "$'\\x72\\x6d' -rf /", WIPE),
    ("ansi-c octal", "$'\\162m' -rf /", WIPE),
    ("locale quoting", "$\"rm\" -rf /", WIPE),
    ("escapes", "\\rm -rf /", WIPE),
    ("escapes", "r\\m -rf /", WIPE),
    ("escapes", "rm \\-rf \\/", WIPE),
    ("path", "/bin/rm -rf /", WIPE),
    ("path", "/usr/bin/rm -rf /", WIPE),
    ("path", "//usr//bin/../bin/rm -rf /", WIPE),
    ("path", "./rm -rf /", WIPE),
    ("path glob", "/???/rm -rf /", WIPE),
    ("blanks", "rm    -rf     /", WIPE),
    ("blanks", "rm\t-rf\t/", WIPE),
    ("blanks", "   rm -rf /   ", WIPE),
    ("IFS", "rm${IFS}-rf${IFS}/", WIPE),
    ("IFS", "rm$IFS-rf$IFS/", WIPE),
    ("brace expansion", "{rm,-rf,/}", WIPE),
    ("wrapper", "sudo rm -rf /", WIPE),
    ("wrapper", "sudo -u root -E rm -rf /", WIPE),
    ("wrapper", "sudo -Eu root rm -rf /", WIPE),
    ("wrapper", "sudo --user=root -- rm -rf /", WIPE),
    ("wrapper", "sudo -i rm -rf /", WIPE),
    ("wrapper", "env rm -rf /", WIPE),
    ("wrapper", "env -i PATH=/bin HOME=/ rm -rf /", WIPE),
    ("wrapper", "env -u HOME rm -rf /", WIPE),
    ("wrapper", "command rm -rf /", WIPE),
    ("wrapper", "exec rm -rf /", WIPE),
    ("wrapper", "exec -a x rm -rf /", WIPE),
    ("wrapper", "nohup rm -rf / &", WIPE),
    ("wrapper", "nice rm -rf /", WIPE),
    ("wrapper", "nice -n 19 rm -rf /", WIPE),
    ("wrapper", "nice -19 rm -rf /", WIPE),
    ("wrapper", "time rm -rf /", WIPE),
    ("wrapper", "time -p rm -rf /", WIPE),
    ("wrapper", "doas rm -rf /", WIPE),
    ("wrapper", "timeout 5 rm -rf /", WIPE),
    ("wrapper", "busybox rm -rf /", WIPE),
    (
        "wrappers stacked",
        "sudo nice -n 5 nohup env A=1 command /bin/rm -rf /",
        WIPE,
    ),
    ("wrapper paths", "/usr/bin/sudo /bin/rm -rf /", WIPE),
    ("assignment", "FOO=1 rm -rf /", WIPE),
    ("assignment", "A=1 B=2 /bin/rm -rf /", WIPE),
    ("substitution", "echo $(rm -rf /)", WIPE),
    ("substitution", "echo `rm -rf /`", WIPE),
    ("substitution", "x=$(rm -rf /)", WIPE),
    ("substitution", "echo \"$(rm -rf /)\"", WIPE),
    ("substitution nested", "echo $(echo $(rm -rf /))", WIPE),
    ("substitution nested", "echo `echo \\`rm -rf /\\``", WIPE),
    ("process substitution", "cat <(rm -rf /)", WIPE),
    ("subshell", "(rm -rf /)", WIPE),
    ("group", "{ rm -rf /; }", WIPE),
    ("list", "ls; rm -rf /", WIPE),
    ("list", "ls;rm -rf /", WIPE),
    ("list", "ls && rm -rf /", WIPE),
    ("list", "false || rm -rf /", WIPE),
    ("list", "sleep 1 & rm -rf /", WIPE),
    ("pipeline", "yes | rm -rf /", WIPE),
    ("redirection", "rm -rf / 2>/dev/null", WIPE),
    ("redirection", ">/dev/null rm -rf /", WIPE),
    ("comment after", "rm -rf / # harmless", WIPE),
    ("line continuation", "rm -rf \\\n/", WIPE),
    ("line continuation", "r\\\nm -rf /", WIPE),
    ("pasted lines", "cd /tmp\nls -l\nrm -rf /\n", WIPE),
    ("pasted loop", "for i in 1; do\n  rm -rf /\ndone", WIPE),
    ("pasted if", "if true; then\n  rm -rf /\nfi", WIPE),
    ("heredoc substitution", "cat <<EOF\n$(rm -rf /)\nEOF", WIPE),
    ("shell string", "bash -c \"rm -rf /\"", WIPE),
    ("shell string", "sh -c 'rm -rf /'", WIPE),
    ("shell string", "bash -ec 'cd /; rm -rf /'", WIPE),
    ("shell string", "sudo sh -c 'rm -rf /'", WIPE),
    ("eval", "eval \"rm -rf /\"", WIPE),
    ("eval", "eval rm -rf /", WIPE),
    ("su -c", "su -c 'rm -rf /' root", WIPE),
    ("env -S", "env -S 'rm -rf /'", WIPE),
    ("function body", "f() { rm -rf /; }", WIPE),
    ("tab completion (recorded text)", "/sbin/reboot", REBOOT),
    (
        "history recall by arrow (recorded text)",
        "sudo reboot",
        REBOOT,
    ),
    // Must not over-block: quoted text is an argument, not a command.
    ("not a command", "echo \"rm -rf /\"", NONE),
    ("not a command", "echo 'rm -rf /'", NONE),
    ("not a command", "echo rm -rf /", NONE),
    ("not a command", "printf '%s\\n' 'reboot'", NONE),
    ("not a command", "grep -r 'rm -rf /' .", NONE),
    ("not a command", "# rm -rf /", NONE),
    ("not a command", "cat <<'EOF'\nrm -rf /\nEOF", NONE),
    ("not a command", "cat <<EOF\nrm -rf /\nEOF", NONE),
    ("not a command", "command -v reboot", NONE),
    ("not a command", "man reboot", NONE),
    ("other paths", "rm -rf /tmp/x", NONE),
    ("other paths", "rm -rf ./", NONE),
    ("harmless", "ls -l /", NONE),
    // LIMIT: what no text rule can see (README, "Command policy").
    (
        "LIMIT encoded",
        "bash -c \"$(base64 -d <<<cm0gLXJmIC8K)\"",
        NONE,
    ),
    ("LIMIT variable", "x=rm; $x -rf /", NONE),
    ("LIMIT variables", "a=r b=m; $a$b -rf /", NONE),
    ("LIMIT xargs", "echo / | xargs rm -rf", NONE),
    ("LIMIT other tool", "find / -delete", NONE),
    ("LIMIT interpreter", "perl -e 'system(\"rm -rf /\")'", NONE),
    ("LIMIT script", "printf 'rm -rf /' > x.sh; sh x.sh", NONE),
    ("LIMIT stdin shell", "echo 'rm -rf /' | bash", NONE),
];

#[test]
fn bypass_table() {
    let c = config("match");
    let mut wrong = Vec::new();
    for (what, command, want) in TABLE {
        let got = decided(&c, "web01", command, true);
        let got_rule = got.as_ref().map(|(r, _)| r.as_str());
        if got_rule != *want {
            wrong.push(format!("{what}: {command:?} → {got_rule:?}, want {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn denied_rows_are_denies() {
    let c = config("match");
    for (what, command, want) in TABLE {
        if want.is_some() {
            let (_, action) = decided(&c, "web01", command, true).unwrap();
            assert_eq!(action, Action::Deny, "{what}: {command:?}");
        }
    }
}

#[test]
fn scoped_to_prod_hosts() {
    let c = config("match");
    // The deny rules are for @prod: on dev01 the same commands run (the
    // sudo ones with an alert, the first rule that applies there).
    assert_eq!(decided(&c, "dev01", "rm -rf /", true), None);
    assert_eq!(
        decided(&c, "dev01", "sudo rm -rf /", true),
        Some(("sudo-alert".into(), Action::Alert))
    );
    assert_eq!(
        decided(&c, "dev01", "sudo systemctl restart nginx", true),
        Some(("restart".into(), Action::Confirm)),
        "restart comes before sudo-alert"
    );
}

#[test]
fn history_expansion_is_refused_where_a_deny_applies() {
    let c = config("match");
    for line in ["!!", "sudo !!", "!rm", "!-2", "^tmp^", "ls && !42"] {
        assert_eq!(
            decided(&c, "web01", line, true),
            Some((RULE_HISTORY.into(), Action::Deny)),
            "{line:?}"
        );
        // No deny rule on dev01: only the ordinary rules (sudo-alert).
        assert_ne!(
            decided(&c, "dev01", line, true).map(|d| d.0),
            Some(RULE_HISTORY.to_string()),
            "{line:?} on dev01"
        );
    }
    assert_eq!(decided(&c, "web01", "echo 'done!'", true), None);
    assert_eq!(decided(&c, "web01", "[ ! -e x ] && ls", true), None);
}

#[test]
fn unverified_key_text_under_each_setting() {
    // Key text as capture would reconstruct it: a Tab it could not resolve
    // from the screen stays a Tab.
    let keys = "rm -rf /e\t";
    let m = config("match");
    assert_eq!(
        decided(&m, "web01", "rm -rf /", false).map(|d| d.0),
        WIPE.map(String::from)
    );
    assert_eq!(decided(&m, "web01", keys, false), None);
    assert_eq!(decided(&m, "web01", "ls", false), None);

    let b = config("block");
    assert_eq!(
        decided(&b, "web01", "rm -rf /", false).map(|d| d.0),
        WIPE.map(String::from)
    );
    assert_eq!(
        decided(&b, "web01", keys, false),
        Some((RULE_UNVERIFIED.into(), Action::Deny))
    );
    assert_eq!(
        decided(&b, "web01", "ls", true),
        None,
        "verified lines are not affected"
    );
    assert_eq!(
        decided(&b, "dev01", "ls", false),
        None,
        "no deny rule on dev01"
    );

    let cf = config("confirm");
    assert_eq!(
        decided(&cf, "web01", "ls", false),
        Some((RULE_UNVERIFIED.into(), Action::Confirm))
    );
}
