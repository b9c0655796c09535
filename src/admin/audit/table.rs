//! The table `gatehouse audit` prints (or, with `--json`, the records as
//! stored): one aligned row per record, the detail last, every text from
//! the log made safe for a terminal (`visible`).
#![forbid(unsafe_code)]

use std::io::{self, Write};

use crate::admin::ids;
use crate::core::record::read::{Body, Record};

pub(super) struct Printer {
    json: bool,
    color: bool,
    header_done: bool,
    /// On a terminal, its width: every line is cut to it (the detail, last,
    /// ends in `…`) instead of wrapping. None (a pipe, a file): whole lines.
    width: Option<usize>,
}

const WIDTHS: [usize; 6] = [19, 10, 21, 10, 8, 13];
const HEADS: [&str; 6] = ["TIME (UTC)", "USER", "CLIENT", "HOST", "SESSION", "EVENT"];
/// The CLIENT column, left out on a terminal too narrow to show it and
/// still `MIN_DETAIL` columns of detail (the command is what one reads).
const CLIENT: usize = 2;
const MIN_DETAIL: usize = 30;

/// Columns before the detail, with or without CLIENT.
fn prefix_width(client: bool) -> usize {
    WIDTHS
        .iter()
        .enumerate()
        .filter(|&(i, _)| client || i != CLIENT)
        .map(|(_, w)| w + 2)
        .sum()
}

impl Printer {
    pub(super) fn new(json: bool, color: bool) -> Printer {
        let width = if json {
            None
        } else {
            console::Term::stdout()
                .size_checked()
                .map(|(_, cols)| cols as usize)
                .filter(|&c| c > 0)
        };
        Printer {
            json,
            color,
            header_done: false,
            width,
        }
    }

    fn client_column(&self) -> bool {
        self.width
            .map_or(true, |w| w >= prefix_width(true) + MIN_DETAIL)
    }

    /// `line` cut to the terminal's width (escape sequences do not count).
    fn fit(&self, line: &str) -> String {
        match self.width {
            Some(w) => console::truncate_str(line, w, "…").into_owned(),
            None => line.to_string(),
        }
    }

    pub(super) fn print(&mut self, out: &mut impl Write, rec: &Record) -> io::Result<()> {
        if self.json {
            out.write_all(&rec.bytes)?;
            return out.write_all(b"\n");
        }
        let client = self.client_column();
        if !self.header_done {
            self.header_done = true;
            let mut line = String::new();
            for (i, (h, w)) in HEADS.iter().zip(WIDTHS).enumerate() {
                if client || i != CLIENT {
                    line.push_str(&format!("{h:<w$}  "));
                }
            }
            line.push_str("DETAIL");
            let line = self.fit(&line);
            if self.color {
                writeln!(out, "\x1b[1m{line}\x1b[0m")?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
        let line = self.fit(&row(rec, self.color, client));
        if self.color && self.width.is_some() {
            // A cut inside the coloured EVENT cell must not colour what follows.
            return writeln!(out, "{line}\x1b[0m");
        }
        writeln!(out, "{line}")
    }
}

/// A field's text, `""` when the record has none.
fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}

/// Text from the log, made safe for a terminal: control characters
/// (escape sequences in a command!) are shown, not obeyed, and so are
/// format characters (bidi overrides like U+202E would reorder the line);
/// bounded.
pub fn visible(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str(" ⏎ "),
            '\t' => out.push(' '),
            c if c.is_control() || crate::admin::escapes::is_format_char(c) => {
                out.push_str(&c.escape_default().to_string())
            }
            c => out.push(c),
        }
    }
    out
}

/// The last column: what the record says, by event.
fn detail(rec: &Record) -> String {
    match &rec.body {
        Body::Command(c) => {
            let mut d = visible(&c.command, 4000);
            if c.verified == Some(false) {
                // Not confirmed by the screen: the keys' reconstruction.
                d.insert_str(0, "[unverified] ");
            }
            if c.truncated {
                d.push_str("  [truncated]");
            }
            d
        }
        Body::InputHidden(i) => format!("(hidden input at {:?})", visible(&i.prompt, 200)),
        Body::Login(l) => format!(
            "{} (pid {})",
            visible(&l.mode, 32),
            l.pid.map(|p| p.to_string()).unwrap_or_default()
        ),
        Body::Logout(l) => {
            let after = human_ms(l.duration_ms.unwrap_or(0));
            match &l.reason {
                Some(r) => format!("{} after {after}", visible(r, 32)),
                None => format!("after {after}"),
            }
        }
        Body::SessionStart(s) => {
            let mut d = format!("{} {}", visible(&s.target, 200), visible(&s.host_key, 100));
            if s.recording.is_some() {
                d.push_str(" [recorded]");
            }
            d
        }
        Body::SessionEnd(e) => session_end(e),
        Body::Policy(p) => format!(
            "{} {} by {}: {}",
            visible(&p.action, 16),
            visible(&p.outcome, 16),
            visible(&p.rule, 80),
            visible(&p.command, 4000)
        ),
        Body::Exec(e) => {
            let mut d = match &e.subsystem {
                Some(sub) => format!("[{}]", visible(sub, 20)),
                None => visible(&e.command, 4000),
            };
            if e.pty {
                d.push_str("  [pty]");
            }
            d
        }
        Body::File(f) => file(f),
        Body::Denied(d) => format!("{}: {}", visible(&d.reason, 64), visible(&d.request, 300)),
        Body::Error(e) => format!("{}: {}", visible(&e.reason, 64), visible(&e.detail, 300)),
        Body::Seal(s) => format!(
            "epoch {} of key {}, {} chain(s)",
            s.epoch.unwrap_or(0),
            visible(text(&s.key_id), 16),
            s.chains.as_ref().map_or(0, Vec::len)
        ),
        Body::Other => String::new(),
    }
}

