//! Issue 4 end to end: the real `gatehouse` binary in a real pty, relaying to
//! a real bash behind a real sshd, and the `command` records it writes.
//!
//! Every case types like an operator: it waits for the prompt (or for the
//! echo of what it typed) before the next key, and synchronises on output
//! only. Keys of a secret are paced (`type_slowly`) so they reach the relay
//! as separate chunks, the way a human types at a no-echo prompt; that is
//! pacing, not synchronisation. Each case asserts the exact list of commands
//! the session recorded, ending with `exit`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use regex::Regex;
use serde_json::Value;

const PROMPT: &str = "tgt$ ";
const T: Duration = Duration::from_secs(20);

/// One operator session on `web01` (a real bash behind a real sshd).
struct S {
    t: Target,
    gh: Gh,
    p: Pty,
}

impl S {
    fn start() -> Option<S> {
        Self::sized(80, 24)
    }

    fn sized(cols: u16, rows: u16) -> Option<S> {
        Self::with(cols, rows, "")
    }

    /// A session on `web01` with `toml` appended to the config, in a
    /// `cols`×`rows` terminal.
    fn with(cols: u16, rows: u16, toml: &str) -> Option<S> {
        if skip_without_pty() {
            return None;
        }
        let t = Target::start();
        let gh = Gh::builder().target("web01", &t).extra_toml(toml).build();
        let mut c = gh.command();
        c.args(["-c", "web01"]);
        let mut p = spawn_pty(c, cols, rows);
        p.timeout = T;
        p.expect(PROMPT).unwrap();
        Some(S { t, gh, p })
    }

    fn send(&mut self, b: impl AsRef<[u8]>) {
        self.p.send(b).unwrap();
    }

    /// Type `text` and wait for its echo: the logical line the cursor is on
    /// (soft-wrapped rows joined) ends with it.
    fn typed(&mut self, text: &str) {
        self.send(text);
        let everything = Regex::new(r"(?s)\A.*").unwrap();
        let deadline = Instant::now() + scaled(T);
        loop {
            let got = cursor_logical_line(&self.p);
            if got.ends_with(text) {
                // Consume what was read so far: later `expect`s look only at
                // output that follows this echo.
                self.p.expect(&everything).unwrap();
                return;
            }
            if Instant::now() >= deadline || self.p.is_eof() {
                panic!(
                    "never saw the echo of {text:?}; cursor line {got:?}; screen:\n{}",
                    self.p.screen_text()
                );
            }
            self.p.pump(Duration::from_millis(20));
        }
    }

    /// Type a whole command, wait for its echo, press Enter, wait for the
    /// line `output` (if any) and the next prompt.
    fn run(&mut self, cmd: &str, output: Option<&str>) {
        self.typed(cmd);
        self.enter_expect(output);
    }

    /// Enter, then the output line `output` (if any) and the next prompt.
    fn enter_expect(&mut self, output: Option<&str>) {
        self.send(keys::ENTER);
        if let Some(o) = output {
            self.expect_line(o);
        }
        self.p.expect(PROMPT).unwrap();
    }

    /// A whole output line (not the echo of a command, which starts with the
    /// prompt).
    fn expect_line(&mut self, line: &str) {
        let re = Regex::new(&format!("(?m)^{}$", regex::escape(line))).unwrap();
        self.p.expect(re).unwrap();
    }

    /// Wait until the row the cursor is on reads exactly `want` (trailing
    /// blanks ignored): the terminal shows what readline made of the keys.
    /// Waits until the cursor's row is one of `wants`; which one.
    fn cursor_line_any(&mut self, wants: &[&str]) -> usize {
        let deadline = Instant::now() + scaled(T);
        loop {
            let got = cursor_row(&self.p);
            if let Some(i) = wants.iter().position(|w| *w == got) {
                return i;
            }
            if Instant::now() >= deadline || self.p.is_eof() {
                panic!(
                    "cursor line never became one of {wants:?}; it is {got:?}; screen:\n{}",
                    self.p.screen_text()
                );
            }
            self.p.pump(Duration::from_millis(20));
        }
    }

    fn cursor_line(&mut self, want: &str) {
        let deadline = Instant::now() + scaled(T);
        loop {
            let got = cursor_row(&self.p);
            if got == want {
                return;
            }
            if Instant::now() >= deadline || self.p.is_eof() {
                panic!(
                    "cursor line never became {want:?}; it is {got:?}; screen:\n{}",
                    self.p.screen_text()
                );
            }
            self.p.pump(Duration::from_millis(20));
        }
    }

    /// Wait until the terminal is (or is no longer) on the alternate screen.
    fn alternate(&mut self, on: bool) {
        let deadline = Instant::now() + scaled(T);
        while self.p.screen().alternate_screen() != on {
            if Instant::now() >= deadline || self.p.is_eof() {
                panic!(
                    "alternate screen never became {on}; screen:\n{}",
                    self.p.screen_text()
                );
            }
            self.p.pump(Duration::from_millis(20));
        }
    }

    /// Wait until the screen satisfies `pred`.
    fn screen_until(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + scaled(T);
        loop {
            let s = self.p.screen_text();
            if pred(&s) {
                return;
            }
            if Instant::now() >= deadline || self.p.is_eof() {
                panic!("screen never showed {what}; screen:\n{s}");
            }
            self.p.pump(Duration::from_millis(20));
        }
    }

    /// Ctrl-C, and wait for the fresh prompt it brings: down a line, then
    /// `prompt` (zsh draws PROMPT_SP's blanks in between). fish loses a
    /// Ctrl-C that comes while it is still busy with the keys before it
    /// (the cancel keys of a block): as an operator would, press it again
    /// when no prompt came.
    fn interrupt(&mut self, prompt: &str) {
        let everything = Regex::new(r"(?s)\A.*").unwrap();
        let fresh = Regex::new(&format!(r"\n[^\n]*{}", regex::escape(prompt))).unwrap();
        for _ in 0..3 {
            // Only what follows this Ctrl-C counts.
            self.p.expect(&everything).unwrap();
            self.send("\x03");
            if self.p.expect_within(&fresh, Duration::from_secs(2)).is_ok() {
                return;
            }
        }
        panic!(
            "no fresh prompt after Ctrl-C; screen:\n{}",
            self.p.screen_text()
        );
    }

    /// One key at a time, paced like a human (each its own relay chunk).
    fn type_slowly(&mut self, text: &str) {
        for ch in text.chars() {
            self.send(ch.to_string());
            self.p.pump(Duration::from_millis(15));
        }
    }

    /// `exit`, wait for gatehouse to leave, and the recorded commands.
    fn finish(mut self) -> (Vec<String>, Done) {
        self.run_exit();
        let cmds = commands(&self.gh);
        (
            cmds,
            Done {
                _t: self.t,
                gh: self.gh,
                p: self.p,
            },
        )
    }

    fn run_exit(&mut self) {
        self.typed("exit");
        self.send(keys::ENTER);
        self.p
            .wait_exit(T)
            .unwrap_or_else(|| panic!("gatehouse did not exit:\n{}", self.p.output()));
    }
}

/// What is left once the session ended, for the secret checks.
struct Done {
    _t: Target,
    gh: Gh,
    p: Pty,
}

fn cursor_row(p: &Pty) -> String {
    let s = p.screen();
    let (row, _) = s.cursor_position();
    let (_, cols) = s.size();
    s.rows(0, cols.into())
        .nth(row as usize)
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// The cursor's row and the rows it continues by soft wrap, joined.
fn cursor_logical_line(p: &Pty) -> String {
    let s = p.screen();
    let (row, _) = s.cursor_position();
    let (_, cols) = s.size();
    let rows: Vec<String> = s.rows(0, cols.into()).collect();
    let mut start = row as usize;
    while start > 0 && s.row_wrapped(start as u16 - 1) {
        start -= 1;
    }
    let mut line = String::new();
    for r in &rows[start..=(row as usize).min(rows.len() - 1)] {
        line.push_str(r);
    }
    line.trim_end().to_string()
}

fn commands(gh: &Gh) -> Vec<String> {
    // `command` and `input_hidden` share one counter.
    let mut all = gh.records("command");
    all.extend(gh.records("input_hidden"));
    let mut seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    let recs = gh.records("command");
    for r in &recs {
        assert_eq!(r["host"], "web01", "{r}");
    }
    recs.iter()
        .map(|r| r["command"].as_str().unwrap().to_string())
        .collect()
}

fn command_records(gh: &Gh) -> Vec<Value> {
    gh.records("command")
}

/// A prompt printed at the start of a line (not the echo of the command
/// that asks for it, which contains the same words).
fn at_line_start(prompt: &str) -> Regex {
    Regex::new(&format!("(?m)^{}", regex::escape(prompt))).unwrap()
}

/// A distinctive secret, different in every run.
fn secret() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("S3cr3t-{:08x}{:x}", n, std::process::id())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The secret is in no file under log_dir (the JSONL, every recording)
/// and nowhere in what the operator saw (it was never echoed, so neither
/// the target nor a gatehouse message may show it).
fn assert_secret_nowhere(done: &Done, secret: &str) {
    let mut files = Vec::new();
    files_under(done.gh.log_dir(), &mut files);
    let casts = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "cast"))
        .count();
    assert!(casts >= 1, "no recording under the log dir: {files:?}");
    assert!(files.contains(&done.gh.jsonl_path()), "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(secret),
            "secret found in {}:\n{text}",
            f.display()
        );
    }
    assert!(
        !done.p.output().contains(secret),
        "secret shown to the operator:\n{}",
        done.p.output()
    );
    let raw = String::from_utf8_lossy(done.p.raw_output());
    assert!(!raw.contains(secret));
}

/// The target shell compares what it read with this file, so a case proves
/// the secret really arrived without the secret being on any command line.
fn want_file(t: &Target, secret: &str) {
    std::fs::write(t.home().join(".want"), secret).unwrap();
}

// ---------------------------------------------------------------------------
// Line editing, completion, recall
// ---------------------------------------------------------------------------

