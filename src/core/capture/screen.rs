//! The screen the operator sees: a vt100 model of the target's output,
//! with a fast path for bulk output.
//!
//! vt100 parses ~24 MiB/s while the relay moves ~220 MB/s, so while nobody
//! is typing a command the engine does not feed the model. Instead it keeps
//! the last [`TAIL_BYTES`] of output and tracks the one mode it must never
//! miss (the alternate screen); when a line is begun it replays the tail,
//! which rebuilds the part of the screen that matters (the prompt).

/// Bounds on the model size: a window of 0 or 65535 is clamped into these.
const MIN_DIM: u16 = 1;
const MAX_DIM: u16 = 500;

/// How much skipped output we keep to rebuild the screen: several screenfuls
/// of an 80x24 terminal, and enough for a full redraw of a large one.
pub const TAIL_BYTES: usize = 64 * 1024;

/// Parameters kept of a private-mode sequence while scanning bulk output.
const MODE_PARAMS: usize = 32;

fn clamp(d: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(d.clamp(MIN_DIM, MAX_DIM)).unwrap_or(std::num::NonZeroU16::MIN)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Ground,
    Escape,
    Csi,
}

/// Where the first ESC is. `contains` on a byte slice is core's memchr (a
/// word at a time), so blocks without an ESC — nearly all bulk output —
/// cost a fraction of a byte-by-byte scan, which was 3% of the relay's CPU
/// behind a bastion (issue 13); only the block holding one is walked.
fn find_esc(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 1024;
    let mut at = 0;
    for block in bytes.chunks(BLOCK) {
        if block.contains(&0x1b) {
            return block.iter().position(|&b| b == 0x1b).map(|k| at + k);
        }
        at += block.len();
    }
    None
}

/// Follows `ESC[?…h/l` for the alternate screen (47, 1047, 1049) and RIS in
/// skipped output, without a full parser.
struct ModeTracker {
    state: Scan,
    params: [u8; MODE_PARAMS],
    len: usize,
    alt: bool,
}

impl ModeTracker {
    fn scan(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == Scan::Ground {
                // The fast path: most bulk output has no escapes at all.
                match find_esc(&bytes[i..]) {
                    None => return,
                    Some(k) => {
                        i += k + 1;
                        self.state = Scan::Escape;
                        continue;
                    }
                }
            }
            let b = bytes[i];
            i += 1;
            match self.state {
                Scan::Ground => {}
                Scan::Escape => {
                    self.state = match b {
                        b'[' => {
                            self.len = 0;
                            Scan::Csi
                        }
                        b'c' => {
                            // RIS: full reset leaves the alternate screen.
                            self.alt = false;
                            Scan::Ground
                        }
                        0x1b => Scan::Escape,
                        _ => Scan::Ground,
                    }
                }
                Scan::Csi => match b {
                    0x20..=0x3f if self.len < MODE_PARAMS => {
                        self.params[self.len] = b;
                        self.len += 1;
                    }
                    0x40..=0x7e => {
                        self.state = Scan::Ground;
                        if (b == b'h' || b == b'l') && self.len < MODE_PARAMS {
                            self.private_mode(b == b'h');
                        }
                    }
                    0x1b => self.state = Scan::Escape,
                    0x18 | 0x1a => self.state = Scan::Ground,
                    _ => {}
                },
            }
        }
    }

    fn private_mode(&mut self, set: bool) {
        let p = &self.params[..self.len];
        let Some(rest) = p.strip_prefix(b"?") else {
            return;
        };
        for n in rest.split(|&b| b == b';') {
            if matches!(n, b"47" | b"1047" | b"1049") {
                self.alt = set;
            }
        }
    }
}

/// The screen model.
pub struct Screen {
    parser: vt100::Parser,
    /// Output since the model was last fed is only in `tail`.
    skipping: bool,
    tail: Vec<u8>,
    tail_pos: usize,
    tail_full: bool,
    modes: ModeTracker,
}

