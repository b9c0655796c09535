//! Many bastions, one record (issue 15), end to end with the real binary:
//!
//! - `gatehouse seal --init` and `gatehouse audit --verify --key` on a
//!   bastion's own log dir: an honest log verifies, an edited one and a
//!   replaced key file do not;
//! - `make test-central`: two bastion sshds running Gatehouse with the same
//!   config (separate log dirs, bastion names and sealing keys), each
//!   shipping its JSONL and recordings with rsyslog (imfile → RELP, the
//!   shipped packaging/shipping/rsyslog-bastion.conf) to one central
//!   rsyslog (packaging/shipping/rsyslog-central.conf). Every record and
//!   recording arrives byte for byte; with the central rsyslog stopped
//!   (GATEHOUSE_CENTRAL_OUTAGE_SECS, default 10) while both bastions go on
//!   working, nothing is lost, doubled or reordered (the limits of rsyslog
//!   when a bastion's own rsyslog restarts during an outage are in
//!   docs/deploy-central.md); `gatehouse audit --dir CENTRAL --verify --key A --key B`
//!   passes on the central copy. Each rsyslogd runs from its own config in
//!   a temp dir (`rsyslogd -n -f CONF -i PIDFILE`); the system's rsyslog is
//!   never touched.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn run(gh: &Gh, args: &[&str]) -> Output {
    gh.command().args(args).output().expect("run gatehouse")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `gatehouse seal --init`: the verification key is alone on the last line.
