//! The keystroke line assembler: replays the operator's keys through a
//! model of readline's default emacs keymap and yields each line at Enter.
//!
//! Total and bounded: any byte sequence is valid input, the line is capped
//! at [`MAX_LINE_BYTES`] (start and end kept) and every other buffer
//! has a small constant size.

/// Most text a line keeps while it is typed, in bytes. Past it the middle
/// of the line is dropped (its length is still counted), so the start and
/// the end of an over-long line are always known; the record keeps 8 KiB of
/// each (`super::bound_text`).
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// Longest escape sequence we keep bytes of; longer ones are still consumed
/// (we wait for their final byte) but their parameters are forgotten.
const MAX_ESC_PARAMS: usize = 16;

/// How many of the last typed characters we remember for the echo check of
/// a line too long to keep whole.
const ECHO_TAIL_CHARS: usize = 64;

/// A line completed by Enter (or by a newline inside a bracketed paste).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    /// The text as the keys built it, line editing applied.
    pub text: String,
    /// The text was longer than the bound and was cut.
    pub truncated: bool,
    /// Keys moved the cursor or deleted: the text is right if our editing
    /// model matches readline's, but the screen is the better witness.
    pub edited: bool,
    /// Keys whose effect we cannot know were used (history, completion,
    /// reverse search, meta keys, yank): only the screen can tell the text.
    pub unreliable: bool,
    /// The cursor may stand inside the line (moved left or home, a
    /// recalled line, meta and vi keys): Enter runs the whole line, text
    /// right of the cursor included. Otherwise text the screen shows right
    /// of the cursor was not typed (fish's autosuggestion after a Tab).
    pub whole: bool,
    /// The last characters typed, when the line only ever grew at its end:
    /// enough to check the echo of a line that was cut.
    pub echo_tail: String,
    /// The line as a terminal in canonical mode (no line editor: dash, `cat`,
    /// `read`) receives it: the kernel's erase, kill and werase applied,
    /// every other byte literal (an arrow key's escape sequence included).
    pub cooked: Vec<u8>,
    /// Bytes of text dropped from the middle of an over-long line.
    pub lost_bytes: usize,
    /// Ended by bash's edit-and-execute (Ctrl-X Ctrl-E): the line goes to an
    /// editor, and what the editor saves runs when it exits.
    pub editor: bool,
    /// Ended by a CR or LF inside an escape sequence (Esc then Enter): a
    /// line editor in vi mode runs the line, bash's emacs mode only rings
    /// the bell. Whether it ran is not known when it is decided.
    pub escaped_end: bool,
}

impl Line {
    /// The text, when it was only ever typed at its end (see
    /// [`Keys::typed_text`]).
    pub fn typed_text(&self) -> Option<&str> {
        let plain = !self.edited && !self.unreliable && !self.truncated;
        (plain && !self.editor && !self.escaped_end).then_some(self.text.as_str())
    }
}

/// What a byte did to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// Nothing worth reporting.
    None,
    /// Enter: the line was sent (possibly empty).
    Enter(Line),
    /// Ctrl-C: the line was probably abandoned (the screen decides). The
    /// text it held, for when the interrupt turns out not to have worked
    /// (`stty intr undef`: readline only rings the bell).
    Cancel(String),
}

/// The kernel's canonical-mode line discipline (termios ICANON with the
/// default control characters), for shells without a line editor.
#[derive(Debug, Clone, Default)]
struct Cooked {
    buf: Vec<u8>,
    lost: usize,
    /// After VLNEXT (Ctrl-V): the next byte is literal.
    lnext: bool,
}

