//! The host menu: the only user of dialoguer (its theme draws the prompt and
//! the items). It owns the cursor (shown again after every prompt) and is
//! only drawn on a real terminal (the caller checks).
//!
//! What is under Enter must be what a person predicts, because on a bastion
//! Enter opens a session on a production machine (issue 17). So the ranking
//! is ours, not a fuzzy score: an exact name first, then names that start
//! with the typed text, then names that contain it, then names that contain
//! its letters in order (fuzzy), then hosts whose description contains it;
//! ties keep the inventory order (`rank`). A line under the list says how
//! many hosts match ("3 of 120 hosts", "no host matches").
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::cell::OnceCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios};
use nix::unistd::{dup, dup2_stdin, pipe2};

use console::{Key, Term};
use dialoguer::theme::{ColorfulTheme, Theme};

use crate::core::config::Host;

pub enum Choice {
    Host(usize),
    Quit,
    /// Ctrl-C or a signal interrupted the prompt: the caller decides.
    Interrupted,
}

const QUIT_LABEL: &str = "quit — leave Gatehouse";

/// How a host matches the typed text; the order of the variants is the
/// order of the menu.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// The name is the text (letter case aside).
    Exact,
    /// The name starts with the text.
    Prefix,
    /// The name contains the text.
    Substring,
    /// The name contains the text's characters in order (`w1` → `web01`).
    Fuzzy,
    /// The description contains the text.
    Description,
}

/// How `name` (and its `description`) match `query`; both already
/// lowercased, `query` not empty. None: the host is not shown.
pub fn classify(query: &str, name: &str, description: &str) -> Option<Match> {
    if name == query {
        Some(Match::Exact)
    } else if name.starts_with(query) {
        Some(Match::Prefix)
    } else if name.contains(query) {
        Some(Match::Substring)
    } else if is_subsequence(query, name) {
        Some(Match::Fuzzy)
    } else if description.contains(query) {
        Some(Match::Description)
    } else {
        None
    }
}

fn is_subsequence(needle: &str, hay: &str) -> bool {
    let mut hay = hay.chars();
    needle.chars().all(|c| hay.any(|h| h == c))
}

/// Positions (in `hosts`, given as `(name, description)`) of the hosts that
/// match `query`, best first by `Match`, ties in inventory order. Letter case
/// and surrounding blanks of the query are ignored; an empty query shows
/// every host in inventory order.
pub fn rank<'a>(query: &str, hosts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<usize> {
    let q = query.trim().to_lowercase();
    let lowered = hosts
        .into_iter()
        .map(|(n, d)| (n.to_lowercase(), d.to_lowercase()));
    rank_lowered(&q, lowered)
}

fn rank_lowered<N: AsRef<str>, D: AsRef<str>>(
    q: &str,
    hosts: impl IntoIterator<Item = (N, D)>,
) -> Vec<usize> {
    let mut hits: Vec<(Match, usize)> = hosts
        .into_iter()
        .enumerate()
        .filter_map(|(i, (n, d))| {
            if q.is_empty() {
                return Some((Match::Exact, i));
            }
            classify(q, n.as_ref(), d.as_ref()).map(|m| (m, i))
        })
        .collect();
    // Stable: equal matches stay in inventory order.
    hits.sort_by_key(|&(m, _)| m);
    hits.into_iter().map(|(_, i)| i).collect()
}

/// The menu's entries: one label per host (name, padded, then the
/// description) and the lowercased text the ranking looks at. Labels are
/// made when a row is drawn and the lowercased text at the first key typed,
/// not up front: with 10,000 hosts that was a millisecond and a half of the
/// start to the menu (issue 13), for rows nobody sees before typing.
pub struct Items<'a> {
    hosts: &'a [&'a Host],
    width: usize,
    lowered: OnceCell<Vec<(String, String)>>,
}