fn seal_init(gh: &Gh) -> String {
    let out = run(gh, &["seal", "--init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let key = stdout.lines().last().unwrap_or("").to_string();
    assert!(key.starts_with("gatehouse-seal-v1:"), "{stdout}");
    key
}

/// A session typed through `p` (a pty on gatehouse or on ssh to a bastion).
fn type_session(mut p: Pty, cmds: &[&str]) {
    p.expect("tgt$ ").unwrap();
    for c in cmds {
        p.send_line(c).unwrap();
        p.expect("tgt$ ").unwrap();
    }
    p.send_line("exit").unwrap();
    assert!(p.wait_exit(T).is_some(), "the session ends");
}

fn sealed_gh(t: &Target, bastion: &str) -> Gh {
    Gh::builder()
        .target("web01", t)
        .extra_settings(&format!(
            "bastion_name = \"{bastion}\"\nseal_key = \"seal/key\"\nseal_interval = \"15m\"\n"
        ))
        .build()
}

#[test]
fn seal_init_then_verify_detects_edits_and_a_replaced_key() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = sealed_gh(&t, "bastion-a");
    let key = seal_init(&gh);
    let key_file = gh.dir.path().join("seal/key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // A second --init never replaces the key.
    let again = run(&gh, &["seal", "--init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );

    type_session(gh.spawn(&["-c", "web01"]), &["echo one", "echo two"]);
    let recs = gh.jsonl();
    assert!(recs.iter().all(|r| r["bastion"] == "bastion-a"), "{recs:?}");
    let seals: Vec<&Value> = recs.iter().filter(|r| r["event"] == "seal").collect();
    // One at the session's end, one at logout.
    assert_eq!(seals.len(), 2, "{recs:?}");
    assert_eq!(recs.last().unwrap()["event"], "seal");

    let ok = run(&gh, &["audit", "--verify", "--key", &key]);
    let report = text(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{report}{}", text(&ok.stderr));
    assert!(
        report.contains("epochs 0..1, 2 valid, 0 invalid"),
        "{report}"
    );
    assert!(
        report.contains("descends from verification key"),
        "{report}"
    );
    // The key from a file works the same (keeps it out of `ps`).
    let kf = gh.dir.path().join("vk.txt");
    fs::write(&kf, format!("{key}\n")).unwrap();
    let ok = run(&gh, &["audit", "--verify", "--key", kf.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));

    // An edited sealed command.
    let log = fs::read_to_string(gh.jsonl_path()).unwrap();
    fs::write(gh.jsonl_path(), log.replace("echo one", "echo 1ne")).unwrap();
    let bad = run(&gh, &["audit", "--verify", "--key", &key]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stdout));
    fs::write(gh.jsonl_path(), &log).unwrap();

    // Root replaces the key file with a fresh one and seals with it.
    fs::remove_file(&key_file).unwrap();
    let _other = seal_init(&gh);
    type_session(gh.spawn(&["-c", "web01"]), &["history -c"]);
    let bad = run(&gh, &["audit", "--verify", "--key", &key]);
    let report = text(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{report}");
    assert!(report.contains("the sealing key was replaced"), "{report}");
}

// ---------------------------------------------------------------------------
// two bastions, one central rsyslog
// ---------------------------------------------------------------------------

/// One `rsyslogd -n -f CONF -i PIDFILE`, stopped (SIGTERM) on drop.
struct Rsyslog {
    conf: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    fn new(dir: &Path, name: &str, conf_text: &str) -> Rsyslog {
        let conf = dir.join(format!("{name}.conf"));
        fs::write(&conf, conf_text).unwrap();
        Rsyslog {
            conf,
            pid_file: dir.join(format!("{name}.pid")),
            log: dir.join(format!("{name}.log")),
            child: None,
        }
    }

    /// `rsyslogd -N1`: `Err` with its output when the config is refused.
    fn check(&self) -> Result<(), String> {
        let out = Command::new(RSYSLOGD)
            .args(["-N1", "-f"])
            .arg(&self.conf)
            .output()
            .map_err(|e| e.to_string())?;
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        if out.status.success() && !all.contains("error") {
            Ok(())
        } else {
            Err(all)
        }
    }

    fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(&self.pid_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + scaled(Duration::from_secs(20));
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

fn snippet(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/shipping")
            .join(name),
    )
    .unwrap()
}

/// The shipped central snippet, pointed at `store` and `port`.
fn central_conf(work: &Path, store: &Path, port: u16) -> String {
    let s = snippet("rsyslog-central.conf")
        .replace("/var/log/gatehouse-central", &store.display().to_string())
        .replace("port=\"2514\"", &format!("port=\"{port}\""));
    format!("global(workDirectory=\"{}\")\n{s}", work.display())
}

/// The shipped bastion snippet, reading `log_dir`, sending to `port`, as
/// host `name` (two "bastions" share this machine), retrying every second.
fn bastion_conf(work: &Path, log_dir: &Path, name: &str, port: u16) -> String {
    let s = snippet("rsyslog-bastion.conf")
        .replace("/var/log/gatehouse/", &format!("{}/", log_dir.display()))
        .replace("central.example.internal", "127.0.0.1")
        .replace("port=\"2514\"", &format!("port=\"{port}\""))
        .replace(
            "action.resumeInterval=\"10\"",
            "action.resumeInterval=\"1\"",
        );
    format!(
        "global(workDirectory=\"{}\" localHostname=\"{name}\")\n{s}",
        work.display()
    )
}

/// Every file Gatehouse wrote under `log_dir` that rsyslog ships: the
/// users' JSONL and the recordings, relative to `log_dir`.
fn shipped_files(log_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(log_dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            out.push(PathBuf::from(p.file_name().unwrap()));
        }
    }
    let sessions = log_dir.join("sessions");
    if let Ok(users) = fs::read_dir(&sessions) {
        for u in users.flatten() {
            for c in fs::read_dir(u.path()).unwrap().flatten() {
                out.push(c.path().strip_prefix(log_dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Waits until the central copy of every shipped file of each bastion is
/// byte-identical to the bastion's (lost, doubled or reordered lines never
/// are); panics with the differences at the deadline. Returns how long it
/// took.
fn wait_central_complete(bastions: &[(&str, &Gh)], store: &Path, logs: &[&Rsyslog]) -> Duration {
    let start = Instant::now();
    let deadline = start + scaled(T);
    loop {
        let mut missing = Vec::new();
        for (name, gh) in bastions {
            let files = shipped_files(gh.log_dir());
            assert!(!files.is_empty());
            for f in files {
                let local = fs::read(gh.log_dir().join(&f)).unwrap();
                let central = fs::read(store.join(name).join(&f)).unwrap_or_default();
                if local != central {
                    missing.push(format!(
                        "{name}/{}: {} lines here, {} centrally",
                        f.display(),
                        local.split(|&b| b == b'\n').count() - 1,
                        central.split(|&b| b == b'\n').count().saturating_sub(1)
                    ));
                }
            }
        }
        if missing.is_empty() {
            return start.elapsed();
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = logs.iter().map(|l| l.log_text()).collect();
            panic!(
                "the central store is not complete:\n{}\nrsyslog logs:\n{}",
                missing.join("\n"),
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn outage() -> Duration {
    let secs = std::env::var("GATEHOUSE_CENTRAL_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    Duration::from_secs(secs)
}

#[test]
fn two_bastions_ship_to_one_central_store_through_an_outage() {
    if !Path::new(RSYSLOGD).exists() {
        skip("rsyslogd not installed (apt-get install rsyslog rsyslog-relp)");
        return;
    }
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh_a = sealed_gh(&t, "bastion-a");
    let gh_b = sealed_gh(&t, "bastion-b");
    // Same config apart from the per-bastion lines.
    let strip = |gh: &Gh| {
        gh.config_text()
            .lines()
            .filter(|l| !l.starts_with("log_dir") && !l.starts_with("bastion_name"))
            .filter(|l| !l.starts_with("known_hosts"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&gh_a), strip(&gh_b));
    let key_a = seal_init(&gh_a);
    let key_b = seal_init(&gh_b);

    let dir = tempfile::Builder::new()
        .prefix("gh-central-")
        .tempdir()
        .unwrap();
    let store = dir.path().join("store");
    fs::create_dir_all(&store).unwrap();
    let port = free_port();
    let mk_work = |n: &str| {
        let w = dir.path().join(n);
        fs::create_dir_all(&w).unwrap();
        w
    };
    let mut central = Rsyslog::new(
        dir.path(),
        "central",
        &central_conf(&mk_work("work-central"), &store, port),
    );
    let mut ship_a = Rsyslog::new(
        dir.path(),
        "bastion-a",
        &bastion_conf(&mk_work("work-a"), gh_a.log_dir(), "bastion-a", port),
    );
    let mut ship_b = Rsyslog::new(
        dir.path(),
        "bastion-b",
        &bastion_conf(&mk_work("work-b"), gh_b.log_dir(), "bastion-b", port),
    );
    for r in [&central, &ship_a, &ship_b] {
        if let Err(e) = r.check() {
            if e.contains("could not load module") {
                skip(&format!(
                    "rsyslog modules missing (apt-get install rsyslog-relp): {e}"
                ));
                return;
            }
            panic!("{} refused:\n{e}", r.conf.display());
        }
    }
    central.start();
    ship_a.start();
    ship_b.start();

    let bastion_a = Bastion::start(&gh_a);
    let bastion_b = Bastion::start(&gh_b);
    let ssh = |b: &Bastion| spawn_pty(b.ssh_cmd(&["-tt", "web01"]), 80, 24);

    // 1. Both bastions, central up: everything arrives.
    type_session(ssh(&bastion_a), &["echo a-1", "echo a-2"]);
    type_session(ssh(&bastion_b), &["echo b-1"]);
    let took = wait_central_complete(
        &[("bastion-a", &gh_a), ("bastion-b", &gh_b)],
        &store,
        &[&central, &ship_a, &ship_b],
    );
    eprintln!("central store complete {took:?} after the last session ended");

    // 2. The central rsyslog goes away. Sessions go on as usual (Gatehouse
    //    writes locally and never waits for the network); the bastions'
    //    rsyslogs keep what they cannot send in their queues.
    let down = Instant::now();
    central.stop();
    type_session(ssh(&bastion_a), &["echo a-during-outage"]);
    type_session(ssh(&bastion_b), &["echo b-during-outage", "echo b-again"]);
    type_session(ssh(&bastion_a), &["echo a-later-in-the-outage"]);
    if let Some(rest) = outage().checked_sub(down.elapsed()) {
        // The outage itself is what is tested: its length is the point.
        std::thread::sleep(rest);
    }
    eprintln!("central rsyslog down for {:?}", down.elapsed());
    central.start();
    let took = wait_central_complete(
        &[("bastion-a", &gh_a), ("bastion-b", &gh_b)],
        &store,
        &[&central, &ship_a, &ship_b],
    );
    eprintln!("central store complete {took:?} after the central rsyslog came back");

    // 3. The auditor's view of the central store: both bastions merged in
    //    time order, every chain and seal intact.
    let out = gh_a
        .command()
        .args(["audit", "--dir"])
        .arg(&store)
        .args(["--verify", "--key", &key_a, "--key", &key_b])
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    assert!(report.contains("(bastion bastion-a)"), "{report}");
    assert!(report.contains("(bastion bastion-b)"), "{report}");
    assert!(!report.contains("not sealed"), "{report}");

    let merged = gh_a
        .command()
        .args(["audit", "--json", "--dir"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stderr));
    let recs: Vec<Value> = text(&merged.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let local = gh_a.jsonl().len() + gh_b.jsonl().len();
    assert_eq!(recs.len(), local);
    let ts: Vec<&str> = recs.iter().map(|r| r["ts"].as_str().unwrap()).collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "not in time order: {ts:?}"
    );
    let commands: Vec<(&str, &str)> = recs
        .iter()
        .filter(|r| r["event"] == "command")
        .map(|r| {
            (
                r["bastion"].as_str().unwrap(),
                r["command"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("bastion-a", "echo a-1"),
        ("bastion-b", "echo b-during-outage"),
        ("bastion-a", "echo a-later-in-the-outage"),
    ] {
        assert!(commands.contains(&want), "{want:?} not in {commands:?}");
    }
    // One bastion's records out of the merged store.
    let only_b = gh_a
        .command()
        .args(["audit", "--json", "--bastion", "bastion-b", "--dir"])
        .arg(&store)
        .output()
        .unwrap();
    let only_b = text(&only_b.stdout);
    assert_eq!(only_b.lines().count(), gh_b.jsonl().len(), "{only_b}");
    assert!(only_b
        .lines()
        .all(|l| l.contains("\"bastion\":\"bastion-b\"")));
    // The same records as reading both bastions' own dirs at once.
    let direct = gh_a
        .command()
        .args(["audit", "--json", "--dir"])
        .arg(gh_a.log_dir())
        .arg("--dir")
        .arg(gh_b.log_dir())
        .output()
        .unwrap();
    let mut a: Vec<&str> = text(&direct.stdout).leak().lines().collect();
    let mut b: Vec<&str> = text(&merged.stdout).leak().lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    // A recording replays from the central store.
    let cast = shipped_files(gh_b.log_dir())
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "cast"))
        .unwrap();
    let replay = gh_a
        .command()
        .args(["replay", "--raw", "--speed", "1000"])
        .arg(store.join("bastion-b").join(&cast))
        .output()
        .unwrap();
    assert!(
        text(&replay.stdout).contains("b-during-outage") || text(&replay.stdout).contains("b-1"),
        "{}{}",
        text(&replay.stdout),
        text(&replay.stderr)
    );
}

/// packaging/logrotate.d/gatehouse rotates by rename + create: a login
/// running across the rotation goes on writing and sealing into the
/// renamed file, the next login starts the new one, and `--verify` (which
/// reads uncompressed rotated files) finds every seal. Real logrotate.
#[test]
fn seals_survive_the_packaged_logrotate() {
    const LOGROTATE: &str = "/usr/sbin/logrotate";
    if !Path::new(LOGROTATE).exists() {
        skip("logrotate not installed (apt-get install logrotate)");
        return;
    }
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = sealed_gh(&t, "bastion-a");
    let key = seal_init(&gh);
    // The packaged rules on this log dir; the account lines need the
    // gatehouse account, which a test machine does not have.
    let shipped = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/logrotate.d/gatehouse"),
    )
    .unwrap();
    assert!(shipped.contains("\tcreate ") && !shipped.contains("copytruncate\n"));
    let conf: String = shipped
        .replace(
            "/var/log/gatehouse/",
            &format!("{}/", gh.log_dir().display()),
        )
        .lines()
        .filter(|l| !l.trim_start().starts_with("su ") && !l.trim_start().starts_with("create "))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("\tdelaycompress\n", "\tdelaycompress\n\tcreate 0640\n");
    let conf_path = gh.dir.path().join("logrotate.conf");
    fs::write(&conf_path, conf).unwrap();

    type_session(gh.spawn(&["-c", "web01"]), &["echo before"]);
    // A login that is in a session while the file is rotated.
    let mut running = gh.spawn(&["-c", "web01"]);
    running.expect("tgt$ ").unwrap();
    running.send_line("echo during").unwrap();
    running.expect("tgt$ ").unwrap();
    let out = Command::new(LOGROTATE)
        .arg("-f")
        .arg("-s")
        .arg(gh.dir.path().join("logrotate.state"))
        .arg(&conf_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let rotated: Vec<PathBuf> = fs::read_dir(gh.log_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".jsonl-"))
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    running.send_line("echo still-running").unwrap();
    running.expect("tgt$ ").unwrap();
    running.send_line("exit").unwrap();
    assert!(running.wait_exit(T).is_some());
    type_session(gh.spawn(&["-c", "web01"]), &["echo after"]);

    let rotated_text = fs::read_to_string(&rotated[0]).unwrap();
    assert!(
        rotated_text.contains("echo still-running"),
        "the running login kept its file"
    );
    assert!(fs::read_to_string(gh.jsonl_path())
        .unwrap()
        .contains("echo after"));
    let ok = run(&gh, &["audit", "--verify", "--key", &key]);
    let report = text(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{report}{}", text(&ok.stderr));
    assert!(
        report.contains("epochs 0..5, 6 valid, 0 invalid"),
        "{report}"
    );
    assert!(!report.contains("not sealed"), "{report}");
    assert_eq!(report.matches(": OK:").count(), 2, "{report}");
}
