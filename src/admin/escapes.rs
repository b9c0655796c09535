//! What from a recording or a record may reach an administrator's
//! terminal. A recording is whatever a target printed, and with
//! `replay --follow` a live operator writes it as the admin watches: a
//! clipboard write (OSC 52), a title set or report, a status query
//! (DECRQSS, DSR, DA) or a DCS/APC/PM string passed through as it is would
//! act on the admin's terminal or type an answer into it (issue 12,
//! point 2; product.md, "Live control").
//!
//! `ReplayFilter` parses the output with `vte` (the parser alacritty uses,
//! already in the tree under vt100: total, bounded) and re-emits only what
//! drawing needs: printable text, the C0 controls that move the cursor,
//! SGR, cursor movement, erase/insert/delete, the scroll region, charset
//! designation, and a few modes a full-screen program draws with
//! (alternate screen, cursor visibility, autowrap, origin, insert). It
//! remembers what it let through that outlives the replay, and `restore`
//! returns the sequence that undoes all of it.
#![forbid(unsafe_code)]

use vte::{Params, Parser, Perform};

pub use crate::core::text::is_format_char;

/// Private modes (`CSI ? N h/l`) a player may pass: origin (6), autowrap
/// (7), cursor blink (12), cursor visible (25), the alternate screens (47,
/// 1047, 1049) and save cursor (1048). Not mouse or focus reporting (the
/// terminal would type reports at us), not bracketed paste or cursor-key
/// modes (they change what the admin's keys send).
const PRIVATE_MODES: &[u16] = &[6, 7, 12, 25, 47, 1047, 1048, 1049];

#[derive(Default)]
struct Sink {
    out: String,
    alt_screen: bool,
    region: bool,
    origin: bool,
    dropped: u64,
}

impl Sink {
    fn csi(&mut self, private: bool, params: &Params, action: char) {
        let p: Vec<&[u16]> = params.iter().collect();
        let first = p.first().and_then(|s| s.first()).copied().unwrap_or(0);
        let ok = match (private, action) {
            (false, 'm') => true,
            (
                false,
                'A' | 'B' | 'C' | 'D' | 'E' | 'F' | 'G' | 'H' | 'f' | 'd' | 'e' | 'a' | '`',
            ) => true,
            // Erase in display: not 3 (the admin's scrollback).
            (false, 'J') => first <= 2 && p.len() <= 1,
            (false, 'K' | 'X' | '@' | 'P' | 'L' | 'M' | 'S' | 'I' | 'Z' | 'g' | 's' | 'u') => true,
            // `CSI T` with several parameters is a mouse-tracking request.
            (false, 'T' | 'b') => p.len() <= 1,
            (false, 'r') => {
                self.region = true;
                true
            }
            (false, 'h' | 'l') => {
                // Only insert mode (IRM, 4) among the ANSI modes.
                let keep: Vec<u16> = p
                    .iter()
                    .filter_map(|s| s.first().copied())
                    .filter(|&m| m == 4)
                    .collect();
                return self.modes(false, &keep, action);
            }
            (true, 'h' | 'l') => {
                let keep: Vec<u16> = p
                    .iter()
                    .filter_map(|s| s.first().copied())
                    .filter(|m| PRIVATE_MODES.contains(m))
                    .collect();
                return self.modes(true, &keep, action);
            }
            _ => false,
        };
        if !ok {
            self.dropped += 1;
            return;
        }
        self.out.push_str("\x1b[");
        // vte reports a missing parameter as 0; for every sequence passed
        // here a lone 0 means the default, so it is written as none.
        let p: &[&[u16]] = if p.len() == 1 && p[0] == [0] { &[] } else { &p };
        for (i, sub) in p.iter().enumerate() {
            if i > 0 {
                self.out.push(';');
            }
            for (j, v) in sub.iter().enumerate() {
                if j > 0 {
                    self.out.push(':');
                }
                self.out.push_str(&v.to_string());
            }
        }
        self.out.push(action);
    }

    fn modes(&mut self, private: bool, modes: &[u16], action: char) {
        if modes.is_empty() {
            self.dropped += 1;
            return;
        }
        let on = action == 'h';
        for &m in modes {
            match m {
                47 | 1047 | 1049 if private => self.alt_screen = on,
                6 if private => self.origin = on,
                _ => {}
            }
            self.out.push_str(if private { "\x1b[?" } else { "\x1b[" });
            self.out.push_str(&m.to_string());
            self.out.push(action);
        }
    }
}

