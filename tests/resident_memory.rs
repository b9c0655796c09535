//! What a live session keeps resident (issue 13: the relay's peak RSS is
//! held against the OpenSSH client's). Before a session connects, and
//! again before its bytes flow, Gatehouse takes its read-only file pages
//! (code and constants of the program and its libraries) out of its
//! resident set (`sys::forget_read_only_pages`): what only the start
//! needed — config, menu, login, key exchange — comes back only if it is
//! used again. Real binary, real sshd target, real pty.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// Resident kB of `pid`'s read-only private file mappings without a
/// written page: the pages `forget_read_only_pages` may drop.
fn read_only_file_rss_kb(pid: i32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    gatehouse::sys::smaps_mappings(&smaps)
        .iter()
        .filter(|m| m.read_only_file)
        .map(|m| m.rss_kb)
        .sum()
}

#[test]
fn the_code_only_the_start_used_is_not_resident_while_a_session_runs() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder().target("web01", &t).build();
    let mut p = gh.spawn(&[]);
    p.expect("pick a host").unwrap();
    p.expect("web01").unwrap();
    let at_menu = read_only_file_rss_kb(p.pid());
    p.send("web").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    // Bulk output, so the relay, the capture and the recording all run.
    p.send_line("head -c 1000000 /dev/zero | base64; echo done-$((6*7))")
        .unwrap();
    p.expect("done-42").unwrap();
    p.expect("tgt$ ").unwrap();
    let in_session = read_only_file_rss_kb(p.pid());
    eprintln!(
        "read-only file pages resident: {at_menu} kB at the menu, {in_session} kB in the session"
    );
    assert!(
        in_session < at_menu,
        "the session's relay keeps {in_session} kB of read-only file pages resident, \
         the menu had {at_menu} kB: the start's code was not let go"
    );
    p.send_line("exit 0").unwrap();
    p.expect("Session on web01 ended").unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
}

/// `HOST -- COMMAND` drops the same pages: while its output flows, the
/// process holds fewer read-only file pages than a Gatehouse that has
/// only read its config and drawn the menu.
#[test]
fn the_code_only_the_start_used_is_not_resident_while_a_command_runs() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let user = current_user();
    let gh = Gh::builder()
        .target("web01", &t)
        .no_access()
        .extra_toml(&format!(
            "[[access]]\nusers = [\"{user}\"]\nhosts = [\"web01\"]\nexec = true\n"
        ))
        .build();
    let mut menu = gh.spawn(&[]);
    menu.expect("pick a host").unwrap();
    menu.expect("web01").unwrap();
    let at_menu = read_only_file_rss_kb(menu.pid());
    let mut p = gh.spawn(&[
        "-c",
        "web01 -- head -c 1000000 /dev/zero | base64; echo done-$((6*7)); sleep 60",
    ]);
    p.expect("done-42").unwrap();
    let running = read_only_file_rss_kb(p.pid());
    eprintln!(
        "read-only file pages resident: {at_menu} kB at a menu, {running} kB running a command"
    );
    assert!(
        running < at_menu,
        "`HOST -- COMMAND` keeps {running} kB of read-only file pages resident, \
         a menu {at_menu} kB: the start's code was not let go"
    );
    menu.send(keys::ESC).unwrap();
    assert_eq!(menu.wait_exit(T), Some(0));
}
