//! The host menu: the only user of dialoguer (its theme draws the prompt and
//! the items). It owns the cursor (shown again after every prompt) and is
//! only drawn on a real terminal (the caller checks). It reads the keys
//! itself (`KeyReader`): a signal while it waits loses no key typed.
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
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

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

/// The operator's terminal while the menu reads it: keys one by one, no
/// echo, no signals from keys (Ctrl-C, Ctrl-Z and Ctrl-\ are just bytes,
/// which the menu ignores), no flow control, Enter as typed; output
/// processing stays on. The saved mode comes back when dropped, before any
/// session.
struct KeyMode {
    saved: Termios,
}

impl KeyMode {
    fn enter() -> nix::Result<KeyMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut keys = saved.clone();
        keys.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
        keys.input_flags
            .remove(InputFlags::IXON | InputFlags::ICRNL | InputFlags::INLCR);
        keys.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        keys.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &keys)?;
        Ok(KeyMode { saved })
    }
}

impl Drop for KeyMode {
    fn drop(&mut self) {
        // EIO after a hang-up is expected: there is no terminal left.
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const ESC: u8 = 0x1b;

/// The operator's keys, read from fd 0 by the menu itself. Not console's
/// `read_key`: a signal that lands while it waits (a resize, a bare
/// SIGUSR1; poll(2) is never restarted, SA_RESTART or not, signal(7)) made
/// it fail, and it could fail that way halfway through an escape sequence
/// whose first bytes it had already consumed. Here bytes read stay in
/// `buf` until they make a whole key, so an interrupted wait loses and
/// reorders nothing; the caller decides whether the signal ends the
/// prompt, then asks again.
struct KeyReader {
    /// Bytes read, not yet a whole key. Reads happen only when no whole
    /// key is waiting, so it never holds more than a key and one read.
    buf: Vec<u8>,
}

/// Bytes read from the terminal at a time.
const KEY_CHUNK: usize = 64;

impl KeyReader {
    fn new() -> KeyReader {
        KeyReader {
            buf: Vec::with_capacity(2 * KEY_CHUNK),
        }
    }

    /// The next key; `Ok(None)` when a signal interrupted the wait (no
    /// byte lost). End of file (a hang-up) is an error.
    fn next(&mut self) -> io::Result<Option<Key>> {
        let stdin = io::stdin();
        loop {
            if let Some(key) = self.take(false) {
                return Ok(Some(key));
            }
            // What is buffered could be a whole key (a lone Esc, an escape
            // sequence cut short) if nothing more is waiting: look without
            // blocking, as console does. Otherwise wait for the next byte.
            let cut_short = !self.buf.is_empty() && parse_key(&self.buf, true).is_some();
            let timeout = if cut_short {
                PollTimeout::ZERO
            } else {
                PollTimeout::NONE
            };
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            if !fds[0].revents().is_some_and(|r| !r.is_empty()) {
                // Nothing more: the key ends here.
                if let Some(key) = self.take(true) {
                    return Ok(Some(key));
                }
                continue;
            }
            let mut chunk = [0u8; KEY_CHUNK];
            match nix::unistd::read(stdin.as_fd(), &mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                // Nothing was read (read(2) fails with EINTR only then).
                Err(Errno::EINTR) => return Ok(None),
                Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn take(&mut self, idle: bool) -> Option<Key> {
        let (key, used) = parse_key(&self.buf, idle)?;
        self.buf.drain(..used);
        Some(key)
    }
}

/// The first key in `buf` and the bytes it takes; `None` while the bytes
/// are only the start of a key. `idle`: nothing more is waiting, so an
/// escape sequence cut short is taken as it is (a lone Esc is the Escape
/// key). Ctrl-D is Escape too (the shell user's "I'm done" leaves the
/// menu); Ctrl-C is `Key::CtrlC`. The mapping is console's (`read_key`),
/// so the menu's keys are those it had. Total: every byte string is keys.
fn parse_key(buf: &[u8], idle: bool) -> Option<(Key, usize)> {
    let &first = buf.first()?;
    let key = match first {
        ESC => return parse_escape(buf, idle),
        CTRL_D => Key::Escape,
        CTRL_C => Key::CtrlC,
        b'\r' | b'\n' => Key::Enter,
        0x7f | 0x08 => Key::Backspace,
        b'\t' => Key::Tab,
        0x01 => Key::Home,
        0x05 => Key::End,
        0x00..=0x7f => Key::Char(char::from(first)),
        _ => return parse_utf8(buf),
    };
    Some((key, 1))
}

/// `buf` starts with Esc.
fn parse_escape(buf: &[u8], idle: bool) -> Option<(Key, usize)> {
    let cut = |n: usize| {
        idle.then(|| {
            let seq = buf[1..n].iter().map(|&b| char::from(b)).collect();
            (Key::UnknownEscSeq(seq), n)
        })
    };
    match buf.get(1) {
        None => idle.then_some((Key::Escape, 1)),
        Some(b'[') => {
            let Some(&c2) = buf.get(2) else {
                return cut(2);
            };
            let key = match c2 {
                b'A' => Key::ArrowUp,
                b'B' => Key::ArrowDown,
                b'C' => Key::ArrowRight,
                b'D' => Key::ArrowLeft,
                b'H' => Key::Home,
                b'F' => Key::End,
                b'Z' => Key::BackTab,
                _ => {
                    let Some(&c3) = buf.get(3) else {
                        return cut(3);
                    };
                    let key = match (c2, c3) {
                        (b'1' | b'7', b'~') => Key::Home,
                        (b'2', b'~') => Key::Insert,
                        (b'3', b'~') => Key::Del,
                        (b'4' | b'8', b'~') => Key::End,
                        (b'5', b'~') => Key::PageUp,
                        (b'6', b'~') => Key::PageDown,
                        _ => Key::UnknownEscSeq(vec!['[', char::from(c2), char::from(c3)]),
                    };
                    return Some((key, 4));
                }
            };
            Some((key, 3))
        }
        Some(&c1) => Some((Key::UnknownEscSeq(vec![char::from(c1)]), 2)),
    }
}

/// `buf` starts with a byte above 0x7f: one UTF-8 character, waited for
/// until whole; a byte that cannot start one, or a sequence broken off, is
/// one `Key::Unknown` per byte.
fn parse_utf8(buf: &[u8]) -> Option<(Key, usize)> {
    let len = match buf[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Some((Key::Unknown, 1)),
    };
    let have = buf.len().min(len);
    if buf[1..have].iter().any(|&b| b & 0xc0 != 0x80) {
        return Some((Key::Unknown, 1));
    }
    if have < len {
        return None;
    }
    match std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Some((Key::Char(c), len)),
        None => Some((Key::Unknown, 1)),
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

/// `stop`: whether a signal that interrupted the wait for a key ends the
/// prompt (the caller's reasons: leaving, the idle timeout, an
/// administrator's kill); any other signal changes nothing on the screen
/// but the layout after a resize, and no key typed is lost.
pub fn choose(items: &Items, user: &str, stop: &dyn Fn() -> bool) -> io::Result<Choice> {
    let _mode = KeyMode::enter()?;
    let term = Term::stdout();
    let result = interact(&term, items, user, stop);
    let _ = term.show_cursor();
    match result {
        Ok(Some(Row::Host(i))) => Ok(Choice::Host(i)),
        Ok(Some(Row::Quit)) | Ok(None) => Ok(Choice::Quit),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Choice::Interrupted),
        Err(e) => Err(e),
    }
}

/// The prompt loop: draw, read one key, repeat. Ok(None) is Esc (or
/// Ctrl-D); Ctrl-C, and a signal `stop` says ends the prompt, are an
/// `Interrupted` error.
// long: draw, read a key, apply it: one loop over the state the three share
// (query, cursor, selection, rows drawn); driven end to end through a pty.
fn interact(
    term: &Term,
    items: &Items,
    user: &str,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<Row>> {
    let theme = ColorfulTheme::default();
    let prompt = format!("{user}@gatehouse: pick a host (type to filter, Esc or Ctrl-D to quit)");
    let mut keys = KeyReader::new();
    let mut query = String::new();
    let mut cursor = 0usize; // in chars
    let mut sel = 0usize;
    let mut top = 0usize;
    let mut drawn = 0usize; // terminal rows of the last drawing
    term.hide_cursor()?;
    loop {
        let size = term.size();
        let (rows, cols) = (size.0.max(6) as usize, size.1.max(20) as usize);
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

        let key = match next_key(&mut keys, term, size, stop) {
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

/// The next key for the menu drawn at `size`. Ctrl-C, and a signal that
/// `stop` says ends the prompt, are an `Interrupted` error. After a resize
/// `Key::Unknown`, a key that changes nothing: the menu is drawn again for
/// the new size. Any other signal: the wait goes on, the screen as it is.
fn next_key(
    keys: &mut KeyReader,
    term: &Term,
    size: (u16, u16),
    stop: &dyn Fn() -> bool,
) -> io::Result<Key> {
    loop {
        match keys.next()? {
            Some(Key::CtrlC) => return Err(io::ErrorKind::Interrupted.into()),
            Some(k) => return Ok(k),
            None if stop() => return Err(io::ErrorKind::Interrupted.into()),
            None if term.size() != size => return Ok(Key::Unknown),
            None => {}
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

    /// All the keys in `bytes`, as the reader takes them when nothing more
    /// follows.
    fn keys_of(mut bytes: &[u8]) -> Vec<Key> {
        let mut out = Vec::new();
        while let Some((k, n)) = parse_key(bytes, true) {
            assert!(n > 0 && n <= bytes.len());
            out.push(k);
            bytes = &bytes[n..];
        }
        assert!(bytes.is_empty() || parse_key(bytes, true).is_none());
        out
    }

    #[test]
    fn parse_key_maps_bytes_as_console_did() {
        let table: &[(&[u8], &[Key])] = &[
            (b"w1", &[Key::Char('w'), Key::Char('1')]),
            (b"\r\n", &[Key::Enter, Key::Enter]),
            (b"\x7f\x08\t", &[Key::Backspace, Key::Backspace, Key::Tab]),
            (b"\x01\x05", &[Key::Home, Key::End]),
            (b"\x03\x04", &[Key::CtrlC, Key::Escape]),
            (b"\x1b", &[Key::Escape]),
            (
                b"\x1b[A\x1b[B\x1b[C\x1b[D\x1b[Z",
                &[
                    Key::ArrowUp,
                    Key::ArrowDown,
                    Key::ArrowRight,
                    Key::ArrowLeft,
                    Key::BackTab,
                ],
            ),
            (
                b"\x1b[5~\x1b[6~\x1b[3~\x1b[1~\x1b[4~",
                &[Key::PageUp, Key::PageDown, Key::Del, Key::Home, Key::End],
            ),
            (b"\x1b[9x", &[Key::UnknownEscSeq(vec!['[', '9', 'x'])]),
            (b"\x1bw", &[Key::UnknownEscSeq(vec!['w'])]),
            (
                "é€😀".as_bytes(),
                &[Key::Char('é'), Key::Char('€'), Key::Char('😀')],
            ),
            // A broken UTF-8 sequence: one unknown key per byte that
            // cannot be part of a character; what follows is kept.
            (b"\xc3a\xff", &[Key::Unknown, Key::Char('a'), Key::Unknown]),
            (b"\x80", &[Key::Unknown]),
        ];
        for (bytes, want) in table {
            assert_eq!(keys_of(bytes), *want, "bytes {bytes:?}");
        }
    }

    /// The reader keeps what it read until a key is whole: the start of
    /// an escape sequence or of a character is no key yet while more may
    /// come, and an escape sequence cut short is taken as it is only once
    /// nothing more is waiting.
    #[test]
    fn parse_key_waits_for_a_whole_key() {
        for partial in [&b"\x1b"[..], b"\x1b[", b"\x1b[5", b"\xe2\x82", b"\xf0"] {
            assert_eq!(parse_key(partial, false), None, "{partial:?}");
        }
        assert_eq!(
            parse_key(b"\x1b[5", true),
            Some((Key::UnknownEscSeq(vec!['[', '5']), 3))
        );
        assert_eq!(
            parse_key(b"\x1b[", true),
            Some((Key::UnknownEscSeq(vec!['[']), 2))
        );
        // A character cut short is waited for, even when nothing follows yet.
        assert_eq!(parse_key(b"\xe2\x82", true), None);
        assert_eq!(parse_key(b"", true), None);
        assert_eq!(parse_key(b"\x1b[Aw", false), Some((Key::ArrowUp, 3)));
    }

    /// Every byte string is some keys, each taking at least one byte.
    #[test]
    fn parse_key_is_total() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 9) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i * 7)) as u8).collect();
            keys_of(&bytes);
        }
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