impl Perform for Sink {
    fn print(&mut self, c: char) {
        // C1 controls as characters (U+009B is CSI to some terminals).
        if ('\u{80}'..='\u{9f}').contains(&c) {
            self.dropped += 1;
        } else {
            self.out.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            // BEL, BS, HT, LF, VT, FF, CR, SO, SI. Not ENQ (answerback).
            0x07..=0x0f => self.out.push(byte as char),
            _ => self.dropped += 1,
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        match (ignore, intermediates) {
            (false, []) => self.csi(false, params, action),
            (false, [b'?']) => self.csi(true, params, action),
            _ => self.dropped += 1,
        }
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], ignore: bool, byte: u8) {
        let ok = !ignore
            && match (intermediates, byte) {
                // Save/restore cursor, index, next line, reverse index, tab set.
                ([], b'7' | b'8' | b'D' | b'E' | b'M' | b'H') => true,
                // G0/G1 charsets: ASCII, DEC line drawing, UK.
                ([b'(' | b')'], b'B' | b'0' | b'A') => true,
                _ => false,
            };
        if ok {
            self.out.push('\x1b');
            for &i in intermediates {
                self.out.push(i as char);
            }
            self.out.push(byte as char);
        } else {
            self.dropped += 1;
        }
    }

    fn hook(&mut self, _: &Params, _: &[u8], _: bool, _: char) {
        self.dropped += 1;
    }

    fn osc_dispatch(&mut self, _: &[&[u8]], _: bool) {
        self.dropped += 1;
    }
}

/// Filters a recording's output for an admin's terminal; state carries
/// across events (a sequence may be split between two).
pub struct ReplayFilter {
    parser: Parser,
    sink: Sink,
}

impl Default for ReplayFilter {
    fn default() -> Self {
        ReplayFilter::new()
    }
}

impl ReplayFilter {
    pub fn new() -> ReplayFilter {
        ReplayFilter {
            parser: Parser::new(),
            sink: Sink::default(),
        }
    }

    /// The part of `data` that may reach the terminal.
    pub fn feed(&mut self, data: &str) -> &str {
        self.sink.out.clear();
        self.parser.advance(&mut self.sink, data.as_bytes());
        &self.sink.out
    }

    /// Sequences dropped so far.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped
    }

    /// The alternate screen is on now.
    pub fn alt_screen(&self) -> bool {
        self.sink.alt_screen
    }

    /// The scroll region or origin mode was changed at some point.
    pub fn moved_margins(&self) -> bool {
        self.sink.region || self.sink.origin
    }
}

/// Saves the window title on xterm's title stack, to be popped by
/// `restore` (matters only for `--raw`: filtered output never sets one).
pub const SAVE_TITLE: &str = "\x1b[22;0t";