#[test]
fn case_plain_command() {
    let Some(mut s) = S::start() else { return };
    s.run("echo plain-$((6*7))", Some("plain-42"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo plain-$((6*7))", "exit"]);
}

#[test]
fn case_backspace_edits() {
    let Some(mut s) = S::start() else { return };
    s.typed("echo helxo");
    s.send([keys::BACKSPACE; 2].concat());
    s.cursor_line("tgt$ echo hel");
    s.typed("lo");
    s.enter_expect(Some("hello"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo hello", "exit"]);
}

#[test]
fn case_ctrl_u_then_retype() {
    let Some(mut s) = S::start() else { return };
    s.typed("rm -rf /nothing-here");
    s.send(keys::CTRL_U);
    s.cursor_line("tgt$");
    s.run("echo retyped", Some("retyped"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo retyped", "exit"]);
}

#[test]
fn case_ctrl_w() {
    let Some(mut s) = S::start() else { return };
    s.typed("echo keep wrongword");
    s.send(keys::CTRL_W);
    s.cursor_line("tgt$ echo keep");
    s.typed("right");
    s.enter_expect(Some("keep right"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo keep right", "exit"]);
}

#[test]
fn case_left_arrow_ctrl_a_ctrl_e_insertion() {
    let Some(mut s) = S::start() else { return };
    // Left arrow, insert mid-line.
    s.typed("echo thee");
    s.send([keys::LEFT; 2].concat());
    s.send("r");
    s.cursor_line("tgt$ echo three");
    s.enter_expect(Some("three"));
    // Ctrl-A: insert at the start; Ctrl-E: append at the end.
    s.typed("cho start");
    s.send(b"\x01");
    s.send("e");
    s.cursor_line("tgt$ echo start");
    s.send(b"\x05");
    s.send(" end");
    s.cursor_line("tgt$ echo start end");
    s.enter_expect(Some("start end"));
    // Home / End keys, the same thing from the keypad.
    s.typed("cho home");
    s.send(keys::HOME);
    s.send("e");
    s.cursor_line("tgt$ echo home");
    s.send(keys::END);
    s.send(" end");
    s.cursor_line("tgt$ echo home end");
    s.enter_expect(Some("home end"));
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        ["echo three", "echo start end", "echo home end", "exit"]
    );
}

#[test]
fn case_tab_completion_of_a_command() {
    let Some(mut s) = S::start() else { return };
    s.typed("ech");
    s.send(keys::TAB);
    s.cursor_line("tgt$ echo");
    s.typed("hi-tab");
    s.enter_expect(Some("hi-tab"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, ["echo hi-tab", "exit"]);
    assert_eq!(command_records(&done.gh)[0]["source"], "screen");
}

#[test]
fn case_tab_completion_of_a_path() {
    let Some(mut s) = S::start() else { return };
    let name = format!("gh-uniq-{}-file.txt", std::process::id());
    std::fs::write(s.t.home().join(&name), "path-complete-ok\n").unwrap();
    s.run("cd", None);
    s.typed("cat gh-uniq");
    s.send(keys::TAB);
    s.cursor_line(&format!("tgt$ cat {name}"));
    s.enter_expect(Some("path-complete-ok"));
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        ["cd".to_string(), format!("cat {name}"), "exit".into()]
    );
}

#[test]
fn case_history_up_recall() {
    let Some(mut s) = S::start() else { return };
    s.run("echo hist-$((1+1))", Some("hist-2"));
    s.send(keys::UP);
    s.cursor_line("tgt$ echo hist-$((1+1))");
    s.enter_expect(Some("hist-2"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo hist-$((1+1))", "echo hist-$((1+1))", "exit"]);
}

#[test]
fn case_history_up_up_then_edit() {
    let Some(mut s) = S::start() else { return };
    s.run("echo a1", Some("a1"));
    s.run("echo b2", Some("b2"));
    s.send(keys::UP);
    s.cursor_line("tgt$ echo b2");
    s.send(keys::UP);
    s.cursor_line("tgt$ echo a1");
    s.send(keys::BACKSPACE);
    s.send("9");
    s.cursor_line("tgt$ echo a9");
    s.enter_expect(Some("a9"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo a1", "echo b2", "echo a9", "exit"]);
}

#[test]
fn case_ctrl_r_reverse_search_then_enter() {
    let Some(mut s) = S::start() else { return };
    s.run("echo needle-xyz", Some("needle-xyz"));
    s.run("echo other-1", Some("other-1"));
    s.send(keys::CTRL_R);
    s.cursor_line("(reverse-i-search)`':");
    s.send("needle");
    s.cursor_line("(reverse-i-search)`needle': echo needle-xyz");
    s.enter_expect(Some("needle-xyz"));
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        ["echo needle-xyz", "echo other-1", "echo needle-xyz", "exit"]
    );
}

fn long_word(n: usize, seed: char) -> String {
    let abc: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789".chars().collect();
    let start = abc.iter().position(|&c| c == seed).unwrap();
    (0..n).map(|i| abc[(start + i) % abc.len()]).collect()
}

#[test]
fn case_line_longer_than_the_terminal_wraps() {
    let Some(mut s) = S::sized(80, 24) else {
        return;
    };
    let word = long_word(195, 'a');
    let cmd = format!("echo {word}");
    assert_eq!(cmd.len(), 200);
    s.send(&cmd);
    // Wrapped over three rows: the last row shows the tail.
    let tail = &cmd[cmd.len() - 40..];
    s.screen_until("the tail of the long line", |scr| scr.contains(tail));
    s.enter_expect(Some(&word));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, [cmd.as_str(), "exit"]);
}

#[test]
fn case_utf8_text() {
    let Some(mut s) = S::start() else { return };
    s.run("echo héllo 你好", Some("héllo 你好"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo héllo 你好", "exit"]);
}

#[test]
fn case_multi_line_with_ps2_is_one_record() {
    let Some(mut s) = S::start() else { return };
    s.typed("for i in 1 2; do");
    s.send(keys::ENTER);
    s.p.expect("\n> ").unwrap();
    s.typed("echo $i");
    s.send(keys::ENTER);
    s.p.expect("\n> ").unwrap();
    s.typed("done");
    s.send(keys::ENTER);
    s.expect_line("1");
    s.expect_line("2");
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-loop", Some("after-loop"));
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        ["for i in 1 2; do\necho $i\ndone", "echo after-loop", "exit"]
    );
}

#[test]
fn case_bracketed_paste_of_several_commands() {
    let Some(mut s) = S::start() else { return };
    s.send(b"\x1b[200~echo paste-a\necho paste-b\n\x1b[201~");
    // bash keeps a bracketed paste in the line buffer until Enter.
    s.screen_until("the pasted text", |scr| scr.contains("echo paste-b"));
    s.send(keys::ENTER);
    s.expect_line("paste-a");
    s.expect_line("paste-b");
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-paste", Some("after-paste"));
    let (cmds, _) = s.finish();
    let two = ["echo paste-a", "echo paste-b", "echo after-paste", "exit"];
    let one = ["echo paste-a\necho paste-b", "echo after-paste", "exit"];
    assert!(
        cmds == two || cmds == one,
        "a paste of two commands recorded as {cmds:?}"
    );
}

#[test]
fn case_ctrl_c_on_a_half_typed_line_is_no_record() {
    let Some(mut s) = S::start() else { return };
    s.typed("rm -rf /never-run");
    s.send(keys::CTRL_C);
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-cc", Some("after-cc"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo after-cc", "exit"]);
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

const CHECK_X: &str = "test \"$x\" = \"$(cat ~/.want)\" && echo matched-$((6*7))";

#[test]
fn case_secret_read_s_typed_key_by_key() {
    let Some(mut s) = S::start() else { return };
    let secret = secret();
    want_file(&s.t, &secret);
    s.typed("read -s -p 'Password: ' x");
    s.send(keys::ENTER);
    s.p.expect(at_line_start("Password: ")).unwrap();
    s.type_slowly(&secret);
    s.send(keys::ENTER);
    s.p.expect(PROMPT).unwrap();
    s.run(CHECK_X, Some("matched-42"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, ["read -s -p 'Password: ' x", CHECK_X, "exit"]);
    assert_secret_nowhere(&done, &secret);
}

#[test]
fn case_secret_read_s_pasted_with_its_enter() {
    let Some(mut s) = S::start() else { return };
    let secret = secret();
    want_file(&s.t, &secret);
    s.typed("read -s -p 'Password: ' x");
    s.send(keys::ENTER);
    s.p.expect(at_line_start("Password: ")).unwrap();
    s.send(format!("{secret}\r"));
    s.p.expect(PROMPT).unwrap();
    s.run(CHECK_X, Some("matched-42"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, ["read -s -p 'Password: ' x", CHECK_X, "exit"]);
    assert_secret_nowhere(&done, &secret);
}

#[test]
fn case_secret_stty_echo_off_prompt() {
    let Some(mut s) = S::start() else { return };
    let secret = secret();
    want_file(&s.t, &secret);
    let ask = "stty -echo; printf 'Token: '; read x; stty echo; echo";
    s.typed(ask);
    s.send(keys::ENTER);
    s.p.expect(at_line_start("Token: ")).unwrap();
    s.type_slowly(&secret);
    s.send(keys::ENTER);
    s.p.expect(PROMPT).unwrap();
    s.run(CHECK_X, Some("matched-42"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, [ask, CHECK_X, "exit"]);
    assert_secret_nowhere(&done, &secret);
}

#[test]
fn case_secret_ssh_keygen_passphrase() {
    let Some(mut s) = S::start() else { return };
    let secret = secret();
    want_file(&s.t, &secret);
    let gen = "ssh-keygen -q -t ed25519 -C e2e -f ~/k";
    s.typed(gen);
    s.send(keys::ENTER);
    s.p.expect(at_line_start("Enter passphrase")).unwrap();
    s.type_slowly(&secret);
    s.send(keys::ENTER);
    s.p.expect(at_line_start("Enter same passphrase again: "))
        .unwrap();
    // The second time pasted with its Enter.
    s.send(format!("{secret}\r"));
    s.p.expect(PROMPT).unwrap();
    let check = "ssh-keygen -y -P \"$(cat ~/.want)\" -f ~/k >/dev/null && echo key-ok-$((6*7))";
    s.run(check, Some("key-ok-42"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, [gen, check, "exit"]);
    assert_secret_nowhere(&done, &secret);
}

/// Keys read without echo and without Enter (a 4-character PIN) are
/// followed directly by the next command's keys: that command is recorded
/// exactly, the PIN nowhere. (Regression: the keys ran together and the
/// command was dropped; corpus `secret_no_enter`.)
#[test]
fn case_secret_read_s_n_without_enter() {
    let Some(mut s) = S::start() else { return };
    let pin = format!("P{}", &secret()[7..12]);
    assert_eq!(pin.len(), 6);
    want_file(&s.t, &pin);
    let ask = "read -s -n 6 -p 'PIN: ' x; echo";
    s.typed(ask);
    s.send(keys::ENTER);
    s.p.expect(at_line_start("PIN: ")).unwrap();
    s.type_slowly(&pin);
    s.p.expect(PROMPT).unwrap();
    s.run(CHECK_X, Some("matched-42"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, [ask, CHECK_X, "exit"]);
    assert_secret_nowhere(&done, &pin);
}

#[test]
fn case_secret_sudo_password_and_passwd() {
    let secret = secret();
    let Some(user) = TempUser::create("gh_sudo", &secret, true) else {
        return;
    };
    let Some(mut s) = S::start() else { return };
    // The target shell is root's; `su` to the user (no password from root)
    // and have sudo ask for the user's password on the terminal.
    let sudo = format!(
        "su --pty -s /bin/sh {} -c 'sudo -k; sudo -p SudoPw: true && echo sudo-ok-$((6*7))'",
        user.name
    );
    s.typed(&sudo);
    s.send(keys::ENTER);
    s.p.expect(at_line_start("SudoPw:")).unwrap();
    s.type_slowly(&secret);
    s.send(keys::ENTER);
    s.expect_line("sudo-ok-42");
    s.p.expect(PROMPT).unwrap();
    // passwd asks twice without echo; the second answer pasted with Enter.
    let new = format!("{secret}-new");
    let pw = format!("passwd {}", user.name);
    s.typed(&pw);
    s.send(keys::ENTER);
    s.p.expect(at_line_start("New password: ")).unwrap();
    s.type_slowly(&new);
    s.send(keys::ENTER);
    s.p.expect(at_line_start("Retype new password: ")).unwrap();
    s.send(format!("{new}\r"));
    s.p.expect("updated successfully").unwrap();
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-secrets", Some("after-secrets"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, [sudo.as_str(), &pw, "echo after-secrets", "exit"]);
    assert_secret_nowhere(&done, &secret);
}

// ---------------------------------------------------------------------------
// Full-screen programs
// ---------------------------------------------------------------------------

#[test]
fn case_vim_keys_are_not_commands() {
    let Some(mut s) = S::start() else { return };
    s.typed("vim");
    s.send(keys::ENTER);
    s.alternate(true);
    s.send("ihello");
    s.screen_until("insert mode", |scr| scr.contains("-- INSERT --"));
    s.send(keys::ESC);
    s.screen_until("normal mode", |scr| !scr.contains("-- INSERT --"));
    s.send(":q!");
    s.screen_until("the ex command line", |scr| scr.contains(":q!"));
    s.send(keys::ENTER);
    s.alternate(false);
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-vim", Some("after-vim"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["vim", "echo after-vim", "exit"]);
}

#[test]
fn case_less_keys_are_not_commands() {
    let Some(mut s) = S::start() else { return };
    let body: String = (1..=300).map(|i| format!("line {i}\n")).collect::<String>()
        + "the-pattern is here\n"
        + &(301..=400)
            .map(|i| format!("line {i}\n"))
            .collect::<String>();
    std::fs::write(s.t.home().join("pager.txt"), body).unwrap();
    s.typed("less ~/pager.txt");
    s.send(keys::ENTER);
    s.alternate(true);
    s.screen_until("the first page", |scr| scr.contains("line 1\n"));
    s.send("/the-pattern");
    s.screen_until("the search prompt", |scr| scr.contains("/the-pattern"));
    s.send(keys::ENTER);
    s.screen_until("the match", |scr| scr.contains("the-pattern is here"));
    s.send("q");
    s.alternate(false);
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-less", Some("after-less"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["less ~/pager.txt", "echo after-less", "exit"]);
}

#[test]
fn case_top_keys_are_not_commands() {
    let Some(mut s) = S::start() else { return };
    s.typed("top");
    s.send(keys::ENTER);
    // procps-ng top does not switch to the alternate screen: it paints the
    // main screen with echo off. Its keys must still never be a command,
    // nor leak into the next line. (Regression: they ran together with the
    // next command's keys and that command was dropped; corpus
    // `top_main_screen`.)
    s.screen_until("top's header", |scr| scr.contains("load average"));
    // Keys top understands, one at a time (top takes keys read together
    // for an escape sequence): help, back (`q` there), then quit.
    s.send("h");
    s.screen_until("top's help", |scr| scr.contains("Help for Interactive"));
    s.send("q");
    s.screen_until("the task list", |scr| scr.contains("PID USER"));
    s.send("q");
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-top", Some("after-top"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["top", "echo after-top", "exit"]);
}

#[test]
fn case_man_keys_are_not_commands() {
    if !Path::new("/usr/share/man/man1/ls.1.gz").exists() {
        skip("no man page for ls");
        return;
    }
    let Some(mut s) = S::start() else { return };
    s.typed("man ls");
    s.send(keys::ENTER);
    s.alternate(true);
    s.screen_until("the man page", |scr| scr.contains("NAME"));
    s.send("/sort");
    s.send(keys::ENTER);
    s.send("q");
    s.alternate(false);
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-man", Some("after-man"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["man ls", "echo after-man", "exit"]);
}

// ---------------------------------------------------------------------------
// Window size
// ---------------------------------------------------------------------------

#[test]
fn case_resize_then_long_commands() {
    let Some(mut s) = S::sized(80, 24) else {
        return;
    };
    s.run("echo before-resize", Some("before-resize"));
    s.p.resize(120, 30);
    // The resize reaches the target asynchronously: wait for it there, from
    // outside, so no typed command races it (what a command typed while the
    // window change is still on its way records is another matter).
    s.t.wait_shell_tty_size(30, 120, T);
    s.run("stty size", Some("30 120"));
    let w1 = long_word(230, 'k');
    let c1 = format!("echo {w1}");
    s.send(&c1);
    s.screen_until("the tail", |scr| scr.contains(&c1[c1.len() - 30..]));
    s.enter_expect(Some(&w1));
    s.p.resize(50, 20);
    s.t.wait_shell_tty_size(20, 50, T);
    s.run("stty size", Some("20 50"));
    let w2 = long_word(140, '3');
    let c2 = format!("echo {w2}");
    s.send(&c2);
    s.screen_until("the tail", |scr| scr.contains(&c2[c2.len() - 30..]));
    s.enter_expect(Some(&w2));
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        [
            "echo before-resize",
            "stty size",
            &c1,
            "stty size",
            &c2,
            "exit"
        ]
    );
}

/// Regression: keys with a Tab arriving in one chunk, ahead of any echo (a
/// paste, or a script driving the terminal), must not run unrecorded: that
/// would be a way to hide a command from the audit.
#[test]
fn tab_completion_pasted_ahead_of_its_echo() {
    let Some(mut s) = S::start() else { return };
    s.send("ech\t pasted-$((6*7))\r");
    s.expect_line("pasted-42");
    s.p.expect(PROMPT).unwrap();
    let (cmds, _done) = s.finish();
    assert_eq!(cmds, ["echo  pasted-$((6*7))", "exit"]);
}

/// Real prompts are coloured and often two lines long; capture must not
/// depend on the test's plain `tgt$ `.
#[test]
fn case_coloured_two_line_prompt() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start_with_prompt("\\[\\e[1;32m\\]\\u@\\h\\[\\e[0m\\]:\\w\\n\\$ ");
    let gh = Gh::builder().target("web01", &t).build();
    let mut c = gh.command();
    c.args(["-c", "web01"]);
    let mut p = spawn_pty(c, 80, 24);
    p.timeout = T;
    let prompt = Regex::new(r"(?m)^[#$] $").unwrap();
    p.expect(&prompt).unwrap();
    for k in ["echo plain-", "one"] {
        p.send(k).unwrap();
        p.expect(k).unwrap();
    }
    p.send("\r").unwrap();
    p.expect("plain-one\n").unwrap();
    p.expect(&prompt).unwrap();
    // Tab completion, typed at human pace (wait for the completion).
    p.send("ech").unwrap();
    p.expect("ech").unwrap();
    p.send("\t").unwrap();
    p.expect("o ").unwrap();
    p.send("two").unwrap();
    p.expect("two").unwrap();
    p.send("\r").unwrap();
    p.expect("\ntwo\n").unwrap();
    p.expect(&prompt).unwrap();
    p.send(keys::UP).unwrap();
    p.expect("echo two").unwrap();
    p.send("\r").unwrap();
    p.expect("\ntwo\n").unwrap();
    p.expect(&prompt).unwrap();
    p.send_line("exit").unwrap();
    p.wait_exit(T).expect("gatehouse did not exit");
    assert_eq!(
        commands(&gh),
        ["echo plain-one", "echo two", "echo two", "exit"]
    );
}

// ---- Issue 9: no line that reaches a shell goes unrecorded ----------------

/// `command` and `input_hidden` records in order.
fn lines_on_record(gh: &Gh) -> Vec<Value> {
    let mut all: Vec<Value> = gh
        .jsonl()
        .into_iter()
        .filter(|r| r["event"] == "command" || r["event"] == "input_hidden")
        .collect();
    all.sort_by_key(|r| r["seq"].as_u64().unwrap_or(0));
    all
}

fn command_record(gh: &Gh, text: &str) -> Value {
    gh.records("command")
        .into_iter()
        .find(|r| r["command"] == text)
        .unwrap_or_else(|| panic!("no command {text:?} in {:#?}", gh.records("command")))
}

impl S {
    /// Enter, then wait for `prompt` (another shell's).
    fn enter_until(&mut self, prompt: &str) {
        self.send(keys::ENTER);
        self.p.expect(prompt).unwrap();
    }
}

#[test]
fn evasion_stty_echo_off_at_the_shell_prompt_is_recorded_unverified() {
    let Some(mut s) = S::start() else { return };
    s.run("stty -echo", None);
    // Typed blind: nothing comes back until the command's own output.
    s.send("echo blind-cmd-1");
    s.send(keys::ENTER);
    s.expect_line("blind-cmd-1");
    s.p.expect(PROMPT).unwrap();
    s.send("stty echo");
    s.send(keys::ENTER);
    s.p.expect(PROMPT).unwrap();
    let (cmds, done) = s.finish();
    assert_eq!(
        cmds,
        ["stty -echo", "echo blind-cmd-1", "stty echo", "exit"]
    );
    assert_eq!(
        command_record(&done.gh, "echo blind-cmd-1")["verified"],
        false
    );
    assert_eq!(command_record(&done.gh, "stty -echo")["verified"], true);
    assert!(done.gh.records("input_hidden").is_empty());
    // The admin's view: just the unconfirmed ones, marked in the table.
    let o = done
        .gh
        .command()
        .args(["audit", "--unverified", "--json"])
        .output()
        .unwrap();
    let listed: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = listed
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["echo blind-cmd-1", "stty echo"],
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = done
        .gh
        .command()
        .args(["audit", "--unverified"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("[unverified] echo blind-cmd-1"));
}

#[test]
fn evasion_alternate_screen_switch_does_not_hide_later_commands() {
    let Some(mut s) = S::start() else { return };
    // What `cat` of a file holding ESC[?1049h does: the shell's prompt is
    // drawn on the alternate screen from then on.
    s.run("printf '\\033[?1049h'", None);
    s.alternate(true);
    s.run("echo on-alt-1", Some("on-alt-1"));
    s.run("echo on-alt-2", Some("on-alt-2"));
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        [
            "printf '\\033[?1049h'",
            "echo on-alt-1",
            "echo on-alt-2",
            "exit"
        ]
    );
}

#[test]
fn evasion_ctrl_c_that_does_not_cancel_is_decided_by_the_screen() {
    let Some(mut s) = S::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    s.run("stty intr undef", None);
    s.typed(&format!("touch {}", f.display()));
    s.send(keys::CTRL_C);
    s.p.pump(Duration::from_millis(200));
    s.typed(" ; echo hi-after");
    s.enter_expect(Some("hi-after"));
    let (cmds, _) = s.finish();
    assert!(f.exists(), "the shell ran the whole line");
    assert_eq!(cmds[1], format!("touch {} ; echo hi-after", f.display()));
}

#[test]
fn evasion_ten_thousand_character_line_is_recorded_whole() {
    let Some(mut s) = S::start() else { return };
    let long = format!("echo {}", "b".repeat(10_000));
    s.send(&long);
    s.enter_expect(None);
    let (cmds, done) = s.finish();
    assert_eq!(cmds, [long.as_str(), "exit"]);
    let r = command_record(&done.gh, &long);
    assert!(r.get("truncated").is_none(), "{r}");
}

#[test]
fn evasion_seventeen_kib_line_keeps_its_start_and_its_end() {
    let Some(mut s) = S::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tail-ran");
    let long = format!("echo {} ; touch {}", "A".repeat(17 * 1024), f.display());
    s.send(&long);
    s.enter_expect(None);
    let (_, done) = s.finish();
    assert!(f.exists());
    let r = done
        .gh
        .records("command")
        .into_iter()
        .find(|r| r["truncated"] == true)
        .expect("a truncated record");
    let text = r["command"].as_str().unwrap();
    assert!(text.starts_with("echo AAAA"), "{text:.40}");
    assert!(
        text.ends_with(&format!("; touch {}", f.display())),
        "{}",
        &text[text.len() - 80..]
    );
    assert!(text.contains('…'));
    assert_eq!(r["length"].as_u64().unwrap() as usize, long.len());
    assert!(text.len() <= 16 * 1024 + 3);
}

#[test]
fn evasion_invalid_utf8_in_a_line_keeps_the_record() {
    let Some(mut s) = S::start() else { return };
    s.send(b"echo inv\xff\xfeX");
    s.p.pump(Duration::from_millis(300));
    s.enter_expect(None);
    let (cmds, _) = s.finish();
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert!(cmds[0].starts_with("echo inv"), "{cmds:?}");
    assert!(cmds[0].contains('\u{fffd}'), "{cmds:?}");
}

#[test]
fn evasion_loop_with_any_continuation_prompt_is_one_record() {
    let Some(mut s) = S::start() else { return };
    s.run("PS2='cont> '", None);
    s.typed("for i in 1 2; do");
    s.enter_until("cont> ");
    s.typed("echo n$i");
    s.enter_until("cont> ");
    s.typed("done");
    s.enter_expect(Some("n2"));
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        ["PS2='cont> '", "for i in 1 2; do\necho n$i\ndone", "exit"]
    );
}

#[test]
fn evasion_here_document_is_one_record() {
    let Some(mut s) = S::start() else { return };
    s.typed("cat <<EOF");
    s.enter_until("> ");
    s.typed("body-line");
    s.enter_until("> ");
    s.typed("EOF");
    s.enter_expect(Some("body-line"));
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["cat <<EOF\nbody-line\nEOF", "exit"]);
}

#[test]
fn evasion_ctrl_v_tab_is_recorded_as_a_tab() {
    let Some(mut s) = S::start() else { return };
    s.typed("echo a");
    s.send(b"\x16\t");
    s.typed("b");
    s.enter_expect(None);
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["echo a\tb", "exit"]);
}

#[test]
fn evasion_dash_without_line_editing_keeps_an_arrow_key_bytes() {
    let Some(mut s) = S::start() else { return };
    if !Path::new("/usr/bin/dash").exists() {
        eprintln!("SKIP: dash not installed");
        return;
    }
    s.typed("exec env PS1='d$ ' dash -i");
    s.enter_until("d$ ");
    s.typed("echo dash-x");
    s.send(keys::LEFT);
    s.p.pump(Duration::from_millis(300));
    s.enter_until("d$ ");
    s.typed("exit");
    s.send(keys::ENTER);
    s.p.wait_exit(T).unwrap();
    let cmds = commands(&s.gh);
    assert_eq!(cmds[1], "echo dash-x\u{1b}[D", "{cmds:?}");
}

#[test]
fn evasion_zsh_right_prompt_is_not_part_of_the_command() {
    let Some(mut s) = S::start() else { return };
    if !Path::new("/usr/bin/zsh").exists() {
        eprintln!("SKIP: zsh not installed");
        return;
    }
    s.typed("exec env PS1='z%% ' RPROMPT='[right-side]' zsh -f -i");
    s.enter_until("z% ");
    s.send("echo zsh-1");
    s.screen_until("the echo left of the right prompt", |t| {
        t.contains("z% echo zsh-1") && t.contains("[right-side]")
    });
    s.send(keys::ENTER);
    s.expect_line("zsh-1");
    s.p.expect("z% ").unwrap();
    s.send("exit");
    s.screen_until("the echo of exit", |t| t.contains("z% exit"));
    s.send(keys::ENTER);
    s.p.wait_exit(T).unwrap();
    let cmds = commands(&s.gh);
    assert_eq!(cmds[1], "echo zsh-1", "{cmds:?}");
}

#[test]
fn evasion_less_shell_escape_is_recorded() {
    let Some(mut s) = S::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("from-less");
    s.typed("less /etc/passwd");
    s.send(keys::ENTER);
    s.alternate(true);
    s.send("!");
    s.p.pump(Duration::from_millis(300));
    s.typed(&format!("touch {}", f.display()));
    s.send(keys::ENTER);
    s.screen_until("less's prompt to continue", |t| t.contains("done"));
    s.send(keys::ENTER);
    s.p.pump(Duration::from_millis(300));
    s.send("q");
    s.p.expect(PROMPT).unwrap();
    let (cmds, _) = s.finish();
    assert!(f.exists());
    assert_eq!(
        cmds,
        [
            "less /etc/passwd",
            &format!("touch {}", f.display()),
            "exit"
        ]
    );
}

#[test]
fn evasion_vim_bang_command_is_recorded() {
    let Some(mut s) = S::start() else { return };
    s.typed("vim -u NONE -N");
    s.send(keys::ENTER);
    s.alternate(true);
    s.typed(":!echo vim-bang-1");
    s.send(keys::ENTER);
    s.screen_until("vim's press-enter prompt", |t| t.contains("Press ENTER"));
    s.send(keys::ENTER);
    s.p.pump(Duration::from_millis(300));
    s.typed(":q");
    s.send(keys::ENTER);
    s.p.expect(PROMPT).unwrap();
    let (cmds, _) = s.finish();
    assert_eq!(cmds, ["vim -u NONE -N", "echo vim-bang-1", "exit"]);
}

#[test]
fn evasion_edit_and_execute_is_recorded() {
    let Some(mut s) = S::start() else { return };
    s.run("export EDITOR='vim -u NONE -N'", None);
    s.typed("echo orig");
    s.send(b"\x18\x05");
    s.alternate(true);
    s.screen_until("the line in the editor", |t| t.contains("echo orig"));
    // Replace the line, write and quit.
    s.send("ccecho edited-1\x1b");
    s.p.pump(Duration::from_millis(300));
    s.typed(":wq");
    s.send(keys::ENTER);
    s.expect_line("edited-1");
    s.p.expect(PROMPT).unwrap();
    let (cmds, done) = s.finish();
    assert_eq!(cmds[1], "echo edited-1", "{cmds:?}");
    assert_eq!(command_record(&done.gh, "echo edited-1")["verified"], false);
}

#[test]
fn secret_at_a_program_prompt_is_an_input_hidden_record_with_its_prompt() {
    let Some(mut s) = S::start() else { return };
    let secret = secret();
    s.typed("read -s -p 'Vault token: ' v; echo got-${#v}");
    s.send(keys::ENTER);
    s.p.expect(Regex::new(r"(?m)^Vault token: ").unwrap())
        .unwrap();
    let (cmds, done) = {
        s.type_slowly(&secret);
        s.send(keys::ENTER);
        s.expect_line(&format!("got-{}", secret.len()));
        s.p.expect(PROMPT).unwrap();
        s.finish()
    };
    assert_eq!(
        cmds,
        ["read -s -p 'Vault token: ' v; echo got-${#v}", "exit"]
    );
    let hidden = done.gh.records("input_hidden");
    assert_eq!(hidden.len(), 1, "{hidden:?}");
    assert_eq!(hidden[0]["prompt"], "Vault token:");
    assert_eq!(hidden[0]["seq"], 2);
    assert_secret_nowhere(&done, &secret);
    let order: Vec<String> = lines_on_record(&done.gh)
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, ["command", "input_hidden", "command"]);
}

#[test]
fn kill_nine_right_after_enter_never_loses_a_command_that_ran() {
    let mut ran = 0;
    for i in 0..10u64 {
        let Some(mut s) = S::start() else { return };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(format!("k{i}"));
        let cmd = format!("touch {}", f.display());
        s.send(format!("{cmd}\r"));
        // Vary where the kill lands: before, during and after the hold.
        std::thread::sleep(Duration::from_millis(i * 4));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.p.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        // Whatever reached the target runs within moments; give it a
        // bounded chance to show up.
        let deadline = Instant::now() + scaled(Duration::from_secs(2));
        while !f.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if f.exists() {
            ran += 1;
            let cmds: Vec<String> =
                s.gh.records("command")
                    .iter()
                    .map(|r| r["command"].as_str().unwrap_or("").to_string())
                    .collect();
            assert!(
                cmds.contains(&cmd),
                "try {i}: {cmd:?} ran on the target but is not on record: {cmds:?}"
            );
        }
    }
    eprintln!("{ran} of 10 commands reached the target before the kill");
}

// ---- Issue 10: command policy at the held Enter ---------------------------

impl S {
    /// A session whose config carries `toml` (`[[policy]]` rules).
    fn with_toml(toml: &str) -> Option<S> {
        Self::with(100, 30, toml)
    }
}

fn policy_records(gh: &Gh) -> Vec<(String, String, String)> {
    gh.records("policy")
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
                r["command"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const CONFIRM_TOUCH: &str = r#"
[[policy]]
name = "ask-touch"
action = "confirm"
commands = ['^touch\s']
"#;

const DENY_MARKER: &str = r#"
[[policy]]
name = "no-marker"
action = "deny"
commands = ['^(touch|rm)\s.*gh-mark']
message = "Not here."
"#;

#[test]
fn policy_deny_blocks_the_line_and_the_session_goes_on() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-1");
    let cmd = format!("touch {}", f.display());
    s.typed(&cmd);
    s.send(keys::ENTER);
    s.p.expect("blocked by policy \"no-marker\": Not here.")
        .unwrap();
    s.p.expect(PROMPT).unwrap();
    // The next command starts clean: nothing of the blocked line is left.
    s.run("echo after-block", Some("after-block"));
    let (cmds, done) = s.finish();
    assert!(!f.exists(), "the blocked command ran");
    assert_eq!(cmds, ["echo after-block", "exit"]);
    assert_eq!(
        policy_records(&done.gh),
        [("no-marker".into(), "blocked".into(), cmd)]
    );
}

#[test]
fn policy_matches_the_normalized_command() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-2");
    // Quoting, a path and a wrapper do not hide the program.
    let cmd = format!("true && env /usr/bin/to''uch {}", f.display());
    s.typed(&cmd);
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.p.expect(PROMPT).unwrap();
    // Not over-blocking: the words as an argument of echo are fine.
    s.run(&format!("echo \"touch {}\"", f.display()), None);
    let (_, done) = s.finish();
    assert!(!f.exists());
    assert_eq!(policy_records(&done.gh).len(), 1);
}

#[test]
fn policy_tab_completion_and_history_recall_are_checked() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-tab-target");
    std::fs::write(&f, "x").unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // Tab completes the file name: only the screen shows the whole line.
    s.typed(&format!("rm {}/gh-mark-t", dir.path().display()));
    s.send(keys::TAB);
    s.cursor_line(format!("{PROMPT}rm {}", f.display()).trim_end());
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.p.expect(PROMPT).unwrap();
    assert!(f.exists(), "completion got past the rule");
    // History recall of a line that never ran (added with history -s).
    s.run(&format!("history -s 'rm {}'", f.display()), None);
    s.send(keys::UP);
    s.cursor_line(&format!("{PROMPT}rm {}", f.display()));
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.p.expect(PROMPT).unwrap();
    let (_, done) = s.finish();
    assert!(f.exists(), "recall got past the rule");
    assert_eq!(policy_records(&done.gh).len(), 2);
}

#[test]
fn policy_confirm_runs_with_the_host_name_and_cancels_otherwise() {
    let Some(mut s) = S::with_toml(CONFIRM_TOUCH) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let yes = dir.path().join("confirmed");
    let no = dir.path().join("cancelled");
    s.typed(&format!("touch {}", yes.display()));
    s.send(keys::ENTER);
    s.p.expect("type the host's name (web01)").unwrap();
    s.send("web01\r");
    s.p.expect(PROMPT).unwrap();
    s.typed(&format!("touch {}", no.display()));
    s.send(keys::ENTER);
    s.p.expect("type the host's name (web01)").unwrap();
    s.send("db01\r");
    s.p.expect("not confirmed").unwrap();
    s.p.expect(PROMPT).unwrap();
    // What the operator sees: each question with its answer stays, the
    // confirmed line is drawn again below its question (its output would
    // follow), the refused one's notice is followed by a clean prompt.
    let confirmed = format!("tgt$ touch {}", yes.display());
    s.screen_until("the questions, answers and lines in order", |t| {
        let rows: Vec<&str> = t.lines().map(str::trim_end).collect();
        let at = |i: usize| rows.get(i).copied().unwrap_or("");
        let q: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].contains("type the host's name (web01) to run it:"))
            .collect();
        q.len() == 2
            && rows[q[0]].ends_with("to run it: web01")
            && at(q[0] + 1) == confirmed
            && rows[q[1]].ends_with("to run it: db01")
            && at(q[1] + 1).starts_with("gatehouse: not confirmed")
            && at(q[1] + 2) == "tgt$"
    });
    s.run("echo still-here", Some("still-here"));
    let (cmds, done) = s.finish();
    assert!(yes.exists(), "confirmed command did not run");
    assert!(!no.exists(), "cancelled command ran");
    assert_eq!(
        cmds,
        [
            format!("touch {}", yes.display()).as_str(),
            "echo still-here",
            "exit"
        ]
    );
    let outcomes: Vec<String> = policy_records(&done.gh).into_iter().map(|p| p.1).collect();
    assert_eq!(outcomes, ["confirmed", "cancelled"]);
}

#[test]
fn policy_alert_runs_and_flags_and_scoping_by_host_applies() {
    let toml = r#"
[[policy]]
name = "db-only"
action = "deny"
hosts = ["db*"]
commands = ['^echo\s+scoped']

[[policy]]
name = "watch-echo"
action = "alert"
commands = ['^echo\s+flag']
"#;
    let Some(mut s) = S::with_toml(toml) else {
        return;
    };
    s.run("echo scoped-ok", Some("scoped-ok"));
    s.run("echo flag-me", Some("flag-me"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds, ["echo scoped-ok", "echo flag-me", "exit"]);
    assert_eq!(
        policy_records(&done.gh),
        [("watch-echo".into(), "allowed".into(), "echo flag-me".into())]
    );
}

#[test]
fn pasted_lines_each_wait_for_their_echo_and_keep_their_order() {
    let Some(mut s) = S::start() else { return };
    // Twenty lines in one write, no bracketed paste: each Enter is held
    // until its own echo, the keys after it wait behind it, in order.
    let lines: Vec<String> = (1..=20).map(|i| format!("echo paste-{i:02}")).collect();
    let mut paste = String::new();
    for l in &lines {
        paste.push_str(l);
        paste.push('\r');
    }
    s.send(&paste);
    s.expect_line("paste-20");
    s.p.expect(PROMPT).unwrap();
    let (cmds, done) = s.finish();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    want.push("exit");
    assert_eq!(cmds, want);
    let recs = done.gh.records("command");
    assert!(recs.iter().all(|r| r["verified"] == true), "{recs:#?}");
}

#[test]
fn fish_commands_are_recorded() {
    let Some(mut s) = S::start() else { return };
    if !Path::new("/usr/bin/fish").exists() {
        eprintln!("SKIP: fish not installed");
        return;
    }
    s.typed("exec fish -N -P -i -C 'function fish_prompt; echo -n \"f> \"; end'");
    s.enter_until("f> ");
    for (cmd, out) in [
        ("echo fish-1", "fish-1"),
        ("echo fish-2 | tr a-z A-Z", "FISH-2"),
    ] {
        s.send(cmd);
        s.screen_until("the echo", |t| t.contains(&format!("f> {cmd}")));
        s.send(keys::ENTER);
        s.expect_line(out);
        s.p.expect("f> ").unwrap();
    }
    s.send("exit");
    s.screen_until("the echo of exit", |t| t.contains("f> exit"));
    s.send(keys::ENTER);
    s.p.wait_exit(T).unwrap();
    let cmds = commands(&s.gh);
    assert_eq!(
        cmds[1..],
        ["echo fish-1", "echo fish-2 | tr a-z A-Z", "exit"],
        "{cmds:?}"
    );
}

#[test]
fn a_shell_inside_tmux_on_the_target_is_still_recorded() {
    let Some(mut s) = S::start() else { return };
    if !Path::new("/usr/bin/tmux").exists() {
        eprintln!("SKIP: tmux not installed");
        return;
    }
    // tmux draws on the alternate screen; the shell inside it is a shell.
    let sock = format!("gh-capture-{}", std::process::id());
    s.typed(&format!(
        "tmux -L {sock} -f /dev/null new-session 'env PS1=\"tm$ \" bash --norc --noprofile -i'"
    ));
    s.send(keys::ENTER);
    s.alternate(true);
    s.p.expect("tm$ ").unwrap();
    s.send("echo in-tmux-1");
    s.screen_until("the echo", |t| t.contains("tm$ echo in-tmux-1"));
    s.send(keys::ENTER);
    s.expect_line("in-tmux-1");
    s.p.expect("tm$ ").unwrap();
    s.send("exit");
    s.screen_until("the echo", |t| t.contains("tm$ exit"));
    s.send(keys::ENTER);
    s.alternate(false);
    s.p.expect(PROMPT).unwrap();
    let (cmds, _) = s.finish();
    assert_eq!(cmds[1..], ["echo in-tmux-1", "exit", "exit"], "{cmds:?}");
}

/// A tmpfs mounted over a directory, unmounted on drop (panics included).
struct SmallDisk(std::path::PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_at_enter_ends_the_session_and_the_command_never_runs() {
    if skip_without_pty() {
        return;
    }
    if !nix::unistd::getuid().is_root() {
        skip("mounting a small tmpfs for the log needs root");
        return;
    }
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .extra_settings("recording = false")
        .build();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs"])
        .arg(gh.log_dir())
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    let _disk = SmallDisk(gh.log_dir().to_path_buf());
    let mut c = gh.command();
    c.args(["-c", "web01"]);
    let mut p = spawn_pty(c, 80, 24);
    p.timeout = T;
    p.expect(PROMPT).unwrap();
    // Fill the disk to the last byte.
    let filler = gh.log_dir().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![b'x'; 4096];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    let _ = std::io::Write::write_all(&mut f, b"x");
    drop(f);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // Longer than a page: the record cannot fit in the log file's last,
    // partly used page either.
    p.send(format!(
        "touch {} ; : {}",
        marker.display(),
        "A".repeat(6000)
    ))
    .unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("the audit log cannot be written; session closed")
        .unwrap();
    p.wait_exit(T).expect("gatehouse ends");
    // Gatehouse is gone and never sent the Enter: nothing can run it now.
    assert!(!marker.exists(), "the command ran without its record");
}

#[test]
fn output_racing_the_echo_still_records_the_command() {
    let Some(mut s) = S::start() else { return };
    // A background job prints into the middle of the line being typed.
    s.run("(sleep 0.5; echo BG-NOISE) &", None);
    s.typed("echo ra");
    s.expect_line("BG-NOISE");
    s.send("ced-1");
    s.screen_until("the rest of the echo", |t| t.contains("ced-1"));
    s.enter_expect(Some("raced-1"));
    let (cmds, done) = s.finish();
    assert_eq!(cmds[1], "echo raced-1", "{cmds:?}");
    // Recorded either way; verified only if the screen could confirm it.
    let r = command_record(&done.gh, "echo raced-1");
    assert!(r["verified"].is_boolean(), "{r}");
}

#[test]
fn policy_confirm_is_not_answered_by_keys_typed_ahead() {
    let Some(mut s) = S::with_toml(CONFIRM_TOUCH) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pasted");
    // The command and the host's name in one paste: the name was typed
    // before the question existed, so it is not an answer.
    s.send(format!("touch {}\rweb01\r", f.display()));
    s.p.expect("type the host's name (web01)").unwrap();
    s.send("\x1b");
    s.p.expect("not confirmed").unwrap();
    s.p.expect(PROMPT).unwrap();
    // The keys typed ahead reach the shell afterwards, in order.
    s.expect_line("bash: web01: command not found");
    s.p.expect(PROMPT).unwrap();
    let (cmds, done) = s.finish();
    assert!(!f.exists(), "a pasted host name confirmed the command");
    assert_eq!(cmds, ["web01", "exit"]);
    let outcomes: Vec<String> = policy_records(&done.gh).into_iter().map(|p| p.1).collect();
    assert_eq!(outcomes, ["cancelled"]);
}

#[test]
fn policy_blocked_loop_cannot_be_completed_later() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-loop");
    s.typed("for i in 1; do");
    s.enter_until("> ");
    s.typed(&format!("touch {}", f.display()));
    s.enter_until("> ");
    s.typed("done");
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    // The shell still holds the loop's first lines; completing it again is
    // checked as the whole loop.
    s.p.expect("> ").unwrap();
    s.typed("done");
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.p.expect("> ").unwrap();
    s.send(keys::CTRL_C);
    s.p.expect(PROMPT).unwrap();
    s.run("echo clean-after", Some("clean-after"));
    let (cmds, done) = s.finish();
    assert!(!f.exists(), "the loop ran");
    assert_eq!(cmds, ["echo clean-after", "exit"]);
    let outcomes: Vec<String> = policy_records(&done.gh).into_iter().map(|p| p.1).collect();
    assert_eq!(outcomes, ["blocked", "blocked"]);
}

/// bash in vi editing mode: the keys are vi commands (Esc, `k`, `x`,
/// `cw`), which no emacs-style key model follows; the screen decides, so
/// the record is the line the shell ran, verified.
#[test]
fn vi_editing_mode_records_what_the_shell_ran() {
    let Some(mut s) = S::start() else { return };
    s.run("set -o vi", None);
    s.run("echo vi-one", Some("vi-one"));
    // Recall it, delete its last character, append "9".
    s.send(keys::ESC);
    s.send("k");
    s.cursor_line("tgt$ echo vi-one");
    s.send("$x");
    s.cursor_line("tgt$ echo vi-on");
    s.send("a9");
    s.cursor_line("tgt$ echo vi-on9");
    s.enter_expect(Some("vi-on9"));
    // Change the first word in command mode: `0cw` replaces `true`.
    s.typed("true vi-two");
    s.cursor_line("tgt$ true vi-two");
    s.send(keys::ESC);
    s.send("0cwecho");
    s.cursor_line("tgt$ echo vi-two");
    s.enter_expect(Some("vi-two"));
    s.run("set -o emacs", None);
    let recs = command_records(&s.gh);
    let (cmds, _) = s.finish();
    assert_eq!(
        cmds,
        [
            "set -o vi",
            "echo vi-one",
            "echo vi-on9",
            "echo vi-two",
            "set -o emacs",
            "exit"
        ]
    );
    for r in &recs {
        assert_eq!(r["verified"], true, "not verified: {r}");
    }
}

/// A recalled line with the cursor moved back into it runs whole: the
/// record is the whole line, not the text left of the cursor — in bash,
/// and in zsh with a right prompt drawn beside it and in vi mode.
#[test]
fn recalled_line_with_the_cursor_moved_left_is_recorded_whole() {
    let Some(mut s) = S::start() else { return };
    s.run("echo left-one", Some("left-one"));
    s.send(keys::UP);
    s.cursor_line("tgt$ echo left-one");
    s.send([keys::LEFT, keys::LEFT, keys::LEFT].concat());
    s.enter_expect(Some("left-one"));
    if !Path::new("/usr/bin/zsh").exists() {
        eprintln!("SKIP (zsh part): zsh not installed");
        let (cmds, _) = s.finish();
        assert_eq!(cmds, ["echo left-one", "echo left-one", "exit"]);
        return;
    }
    s.typed("exec env PS1='z%% ' RPROMPT='[right-side]' zsh -f -i");
    s.enter_until("z% ");
    s.send("echo zsh-left");
    s.screen_until("the echo left of the right prompt", |t| {
        t.contains("z% echo zsh-left") && t.contains("[right-side]")
    });
    s.send(keys::ENTER);
    s.expect_line("zsh-left");
    s.p.expect("z% ").unwrap();
    s.send(keys::UP);
    s.screen_until("the recalled line", |t| {
        t.matches("z% echo zsh-left").count() >= 2
    });
    s.send([keys::LEFT, keys::LEFT, keys::LEFT, keys::LEFT].concat());
    s.send(keys::ENTER);
    s.expect_line("zsh-left");
    s.p.expect("z% ").unwrap();
    // zle in vi mode: Esc k recalls, `0cw` changes the first word.
    s.send("bindkey -v");
    s.screen_until("bindkey typed", |t| t.contains("z% bindkey -v"));
    s.send(keys::ENTER);
    s.p.expect("z% ").unwrap();
    s.send("true zsh-vi");
    s.screen_until("the line typed", |t| t.contains("z% true zsh-vi"));
    s.send(keys::ESC);
    s.send("0cwecho");
    s.screen_until("the changed word", |t| t.contains("z% echo zsh-vi"));
    s.send(keys::ENTER);
    s.expect_line("zsh-vi");
    s.p.expect("z% ").unwrap();
    s.send("exit");
    s.screen_until("the echo of exit", |t| t.contains("z% exit"));
    s.send(keys::ENTER);
    s.p.wait_exit(T).unwrap();
    let cmds = commands(&s.gh);
    assert_eq!(cmds[..2], ["echo left-one", "echo left-one"], "{cmds:?}");
    assert_eq!(
        cmds[3..],
        [
            "echo zsh-left",
            "echo zsh-left",
            "bindkey -v",
            "echo zsh-vi",
            "exit"
        ],
        "{cmds:?}"
    );
}

/// A background job draws a fake prompt while a line is typed: the screen
/// then shows only the line's end after it, but the shell runs the whole
/// line. The record is the whole line (unverified), never the end alone,
/// and a deny rule sees the whole line.
#[test]
fn fake_prompt_drawn_mid_line_does_not_cut_the_record_or_pass_a_deny() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-fake");
    let go = dir.path().join("go");
    // The job waits for a file this test creates, so the fake prompt comes
    // exactly between the two halves of the line.
    s.run(
        &format!(
            "(while [ ! -e {} ]; do sleep 0.05; done; printf '\\r\\ntgt$ ') &",
            go.display()
        ),
        None,
    );
    let cmd = format!("touch {}", f.display());
    let (head, tail) = cmd.split_at(5);
    s.typed(head);
    std::fs::write(&go, b"").unwrap();
    s.screen_until("the fake prompt", |t| {
        t.lines().filter(|l| l.trim_end() == "tgt$").count() >= 1
    });
    s.typed(tail);
    s.send(keys::ENTER);
    s.p.expect("blocked by policy \"no-marker\": Not here.")
        .unwrap();
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-fake", Some("after-fake"));
    let (cmds, done) = s.finish();
    assert!(!f.exists(), "the blocked command ran");
    assert!(
        !cmds.iter().any(|c| c == tail.trim()),
        "the record was cut at the fake prompt: {cmds:?}"
    );
    assert_eq!(
        policy_records(&done.gh),
        [("no-marker".into(), "blocked".into(), cmd)]
    );
}

/// A key bound to accept-line runs the line with no Enter to hold: the
/// command is on record once the next prompt shows it ran, before the
/// next key goes on (unverified), and a deny rule that matches it is on record as
/// `allowed` — it could not be applied — never silently absent.
#[test]
fn a_line_accepted_by_another_key_is_recorded_late_and_flagged() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-bound");
    s.run(r#"bind '"\C-t": accept-line'"#, None);
    let cmd = format!("touch {}", f.display());
    s.typed(&cmd);
    s.send(b"\x14");
    s.p.expect(PROMPT).unwrap();
    s.run("echo after-bound", Some("after-bound"));
    let recs = command_records(&s.gh);
    let (cmds, done) = s.finish();
    assert!(
        f.exists(),
        "the bound key did not run the line (test set-up)"
    );
    assert_eq!(
        cmds,
        [
            r#"bind '"\C-t": accept-line'"#,
            cmd.as_str(),
            "echo after-bound",
            "exit"
        ]
    );
    let late = recs.iter().find(|r| r["command"] == cmd.as_str()).unwrap();
    assert_eq!(late["verified"], false, "{late}");
    assert_eq!(
        policy_records(&done.gh),
        [("no-marker".into(), "allowed".into(), cmd)]
    );
}

/// Lines the shell fills in or runs itself are on record: bash's Ctrl-O
/// runs a recalled line and loads the next, which a bare Enter then runs;
/// zsh's accept-and-hold (Alt-a) runs the line and keeps it for editing.
#[test]
fn lines_the_shell_fills_in_or_runs_itself_are_recorded() {
    let Some(mut s) = S::start() else { return };
    s.run("echo o1", Some("o1"));
    s.run("echo o2", Some("o2"));
    s.send([keys::UP, keys::UP].concat());
    s.cursor_line("tgt$ echo o1");
    s.send(b"\x0f");
    s.expect_line("o1");
    s.cursor_line("tgt$ echo o2");
    s.enter_expect(Some("o2"));
    if !Path::new("/usr/bin/zsh").exists() {
        eprintln!("SKIP (zsh part): zsh not installed");
        let (cmds, _) = s.finish();
        assert_eq!(cmds, ["echo o1", "echo o2", "echo o1", "echo o2", "exit"]);
        return;
    }
    s.typed("exec env PS1='z%% ' zsh -f -i");
    s.enter_until("z% ");
    s.send("echo held-1");
    s.screen_until("the line", |t| t.contains("z% echo held-1"));
    // Alt-a: accept-and-hold runs it and draws it again at the next prompt.
    s.send(b"\x1ba");
    s.expect_line("held-1");
    s.screen_until("the line kept", |t| {
        t.lines()
            .last()
            .is_some_and(|l| l.starts_with("z% echo held-1"))
            || t.lines().any(|l| l.trim_end() == "z% echo held-1")
                && t.matches("held-1").count() >= 3
    });
    // Kill the kept line, run another.
    s.send(keys::CTRL_U);
    s.send("echo other-2");
    s.screen_until("the other line", |t| t.contains("z% echo other-2"));
    s.send(keys::ENTER);
    s.expect_line("other-2");
    s.p.expect("z% ").unwrap();
    s.send("exit");
    s.screen_until("the echo of exit", |t| t.contains("z% exit"));
    s.send(keys::ENTER);
    s.p.wait_exit(T).unwrap();
    let cmds = commands(&s.gh);
    assert_eq!(
        cmds,
        [
            "echo o1",
            "echo o2",
            "echo o1",
            "echo o2",
            "exec env PS1='z%% ' zsh -f -i",
            "echo held-1",
            "echo other-2",
            "exit"
        ]
    );
}

/// fish draws an autosuggestion right of the cursor; Enter runs only what
/// was typed, so the record is the text up to the cursor, not the
/// suggestion — also after the cursor was moved about.
#[test]
fn fish_autosuggestion_is_not_part_of_the_command() {
    let Some(mut s) = S::start() else { return };
    if !Path::new("/usr/bin/fish").exists() {
        eprintln!("SKIP: fish not installed");
        return;
    }
    s.typed("exec fish -N -P -i -C 'function fish_prompt; echo -n \"f> \"; end'");
    s.enter_until("f> ");
    s.send("echo suggest-me-1");
    s.screen_until("the echo", |t| t.contains("f> echo suggest-me-1"));
    s.send(keys::ENTER);
    s.expect_line("suggest-me-1");
    s.p.expect("f> ").unwrap();
    let left_right = [keys::LEFT, keys::RIGHT].concat();
    for (typed, out, moves) in [
        ("echo sugg", "sugg", &b""[..]),
        ("echo sugges", "sugges", &left_right[..]),
    ] {
        s.send(typed);
        // The suggestion from history is drawn after what was typed.
        s.screen_until("the autosuggestion", |t| {
            t.lines()
                .filter(|l| l.trim_end() == "f> echo suggest-me-1")
                .count()
                >= 2
        });
        s.send(moves);
        s.send(keys::ENTER);
        s.expect_line(out);
        s.p.expect("f> ").unwrap();
    }
    s.send("exit");
    s.screen_until("the echo of exit", |t| t.contains("f> exit"));
    s.send(keys::ENTER);
    s.p.wait_exit(T).unwrap();
    let cmds = commands(&s.gh);
    assert_eq!(
        cmds[1..],
        ["echo suggest-me-1", "echo sugg", "echo sugges", "exit"],
        "{cmds:?}"
    );
}

/// A blocked line the shell ran all the same: the trail says so (the
/// `blocked` record is followed by one with `outcome: ran` and the command,
/// unverified) and the session ends. Gatehouse cannot stop a shell whose
/// keys it does not know; it must never leave `blocked` as the last word.
fn blocked_line_ran(mut s: S, f: &std::path::Path, cmd: &str) {
    s.typed(cmd);
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.p.expect("the shell ran a command the policy blocked; session closed")
        .unwrap();
    s.p.wait_exit(T)
        .unwrap_or_else(|| panic!("gatehouse did not exit:\n{}", s.p.output()));
    // Whether the line got to run is a race: the session may close before
    // the shell started it (the accept's line feed comes first). The
    // trail is the same either way.
    let _ = f;
    assert_eq!(
        policy_records(&s.gh),
        [
            ("no-marker".into(), "blocked".into(), cmd.to_string()),
            ("no-marker".into(), "ran".into(), cmd.to_string())
        ]
    );
    let ran: Vec<_> =
        s.gh.records("command")
            .into_iter()
            .filter(|r| r["command"] == cmd)
            .collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0]["verified"], false);
    let end = s.gh.records("session_end");
    assert_eq!(end[0]["reason"], "error", "{end:?}");
}

/// The operator binds Ctrl-E (one of the keys Gatehouse sends to clear a
/// blocked line) to accept-line: the cancel runs the line.
#[test]
fn a_blocked_line_run_by_a_rebound_cancel_key_is_on_record_and_ends_the_session() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let f = dir.path().join("gh-mark-rebound");
    s.run(r#"bind '"\C-e": accept-line'"#, None);
    let cmd = format!("touch {}", f.display());
    blocked_line_ran(s, &f, &cmd);
}

/// A shell without a line editor reads in the kernel's canonical mode:
/// `stty eol ^E` makes Ctrl-E end a line, so the cancel hands the blocked
/// line to the shell, which holds it until a newline comes. The screen
/// never shows it cleared: every Enter that would run it with the next
/// line is blocked too, until Ctrl-C drops it.
#[test]
fn a_blocked_line_the_shell_still_holds_blocks_the_enter_that_would_run_it() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-eol");
    s.run("set +o emacs", None);
    s.run("stty eol ^E", None);
    // `;` so the literal ^E that follows is a command of its own.
    let cmd = format!("touch {} ;", f.display());
    s.typed(&cmd);
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.typed("true");
    s.send(keys::ENTER);
    s.p.expect("the shell still holds the blocked line: Ctrl-C drops it")
        .unwrap();
    s.send("\x03");
    // The shell's fresh prompt on a row of its own (the repainted line
    // above holds a prompt's text too).
    s.screen_until("a fresh prompt after ^C", |t| {
        t.trim_end().ends_with("^C\ntgt$")
    });
    s.run("stty eol undef", None);
    s.run("set -o emacs", None);
    s.run("echo after-block", Some("after-block"));
    let (cmds, done) = s.finish();
    assert!(!f.exists(), "the blocked line ran; trail: {cmds:?}");
    let policy = policy_records(&done.gh);
    assert_eq!(policy.len(), 2, "{policy:?}");
    assert!(policy.iter().all(|p| p.1 == "blocked"), "{policy:?}");
    assert!(policy[1].2.starts_with(&cmd), "{policy:?}");
    assert_eq!(
        cmds[cmds.len() - 4..],
        ["stty eol undef", "set -o emacs", "echo after-block", "exit"]
    );
}

/// Cancels that work leave no `ran` record and the session goes on, in
/// each line-editing mode the relay meets: readline emacs and vi, and the
/// kernel's canonical mode.
#[test]
fn a_blocked_line_cancelled_in_any_editing_mode_is_not_taken_as_run() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, mode) in ["set -o emacs", "set -o vi", "set +o emacs"]
        .iter()
        .enumerate()
    {
        s.run(mode, None);
        let f = dir.path().join(format!("gh-mark-mode-{i}"));
        s.typed(&format!("touch {}", f.display()));
        s.send(keys::ENTER);
        s.p.expect("blocked by policy").unwrap();
        // No prompt follows in canonical mode (the shell never saw the
        // line); the next echo is the sync point.
        s.run("set -o emacs", None);
        s.run(&format!("echo after-{i}"), Some(&format!("after-{i}")));
        assert!(!f.exists());
    }
    let (cmds, done) = s.finish();
    let policy = policy_records(&done.gh);
    let outcomes: Vec<_> = policy.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        outcomes,
        ["blocked", "blocked", "blocked"],
        "{cmds:?} {policy:?}"
    );
}

