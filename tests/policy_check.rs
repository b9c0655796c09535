//! `gatehouse check` with `[[policy]]` rules, through the real binary:
//! validation (`path:line:column` for a bad regex) and `--explain USER HOST
//! 'COMMAND'` (the user's groups from NSS, the normalized commands, the
//! rule that decides and why).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// The current user's primary group, as NSS names it.
fn primary_group() -> String {
    let out = Command::new("id").arg("-gn").output().expect("run id -gn");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn config(group: &str) -> String {
    format!(
        r#"
[settings]
log_dir = "/nonexistent/log"
policy_unverified = "block"

[[hosts]]
name = "web01"
address = "10.1.2.3"
user = "deploy"
key = "/nonexistent/key"
groups = ["prod"]

[[hosts]]
name = "dev01"
address = "10.1.2.4"
user = "deploy"
key = "/nonexistent/key"

[[access]]
unix_groups = ["{group}"]
hosts = ["*"]

[[policy]]
name = "no-root-wipe"
action = "deny"
commands = ['^rm\s+(-\w+\s+)*/\s*$', '^(shutdown|reboot|halt)\b']
hosts = ["@prod"]
message = "Not on production; use the change process."

[[policy]]
name = "group-restart"
action = "confirm"
commands = ['^systemctl\s+restart\b']
unix_groups = ["{group}"]
"#
    )
}

fn check(path: &Path, extra: &[&str]) -> Output {
    Command::new(gatehouse_bin())
        .args(["check", "--config"])
        .arg(path)
        .args(extra)
        .output()
        .expect("run gatehouse check")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn check_counts_policy_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &config(&primary_group()));
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 policy rules"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_points_at_a_bad_regex() {
    let dir = tempfile::tempdir().unwrap();
    let body = config(&primary_group()).replace("'^(shutdown", "'^((shutdown");
    let path = write(dir.path(), &body);
    let line = body.lines().position(|l| l.contains("((shutdown")).unwrap() + 1;
    let column = body.lines().nth(line - 1).unwrap().find("'^((").unwrap() + 1;
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let want = format!("{}:{line}:{column}: bad regex '^((shutdown", path.display());
    assert!(err.starts_with(&want), "want {want:?}, got {err}");
    assert!(err.contains("unclosed group"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");

    // An unknown action too.
    let path = write(
        dir.path(),
        &config(&primary_group()).replace("action = \"confirm\"", "action = \"ask\""),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr)
        .contains(": action must be \"deny\", \"confirm\" or \"alert\", not \"ask\""));
}

#[test]
fn explain_shows_the_deciding_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &config(&primary_group()));
    let user = current_user();
    let out = check(
        &path,
        &[
            "--explain",
            &user,
            "web01",
            "cd / && sudo -u root \\r\"m\" -rf / # bye",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(o.contains(&format!("user:     {user} (groups: ")), "{o}");
    assert!(o.contains("host:     web01 (groups: prod)"), "{o}");
    assert!(
        o.contains("   1. 'cd /'\n   2. 'sudo -u root rm -rf /'\n   3. 'rm -rf /'\n"),
        "{o}"
    );
    assert!(
        o.contains("no-root-wipe (deny): MATCH: '^rm\\s+(-\\w+\\s+)*/\\s*$' matches simple command 'rm -rf /'"),
        "{o}"
    );
    assert!(o.contains("decision: deny by \"no-root-wipe\""), "{o}");
    assert!(
        o.contains("the operator sees: gatehouse: blocked by policy \"no-root-wipe\": Not on production; use the change process."),
        "{o}"
    );
}

#[test]
fn explain_uses_the_users_nss_groups_and_host_scope() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &config(&primary_group()));
    let user = current_user();
    // group-restart applies through the user's primary group (NSS).
    let out = check(
        &path,
        &["--explain", &user, "dev01", "systemctl restart nginx"],
    );
    let o = text(&out.stdout);
    assert!(
        o.contains("no-root-wipe (deny): skipped: not for this host"),
        "{o}"
    );
    assert!(o.contains("decision: confirm by \"group-restart\""), "{o}");

    // Not a command: quoted text is an argument.
    let out = check(&path, &["--explain", &user, "web01", "echo \"rm -rf /\""]);
    let o = text(&out.stdout);
    assert!(o.contains("   1. 'echo rm -rf /'\n"), "{o}");
    assert!(o.contains("decision: none: no rule matches"), "{o}");

    // Unverified on a host with a deny rule, under policy_unverified = "block".
    let out = check(&path, &["--explain", &user, "web01", "ls", "--unverified"]);
    let o = text(&out.stdout);
    assert!(
        o.contains("decision: deny by \"gatehouse:unverified\""),
        "{o}"
    );
}

#[test]
fn explain_refuses_unknown_user_and_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &config(&primary_group()));
    let out = check(&path, &["--explain", &current_user(), "nosuch", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no host named \"nosuch\""),
        "{}",
        text(&out.stderr)
    );
    let out = check(&path, &["--explain", "no-such-user-gh-test", "web01", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no user named \"no-such-user-gh-test\""),
        "{}",
        text(&out.stderr)
    );
    let out = check(&path, &["--explain", "alice", "web01"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

/// The README's "Command policy" example, with a host for its `@prod`, is
/// a valid config, and decides as the README says.
#[test]
fn readme_example_is_valid() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let at = readme
        .find("## Command policy")
        .expect("README has a Command policy section");
    let start = readme[at..].find("```toml\n").unwrap() + at + "```toml\n".len();
    let end = readme[start..].find("```").unwrap() + start;
    let host = "[[hosts]]\nname = \"web01\"\naddress = \"a\"\nuser = \"u\"\nkey = \"/k\"\ngroups = [\"prod\"]\n\n";
    let body = readme[start..end].replacen("[[policy]]", &format!("{host}[[policy]]"), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &body);
    let out = check(
        &path,
        &[
            "--explain",
            &current_user(),
            "web01",
            "cd / && sudo \\rm -rf / 2>/dev/null",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(
        o.contains("   1. 'cd /'\n   2. 'sudo rm -rf /'\n   3. 'rm -rf /'\n"),
        "{o}"
    );
    assert!(o.contains("decision: deny by \"no-root-wipe\""), "{o}");
    let out = check(
        &path,
        &[
            "--explain",
            &current_user(),
            "web01",
            "sudo usermod -aG wheel bob",
        ],
    );
    assert!(
        text(&out.stdout).contains("decision: alert by \"accounts\""),
        "{}",
        text(&out.stdout)
    );
}