fn session_end(e: &crate::core::record::read::SessionEnd) -> String {
    let status = match e.exit_status {
        Some(x) => format!(" status {x}"),
        None => String::new(),
    };
    // No counts (an abandoned session's died with its process): say so,
    // never print a 0 nobody measured.
    let bytes = match (e.bytes_in, e.bytes_out) {
        (Some(i), Some(o)) => format!("{} in / {} out", human_bytes(i), human_bytes(o)),
        _ => "bytes unknown".to_string(),
    };
    let mut d = format!(
        "{}{status} after {}, {bytes}",
        visible(&e.reason, 64),
        human_ms(e.duration_ms.unwrap_or(0)),
    );
    if let Some(x) = &e.detail {
        d.push_str(&format!(" ({})", visible(x, 300)));
    }
    d
}

fn file(f: &crate::core::record::read::File) -> String {
    let mut d = format!("{} {}", visible(&f.op, 32), visible(&f.path, 1000));
    if let Some(to) = &f.to {
        d.push_str(&format!(" → {}", visible(to, 1000)));
    }
    if let Some(b) = f.bytes {
        d.push_str(&format!(" ({})", human_bytes(b)));
    }
    d
}

fn row(rec: &Record, color: bool, client: bool) -> String {
    let h = &rec.head;
    let ts = text(&h.ts);
    let time = ts.get(..19).unwrap_or(ts).replace('T', " ");
    let short = ids::short(text(&h.session));
    let event = rec.event();
    let cells = [
        time,
        visible(text(&h.user), 32),
        visible(text(&h.client), 64),
        visible(text(&h.host), 64),
        short.to_string(),
        visible(event, 32),
    ];
    let mut line = String::new();
    for (i, (c, w)) in cells.iter().zip(WIDTHS).enumerate() {
        if i == CLIENT && !client {
            continue;
        }
        let cell = format!("{c:<w$}");
        if color && i == 5 {
            line.push_str(&format!("{}{cell}\x1b[0m", event_color(rec)));
        } else {
            line.push_str(&cell);
        }
        line.push_str("  ");
    }
    line.push_str(&detail(rec));
    line
}

fn event_color(rec: &Record) -> &'static str {
    match &rec.body {
        Body::Denied(_) | Body::Error(_) => "\x1b[31m",
        Body::Policy(_) => "\x1b[35m",
        Body::SessionEnd(e) if e.reason == "abandoned" => "\x1b[33m",
        Body::SessionStart(_) | Body::SessionEnd(_) => "\x1b[32m",
        Body::Command(_) | Body::Exec(_) | Body::File(_) => "\x1b[1m",
        _ => "\x1b[2m",
    }
}

fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{}.{}s", s, (ms % 1000) / 100)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b < 10 * 1024 => format!("{b} B"),
        b if b < 10 * 1024 * 1024 => format!("{} KiB", b / 1024),
        b => format!("{} MiB", b / (1024 * 1024)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the reader gives it (the `json!` value's bytes).
    macro_rules! rec {
        ($($json:tt)+) => {
            Record::parse(serde_json::to_vec(&serde_json::json!($($json)+)).unwrap()).unwrap()
        };
    }

    #[test]
    fn rows_are_aligned_and_safe() {
        let r = rec!({"ts":"2026-11-28T18:24:56.123Z","event":"command","user":"alice",
            "client":"10.0.0.5:51234","host":"web01","session":"0190-ffff0001",
            "command":"echo \u{1b}[2J\nls"});
        let line = row(&r, false, true);
        assert!(
            line.starts_with("2026-11-28 18:24:56  alice       10.0.0.5:51234"),
            "{line}"
        );
        assert!(line.contains("ffff0001"));
        assert!(line.ends_with("echo \\u{1b}[2J ⏎ ls"), "{line}");
        assert!(!line.contains('\u{1b}'));
    }

    /// Regression (issue 12, point 2): bidi and format characters in a
    /// record are shown escaped, not raw.
    #[test]
    fn bidi_and_format_characters_are_escaped() {
        let r = rec!({"ts":"2026-11-28T18:24:56.123Z","event":"command","user":"alice",
            "client":"local","host":"web01","session":"S",
            "command":"echo safe \u{202e}fr- mr\u{2066}\u{200b}\u{feff}"});
        let line = row(&r, false, true);
        for c in ['\u{202e}', '\u{2066}', '\u{200b}', '\u{feff}'] {
            assert!(!line.contains(c), "{c:?} raw in {line:?}");
        }
        assert!(
            line.ends_with("echo safe \\u{202e}fr- mr\\u{2066}\\u{200b}\\u{feff}"),
            "{line}"
        );
    }

    #[test]
    fn on_a_terminal_lines_fit_its_width() {
        let r = rec!({"ts":"2026-11-28T18:24:56.123Z","event":"command","user":"alice",
            "client":"10.0.0.5:51234","host":"web01","session":"0190-ffff0001",
            "command": format!("echo {}", "x".repeat(300))});
        let mut out = Vec::new();
        let mut p = Printer::new(false, true);
        p.width = Some(140);
        p.print(&mut out, &r).unwrap();
        p.print(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        for (i, line) in text.lines().enumerate() {
            let w = console::measure_text_width(line);
            // The header is short; a long row is cut exactly at the edge.
            assert!(if i == 0 { w <= 140 } else { w == 140 }, "{line:?}");
        }
        assert!(text.contains("CLIENT") && text.contains("10.0.0.5:51234"));
        assert!(text.lines().nth(1).unwrap().contains("echo xxx"));
        assert!(text.trim_end().trim_end_matches("\x1b[0m").ends_with('…'));
        // Narrower: CLIENT goes, the command stays readable.
        let mut out = Vec::new();
        let mut p = Printer::new(false, false);
        p.width = Some(100);
        p.print(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("CLIENT") && !text.contains("10.0.0.5"),
            "{text}"
        );
        assert!(text.lines().nth(1).unwrap().contains("echo xxxxxxxxxx"));
        // A pipe (no width): whole lines.
        let mut out = Vec::new();
        let mut p = Printer::new(false, false);
        p.width = None;
        p.print(&mut out, &r).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(&"x".repeat(300)));
    }

    #[test]
    fn policy_rows_say_rule_action_outcome() {
        let r = rec!({"ts":"2026-11-28T18:24:56.123Z","event":"policy","user":"alice",
            "client":"local","host":"web01","session":"0190-ffff0001","rule":"no-root-wipe",
            "action":"deny","outcome":"blocked","command":"rm -rf /\u{1b}[2J"});
        let line = row(&r, false, true);
        assert!(
            line.ends_with("deny blocked by no-root-wipe: rm -rf /\\u{1b}[2J"),
            "{line}"
        );
    }

    #[test]
    fn exec_and_file_rows_say_what_happened() {
        let e = rec!({"event":"exec","command":"systemctl status nginx","pty":false});
        assert_eq!(detail(&e), "systemctl status nginx");
        let e = rec!({"event":"exec","command":"sftp","subsystem":"sftp","pty":false});
        assert_eq!(detail(&e), "[sftp]");
        let f = rec!({"event":"file","op":"rename","path":"/a\u{1b}[2J","to":"/b"});
        assert_eq!(detail(&f), "rename /a\\u{1b}[2J → /b");
        let f = rec!({"event":"file","op":"upload","path":"/srv/x","bytes":2048});
        assert!(detail(&f).starts_with("upload /srv/x ("), "{}", detail(&f));
    }

    /// A newer writer's event is listed with what every record has; its
    /// detail is left empty, never guessed.
    #[test]
    fn an_unknown_event_is_listed() {
        let r = rec!({"ts":"2026-12-01T10:00:00.000Z","event":"port_forward","user":"alice",
            "client":"local","host":"web01","session":"0190-ffff0001","listen":"127.0.0.1:8080"});
        let line = row(&r, false, true);
        assert!(
            line.starts_with("2026-12-01 10:00:00  alice       local"),
            "{line}"
        );
        assert!(
            line.contains("web01") && line.contains("ffff0001"),
            "{line}"
        );
        assert!(line.trim_end().ends_with("port_forward"), "{line}");
        let mut out = Vec::new();
        let mut p = Printer::new(true, false);
        p.print(&mut out, &r).unwrap();
        assert_eq!(
            out,
            [r.bytes.as_slice(), b"\n"].concat(),
            "--json: as stored"
        );
    }

    /// Regression: every text the table takes from a record is escaped,
    /// the fields the writer fills from a fixed set (mode, reason, op)
    /// too — a forged or damaged line must not drive the terminal.
    #[test]
    fn fixed_set_fields_are_escaped_too() {
        let evil = "x\u{1b}]52;c;AAAA\u{7}";
        let records = [
            rec!({"event":"login","mode":evil,"pid":1}),
            rec!({"event":"session_end","reason":evil,"duration_ms":1}),
            rec!({"event":"denied","reason":evil,"request":"r"}),
            rec!({"event":"error","reason":evil,"detail":"d"}),
            rec!({"event":"file","op":evil,"path":"/p"}),
        ];
        for r in &records {
            let d = detail(r);
            assert!(!d.contains('\u{1b}') && !d.contains('\u{7}'), "{d:?}");
            assert!(d.contains("x\\u{1b}]52;c;AAAA\\u{7}"), "{d:?}");
        }
    }
}