impl Screen {
    pub fn new(cols: u16, rows: u16) -> Self {
        Screen {
            parser: vt100::Parser::new(clamp(rows), clamp(cols), 0),
            skipping: false,
            tail: Vec::new(),
            tail_pos: 0,
            tail_full: false,
            modes: ModeTracker {
                state: Scan::Ground,
                params: [0; MODE_PARAMS],
                len: 0,
                alt: false,
            },
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.parser.set_size(clamp(rows), clamp(cols));
    }

    /// Output nobody needs the screen for right now: remember only the
    /// tail and the alternate-screen mode.
    pub fn skip(&mut self, bytes: &[u8]) {
        if !self.skipping {
            self.skipping = true;
            self.modes.alt = self.parser.screen().alternate_screen();
            self.modes.state = Scan::Ground;
            self.tail_pos = 0;
            self.tail_full = false;
        }
        self.modes.scan(bytes);
        if self.tail.len() != TAIL_BYTES {
            self.tail.resize(TAIL_BYTES, 0);
        }
        if bytes.len() >= TAIL_BYTES {
            self.tail
                .copy_from_slice(&bytes[bytes.len() - TAIL_BYTES..]);
            self.tail_pos = 0;
            self.tail_full = true;
            return;
        }
        let first = bytes.len().min(TAIL_BYTES - self.tail_pos);
        self.tail[self.tail_pos..self.tail_pos + first].copy_from_slice(&bytes[..first]);
        let rest = bytes.len() - first;
        self.tail[..rest].copy_from_slice(&bytes[first..]);
        if self.tail_pos + bytes.len() >= TAIL_BYTES {
            self.tail_full = true;
        }
        self.tail_pos = (self.tail_pos + bytes.len()) % TAIL_BYTES;
    }

    /// Bring the model up to date with skipped output.
    pub fn sync(&mut self) {
        if !self.skipping {
            return;
        }
        self.skipping = false;
        let tail = std::mem::take(&mut self.tail);
        if self.tail_full {
            self.parser.process(&tail[self.tail_pos..]);
        }
        self.parser.process(&tail[..self.tail_pos]);
        // A tail that began mid-way may have missed the switch itself.
        if self.parser.screen().alternate_screen() != self.modes.alt {
            self.parser.process(if self.modes.alt {
                b"\x1b[?1049h"
            } else {
                b"\x1b[?1049l"
            });
        }
        // Bulk output is over for now; do not hold 64 KiB per idle session.
        drop(tail);
        self.tail_pos = 0;
        self.tail_full = false;
    }

    /// Feed output to the model.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.sync();
        self.parser.process(bytes);
    }

    /// A full-screen program is running.
    pub fn alternate(&self) -> bool {
        if self.skipping {
            self.modes.alt
        } else {
            self.parser.screen().alternate_screen()
        }
    }