/// The cancel of a blocked line in the other shells the relay meets: zsh
/// (emacs and vi keymaps) and fish clear the line; nothing is taken as run
/// and the next line is not held back.
#[test]
fn a_blocked_line_is_cancelled_in_zsh_and_fish_and_the_session_goes_on() {
    for (shell, start, prompt) in [
        ("zsh", "exec env PS1='z%% ' zsh -f -i", "z% "),
        (
            "zsh",
            "exec env PS1='z%% ' zsh -f -i -c 'bindkey -v; exec zsh -f -i'",
            "z% ",
        ),
        (
            "fish",
            "exec fish -N -P -i -C 'function fish_prompt; echo -n \"f> \"; end'",
            "f> ",
        ),
    ] {
        if !Path::new("/usr/bin").join(shell).exists() {
            eprintln!("SKIP: {shell} not installed");
            continue;
        }
        let Some(mut s) = S::with_toml(DENY_MARKER) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gh-mark-shell");
        s.typed(start);
        s.enter_until(prompt);
        let cmd = format!("touch {}", f.display());
        s.send(&cmd);
        s.screen_until("the echo", |t| t.contains(&format!("{prompt}{cmd}")));
        s.send(keys::ENTER);
        s.p.expect("blocked by policy").unwrap();
        // The prompt stands below the notice (Gatehouse repaints the line
        // the shell's relative redraw clears), with the line cleared.
        s.screen_until("the prompt below the notice", |t| {
            t.lines()
                .skip_while(|l| !l.contains("blocked by policy"))
                .nth(1)
                .is_some_and(|l| l.trim_end() == prompt.trim_end())
        });
        s.send("echo after-block");
        s.screen_until("the echo", |t| {
            t.contains(&format!("{prompt}echo after-block"))
        });
        s.send(keys::ENTER);
        s.expect_line("after-block");
        s.p.expect(prompt).unwrap();
        s.send("exit");
        s.screen_until("the echo of exit", |t| t.contains(&format!("{prompt}exit")));
        s.send(keys::ENTER);
        s.p.wait_exit(T).unwrap();
        assert!(!f.exists(), "{start}: the blocked line ran");
        let policy = policy_records(&s.gh);
        assert_eq!(policy.len(), 1, "{start}: {policy:?}");
        assert_eq!(policy[0].1, "blocked", "{start}: {policy:?}");
        let cmds = commands(&s.gh);
        assert!(
            cmds.contains(&"echo after-block".to_string()),
            "{start}: {cmds:?}"
        );
    }
}

