//! Packaging and shipped docs (issue 12, point 11): `make deb` installs
//! cargo-deb (pinned, `--locked`) when it is missing; the man page lists
//! every admin command and every option their usage texts list; the README and the shipping snippets name the
//! group that really reads the logs (`adm`).

mod common;

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(p: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(p)).unwrap()
}

#[test]
fn make_deb_installs_a_pinned_cargo_deb_when_missing() {
    if Command::new("make").arg("--version").output().is_err() {
        common::skip("packaging: make_deb test needs make");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cargo.log");
    // A cargo without the deb subcommand that logs what it is asked.
    let fake = dir.path().join("cargo");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\n\
             if [ \"$1\" = deb ] && [ ! -e '{log}.installed' ]; then exit 101; fi\n\
             if [ \"$1\" = install ]; then touch '{log}.installed'; fi\nexit 0\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = Command::new("make")
        .args(["-s", "deb"])
        .arg(format!("CARGO={}", fake.display()))
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(
        lines,
        [
            "deb --version",
            "install cargo-deb --version =3.8.0 --locked",
            "deb"
        ],
        "{calls}"
    );
    // Installed: not again.
    std::fs::write(&log, "").unwrap();
    let o = Command::new("make")
        .args(["-s", "deb"])
        .arg(format!("CARGO={}", fake.display()))
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "deb --version\ndeb\n"
    );
}

#[test]
fn the_man_page_lists_every_admin_command() {
    let man = read("packaging/gatehouse.1");
    for cmd in [
        "gatehouse check",
        "gatehouse audit",
        "gatehouse replay",
        "gatehouse sessions",
        "gatehouse kill",
        "gatehouse seal",
    ] {
        assert!(
            man.contains(&format!(".B {cmd}")),
            "{cmd} missing from the man page"
        );
    }
    for flag in ["\\-\\-sshd", "\\-\\-raw", "\\-\\-reason"] {
        assert!(man.contains(flag), "{flag} missing from the man page");
    }
}

/// The options as the binary itself documents them (`gatehouse help` and
/// each tool's `--help`, which are written beside their parsers): every one
/// is in the man page, so a new option cannot ship undocumented there.
#[test]
fn the_man_page_documents_every_option_the_usage_lists() {
    // groff writes `-` as `\-`; compare in plain text.
    let man = read("packaging/gatehouse.1").replace("\\-", "-");
    let documented = |opt: &str| {
        man.match_indices(opt).any(|(i, _)| {
            let after = man[i + opt.len()..].chars().next();
            !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    let bin = env!("CARGO_BIN_EXE_gatehouse");
    let mut usages = vec![("help".to_string(), vec!["help"])];
    for tool in ["check", "audit", "replay", "seal", "sessions", "kill"] {
        usages.push((format!("{tool} --help"), vec![tool, "--help"]));
    }
    let mut missing = Vec::new();
    let mut seen = 0;
    for (what, args) in usages {
        let o = Command::new(bin)
            .args(&args)
            .env_remove("GATEHOUSE_CONFIG")
            .output()
            .unwrap();
        assert!(o.status.success(), "gatehouse {what}: {o:?}");
        let text = String::from_utf8(o.stdout).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let long = word.starts_with("--") && word.len() > 2;
            // Short forms as the usage shows them: `-f, --follow`.
            let short =
                word.len() == 2 && word.starts_with('-') && text.contains(&format!("{word}, --"));
            if long || short {
                seen += 1;
                if !documented(word) {
                    missing.push(format!("{word} (from `gatehouse {what}`)"));
                }
            }
        }
    }
    // The usage texts were read, not empty.
    assert!(seen > 40, "only {seen} options found in the usage texts");
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "not in packaging/gatehouse.1: {missing:?}"
    );
}

#[test]
fn log_readers_are_told_the_adm_group() {
    for f in [
        "README.md",
        "packaging/shipping/vector.toml",
        "packaging/shipping/fluent-bit.conf",
    ] {
        let t = read(f);
        assert!(
            !t.contains("`gatehouse` group"),
            "{f} names the wrong group"
        );
        assert!(t.contains("`adm` group"), "{f} does not name adm");
    }
}