    /// Escape codes that paint the cursor's logical line below where the
    /// operator's cursor stands, as the model has it, and put the cursor
    /// where it is: after Gatehouse printed a line of its own in the
    /// middle of a line editor's drawing. The editor's next redraw moves
    /// relative to its cursor (zsh, fish), so it must find its line again.
    pub fn repaint_line(&mut self) -> Vec<u8> {
        self.sync();
        let s = self.parser.screen();
        let (rows, cols) = s.size();
        let (crow, ccol) = s.cursor_position();
        let start = self.line_start();
        let mut end = crow;
        while s.row_wrapped(end) && end + 1 < rows.get() {
            end += 1;
        }
        let mut out = b"\r\x1b[m".to_vec();
        for (i, row) in s
            .rows_formatted(0, cols.get())
            .enumerate()
            .skip(usize::from(start))
            .take(usize::from(end - start) + 1)
        {
            if i > usize::from(start) {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\x1b[K");
            out.extend_from_slice(row.as_bytes());
        }
        out.extend_from_slice(b"\x1b[m");
        if end > crow {
            out.extend_from_slice(format!("\x1b[{}A", end - crow).as_bytes());
        }
        out.push(b'\r');
        if ccol > 0 {
            out.extend_from_slice(format!("\x1b[{ccol}C").as_bytes());
        }
        out
    }

    pub fn approx_heap_bytes(&self) -> usize {
        let (rows, cols) = self.parser.screen().size();
        // Two grids (main, alternate) of cells of ~32 bytes.
        self.tail.capacity() + 2 * usize::from(rows.get()) * usize::from(cols.get()) * 32
    }

    fn row_text(&self, row: u16, upto: u16, out: &mut String) {
        let s = self.parser.screen();
        for col in 0..upto {
            match s.cell(row, col) {
                Some(cell) if cell.is_wide_continuation() => {}
                Some(cell) if cell.has_contents() => out.push_str(cell.contents()),
                _ => out.push(' '),
            }
        }
    }

    /// First row of the logical (soft-wrapped) line holding the cursor.
    fn line_start(&self) -> u16 {
        let s = self.parser.screen();
        let mut row = s.cursor_position().0;
        while row > 0 && s.row_wrapped(row - 1) {
            row -= 1;
        }
        row
    }

    /// The logical line the cursor is on, trailing blanks removed.
    pub fn cursor_line(&self) -> String {
        self.sync_debug_check();
        let s = self.parser.screen();
        let (rows, cols) = s.size();
        let mut row = self.line_start();
        let mut text = String::new();
        loop {
            self.row_text(row, cols.get(), &mut text);
            if !s.row_wrapped(row) || row + 1 >= rows.get() {
                break;
            }
            row += 1;
        }
        text.truncate(text.trim_end().len());
        text
    }

    /// What stands before the cursor on its logical line: the prompt, when
    /// taken as the operator begins a line.
    pub fn before_cursor(&self) -> String {
        self.sync_debug_check();
        let s = self.parser.screen();
        let (_, cols) = s.size();
        let (crow, ccol) = s.cursor_position();
        let mut text = String::new();
        for row in self.line_start()..crow {
            self.row_text(row, cols.get(), &mut text);
        }
        self.row_text(crow, ccol.min(cols.get()), &mut text);
        text
    }

    /// Text right of the cursor on its row, trimmed: a right prompt (zsh
    /// `RPROMPT`) when taken as a line is begun.
    pub fn right_of_cursor(&self) -> String {
        self.sync_debug_check();
        let s = self.parser.screen();
        let (_, cols) = s.size();
        let (crow, ccol) = s.cursor_position();
        let mut text = String::new();
        for col in ccol..cols.get() {
            match s.cell(crow, col) {
                Some(cell) if cell.is_wide_continuation() => {}
                Some(cell) if cell.has_contents() => text.push_str(cell.contents()),
                _ => text.push(' '),
            }
        }
        text.trim().to_string()
    }

    /// The rows from the nearest one at or above the cursor that starts
    /// with `prompt` down to the cursor's logical line: a command typed at
    /// that prompt, newlines kept where the rows were not soft-wrapped.
    /// `upto_cursor` stops at the cursor (leaving out a right prompt).
    /// `None` when no such row is on the screen.
    pub fn text_from_prompt(
        &self,
        prompt: &str,
        upto_cursor: bool,
        lines_up: usize,
    ) -> Option<String> {
        self.sync_debug_check();
        let s = self.parser.screen();
        let (rows, cols) = s.size();
        let (crow, ccol) = s.cursor_position();
        let prompt = prompt.trim_end();
        let mut start = None;
        let mut row = crow;
        let mut line = String::new();
        let mut up = 0;
        loop {
            line.clear();
            self.row_text(row, cols.get(), &mut line);
            let begins_line = row == 0 || !s.row_wrapped(row - 1);
            if begins_line && line.starts_with(prompt) {
                start = Some(row);
                break;
            }
            if row == 0 || begins_line && up >= lines_up {
                break;
            }
            if begins_line {
                up += 1;
            }
            row -= 1;
        }
        let start = start?;
        let mut end = crow;
        if !upto_cursor {
            while end + 1 < rows.get() && s.row_wrapped(end) {
                end += 1;
            }
        }
        let mut text = String::new();
        for row in start..=end {
            if row > start && !s.row_wrapped(row - 1) {
                // Trailing blanks of a row that ended with a newline.
                text.truncate(text.trim_end_matches(' ').len());
                text.push('\n');
            }
            let upto = if upto_cursor && row == crow {
                ccol.min(cols.get())
            } else {
                cols.get()
            };
            self.row_text(row, upto, &mut text);
        }
        text.truncate(text.trim_end().len());
        Some(text)
    }

    /// Rows on the screen.
    pub fn rows(&self) -> usize {
        usize::from(self.parser.screen().size().0.get())
    }

    /// The row the cursor is on (0 at the top).
    pub fn cursor_row(&self) -> usize {
        usize::from(self.parser.screen().cursor_position().0)
    }

    /// Every visible row (trailing blanks removed) and whether it is
    /// soft-wrapped into the next.
    pub fn rows_wrapped(&self) -> Vec<(String, bool)> {
        self.sync_debug_check();
        let s = self.parser.screen();
        let (rows, cols) = s.size();
        (0..rows.get())
            .map(|row| {
                let mut line = String::new();
                self.row_text(row, cols.get(), &mut line);
                line.truncate(line.trim_end().len());
                (line, s.row_wrapped(row))
            })
            .collect()
    }

    /// The whole visible screen, rows joined with newlines (trailing blanks
    /// removed): what an editor shows of the file it edits.
    pub fn contents(&self) -> String {
        self.sync_debug_check();
        let s = self.parser.screen();
        let (rows, cols) = s.size();
        let mut text = String::new();
        for row in 0..rows.get() {
            let mut line = String::new();
            self.row_text(row, cols.get(), &mut line);
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    fn sync_debug_check(&self) {
        debug_assert!(!self.skipping, "screen read while output was skipped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `find_esc` is `position(ESC)`: at every place around its block
    /// boundaries, after a long run without one, and with none at all.
    #[test]
    fn find_esc_finds_the_first_escape() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == 0x1b);
        for len in [0, 1, 7, 1023, 1024, 1025, 3000] {
            let plain = vec![b'A'; len];
            assert_eq!(find_esc(&plain), None);
            for at in [0, 1, 511, 1022, 1023, 1024, 1025, 2047, 2048, 2999] {
                if at >= len {
                    continue;
                }
                let mut v = plain.clone();
                v[at] = 0x1b;
                if at + 1 < len {
                    v[len - 1] = 0x1b;
                }
                assert_eq!(find_esc(&v), naive(&v), "len {len}, at {at}");
                assert_eq!(find_esc(&v), Some(at));
            }
        }
    }

    #[test]
    fn tracks_alternate_screen_while_skipping() {
        let mut s = Screen::new(80, 24);
        s.skip(b"hello \x1b[?1049h");
        assert!(s.alternate());
        s.skip(b"\x1b[?1");
        s.skip(b"049l more");
        assert!(!s.alternate());
        s.skip(b"\x1b[?25;47h");
        assert!(s.alternate());
        s.skip(b"\x1bc");
        assert!(!s.alternate());
        s.sync();
        assert!(!s.alternate());
    }

    #[test]
    fn tail_rebuilds_prompt() {
        let mut s = Screen::new(80, 24);
        let mut bulk = Vec::new();
        for i in 0..20000 {
            bulk.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        for chunk in bulk.chunks(7000) {
            s.skip(chunk);
        }
        s.skip(b"tgt$ ");
        s.sync();
        assert_eq!(s.before_cursor(), "tgt$ ");
        assert_eq!(s.cursor_line(), "tgt$");
    }

    #[test]
    fn logical_line_follows_wraps() {
        let mut s = Screen::new(10, 5);
        s.feed(b"tgt$ 0123456789abcdef");
        assert_eq!(s.cursor_line(), "tgt$ 0123456789abcdef");
        assert_eq!(s.before_cursor(), "tgt$ 0123456789abcdef");
    }

    #[test]
    fn wide_chars() {
        let mut s = Screen::new(80, 24);
        s.feed("tgt$ echo 你好 x".as_bytes());
        assert_eq!(s.cursor_line(), "tgt$ echo 你好 x");
    }

    #[test]
    fn clamps_sizes() {
        let size = |s: &Screen| {
            let (r, c) = s.parser.screen().size();
            (c.get(), r.get())
        };
        let mut s = Screen::new(0, 65535);
        assert_eq!(size(&s), (MIN_DIM, MAX_DIM));
        s.feed(b"abc");
        assert!(s.cursor_line().contains('c'));
        s.resize(65535, 0);
        assert_eq!(size(&s), (MAX_DIM, MIN_DIM));
        s.feed(b"def");
        assert!(s.cursor_line().ends_with('f'));
    }
}