/// Blocks `touch …/gh-mark-held` (and `tail`) at `prompt`, in a shell
/// whose cancel keys leave the line in the shell: it is held, and a bare
/// Enter is blocked again ("the shell still holds the blocked line").
fn block_a_held_line(s: &mut S, prompt: &str, dir: &Path, tail: &str) -> std::path::PathBuf {
    let f = dir.join("gh-mark-held");
    let cmd = format!("touch {}{tail}", f.display());
    s.send(&cmd);
    s.screen_until("the echo", |t| t.contains(&format!("{prompt}{cmd}")));
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.send(keys::ENTER);
    s.p.expect("the shell still holds the blocked line: Ctrl-C drops it")
        .unwrap();
    f
}

/// A line typed at a zsh or fish prompt, its echo, Enter and the prompt.
fn run_at(s: &mut S, prompt: &str, line: &str) {
    s.send(line);
    s.screen_until("the echo", |t| t.contains(&format!("{prompt}{line}")));
    s.enter_until(prompt);
}

/// After `exit` at the fresh prompt of a Ctrl-C that dropped a held line:
/// the session ended, `exit` ran (on record, checked alone), the blocked
/// line never did, and the trail has its two blocks only.
fn the_held_line_was_dropped(s: &mut S, shell: &str, f: &Path) {
    let code = s.p.wait_exit(T);
    assert!(
        code.is_some(),
        "{shell}: the session did not end; {}\nscreen:\n{}",
        rt_trail(&s.gh),
        s.p.screen_text()
    );
    assert!(!f.exists(), "{shell}: the blocked line ran");
    let policy = policy_records(&s.gh);
    assert_eq!(policy.len(), 2, "{shell}: {}", rt_trail(&s.gh));
    assert!(
        policy
            .iter()
            .all(|p| p.1 == "blocked" && p.2.starts_with("touch ") && !p.2.contains("exit")),
        "{shell}: {}",
        rt_trail(&s.gh)
    );
    let cmds = commands(&s.gh);
    assert_eq!(
        cmds.last().map(String::as_str),
        Some("exit"),
        "{shell}: {cmds:?}"
    );
}