/// Everything a recording may have changed, put back: the alternate
/// screen (left only if it is on, since leaving it restores the cursor),
/// attributes, insert mode, charsets, cursor, autowrap, mouse, focus and
/// paste reporting, keypad and cursor-key modes, the palette and default
/// colours, the title (popped), and the scroll region and origin mode
/// (which home the cursor, so it is then put on the last line).
pub fn restore(alt_screen: bool, margins: bool) -> String {
    let mut s = String::new();
    if alt_screen {
        s.push_str("\x1b[?1049l");
    }
    s.push_str("\x1b[0m\x1b[4l\x1b(B\x1b)B\x0f\x1b[?25h\x1b[?7h");
    s.push_str(
        "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1004l\x1b[?2004l",
    );
    s.push_str("\x1b[?1l\x1b>");
    s.push_str("\x1b]104\x1b\\\x1b]110\x1b\\\x1b]111\x1b\\\x1b]112\x1b\\");
    s.push_str("\x1b[23;0t");
    if margins {
        s.push_str("\x1b[r\x1b[?6l\x1b[999;1H");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(chunks: &[&str]) -> String {
        let mut f = ReplayFilter::new();
        chunks.iter().map(|c| f.feed(c).to_string()).collect()
    }

    /// Regression (issue 12, point 2): each of these came out byte for byte.
    #[test]
    fn attacks_on_the_admin_terminal_are_dropped() {
        for evil in [
            "\x1b]52;c;ZWNobyBwd25lZA==\x07",   // clipboard write
            "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\", // … ST-terminated
            "\x1b]0;owned\x07",                 // title set
            "\x1b]2;owned\x1b\\",
            "\x1b[21t",                   // title report
            "\x1b[8;100;300t",            // window resize
            "\x1bP$qm\x1b\\",             // DECRQSS
            "\x1bP1000p\x1b\\",           // DCS of any kind
            "\x1b[6n",                    // DSR cursor position report
            "\x1b[5n",                    // DSR status
            "\x1b[c",                     // DA
            "\x1b[>c",                    // DA2
            "\x1b[?1$p",                  // DECRQM
            "\x1b_Gf=100;AAAA\x1b\\",     // APC (kitty graphics)
            "\x1b^privacy\x1b\\",         // PM
            "\x1bXsos\x1b\\",             // SOS
            "\x1b]4;1;rgb:ff/00/00\x07",  // palette change
            "\x1b]8;;http://evil/\x1b\\", // hyperlink
            "\x1b[?1000h",                // mouse reporting
            "\x1b[?1004h",                // focus reporting
            "\x1b[?2004h",                // bracketed paste
            "\x1bc",                      // full reset
            "\x05",                       // ENQ: answerback
            "\u{9b}6n",                   // C1 CSI as a character
            "\u{9d}0;x\u{9c}",            // C1 OSC
            "\x1b[3J",                    // erase the admin's scrollback
        ] {
            let out = filter(&[evil]);
            assert!(
                !out.contains('\x1b') && !out.contains('\x05') && !out.contains('\u{9b}'),
                "{evil:?} came out as {out:?}"
            );
        }
    }

    #[test]
    fn sequences_split_across_events_are_still_dropped() {
        assert_eq!(filter(&["a\x1b]5", "2;c;QUFB", "\x07b"]), "ab");
        assert_eq!(filter(&["\x1bP$", "qm\x1b", "\\ok"]), "ok");
    }

    #[test]
    fn drawing_is_kept() {
        for good in [
            "plain text, ünïcödé ✓",
            "\x1b[1;31mred\x1b[m",
            "\x1b[38;2;1;2;3mtrue\x1b[38:5:196m",
            "\x1b[10;20H\x1b[2J\x1b[K\x1b[3A\x1b[4C",
            "\x1b[5;20r\x1b[?1049h\x1b[?25l\x1b[?1049l\x1b[?25h",
            "\x1b[4h\x1b[4l\x1b[2@\x1b[3P\x1b[L\x1b[M",
            "\x1b7\x1b8\x1bM\x1b(0qqq\x1b(B",
            "\r\n\t\x08\x07",
        ] {
            assert_eq!(filter(&[good]), good, "{good:?}");
        }
    }

    #[test]
    fn mixed_modes_keep_only_the_allowed_ones() {
        assert_eq!(filter(&["\x1b[?1049;1000h"]), "\x1b[?1049h");
    }

    #[test]
    fn state_for_the_restore_is_tracked() {
        let mut f = ReplayFilter::new();
        f.feed("\x1b[?1049h\x1b[2;10r");
        assert!(f.alt_screen() && f.moved_margins());
        f.feed("\x1b[?1049l");
        assert!(!f.alt_screen());
        let r = restore(true, true);
        for part in [
            "\x1b[?1049l",
            "\x1b[0m",
            "\x1b[4l",
            "\x1b(B",
            "\x1b[r",
            "\x1b[?1000l",
            "\x1b[23;0t",
        ] {
            assert!(r.contains(part), "{part:?}");
        }
    }

    #[test]
    fn format_characters() {
        for c in [
            '\u{202e}',
            '\u{2066}',
            '\u{200b}',
            '\u{feff}',
            '\u{ad}',
            '\u{e0041}',
        ] {
            assert!(is_format_char(c), "{c:?}");
        }
        for c in ['a', 'é', '✓', ' ', '\u{3000}'] {
            assert!(!is_format_char(c), "{c:?}");
        }
    }
}
