//! Cost of a command-policy decision at Enter (`CommandPolicy::decide`):
//! the work the relay adds to an Enter, never to an ordinary key.
//!
//! (a) a typical command against 20 rules that apply;
//! (b) a 16 KiB pasted script (the longest line recorded whole);
//! (c) hostile lines of 64 KiB: deep nesting, brace bombs, wrapper chains,
//!     `sh -c` inside `sh -c`.
//!
//! Run: `cargo run --release --example policy_bench`

use std::path::Path;
use std::time::Instant;

use gatehouse::core::command_policy::Who;
use gatehouse::core::config::Config;

fn config() -> Config {
    let mut text = String::from(
        "[[hosts]]\nname = \"web01\"\naddress = \"a\"\nuser = \"u\"\nkey = \"/k\"\ngroups = [\"prod\"]\n",
    );
    for i in 0..19 {
        text.push_str(&format!(
            "[[policy]]\nname = \"r{i}\"\naction = \"alert\"\ncommands = ['^tool{i}\\s+--danger\\b', '^other{i}\\b']\n"
        ));
    }
    text.push_str(
        "[[policy]]\nname = \"no-root-wipe\"\naction = \"deny\"\ncommands = ['^rm\\s+(-\\w+\\s+)*/\\s*$']\nhosts = [\"@prod\"]\n",
    );
    Config::parse(Path::new("/bench.toml"), &text).unwrap()
}

fn time(label: &str, c: &Config, line: &str, rounds: u32) {
    let groups: Vec<String> = vec!["ops".into()];
    let who = Who {
        user: "alice",
        groups: &groups,
    };
    let host = c.host("web01").unwrap();
    let start = Instant::now();
    let mut decided = None;
    for _ in 0..rounds {
        decided = c
            .policy
            .decide(&who, host, line, true)
            .map(|d| d.rule.to_string());
    }
    let per = start.elapsed().as_secs_f64() / f64::from(rounds);
    println!(
        "{label:<34} {:>6} bytes  {:>10.1} µs/decision  -> {}",
        line.len(),
        per * 1e6,
        decided.as_deref().unwrap_or("none")
    );
}

fn main() {
    let c = config();
    time(
        "typical command",
        &c,
        "sudo systemctl status nginx | grep -i active",
        20_000,
    );
    time(
        "denied command",
        &c,
        "cd / && sudo \\rm -rf / 2>/dev/null",
        20_000,
    );
    let mut script = String::new();
    while script.len() < 16 * 1024 {
        script
            .push_str("for f in /var/log/*.log; do gzip -9 \"$f\" && echo \"$(date) $f\"; done\n");
    }
    time("16 KiB pasted script", &c, &script, 200);
    let big = 64 * 1024;
    time("64 KiB of $( nesting", &c, &"$(".repeat(big / 2), 50);
    time(
        "64 KiB of brace bombs",
        &c,
        &"{a,b}{c,d}{e,f} ".repeat(big / 16),
        50,
    );
    time("64 KiB of sudo chain", &c, &"sudo ".repeat(big / 5), 20);
    time("64 KiB of sh -c chain", &c, &"sh -c ".repeat(big / 6), 50);
    time("64 KiB of `;`", &c, &"a;".repeat(big / 2), 50);
    time("64 KiB of (( look-ahead", &c, &"((a) ".repeat(big / 5), 20);
}