/// bash without a line editor (`stty eol ^E` keeps a blocked line, as in
/// `a_blocked_line_the_shell_still_holds_blocks_the_enter_that_would_run_it`):
/// Ctrl-C and `exit` typed in one burst. Gatehouse sends the Ctrl-C alone
/// and `exit` once bash has answered it (its new prompt's line feed), so
/// `exit` stands after the fresh prompt; the held line is dropped there,
/// and `exit` runs. (Sent together, the kernel echoed `exit` before the
/// prompt, and the fresh prompt came with keys already typed.)
#[test]
fn a_held_blocked_line_is_dropped_by_ctrl_c_with_keys_typed_in_the_same_burst() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    s.run("set +o emacs", None);
    s.run("stty eol ^E", None);
    let f = block_a_held_line(&mut s, PROMPT, dir.path(), " ;");
    s.send("\x03exit");
    s.cursor_line(&format!("{PROMPT}exit"));
    s.send(keys::ENTER);
    the_held_line_was_dropped(&mut s, "bash", &f);
}

/// zsh (Ctrl-U rebound, so the cancel keys leave a blocked line) with a
/// slow prompt (`precmd`): after Ctrl-C, zsh goes down a line, and `exit`
/// is typed before its new prompt comes (echo off, so only zsh's line
/// editor shows it, after the prompt). The line feed and the prompt come
/// in separate reads with keys typed in between: the held line is
/// dropped at that prompt all the same.
#[test]
fn zsh_a_held_blocked_line_is_dropped_by_ctrl_c_with_keys_typed_before_the_prompt() {
    if !Path::new("/usr/bin/zsh").exists() {
        eprintln!("SKIP: zsh not installed");
        return;
    }
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prompt = "z% ";
    s.typed("exec env PS1='z%% ' zsh -f -i");
    s.enter_until(prompt);
    run_at(&mut s, prompt, "bindkey '^U' end-of-line");
    run_at(&mut s, prompt, "stty -echo");
    run_at(&mut s, prompt, "precmd() { sleep 1 }");
    let f = block_a_held_line(&mut s, prompt, dir.path(), "");
    s.send("\x03");
    // Down a line, the prompt not drawn yet: zsh is in `precmd`.
    s.cursor_line("");
    s.send("exit");
    s.cursor_line(&format!("{prompt}exit"));
    s.send(keys::ENTER);
    the_held_line_was_dropped(&mut s, "zsh", &f);
}