impl<'a> Items<'a> {
    pub fn new(hosts: &'a [&'a Host]) -> Items<'a> {
        let width = hosts
            .iter()
            .map(|h| h.name.chars().count())
            .max()
            .unwrap_or(0);
        Items {
            hosts,
            width,
            lowered: OnceCell::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The label shown for host `i`.
    pub fn label(&self, i: usize) -> Cow<'a, str> {
        let h = self.hosts[i];
        if h.description.is_empty() {
            Cow::Borrowed(&h.name)
        } else {
            Cow::Owned(format!(
                "{:<width$}  {}",
                h.name,
                h.description,
                width = self.width
            ))
        }
    }

    /// The hosts matching `query`, best first (see `rank`).
    pub fn rank(&self, query: &str) -> Vec<usize> {
        let q = query.trim().to_lowercase();
        if q.is_empty() {
            return (0..self.hosts.len()).collect();
        }
        let lowered = self.lowered.get_or_init(|| {
            self.hosts
                .iter()
                .map(|h| (h.name.to_lowercase(), h.description.to_lowercase()))
                .collect()
        });
        rank_lowered(&q, lowered.iter().map(|(n, d)| (n, d)))
    }
}

/// The line under the list.
pub fn count_line(shown: usize, total: usize) -> String {
    match (shown, total) {
        (0, _) => "no host matches".to_string(),
        (n, 1) => format!("{n} of 1 host"),
        (n, t) => format!("{n} of {t} hosts"),
    }
}

/// A private pty between the operator's terminal and dialoguer. console
/// (dialoguer's terminal layer) reads keys straight from fd 0 and
/// FuzzySelect drops control keys, so Ctrl-D — the shell user's "I'm done" —
/// would do nothing. With the shim, fd 0 is our pty's slave, and a small
/// thread copies the real terminal's bytes into it, turning Ctrl-D into Esc
/// (which quits the menu). Dropped: the real fd 0 and its mode come back.
struct KeyShim {
    saved_stdin: OwnedFd,
    saved_mode: Termios,
    stop: Option<OwnedFd>,
    pump: Option<std::thread::JoinHandle<()>>,
}

const CTRL_D: u8 = 0x04;
const ESC: u8 = 0x1b;

impl KeyShim {
    fn install() -> nix::Result<KeyShim> {
        let stdin = io::stdin();
        let saved_mode = termios::tcgetattr(&stdin)?;
        let saved_stdin = dup(&stdin)?;
        // The slave stays raw: console's own per-key mode switches then
        // change nothing, and no byte waits for a newline or is echoed.
        let mut raw = saved_mode.clone();
        termios::cfmakeraw(&mut raw);
        let pty = openpty(None, Some(&raw))?;
        // The real terminal: keys one by one, no echo, no signals; output
        // processing stays on (dialoguer draws on stdout with plain "\n").
        let mut keys = saved_mode.clone();
        keys.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
        keys.input_flags
            .remove(InputFlags::IXON | InputFlags::ICRNL | InputFlags::INLCR);
        keys.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        keys.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(&saved_stdin, SetArg::TCSANOW, &keys)?;
        let (stop_r, stop_w) = pipe2(OFlag::O_CLOEXEC)?;
        let src = dup(&saved_stdin)?;
        let master = pty.master;
        // A full slave buffer must never block the pump (and so the join).
        fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        // From here on, a failure drops `shim`, which puts fd 0 and the
        // terminal's mode back.
        let mut shim = KeyShim {
            saved_stdin,
            saved_mode,
            stop: Some(stop_w),
            pump: None,
        };
        dup2_stdin(&pty.slave)?;
        drop(pty.slave);
        let pump = std::thread::Builder::new()
            .name("menu-keys".into())
            .spawn(move || pump_keys(src, master, stop_r))
            .map_err(|_| nix::Error::EAGAIN)?;
        shim.pump = Some(pump);
        Ok(shim)
    }
}

impl Drop for KeyShim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = nix::unistd::write(&stop, b"x");
        }
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
        let _ = dup2_stdin(&self.saved_stdin);
        let _ = termios::tcsetattr(&self.saved_stdin, SetArg::TCSADRAIN, &self.saved_mode);
    }
}