impl Cooked {
    fn push(&mut self, b: u8) {
        if std::mem::take(&mut self.lnext) {
            self.add(b);
            return;
        }
        match b {
            // VERASE (^?) and ^H, which many terminals send for Backspace.
            0x7f | 0x08 => {
                // Erase one character, not one byte.
                while let Some(c) = self.buf.pop() {
                    if c & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            // VKILL
            0x15 => self.buf.clear(),
            // VWERASE
            0x17 => {
                while self.buf.last().is_some_and(|c| c.is_ascii_whitespace()) {
                    self.buf.pop();
                }
                while self.buf.last().is_some_and(|c| !c.is_ascii_whitespace()) {
                    self.buf.pop();
                }
            }
            0x16 => self.lnext = true,
            // VINTR, VQUIT, VSUSP flush the line (ISIG).
            0x03 | 0x1c | 0x1a => self.buf.clear(),
            // VREPRINT, VEOF on a non-empty line, VSTOP/VSTART: no text.
            0x12 | 0x04 | 0x13 | 0x11 => {}
            _ => self.add(b),
        }
    }

    fn add(&mut self, b: u8) {
        if self.buf.len() >= MAX_LINE_BYTES {
            // Keep the start and the latest bytes.
            self.buf.remove(MAX_LINE_BYTES / 2);
            self.lost += 1;
        }
        self.buf.push(b);
    }

    fn take(&mut self) -> (Vec<u8>, usize) {
        self.lnext = false;
        (
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.lost),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Not in an escape sequence.
    Ground,
    /// After ESC.
    Started,
    /// After ESC [ (CSI), collecting parameters.
    Csi,
    /// After ESC O (SS3): one more byte names the key.
    Ss3,
    /// Inside a string (OSC, DCS, APC, PM, SOS) until BEL or ESC \.
    Str,
    /// ESC seen inside a string: `\` ends it.
    StrEnd,
}

/// The line assembler.
#[derive(Debug, Clone)]
pub struct Keys {
    chars: Vec<char>,
    bytes: usize,
    cursor: usize,
    truncated: bool,
    edited: bool,
    unreliable: bool,
    whole: bool,
    /// The line has seen no byte since it last ended.
    fresh: bool,
    /// Reverse incremental search is active: keys edit the search string.
    searching: bool,
    /// The Enter being read came inside an escape sequence.
    escaped_end: bool,
    /// Inside a bracketed paste (ESC[200~ … ESC[201~).
    pasting: bool,
    esc: Escape,
    params: [u8; MAX_ESC_PARAMS],
    nparams: usize,
    utf8: [u8; 4],
    utf8_len: usize,
    utf8_need: usize,
    /// Last characters appended at the end, for the echo check of long lines.
    tail: [char; ECHO_TAIL_CHARS],
    tail_len: usize,
    tail_pos: usize,
    /// The previous byte was \r: a following \n is the same Enter.
    after_cr: bool,
    /// After Ctrl-V (readline's quoted-insert): the next byte is literal.
    quoted: bool,
    /// After Ctrl-X: readline's prefix for C-x C-e and friends.
    ctrl_x: bool,
    /// Bytes dropped from the middle of an over-long line.
    lost: usize,
    cooked: Cooked,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

impl Keys {
    pub fn new() -> Self {
        Keys {
            chars: Vec::new(),
            bytes: 0,
            cursor: 0,
            truncated: false,
            edited: false,
            unreliable: false,
            whole: false,
            fresh: true,
            searching: false,
            escaped_end: false,
            pasting: false,
            esc: Escape::Ground,
            params: [0; MAX_ESC_PARAMS],
            nparams: 0,
            utf8: [0; 4],
            utf8_len: 0,
            utf8_need: 0,
            tail: ['\0'; ECHO_TAIL_CHARS],
            tail_len: 0,
            tail_pos: 0,
            after_cr: false,
            quoted: false,
            ctrl_x: false,
            lost: 0,
            cooked: Cooked::default(),
        }
    }

    /// True between keys: no escape sequence, UTF-8 character or prefix
    /// key (Ctrl-V, Ctrl-X) is half-way through.
    pub fn at_key_boundary(&self) -> bool {
        self.esc == Escape::Ground && self.utf8_need == 0 && !self.quoted && !self.ctrl_x
    }

    /// True when no byte has arrived since the last line ended: the next
    /// byte begins a new line.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// The line so far, when it was only ever typed at its end (no editing,
    /// no key whose effect only the screen knows): then a shell's echo of
    /// it is exactly this text, or its start while the echo is coming.
    pub fn typed_text(&self) -> Option<String> {
        (!self.edited && !self.unreliable && !self.truncated && !self.searching)
            .then(|| self.chars.iter().collect())
    }

    /// Bytes of heap this assembler holds; constant-bounded.
    pub fn approx_heap_bytes(&self) -> usize {
        self.chars.capacity() * std::mem::size_of::<char>() + self.cooked.buf.capacity()
    }

    /// Forget everything, as after Ctrl-C or inside a full-screen program.
    pub fn reset(&mut self) {
        let pasting = self.pasting;
        let esc = self.esc;
        self.clear_line();
        // Escape and paste framing are properties of the byte stream, not
        // of the line: keep parsing them so a half-read sequence is not
        // taken for text.
        self.pasting = pasting;
        self.esc = esc;
    }

    fn clear_line(&mut self) {
        self.escaped_end = false;
        self.chars.clear();
        if self.chars.capacity() > 4096 {
            // A huge line is over: give the memory back.
            self.chars.shrink_to(256);
        }
        self.bytes = 0;
        self.cursor = 0;
        self.truncated = false;
        self.edited = false;
        self.unreliable = false;
        self.whole = false;
        self.fresh = true;
        self.searching = false;
        self.tail_len = 0;
        self.tail_pos = 0;
        self.utf8_len = 0;
        self.utf8_need = 0;
        self.quoted = false;
        self.ctrl_x = false;
        self.lost = 0;
        self.cooked.take();
        if self.cooked.buf.capacity() > 16 * 1024 {
            self.cooked.buf.shrink_to(256);
        }
    }

    fn take_line(&mut self) -> Line {
        let mut echo_tail = String::new();
        if !self.edited && !self.unreliable {
            let start = (self.tail_pos + ECHO_TAIL_CHARS - self.tail_len) % ECHO_TAIL_CHARS;
            for i in 0..self.tail_len {
                echo_tail.push(self.tail[(start + i) % ECHO_TAIL_CHARS]);
            }
        }
        let (cooked, _) = self.cooked.take();
        let line = Line {
            text: self.chars.iter().collect(),
            truncated: self.truncated,
            edited: self.edited,
            unreliable: self.unreliable,
            whole: self.whole,
            echo_tail,
            cooked,
            lost_bytes: self.lost,
            editor: false,
            escaped_end: std::mem::take(&mut self.escaped_end),
        };
        let pasting = self.pasting;
        self.clear_line();
        self.pasting = pasting;
        line
    }

    /// Feed one byte as the operator sent it.
    pub fn push(&mut self, b: u8) -> KeyEvent {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        if !matches!(b, b'\r' | b'\n') || self.quoted || self.cooked.lnext {
            self.cooked.push(b);
        }
        if let Some(event) = self.after_prefix(b) {
            return event;
        }
        if matches!(b, b'\r' | b'\n') && self.esc != Escape::Ground {
            // A line end is an Enter wherever it falls: readline does not
            // parse sequences as a terminal does (vi mode's Esc then Enter
            // sent together is command mode, then accept-line; ESC ] x CR
            // is Meta-], x, accept-line). Held like any Enter, so the
            // policy sees it; what the escape did only the screen knows.
            self.esc = Escape::Ground;
            self.unreliable = true;
            self.whole = true;
            self.escaped_end = true;
        }
        match self.esc {
            Escape::Ground => {}
            Escape::Started => return self.after_esc(b),
            Escape::Csi => return self.in_csi(b),
            Escape::Ss3 => {
                self.esc = Escape::Ground;
                return self.key_ss3(b);
            }
            Escape::Str | Escape::StrEnd => {
                self.in_string(b);
                return KeyEvent::None;
            }
        }
        if b != b'\r' && b != b'\n' {
            self.fresh = false;
        }
        if self.utf8_need > 0 && self.continue_utf8(b) {
            return KeyEvent::None;
        }
        self.ground(b, after_cr)
    }

    /// The byte after a prefix key (Ctrl-V, Ctrl-X). `Some` when this byte
    /// was fully handled as the prefixed key; `None` when it goes on to be
    /// read as a key of its own.
    fn after_prefix(&mut self, b: u8) -> Option<KeyEvent> {
        if std::mem::take(&mut self.quoted) && self.esc == Escape::Ground {
            // Ctrl-V: readline inserts the next byte as it is (Ctrl-V Tab is
            // a tab, Ctrl-V Ctrl-A a ^A); a multi-byte character still
            // arrives whole through the UTF-8 path.
            self.fresh = false;
            if b < 0x80 {
                self.insert_literal(b as char);
                return Some(KeyEvent::None);
            }
        }
        if std::mem::take(&mut self.ctrl_x) && self.esc == Escape::Ground {
            self.fresh = false;
            if b == 0x05 {
                // C-x C-e: edit-and-execute-command.
                self.after_cr = false;
                self.searching = false;
                let mut line = self.take_line();
                line.editor = true;
                return Some(KeyEvent::Enter(line));
            }
            // Other C-x commands (undo, exchange point and mark…).
            self.unreliable = true;
            if b != 0x18 {
                return Some(KeyEvent::None);
            }
        }
        None
    }

    /// Inside a string sequence (OSC, DCS, …): only its end matters.
    fn in_string(&mut self, b: u8) {
        self.esc = match (self.esc, b) {
            (Escape::Str, 0x07) => Escape::Ground,
            (Escape::Str, 0x1b) => Escape::StrEnd,
            (Escape::Str, _) => Escape::Str,
            (_, b'\\') => Escape::Ground,
            _ => Escape::Str,
        };
    }

    /// A byte while a UTF-8 character is half-read: true when it was a
    /// continuation byte (consumed). Any other byte breaks the character,
    /// which becomes U+FFFD, and is then read on its own.
    fn continue_utf8(&mut self, b: u8) -> bool {
        if b & 0xc0 == 0x80 {
            self.utf8[self.utf8_len] = b;
            self.utf8_len += 1;
            if self.utf8_len == self.utf8_need {
                let n = self.utf8_len;
                self.utf8_need = 0;
                self.utf8_len = 0;
                let buf = self.utf8;
                match std::str::from_utf8(&buf[..n]) {
                    Ok(s) => {
                        for c in s.chars() {
                            self.insert(c);
                        }
                    }
                    Err(_) => self.insert(char::REPLACEMENT_CHARACTER),
                }
            }
            return true;
        }
        self.utf8_need = 0;
        self.utf8_len = 0;
        self.insert(char::REPLACEMENT_CHARACTER);
        false
    }

    /// A byte outside any escape sequence, prefix or UTF-8 character.
    fn ground(&mut self, b: u8, after_cr: bool) -> KeyEvent {
        match b {
            // Inside a bracketed paste readline (8.1+) inserts newlines into
            // the line instead of accepting it: the whole paste runs at the
            // next real Enter, as one buffer.
            b'\r' | b'\n' if self.pasting => {
                if !(b == b'\n' && after_cr) {
                    self.insert_newline();
                }
                self.after_cr = b == b'\r';
                KeyEvent::None
            }
            b'\r' => self.enter(),
            // \r\n from a paste or a terminal that sends both is one Enter.
            b'\n' if after_cr => KeyEvent::None,
            b'\n' => self.enter(),
            0x1b => {
                self.esc = Escape::Started;
                self.nparams = 0;
                KeyEvent::None
            }
            0x20..=0x7e => {
                self.insert(b as char);
                KeyEvent::None
            }
            0x80..=0xff => {
                self.start_utf8(b);
                KeyEvent::None
            }
            _ if self.pasting => {
                // Pasted control characters (a tab, say) are inserted
                // literally by readline's bracketed paste.
                self.insert_literal(b as char);
                KeyEvent::None
            }
            _ => self.control(b),
        }
    }

    /// The first byte of a UTF-8 character (or a byte that cannot start one).
    fn start_utf8(&mut self, b: u8) {
        let need = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        if need == 0 {
            self.insert(char::REPLACEMENT_CHARACTER);
        } else {
            self.utf8[0] = b;
            self.utf8_len = 1;
            self.utf8_need = need;
        }
    }

    /// A control key (not Enter, not ESC) typed outside a paste: readline's
    /// emacs bindings.
    fn control(&mut self, b: u8) -> KeyEvent {
        match b {
            0x16 => self.quoted = true,
            0x18 => self.ctrl_x = true,
            0x03 => {
                // Ctrl-C: readline discards the line and bash prints a new prompt.
                let text = self.chars.iter().collect();
                self.clear_line();
                return KeyEvent::Cancel(text);
            }
            0x7f | 0x08 => {
                self.edit();
                if self.cursor > 0 {
                    self.remove(self.cursor - 1);
                    self.cursor -= 1;
                }
            }
            0x15 => {
                // Ctrl-U: unix-line-discard, kills from the cursor to the start.
                self.edit();
                self.remove_range(0, self.cursor);
                self.cursor = 0;
            }
            0x17 => self.rubout_word(),
            0x0b => {
                // Ctrl-K: kill to end of line.
                self.edit();
                self.remove_range(self.cursor, self.chars.len());
            }
            0x01 => self.home(),
            0x05 => self.end(),
            0x02 => self.left(),
            0x06 => self.right(),
            // Ctrl-D: delete-char on a non-empty line (EOF on an empty one).
            0x04 => self.delete_forward(),
            0x0f => {
                // Ctrl-O (operate-and-get-next) accepts the line like Enter.
                self.unreliable = true;
                return self.enter();
            }
            0x12 | 0x13 => {
                // Ctrl-R / Ctrl-S: incremental search; the line becomes what
                // the search finds, which only the screen shows.
                self.unreliable = true;
                self.whole = true;
                self.searching = true;
            }
            _ => {
                // Tab (completion), Ctrl-Y (yank), Ctrl-T (transpose),
                // Ctrl-P/N (history), Ctrl-_ (undo), Ctrl-V (quoted insert)…:
                // effects we do not model; never text. All but Tab may leave
                // the cursor inside the line.
                self.unreliable = true;
                self.whole |= b != b'\t';
            }
        }
        KeyEvent::None
    }

    /// Ctrl-W: unix-word-rubout, the whitespace-delimited word before the
    /// cursor.
    fn rubout_word(&mut self) {
        self.edit();
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        self.remove_range(start, self.cursor);
        self.cursor = start;
    }

    fn after_esc(&mut self, b: u8) -> KeyEvent {
        self.fresh = false;
        match b {
            b'[' => {
                self.esc = Escape::Csi;
                KeyEvent::None
            }
            b'O' => {
                self.esc = Escape::Ss3;
                KeyEvent::None
            }
            b']' | b'P' | b'_' | b'^' | b'X' => {
                self.esc = Escape::Str;
                KeyEvent::None
            }
            0x1b => {
                // ESC ESC: the first was a lone Escape (readline: meta prefix).
                self.unreliable = true;
                self.whole = true;
                KeyEvent::None
            }
            _ => {
                // Meta-key (Alt-b, Alt-., Alt-d…) or vi command mode:
                // commands we do not model.
                self.esc = Escape::Ground;
                self.unreliable = true;
                self.whole = true;
                KeyEvent::None
            }
        }
    }

    fn in_csi(&mut self, b: u8) -> KeyEvent {
        match b {
            0x20..=0x3f => {
                if self.nparams < MAX_ESC_PARAMS {
                    self.params[self.nparams] = b;
                    self.nparams += 1;
                }
                KeyEvent::None
            }
            0x40..=0x7e => {
                self.esc = Escape::Ground;
                self.key_csi(b);
                KeyEvent::None
            }
            0x1b => {
                // A broken sequence: start over.
                self.esc = Escape::Started;
                self.nparams = 0;
                KeyEvent::None
            }
            0x18 | 0x1a => {
                // CAN / SUB abort a sequence (ECMA-48).
                self.esc = Escape::Ground;
                KeyEvent::None
            }
            _ => KeyEvent::None,
        }
    }

    fn key_csi(&mut self, fin: u8) {
        let params = &self.params[..self.nparams];
        match (params, fin) {
            (b"200", b'~') => {
                self.pasting = true;
            }
            (b"201", b'~') => {
                self.pasting = false;
            }
            _ if self.pasting => {}
            (b"", b'D') => self.left(),
            (b"", b'C') => self.right(),
            (b"" | b"1", b'H') | (b"1" | b"7", b'~') => self.home(),
            (b"" | b"1", b'F') | (b"4" | b"8", b'~') => self.end(),
            (b"3", b'~') => self.delete_forward(),
            // Insert, PgUp/PgDn, function keys: no text, but readline may
            // bind them to something.
            (_, b'~') => self.unreliable = true,
            // Up/Down (history) and anything else we do not model.
            _ => {
                self.unreliable = true;
                self.whole = true;
            }
        }
    }

    fn key_ss3(&mut self, b: u8) -> KeyEvent {
        if self.pasting {
            return KeyEvent::None;
        }
        match b {
            b'D' => self.left(),
            b'C' => self.right(),
            // Keypad Enter in application keypad mode.
            b'M' => return self.enter(),
            b'H' => self.home(),
            b'F' => self.end(),
            _ => self.unreliable = true,
        }
        KeyEvent::None
    }

    /// The shell accepted the line without an Enter reaching us (a key
    /// bound to accept-line): take it as it stands and start afresh.
    pub fn accepted_elsewhere(&mut self) -> Line {
        self.after_cr = false;
        self.searching = false;
        self.take_line()
    }

    fn enter(&mut self) -> KeyEvent {
        self.after_cr = true;
        self.searching = false;
        KeyEvent::Enter(self.take_line())
    }

    fn edit(&mut self) {
        self.edited = true;
        // Reverse search ends on any editing key; the line is what it found.
        self.searching = false;
    }

    fn home(&mut self) {
        self.edit();
        self.whole = true;
        self.cursor = 0;
    }

    fn end(&mut self) {
        self.edit();
        self.cursor = self.chars.len();
    }

    fn left(&mut self) {
        self.edit();
        self.whole = true;
        self.cursor = self.cursor.saturating_sub(1);
    }

    fn right(&mut self) {
        self.edit();
        if self.cursor < self.chars.len() {
            self.cursor += 1;
        }
    }

    fn delete_forward(&mut self) {
        self.edit();
        if self.cursor < self.chars.len() {
            self.remove(self.cursor);
        }
    }

    fn remove_range(&mut self, start: usize, end: usize) {
        let gone: usize = self.chars.drain(start..end).map(char::len_utf8).sum();
        self.bytes -= gone;
    }

    fn remove(&mut self, i: usize) {
        let c = self.chars.remove(i);
        self.bytes -= c.len_utf8();
    }

    fn insert_newline(&mut self) {
        if self.bytes < MAX_LINE_BYTES {
            self.chars.insert(self.cursor, '\n');
            self.cursor += 1;
            self.bytes += 1;
        } else {
            self.truncated = true;
        }
        // The echo check compares the first line only; the tail is moot.
        self.tail_len = 0;
    }

    fn insert(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        self.insert_literal(c);
    }

    /// Inserts `c` even when it is a control character (quoted insert,
    /// bracketed paste): the shell got it literally, so the record keeps it.
    fn insert_literal(&mut self, c: char) {
        if self.cursor != self.chars.len() {
            self.edited = true;
        }
        if !self.searching {
            self.tail[self.tail_pos] = c;
            self.tail_pos = (self.tail_pos + 1) % ECHO_TAIL_CHARS;
            self.tail_len = (self.tail_len + 1).min(ECHO_TAIL_CHARS);
        }
        if self.bytes + c.len_utf8() > MAX_LINE_BYTES {
            self.truncated = true;
            if self.cursor != self.chars.len() || self.chars.len() < 2 {
                // Editing in the middle of a huge line: we cannot follow.
                self.unreliable = true;
                self.lost += c.len_utf8();
                return;
            }
            // Keep the start and the end: drop from the middle.
            let mid = self.chars.len() / 2;
            let gone = self.chars.remove(mid);
            self.bytes -= gone.len_utf8();
            self.lost += gone.len_utf8();
            self.cursor -= 1;
        }
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
        self.bytes += c.len_utf8();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(keys: &mut Keys, bytes: &[u8]) -> Vec<Line> {
        let mut v = Vec::new();
        for &b in bytes {
            if let KeyEvent::Enter(l) = keys.push(b) {
                v.push(l);
            }
        }
        v
    }

    fn one(bytes: &[u8]) -> Line {
        let mut k = Keys::new();
        let mut v = lines(&mut k, bytes);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn plain_text() {
        let l = one(b"ls -la\r");
        assert_eq!(l.text, "ls -la");
        assert!(!l.edited && !l.unreliable && !l.truncated);
        assert_eq!(l.echo_tail, "ls -la");
    }

    #[test]
    fn backspace_both_codes() {
        assert_eq!(one(b"lsx\x7f -l\x08a\r").text, "ls -a");
        assert!(one(b"ab\x7f\r").edited);
    }

    #[test]
    fn ctrl_u_kills_to_start() {
        assert_eq!(one(b"rm -rf /\x15ls\r").text, "ls");
    }

    #[test]
    fn ctrl_w_kills_word() {
        assert_eq!(one(b"echo foo bar  \x17baz\r").text, "echo foo baz");
    }

    #[test]
    fn ctrl_k_kills_to_end() {
        assert_eq!(one(b"echo abcdef\x1b[D\x1b[D\x1b[D\x0b\r").text, "echo abc");
    }

    #[test]
    fn arrows_home_end_insert_mid_line() {
        assert_eq!(one(b"cho hi\x01e\x05!\r").text, "echo hi!");
        assert_eq!(one(b"ech hi\x1b[D\x1b[D\x1b[Do\r").text, "echo hi");
        assert_eq!(one(b"ech hi\x1bOD\x1bOD\x1bODo\x1bOC\r").text, "echo hi");
        assert_eq!(one(b"cho\x1b[He\x1b[F!\r").text, "echo!");
        assert_eq!(one(b"cho\x1b[1~e\x1b[4~!\r").text, "echo!");
        assert_eq!(one(b"cho\x1bOHe\x1bOF!\r").text, "echo!");
    }

    #[test]
    fn other_enters() {
        assert_eq!(one(b"ls\x1bOM").text, "ls");
        let l = one(b"ls\x0f");
        assert!(l.unreliable);
    }

    #[test]
    fn delete_key() {
        assert_eq!(one(b"lxs\x1b[D\x1b[D\x1b[3~\r").text, "ls");
    }

    #[test]
    fn utf8_across_pushes_and_invalid() {
        assert_eq!(one("echo héllo 你好\r".as_bytes()).text, "echo héllo 你好");
        assert_eq!(one(b"a\xffb\xc3(\r").text, "a\u{fffd}b\u{fffd}(");
        // A lone continuation byte.
        assert_eq!(one(b"\x80x\r").text, "\u{fffd}x");
    }

    #[test]
    fn escape_sequences_are_not_text() {
        assert_eq!(
            one(b"a\x1b]0;title\x07b\x1b]2;t\x1b\\c\x1b[12;5Hd\r").text,
            "abcd"
        );
    }

    #[test]
    fn a_line_end_inside_an_escape_sequence_is_an_enter() {
        for keys in [
            &b"ls\x1b\r"[..],
            b"ls\x1b\n",
            b"ls\x1b[\r",
            b"ls\x1b[1;\r",
            b"ls\x1bO\r",
            b"ls\x1b]0;x\r",
            b"ls\x1bP\x1b\r",
        ] {
            let mut k = Keys::new();
            let v = lines(&mut k, keys);
            assert_eq!(v.len(), 1, "{keys:?}");
            assert!(
                v[0].unreliable && v[0].whole && v[0].escaped_end,
                "{keys:?}"
            );
            assert!(k.at_key_boundary(), "{keys:?}");
        }
    }

    #[test]
    fn ctrl_c_discards() {
        let mut k = Keys::new();
        assert_eq!(k.push(b'x'), KeyEvent::None);
        assert_eq!(k.push(0x03), KeyEvent::Cancel("x".into()));
        let v = lines(&mut k, b"ls\r");
        assert_eq!(v[0].text, "ls");
    }

    #[test]
    fn crlf_is_one_enter_and_lf_alone_is_enter() {
        let mut k = Keys::new();
        let v = lines(&mut k, b"a\r\nb\nc\r");
        let t: Vec<_> = v.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(t, ["a", "b", "c"]);
    }

    #[test]
    fn history_tab_search_are_unreliable() {
        assert!(one(b"\x1b[A\r").unreliable);
        assert!(one(b"\x1bOB\r").unreliable);
        assert!(one(b"ec\t hi\r").unreliable);
        assert!(one(b"\x12ech\r").unreliable);
        assert!(one(b"\x1b.\r").unreliable);
        assert!(one(b"x\x19\r").unreliable);
    }

    #[test]
    fn bracketed_paste_lines() {
        let mut k = Keys::new();
        let v = lines(&mut k, b"\x1b[200~echo a\r\necho b\x1b[D\n\x1b[201~x\r");
        let t: Vec<_> = v.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(t, ["echo a\necho b\nx"]);
        assert!(!v[0].edited);
    }

    #[test]
    fn long_line_is_cut_on_char_boundary() {
        let mut k = Keys::new();
        let mut input = Vec::new();
        for _ in 0..(MAX_LINE_BYTES / 2 + 10) {
            input.extend_from_slice("é".as_bytes());
        }
        input.extend_from_slice(b"xyz\r");
        let v = lines(&mut k, &input);
        assert!(v[0].truncated);
        assert!(v[0].text.len() <= MAX_LINE_BYTES);
        assert!(v[0].text.ends_with("éxyz"));
        assert!(v[0].lost_bytes > 0);
        assert!(v[0].echo_tail.ends_with("éxyz"));
    }

    #[test]
    fn fresh_tracks_line_start() {
        let mut k = Keys::new();
        assert!(k.is_fresh());
        k.push(b'a');
        assert!(!k.is_fresh());
        k.push(b'\r');
        assert!(k.is_fresh());
    }

    #[test]
    fn control_chars_never_enter_text() {
        let mut k = Keys::new();
        let all: Vec<u8> = (0u8..=255)
            .filter(|&b| b != b'\r' && b != b'\n' && b != 3)
            .collect();
        let v = lines(&mut k, &[&all[..], b"\r"].concat());
        assert!(v[0].text.chars().all(|c| !c.is_control()));
    }
}