/// fish (Ctrl-U rebound): its Ctrl-C writes `^C`, a line feed and the
/// new prompt, in one read or several (the prompt may come in a read
/// without a line feed); the held line is dropped at that prompt. (A
/// slow `fish_prompt` cannot stand in for a slow link here: fish runs it
/// at every repaint, the cancel keys' too, and a Ctrl-C then only
/// interrupts the prompt.)
#[test]
fn fish_a_held_blocked_line_is_dropped_by_ctrl_c() {
    if !Path::new("/usr/bin/fish").exists() {
        eprintln!("SKIP: fish not installed");
        return;
    }
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prompt = "f> ";
    s.typed("exec fish -N -P -i -C 'function fish_prompt; echo -n \"f> \"; end'");
    s.enter_until(prompt);
    run_at(&mut s, prompt, r"bind \cu end-of-line");
    let f = block_a_held_line(&mut s, prompt, dir.path(), "");
    s.interrupt(prompt);
    s.send("exit");
    s.cursor_line(&format!("{prompt}exit"));
    s.send(keys::ENTER);
    the_held_line_was_dropped(&mut s, "fish", &f);
}

/// `stty intr undef`: Ctrl-C is a character the shell keeps (canonical
/// mode) and interrupts nothing; with keys typed after it, the Enter would
/// run the held line with them, so it is blocked again.
#[test]
fn a_held_blocked_line_stays_held_after_a_ctrl_c_that_does_not_interrupt() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    s.run("set +o emacs", None);
    s.run("stty eol ^E intr undef", None);
    let f = block_a_held_line(&mut s, PROMPT, dir.path(), " ;");
    s.send("\x03exit");
    s.screen_until("the echo", |t| t.trim_end().ends_with("^Cexit"));
    s.send(keys::ENTER);
    s.p.expect("the shell still holds the blocked line: Ctrl-C drops it")
        .unwrap();
    assert!(!f.exists(), "the blocked line ran; {}", rt_trail(&s.gh));
    let policy = policy_records(&s.gh);
    assert_eq!(policy.len(), 3, "{}", rt_trail(&s.gh));
    assert!(policy.iter().all(|p| p.1 == "blocked"), "{policy:?}");
}