/// Copies the operator's keys into the shim until told to stop or the
/// terminal goes away (then the master closes and the menu's read fails,
/// which is how a hang-up reaches dialoguer).
fn pump_keys(src: OwnedFd, master: OwnedFd, stop: OwnedFd) {
    let mut buf = [0u8; 1024];
    loop {
        let mut fds = [
            PollFd::new(src.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return,
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return;
        }
        if !fds[0].revents().is_some_and(|r| !r.is_empty()) {
            continue;
        }
        let n = match nix::unistd::read(&src, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => continue,
            Err(_) => return,
        };
        for b in &mut buf[..n] {
            if *b == CTRL_D {
                *b = ESC;
            }
        }
        // Best effort: if dialoguer is not reading, keys beyond the pty's
        // buffer are dropped rather than blocking this thread.
        let _ = nix::unistd::write(&master, &buf[..n]);
    }
}

/// One row of the list: a host (its position in the inventory) or the
/// quit entry, which always comes last.
#[derive(Clone, Copy, PartialEq)]
enum Row {
    Host(usize),
    Quit,
}

/// Cursor up `n` rows to the start of the first one, then clear to the end
/// of the screen (nothing when `n` is 0: `CSI 0 A` moves one row).
fn erase(n: usize) -> String {
    if n == 0 {
        "\r\x1b[J".to_string()
    } else {
        format!("\x1b[{n}A\r\x1b[J")
    }
}

/// Terminal rows a line of `width` columns takes on a `cols`-wide screen.
fn rows_of(width: usize, cols: usize) -> usize {
    width.div_ceil(cols.max(1)).max(1)
}

pub fn choose(items: &Items, user: &str) -> io::Result<Choice> {
    // Without the shim the menu still works; only Ctrl-D does nothing.
    let _shim = KeyShim::install().ok();
    let term = Term::stdout();
    let result = interact(&term, items, user);
    let _ = term.show_cursor();
    match result {
        Ok(Some(Row::Host(i))) => Ok(Choice::Host(i)),
        Ok(Some(Row::Quit)) | Ok(None) => Ok(Choice::Quit),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Choice::Interrupted),
        Err(e) => Err(e),
    }
}