/// Esc and Enter sent together (vi mode, a paste, a macro key): readline
/// takes Esc (command mode) and then accepts the line. The Enter is held
/// and the policy applies like at any other Enter; the record is the
/// line the screen shows.
#[test]
fn an_enter_right_after_escape_is_held_for_the_policy() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-esc-enter");
    s.run("set -o vi", None);
    let cmd = format!("touch {}", f.display());
    s.typed(&cmd);
    s.send("\x1b\r");
    s.p.expect("blocked by policy").unwrap();
    s.run("echo vi-one", Some("vi-one"));
    // History recall and a word change, sent in one burst with its Enter.
    s.send("\x1bk0wcwecho2\x1b\r");
    s.expect_line("echo2-one");
    s.p.expect(PROMPT).unwrap();
    s.run("set -o emacs", None);
    let (cmds, done) = s.finish();
    assert!(!f.exists(), "the blocked line ran: {cmds:?}");
    assert_eq!(policy_records(&done.gh).len(), 1);
    assert!(cmds.contains(&"echo echo2-one".to_string()), "{cmds:?}");
}

// ---- red team 2 probes ----

/// Ctrl-C, then `exit` at the fresh prompt it brings (the shell's line
/// dropped, a blocked one it held included): the session ends.
fn ctrl_c_then_exit(s: &mut S, prompt: &str) {
    s.interrupt(prompt);
    s.send("exit");
    s.cursor_line(&format!("{prompt}exit"));
    s.send(keys::ENTER);
    s.p.wait_exit(T).unwrap_or_else(|| {
        panic!(
            "the session did not end after Ctrl-C and exit; {}\nscreen:\n{}",
            rt_trail(&s.gh),
            s.p.screen_text()
        )
    });
}

fn rt_trail(gh: &Gh) -> String {
    format!(
        "commands: {:?}\npolicy: {:?}",
        command_records(gh),
        policy_records(gh)
    )
}

/// `setup` run, then `entry(marker file)` put in history as quoted data
/// (`history -s`, never run), then `recall` typed with Enter: the denied
/// line the recall would run must not run.
fn history_recall_is_refused(mark: &str, setup: &[&str], entry: &str, recall: &str) {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join(mark);
    for line in setup {
        s.run(line, None);
    }
    let entry = entry.replace("{}", &f.display().to_string());
    s.run(&format!("history -s '{entry}'"), None);
    s.typed(recall);
    s.send(keys::ENTER);
    s.p.expect(PROMPT).unwrap();
    let (_c, done) = s.finish();
    assert!(
        !f.exists(),
        "{recall}: the denied line ran; {}",
        rt_trail(&done.gh)
    );
}

/// History expansion is blocked where a deny applies, but the check takes
/// every `[!` for a glob bracket; bash inhibits it only when a `]` follows
/// (bashhist.c `bash_history_inhibit_expansion`). `[!!` expands the last
/// history entry.
#[test]
fn history_expansion_after_an_unclosed_bracket_is_refused_where_a_deny_applies() {
    history_recall_is_refused("gh-mark-bracket", &[], ";touch {}", "[!!");
}

/// `fc -s` re-runs the last history entry without an editor: the same as
/// `!!`, which is blocked where a deny applies; `fc -s` is not.
#[test]
fn fc_rerunning_history_is_refused_where_a_deny_applies() {
    history_recall_is_refused("gh-mark-fc", &[], "touch {}", "fc -s");
}

/// bash inhibits history expansion in `${!` only when a `}` follows
/// (`bash_history_inhibit_expansion`); the policy's check never sees a
/// `!` after `${`. History entry `x};touch …`, then `${!!` runs
/// `${x};touch …`.
#[test]
fn history_expansion_after_an_unclosed_dollar_brace_is_refused_where_a_deny_applies() {
    history_recall_is_refused("gh-mark-db", &[], "x};touch {}", "${!!");
}

/// `histchars` moves history expansion to another character: `@-1` is
/// `!-1`. The policy's history-expansion check only knows `!` and `^`.
#[test]
fn a_new_history_character_is_refused_where_a_deny_applies() {
    history_recall_is_refused("gh-mark-hc", &["histchars='@^#'"], "touch {}", "@-1");
}

/// Without a line editor (bash `set +o emacs`, dash) Ctrl-D hands the
/// typed text to the shell with no newline: the cancel keys (Ctrl-E
/// Ctrl-U) cannot take it back. Gatehouse notices the shell still holds
/// the blocked line only while the screen shows it: a background job that
/// clears the screen (or scrolls it away) hides it, and a bare Enter then
/// runs the blocked line with no record at all; the trail says `blocked`.
#[test]
fn a_blocked_line_the_shell_holds_stays_blocked_after_the_screen_is_cleared() {
    for (i, start) in ["set +o emacs", "exec dash -i"].iter().enumerate() {
        let Some(mut s) = S::with_toml(DENY_MARKER) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(format!("gh-mark-eof{i}"));
        s.run(start, None);
        s.run("(sleep 3; printf '\\033[H\\033[2J') &", None);
        s.typed(&format!("touch {}", f.display()));
        s.send("\x04");
        s.typed(" ;echo x");
        s.send(keys::ENTER);
        s.p.expect("blocked by policy").unwrap();
        s.screen_until("the screen cleared", |t| !t.contains("blocked by policy"));
        s.send(keys::ENTER);
        // The Enter that would run the held line is blocked.
        s.p.expect("blocked by policy").unwrap();
        ctrl_c_then_exit(&mut s, PROMPT);
        assert!(
            !f.exists(),
            "{start}: the blocked line ran; {}",
            rt_trail(&s.gh)
        );
    }
}

/// zsh in vi mode (`bindkey -v` typed in the session): Esc `o` opens a
/// second line in the edit buffer. A denied first line plus any second
/// line is blocked as a whole, but the cancel keys (Ctrl-E Ctrl-U) clear
/// only the buffer's last line: the denied line stays in zsh's buffer, off
/// the cursor's row, and a bare Enter runs it with no record; the trail
/// says `blocked`.
#[test]
fn zsh_vi_open_line_a_blocked_buffer_line_the_cancel_missed_stays_blocked() {
    if !Path::new("/usr/bin/zsh").exists() {
        eprintln!("SKIP: zsh not installed");
        return;
    }
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-zo");
    let prompt = "z% ";
    s.typed("exec env PS1='z%% ' zsh -f -i");
    s.enter_until(prompt);
    s.send("bindkey -v");
    s.screen_until("the echo", |t| t.contains("z% bindkey -v"));
    s.enter_until(prompt);
    let cmd = format!("touch {}", f.display());
    s.send(&cmd);
    s.screen_until("the echo", |t| t.contains(&format!("{prompt}{cmd}")));
    s.send("\x1b");
    // Longer than zsh's KEYTIMEOUT, so `o` is a vi command, not Alt-o.
    s.p.pump(Duration::from_millis(900));
    s.send("o");
    s.send("echo zz");
    s.screen_until("the second line", |t| {
        t.lines().any(|l| l.trim_end() == "echo zz")
    });
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.p.pump(Duration::from_millis(1000));
    s.send(keys::ENTER);
    // The Enter that would run the held line is blocked.
    s.p.expect("blocked by policy").unwrap();
    ctrl_c_then_exit(&mut s, prompt);
    assert!(!f.exists(), "the blocked line ran; {}", rt_trail(&s.gh));
}

/// zsh in vi command mode (`bindkey -v` typed in the session, then Esc):
/// Ctrl-E and Ctrl-U are unbound in the `vicmd` keymap (zsh rings the
/// bell), so the cancel of a blocked line leaves it in the buffer. A bare
/// Enter is blocked again ("the shell still holds the blocked line", its
/// policy text cut before the character under the vi cursor), but `A`
/// (append) ` ;echo zz` Enter runs `touch …gh-mark ;echo zz`: the trail
/// says `blocked`, `blocked`, and a command `A ;echo zz` (unverified).
/// (The suite's other "zsh vi" cases start `zsh -f -i -c 'bindkey -v; exec
/// zsh -f -i'`, whose exec'd zsh is back in the emacs keymap.)
#[test]
fn zsh_vi_command_mode_a_blocked_line_the_cancel_missed_stays_blocked() {
    if !Path::new("/usr/bin/zsh").exists() {
        eprintln!("SKIP: zsh not installed");
        return;
    }
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-zv");
    let prompt = "z% ";
    s.typed("exec env PS1='z%% ' zsh -f -i");
    s.enter_until(prompt);
    s.send("bindkey -v");
    s.screen_until("the echo", |t| t.contains("z% bindkey -v"));
    s.enter_until(prompt);
    let cmd = format!("touch {}", f.display());
    s.send(&cmd);
    s.screen_until("the echo", |t| t.contains(&format!("{prompt}{cmd}")));
    s.send("\x1b");
    // Longer than zsh's KEYTIMEOUT: Esc alone, into vicmd.
    s.p.pump(Duration::from_millis(900));
    s.send(keys::ENTER);
    s.p.expect("blocked by policy").unwrap();
    s.p.pump(Duration::from_millis(1000));
    s.send(keys::ENTER);
    s.p.expect("the shell still holds the blocked line")
        .unwrap();
    s.p.pump(Duration::from_millis(1000));
    s.type_slowly("A ;echo zz");
    s.p.pump(Duration::from_millis(500));
    s.send(keys::ENTER);
    // The Enter that would run the held line is blocked.
    s.p.expect("blocked by policy").unwrap();
    ctrl_c_then_exit(&mut s, prompt);
    assert!(!f.exists(), "the blocked line ran; {}", rt_trail(&s.gh));
}

/// zsh gives a bare Enter a line no key typed: push-line (Alt-q) takes the
/// typed line off the screen and puts it back at the next prompt, and
/// `print -z` fills the next prompt's line. Gatehouse decides such an
/// Enter from the screen (the text after the prompt). A disowned
/// background job (`&!`: no job notice, so zsh never redraws) clears the
/// screen after that prompt, or scrolls it away with line feeds: the bare
/// Enter's screen showed nothing, and the line ran with no `command`
/// record and no policy decision. Now the text last seen filled in after
/// the prompt is what the bare Enter runs when the screen no longer shows
/// a prompt: checked (blocked here) and, when it runs, recorded unverified.
#[test]
fn redteam_zsh_pushed_line_runs_unrecorded_once_the_screen_is_cleared() {
    if !Path::new("/usr/bin/zsh").exists() {
        eprintln!("SKIP: zsh not installed");
        return;
    }
    let clear = r"printf '\033[H\033[2J'";
    let scroll = r"printf '\n%.0s' {1..60}";
    for (how, push, away) in [
        ("push-line, cleared", true, clear),
        ("push-line, scrolled", true, scroll),
        ("print -z, cleared", false, clear),
    ] {
        let Some(mut s) = S::with_toml(DENY_MARKER) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gh-mark-pl");
        let prompt = "z% ";
        s.typed("exec env PS1='z%% ' zsh -f -i");
        s.enter_until(prompt);
        let cmd = format!("touch {}", f.display());
        let job = format!("(sleep 2; {away}) &!");
        if push {
            s.send(&cmd);
            s.screen_until("the echo", |t| t.contains(&format!("{prompt}{cmd}")));
            s.send("\x1bq");
            s.screen_until("the line pushed away", |t| !t.contains(&cmd));
            s.send(&job);
        } else {
            s.send(format!("print -z '{cmd}'; {job}"));
        }
        s.p.pump(Duration::from_millis(500));
        s.send(keys::ENTER);
        s.screen_until("the line filled in", |t| {
            t.lines().any(|l| l.starts_with(&format!("{prompt}{cmd}")))
        });
        s.screen_until("the screen cleared or scrolled", |t| !t.contains(&cmd));
        s.send(keys::ENTER);
        s.screen_until("the block's notice", |t| t.contains("blocked by policy"));
        ctrl_c_then_exit(&mut s, prompt);
        assert!(
            !f.exists(),
            "{how}: the denied line ran; {}",
            rt_trail(&s.gh)
        );
        assert!(
            policy_records(&s.gh)
                .iter()
                .any(|p| p.1 == "blocked" && p.2 == cmd),
            "{how}: {}",
            rt_trail(&s.gh)
        );
    }
}

/// readline's `horizontal-scroll-mode`: a line wider than the terminal is
/// shown as one scrolled row (`<` at its left), never wrapped. A long
/// history entry recalled with Up (its start, the denied part, scrolled
/// out of sight) and run with Enter is recorded as the Up key's bytes
/// (`\u{1b}[A`, unverified), and no rule sees `touch …gh-mark`.
#[test]
#[ignore = "redteam: horizontal-scroll-mode + recalled long line: record is the Up key's bytes, the deny never sees the line"]
fn redteam_horizontal_scroll_mode_hides_a_recalled_line_from_record_and_policy() {
    let Some(mut s) = S::with_toml(DENY_MARKER) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-mark-hs");
    s.run("bind 'set horizontal-scroll-mode on'", None);
    let pad = "x".repeat(120);
    // Typed in one go: the scrolled echo never shows the whole line.
    s.send(format!("history -s 'touch {}; echo {pad}'", f.display()));
    s.p.pump(Duration::from_millis(800));
    s.send(keys::ENTER);
    s.p.pump(Duration::from_millis(800));
    s.send("\x1b[A");
    s.screen_until("the recalled line", |t| {
        t.lines().filter(|l| l.starts_with("<xxx")).count() >= 2
    });
    s.send(keys::ENTER);
    s.p.pump(Duration::from_millis(1500));
    s.send("exit\r");
    s.p.wait_exit(T);
    let cmds = commands(&s.gh);
    assert!(
        cmds.iter().any(|c| c.starts_with("touch ")),
        "the recalled line is not on record; {}",
        rt_trail(&s.gh)
    );
    assert!(!f.exists(), "the denied line ran; {}", rt_trail(&s.gh));
}

/// bash 5.2 (readline) and zsh, given Ctrl-C and keys in one read (a
/// paste, a macro key, keys typed ahead over a slow link), keep the line,
/// put the keys after it, and at Enter run it without its first key:
/// `xtouch …gh-mark` was on the screen, on record (`verified: true`) and
/// what the policy checked, and `touch …gh-mark` ran. Gatehouse now sends
/// the Ctrl-C alone and the keys once the shell has answered it (its new
/// prompt's line feed): the shell gets `xtouch …` at a fresh prompt, runs
/// that, and the record is what ran. Keys wait 2 s at most: a try where
/// the shell was slower (a fully loaded machine; seen about once in 15
/// runs beside four busy loops, before this change too) must end with the
/// record marked unverified; a try where zsh took the first key into the
/// line it was leaving (the screen then shows `touch …`) must be blocked
/// by the policy; and one of three tries must run as typed.
#[test]
fn ctrl_c_and_keys_in_one_read_run_as_typed_and_recorded_as_run() {
    for (shell, start, prompt) in [
        ("bash", None, PROMPT),
        ("zsh", Some("exec env PS1='z%% ' zsh -f -i"), "z% "),
    ] {
        if !Path::new("/usr/bin").join(shell).exists() {
            eprintln!("SKIP: {shell} not installed");
            continue;
        }
        let Some(mut s) = S::with_toml(DENY_MARKER) else {
            return;
        };
        if let Some(start) = start {
            s.typed(start);
            s.enter_until(prompt);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut ran_as_typed = false;
        for attempt in 0..3 {
            let f = dir.path().join(format!("gh-mark-cx{attempt}"));
            let line = format!("xtouch {}", f.display());
            s.send(format!("\x03{line}"));
            let typed = format!("{prompt}{line}");
            let first_key_lost = format!("{prompt}{}", &line[1..]);
            let shown = s.cursor_line_any(&[&typed, &first_key_lost]);
            s.enter_until(prompt);
            // Echoed at a prompt only once the line before it has finished;
            // its record comes after that line's.
            let sync_line = format!("true sync-{attempt}");
            run_at(&mut s, prompt, &sync_line);
            let sync = s.gh.wait_for_record(
                |r| r["event"] == "command" && r["command"] == sync_line.as_str(),
                T,
            );
            let before: Vec<Value> = command_records(&s.gh)
                .into_iter()
                .take_while(|r| r["seq"] != sync["seq"])
                .collect();
            if shown == 1 {
                // Under load zsh can take the first key into the line it is
                // leaving: the screen shows `touch …`, which is what the
                // policy checks, so it must have been blocked. Try again.
                assert!(
                    !f.exists(),
                    "{shell}: the line on screen ran; {}",
                    rt_trail(&s.gh)
                );
                let mark = format!("gh-mark-cx{attempt}");
                assert!(
                    s.gh.records("policy").iter().any(|r| r["command"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("touch ") && c.contains(&mark))),
                    "{shell}: `touch …` on screen was not blocked; {}",
                    rt_trail(&s.gh)
                );
                continue;
            }
            let last = before.last().cloned();
            let last = last.unwrap_or_else(|| panic!("{shell}: no record; {}", rt_trail(&s.gh)));
            assert_eq!(
                last["command"],
                line.as_str(),
                "{shell}: {}",
                rt_trail(&s.gh)
            );
            if !f.exists() {
                ran_as_typed = true;
                break;
            }
            // The documented limit: a shell that takes longer than 2 s to
            // answer the Ctrl-C (this machine under a full suite's load)
            // gets the keys before it is ready and drops the first; the
            // record must then say it may be wrong. Try again.
            assert_eq!(
                last["verified"],
                false,
                "{shell}: `touch` ran, and the record says `{line}` for sure; {}",
                rt_trail(&s.gh)
            );
        }
        assert!(
            ran_as_typed,
            "{shell}: no try of three ran as typed; {}",
            rt_trail(&s.gh)
        );
        run_at(&mut s, prompt, "exit");
        s.p.wait_exit(T);
    }
}

/// zsh and fish edit several lines in one buffer: Alt-Enter inserts a
/// newline (held and decided as an Enter, `echo a` recorded unverified),
/// then the second line is typed and Up moves the cursor back to the
/// first row. Enter runs the whole buffer (`echo a` and `touch …gh-mark`):
/// the whole buffer is the line, unverified (it was the cursor's row *with
/// its prompt*, `z% echo a`, `verified: true`, and no rule saw line 2).
#[test]
fn a_multi_line_buffer_with_the_cursor_moved_up_is_recorded_whole_and_checked() {
    for (shell, start, prompt) in [
        ("zsh", "exec env PS1='z%% ' zsh -f -i", "z% "),
        (
            "fish",
            "exec fish -N -P -i -C 'function fish_prompt; echo -n \"f> \"; end'",
            "f> ",
        ),
    ] {
        if !Path::new("/usr/bin").join(shell).exists() {
            eprintln!("SKIP: {shell} not installed");
            continue;
        }
        let Some(mut s) = S::with_toml(DENY_MARKER) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gh-mark-mu");
        s.typed(start);
        s.enter_until(prompt);
        s.p.pump(Duration::from_millis(500));
        s.type_slowly("echo a");
        s.send("\x1b\r");
        s.p.pump(Duration::from_millis(800));
        let cmd = format!("touch {}", f.display());
        s.type_slowly(&cmd);
        s.screen_until("the second line", |t| t.contains(&cmd));
        s.send("\x1b[A");
        s.p.pump(Duration::from_millis(800));
        s.send(keys::ENTER);
        // The Enter that would run the held line is blocked.
        s.p.expect("blocked by policy").unwrap();
        ctrl_c_then_exit(&mut s, prompt);
        let recs = command_records(&s.gh);
        let wrong: Vec<_> = recs
            .iter()
            .filter(|r| {
                r["verified"] == true && r["command"].as_str() == Some(&format!("{prompt}echo a"))
            })
            .collect();
        assert!(wrong.is_empty(), "{shell}: {}", rt_trail(&s.gh));
        assert!(
            !f.exists(),
            "{shell}: the denied line ran; {}",
            rt_trail(&s.gh)
        );
    }
}

/// A multi-line history entry recalled with Up: bash (with or without
/// `shopt -s lithist`) and zsh draw it on two rows. Put there as quoted
/// data (`history -s $'touch …\necho b'`, zsh `print -s`), recalled and run
/// with Enter: the screen's buffer, from the row with the prompt down, is
/// the line (it was the Up key's bytes, and no rule saw `touch …`).
#[test]
fn a_recalled_multi_line_history_entry_is_recorded_and_checked() {
    for (shell, start, prompt, hist) in [
        ("bash", "shopt -u lithist", PROMPT, "history -s"),
        ("bash", "shopt -s lithist", PROMPT, "history -s"),
        ("zsh", "exec env PS1='z%% ' zsh -f -i", "z% ", "print -s"),
    ] {
        if !Path::new("/usr/bin").join(shell).exists() {
            eprintln!("SKIP: {shell} not installed");
            continue;
        }
        let Some(mut s) = S::with_toml(DENY_MARKER) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gh-mark-mh");
        s.typed(start);
        s.enter_until(prompt);
        s.p.pump(Duration::from_millis(500));
        s.type_slowly(&format!("{hist} $'touch {}\\necho b'", f.display()));
        s.send(keys::ENTER);
        s.p.pump(Duration::from_millis(800));
        s.send("\x1b[A");
        s.screen_until("the recalled entry", |t| {
            t.lines().any(|l| l.trim_end() == "echo b")
        });
        s.send(keys::ENTER);
        // The Enter that would run the held line is blocked.
        s.p.expect("blocked by policy").unwrap();
        ctrl_c_then_exit(&mut s, prompt);
        // On record whole: blocked by the rule (a `policy` record with both
        // lines), as the policy sees the whole buffer.
        let blocked = policy_records(&s.gh)
            .into_iter()
            .any(|p| p.1 == "blocked" && p.2.starts_with("touch ") && p.2.ends_with("\necho b"));
        assert!(
            blocked,
            "{shell}: the recalled entry is not on record; {}",
            rt_trail(&s.gh)
        );
        assert!(
            !f.exists(),
            "{shell}: the denied line ran; {}",
            rt_trail(&s.gh)
        );
    }
}