/// The prompt loop: draw, read one key, repeat. Ok(None) is Esc (or Ctrl-D,
/// through the key shim); Ctrl-C and signals arrive as an `Interrupted`
/// error from console's key reader.
// long: draw, read a key, apply it: one loop over the state the three share
// (query, cursor, selection, rows drawn); driven end to end through a pty.
fn interact(term: &Term, items: &Items, user: &str) -> io::Result<Option<Row>> {
    let theme = ColorfulTheme::default();
    let prompt = format!("{user}@gatehouse: pick a host (type to filter, Esc or Ctrl-D to quit)");
    let mut query = String::new();
    let mut cursor = 0usize; // in chars
    let mut sel = 0usize;
    let mut top = 0usize;
    let mut drawn = 0usize; // terminal rows of the last drawing
    term.hide_cursor()?;
    loop {
        let (rows, cols) = term.size();
        let (rows, cols) = (rows.max(6) as usize, cols.max(20) as usize);
        let visible = rows.saturating_sub(3).max(3);
        let hosts = items.rank(&query);
        let shown = hosts.len();
        let mut list: Vec<Row> = hosts.into_iter().map(Row::Host).collect();
        let q = query.trim().to_lowercase();
        if q.is_empty() || QUIT_LABEL.contains(&q) {
            list.push(Row::Quit);
        }
        sel = sel.min(list.len().saturating_sub(1));
        if sel < top {
            top = sel;
        } else if sel >= top + visible {
            top = sel + 1 - visible;
        }

        // One write per drawing: no flicker, even with 10,000 hosts.
        let mut frame = erase(drawn);
        drawn = 0;
        let byte_pos = query
            .char_indices()
            .nth(cursor)
            .map_or(query.len(), |(b, _)| b);
        let mut line = String::new();
        let _ = theme.format_fuzzy_select_prompt(&mut line, &prompt, &query, byte_pos);
        drawn += rows_of(console::measure_text_width(&line), cols);
        frame.push_str(&line);
        frame.push_str("\r\n");
        for (i, row) in list.iter().enumerate().skip(top).take(visible) {
            let text = match row {
                Row::Host(h) => items.label(*h),
                Row::Quit => Cow::Borrowed(QUIT_LABEL),
            };
            // Two columns go to the theme's marker; longer labels are cut so
            // every item is one row (the erase above counts on it).
            let text = console::truncate_str(&text, cols - 3, "…");
            let mut line = String::new();
            let _ = theme.format_select_prompt_item(&mut line, &text, i == sel);
            frame.push_str(&line);
            frame.push_str("\r\n");
            drawn += 1;
        }
        let count = count_line(shown, items.len());
        frame.push_str(&format!("  {}\r\n", console::style(count).dim()));
        drawn += 1;
        term.write_str(&frame)?;
        term.flush()?;

        let key = term.read_key();
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                let _ = term.write_str(&erase(drawn));
                return Err(e);
            }
        };
        let last = list.len().saturating_sub(1);
        match key {
            Key::Escape => {
                term.write_str(&erase(drawn))?;
                return Ok(None);
            }
            Key::Enter => {
                if let Some(&row) = list.get(sel) {
                    term.write_str(&erase(drawn))?;
                    return Ok(Some(row));
                }
            }
            Key::ArrowUp | Key::BackTab => sel = if sel == 0 { last } else { sel - 1 },
            Key::ArrowDown | Key::Tab => sel = if sel >= last { 0 } else { sel + 1 },
            Key::PageUp => sel = sel.saturating_sub(visible),
            Key::PageDown => sel = (sel + visible).min(last),
            Key::ArrowLeft => cursor = cursor.saturating_sub(1),
            Key::ArrowRight => cursor = (cursor + 1).min(query.chars().count()),
            Key::Home => cursor = 0,
            Key::End => cursor = query.chars().count(),
            Key::Backspace if cursor > 0 => {
                cursor -= 1;
                remove_char(&mut query, cursor);
                (sel, top) = (0, 0);
            }
            Key::Del if cursor < query.chars().count() => {
                remove_char(&mut query, cursor);
                (sel, top) = (0, 0);
            }
            Key::Char(c) if !c.is_control() => {
                let at = query
                    .char_indices()
                    .nth(cursor)
                    .map_or(query.len(), |(b, _)| b);
                query.insert(at, c);
                cursor += 1;
                (sel, top) = (0, 0);
            }
            _ => {}
        }
    }
}

fn remove_char(s: &mut String, char_index: usize) {
    if let Some((b, _)) = s.char_indices().nth(char_index) {
        s.remove(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &[(&str, &str)] = &[
        ("web01", "frontend"),
        ("web10", "frontend, rack 1"),
        ("db01", "primary database"),
        ("web1", ""),
        ("xweb1", "legacy"),
        ("w-e-b-1", ""),
        ("mail", "relays web1 alerts"),
        ("Web1-eu", ""),
    ];

    fn names(query: &str) -> Vec<&'static str> {
        rank(query, INVENTORY.iter().copied())
            .into_iter()
            .map(|i| INVENTORY[i].0)
            .collect()
    }

    /// The ranking table: what is typed → the menu, top to bottom.
    #[test]
    fn ranking_table() {
        let table: &[(&str, &[&str])] = &[
            // exact, then prefixes in inventory order, then substring, then
            // fuzzy, then the description match.
            (
                "web1",
                &[
                    "web1", "web10", "Web1-eu", "xweb1", "web01", "w-e-b-1", "mail",
                ],
            ),
            // Letter case and blanks around the text do not matter.
            (
                "  WEB1 ",
                &[
                    "web1", "web10", "Web1-eu", "xweb1", "web01", "w-e-b-1", "mail",
                ],
            ),
            (
                "web",
                &[
                    "web01", "web10", "web1", "Web1-eu", "xweb1", "w-e-b-1", "mail",
                ],
            ),
            // Only a fuzzy match and a description match.
            (
                "wb1",
                &["web01", "web10", "web1", "xweb1", "w-e-b-1", "Web1-eu"],
            ),
            ("database", &["db01"]),
            ("rack", &["web10"]),
            ("zzz", &[]),
            // Nothing typed: the inventory as it is.
            (
                "",
                &[
                    "web01", "web10", "db01", "web1", "xweb1", "w-e-b-1", "mail", "Web1-eu",
                ],
            ),
        ];
        for (query, want) in table {
            assert_eq!(names(query), *want, "typed {query:?}");
        }
    }

    /// Issue 17: on 10,000 hosts `host999` put `host9998` first, and `host1`
    /// put `host10000` first.
    #[test]
    fn exact_name_beats_longer_names_on_a_big_inventory() {
        let inv: Vec<(String, String)> = (1..=10_000)
            .map(|i| (format!("host{i}"), format!("rack {}", i % 40)))
            .collect();
        let r = |q: &str| rank(q, inv.iter().map(|(n, d)| (n.as_str(), d.as_str())));
        let top = |q: &str| inv[r(q)[0]].0.clone();
        assert_eq!(top("host999"), "host999");
        assert_eq!(top("host1"), "host1");
        assert_eq!(top("HOST10000"), "host10000");
        // After the exact name, the prefixes in inventory order.
        let first: Vec<&str> = r("host1")[..4].iter().map(|&i| inv[i].0.as_str()).collect();
        assert_eq!(first, ["host1", "host10", "host11", "host12"]);
        // A digit typed that no name has in that order: only descriptions.
        assert!(r("rack 39").iter().all(|&i| inv[i].1 == "rack 39"));
    }

    #[test]
    fn classify_orders_the_kinds_of_match() {
        assert_eq!(classify("web01", "web01", ""), Some(Match::Exact));
        assert_eq!(classify("web", "web01", ""), Some(Match::Prefix));
        assert_eq!(classify("eb0", "web01", ""), Some(Match::Substring));
        assert_eq!(classify("w01", "web01", ""), Some(Match::Fuzzy));
        assert_eq!(
            classify("front", "web01", "frontend"),
            Some(Match::Description)
        );
        assert_eq!(classify("10w", "web01", "frontend"), None);
        assert!(Match::Exact < Match::Prefix && Match::Fuzzy < Match::Description);
    }

    #[test]
    fn count_line_says_how_many_match() {
        assert_eq!(count_line(3, 120), "3 of 120 hosts");
        assert_eq!(count_line(1, 1), "1 of 1 host");
        assert_eq!(count_line(0, 120), "no host matches");
    }

    #[test]
    fn items_label_pads_names_and_ranks_like_rank() {
        let mk = |name: &str, description: &str| Host {
            name: name.into(),
            address: "10.0.0.1".into(),
            port: 22,
            user: "u".into(),
            key: None,
            password_file: None,
            agent: false,
            agent_fallback: false,
            description: description.into(),
            groups: Vec::new(),
        };
        let hosts = [mk("web01", "frontend"), mk("db", ""), mk("web", "")];
        let refs: Vec<&Host> = hosts.iter().collect();
        let items = Items::new(&refs);
        assert_eq!(items.len(), 3);
        assert_eq!(items.label(0), "web01  frontend");
        assert_eq!(items.label(1), "db");
        assert_eq!(items.rank("WEB"), [2, 0]);
        assert_eq!(items.rank("front"), [0]);
    }

    #[test]
    fn erase_never_moves_up_zero_rows() {
        assert_eq!(erase(0), "\r\x1b[J");
        assert_eq!(erase(3), "\x1b[3A\r\x1b[J");
        assert_eq!(rows_of(80, 80), 1);
        assert_eq!(rows_of(81, 80), 2);
        assert_eq!(rows_of(0, 80), 1);
    }
}
