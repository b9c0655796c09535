//! Command capture: turns the operator's keystrokes and the target's output
//! into the commands the remote shell received.
//!
//! This is a pure, total, bounded state machine: it touches no terminal,
//! socket or file. The relay feeds it both byte streams; it hands back
//! completed commands.
//!
//! How a command is decided:
//! - keys are assembled into a line (`keys.rs`); when the operator begins a
//!   line the text before the cursor is taken as its prompt;
//! - at Enter the line waits for its echo: the first output newline whose
//!   logical screen line starts with the prompt (or, for type-ahead, is
//!   the typed text itself) decides it. Plain keys that match are the
//!   command; edited, completed or recalled keys take the screen's text;
//!   keys that were never echoed (passwords) are dropped; plain keys whose
//!   echo shows only their end at the prompt began in a program that read
//!   them without echo or Enter (top, `read -s -n 4`): the screen's text;
//! - a command that does not look complete (`shell.rs`) waits for the next
//!   output: a PS2 prompt (`> `) joins the next line to it, anything else
//!   emits it;
//! - while nobody is typing and no line awaits its echo, output bypasses
//!   the vt100 model (`screen.rs`): only its tail and the alternate-screen
//!   mode are kept, and the tail is replayed when the next line is begun.
//!
//! Bias: when it is unclear whether a line was echoed it is dropped, since
//! an unechoed line is most likely a password.
#![forbid(unsafe_code)]

mod keys;
mod screen;
mod shell;

use std::collections::VecDeque;

use keys::{KeyEvent, Keys, Line};
use screen::Screen;

/// Longest command text kept, in bytes; longer ones are cut and marked.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// How the text of a command was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Assembled from keystrokes with line editing applied.
    Keys,
    /// Read off the terminal screen the operator saw.
    Screen,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Keys => "keys",
            Source::Screen => "screen",
        }
    }
}

/// One command the operator sent to the remote shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub text: String,
    pub truncated: bool,
    pub source: Source,
}

/// Pending lines kept at most; older ones are dropped (never logged).
const MAX_PENDING: usize = 32;

/// A pending line that saw this many newlines, or this much output, without
/// its echo was never echoed: drop it.
const MAX_PENDING_LFS: u32 = 4096;
const MAX_PENDING_OUTPUT: usize = 8 << 20;

/// The continuation prompt we recognise (bash's default PS2).
const PS2: &str = "> ";

/// A line sent with Enter, waiting for its echo.
struct Pending {
    line: Line,
    /// What stood before the cursor when the line was begun; `None` when
    /// it was typed ahead of earlier lines' echo (the screen did not show
    /// its prompt yet).
    prompt: Option<String>,
    /// Output arrived while the line was typed: the operator was watching
    /// an echoing line (a no-echo prompt answers keys with nothing).
    saw_output: bool,
    /// Typed over several input chunks (a human typing, not a paste) and
    /// yet nothing came back: the target was not echoing.
    typed_unechoed: bool,
    lfs: u32,
    output: usize,
}

/// A command whose lines are known but which may still continue (PS2).
struct Multi {
    text: String,
    truncated: bool,
    source: Source,
    /// The output since its last line showed the PS2 prompt.
    continued: bool,
}

enum Verdict {
    /// This newline is not this line's echo.
    Skip,
    /// This newline was this line's and it was not echoed.
    Reject,
    /// Echoed: the command text.
    Accept(String, Source, bool),
}

/// The capture engine for one session.
pub struct Capture {
    keys: Keys,
    screen: Screen,
    /// Prompt of the line being typed, once its first key arrived.
    typing: Option<Option<String>>,
    /// Output arrived since the line being typed was begun.
    typing_output: bool,
    /// Input chunks that carried keys of the line being typed.
    typing_chunks: u32,
    pending: VecDeque<Pending>,
    multi: Option<Multi>,
    /// The main prompt, learned from the last line it was confirmed on.
    prompt: Option<String>,
}

impl Capture {
    pub fn new(cols: u16, rows: u16) -> Self {
        Capture {
            keys: Keys::new(),
            screen: Screen::new(cols, rows),
            typing: None,
            typing_output: false,
            typing_chunks: 0,
            pending: VecDeque::new(),
            multi: None,
            prompt: None,
        }
    }

    /// Bytes the operator typed, exactly as they are sent to the target.
    /// Completed commands are appended to `out`.
    pub fn input(&mut self, bytes: &[u8], out: &mut Vec<Command>) {
        if self.screen.alternate() {
            // Keys inside a full-screen program are not commands; keep the
            // escape framing so a split sequence is not taken for text later.
            for &b in bytes {
                let _ = self.keys.push(b);
            }
            self.keys.reset();
            self.typing = None;
            return;
        }
        if self.typing.is_some() {
            self.typing_chunks = self.typing_chunks.saturating_add(1);
        }
        for &b in bytes {
            if self.keys.is_fresh() && b != b'\r' && b != b'\n' {
                self.begin_line(out);
            }
            match self.keys.push(b) {
                KeyEvent::None => {}
                KeyEvent::Cancel => {
                    // Ctrl-C abandons a half-typed line, and a command still
                    // being continued at a PS2 prompt. One that may already
                    // be running (no PS2 seen) was sent: keep it.
                    self.typing = None;
                    self.screen.sync();
                    self.check_continuation(out);
                    match &self.multi {
                        Some(m) if m.continued => self.multi = None,
                        _ => self.emit_multi(out),
                    }
                }
                KeyEvent::Enter(line) => {
                    let prompt = self.typing.take().flatten();
                    let blank = line.text.trim().is_empty();
                    if blank && !line.unreliable && !line.edited {
                        continue;
                    }
                    if self.pending.len() >= MAX_PENDING {
                        self.pending.pop_front();
                    }
                    let saw_output = std::mem::take(&mut self.typing_output);
                    self.pending.push_back(Pending {
                        line,
                        prompt,
                        saw_output,
                        typed_unechoed: self.typing_chunks > 0 && !saw_output,
                        lfs: 0,
                        output: 0,
                    });
                }
            }
        }
    }

    fn begin_line(&mut self, out: &mut Vec<Command>) {
        self.screen.sync();
        self.check_continuation(out);
        let prompt = if self.pending.is_empty() {
            bounded_prompt(self.screen.before_cursor())
        } else {
            // Typed ahead of earlier lines' echo: the screen does not show
            // this line's prompt yet.
            None
        };
        self.typing = Some(prompt);
        self.typing_output = false;
        self.typing_chunks = 0;
    }

    fn idle(&self) -> bool {
        self.keys.is_fresh() && self.pending.is_empty() && self.multi.is_none()
    }

    /// Bytes the target sent towards the operator. May complete commands
    /// whose fate depended on the output (echo, continuation prompts).
    pub fn output(&mut self, bytes: &[u8], out: &mut Vec<Command>) {
        if self.idle() {
            self.screen.skip(bytes);
            return;
        }
        if self.typing.is_some() && !bytes.is_empty() {
            self.typing_output = true;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.pending.is_empty() {
                if self.idle() {
                    // The command is known; what follows is its output.
                    self.screen.skip(rest);
                } else {
                    self.screen.feed(rest);
                }
                break;
            }
            match rest.iter().position(|&b| b == b'\n') {
                None => {
                    self.screen.feed(rest);
                    for p in &mut self.pending {
                        p.output += rest.len();
                    }
                    // Output without newlines never decides a line: bound
                    // how long a line may wait for its echo.
                    self.pending.retain(|p| p.output <= MAX_PENDING_OUTPUT);
                    break;
                }
                Some(k) => {
                    self.screen.feed(&rest[..k]);
                    for p in &mut self.pending {
                        p.output += k + 1;
                    }
                    self.newline(out);
                    self.screen.feed(&rest[k..k + 1]);
                    rest = &rest[k + 1..];
                }
            }
        }
        self.check_continuation(out);
    }

    /// The output is about to move to a new line: is the line the cursor is
    /// on the echo of a pending line?
    fn newline(&mut self, out: &mut Vec<Command>) {
        if self.screen.alternate() {
            // A full-screen program took over: keys typed ahead of it were
            // meant for it.
            self.pending.clear();
            return;
        }
        let shown = self.screen.cursor_line();
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            p.lfs += 1;
            match self.verdict(i, &shown) {
                Verdict::Skip => {
                    let p = &self.pending[i];
                    if p.lfs > MAX_PENDING_LFS || p.output > MAX_PENDING_OUTPUT {
                        self.pending.remove(i);
                    } else {
                        i += 1;
                    }
                }
                Verdict::Reject => {
                    self.pending.remove(i);
                }
                Verdict::Accept(text, source, truncated) => {
                    // Lines before it never showed up: drop them.
                    let p = self.pending.drain(..=i).next_back();
                    let continuation = p.as_ref().is_some_and(|p| p.prompt.as_deref() == Some(PS2))
                        || shown.starts_with(PS2.trim_end())
                            && !shown.starts_with(self.prompt_str());
                    if !continuation {
                        if let Some(prompt) = p.and_then(|p| p.prompt) {
                            if !prompt.trim().is_empty() {
                                self.prompt = Some(prompt);
                            }
                        }
                    }
                    self.accepted(text, source, truncated, continuation, out);
                    return;
                }
            }
        }
    }

    fn prompt_str(&self) -> &str {
        match &self.prompt {
            Some(p) if !p.trim().is_empty() => p.trim_end(),
            _ => "\u{0}",
        }
    }

    fn verdict(&self, i: usize, shown: &str) -> Verdict {
        let p = &self.pending[i];
        let learned = self.prompt_str();
        let own = p.prompt.as_deref().map(str::trim_end);
        // `decisive`: this newline ends the line typed at this line's own
        // prompt, so it is this line's echo or there is none.
        let line = &p.line;
        let tail = line.echo_tail.trim();
        if line.truncated
            && !line.edited
            && !line.unreliable
            && !tail.is_empty()
            && shown.ends_with(tail)
        {
            // Too long for the screen (its prompt scrolled away): the end of
            // it was echoed.
            return Verdict::Accept(line.text.trim().to_string(), Source::Keys, true);
        }
        let (rest, decisive, at_prompt) = match own {
            Some(o) if !o.is_empty() && shown.starts_with(o) => (&shown[o.len()..], true, true),
            _ => match shown.find(learned) {
                // The main prompt, possibly after output that did not end
                // in a newline (`read -s` answers Enter with nothing).
                Some(k) => (&shown[k + learned.len()..], false, true),
                // Typed ahead while a command continues: its PS2 prompt.
                None if self.multi.is_some() && shown.starts_with(PS2) => {
                    (&shown[PS2.len()..], false, true)
                }
                // Typed at column 0 or ahead of the echo: a running
                // command's tty echoes the whole line by itself. Not for
                // keys a human typed with nothing coming back: a program
                // printing a secret read at column 0 would look the same.
                None if own.map_or(true, str::is_empty) && !p.typed_unechoed => {
                    (shown, false, false)
                }
                None => return Verdict::Skip,
            },
        };
        let cmd = rest.trim();
        let keys = line.text.trim();
        let first = keys.lines().next().unwrap_or("").trim();
        let plain = !line.edited && !line.unreliable;
        if plain && !cmd.is_empty() {
            if cmd == keys {
                return Verdict::Accept(keys.to_string(), Source::Keys, line.truncated);
            }
            if keys.contains('\n') && cmd == first {
                // A multi-line paste: its first line was echoed.
                return Verdict::Accept(keys.to_string(), Source::Keys, line.truncated);
            }
        }
        if plain
            && !cmd.is_empty()
            && at_prompt
            && (decisive || i == 0)
            && p.saw_output
            && keys.len() > cmd.len()
            && keys.ends_with(cmd)
        {
            // The first keys of this line went to a program that read them
            // without echo and without Enter (top, `read -s -n 4`, a pager
            // on the main screen); the shell's prompt line shows only what
            // the shell got. Taken from the screen, so the unechoed keys
            // (perhaps a PIN) are not recorded.
            return Verdict::Accept(cmd.to_string(), Source::Screen, false);
        }
        if !plain && !cmd.is_empty() && (decisive || at_prompt && i == 0) {
            if cmd == keys && !line.unreliable {
                // Edited, and the screen agrees with our editing model.
                return Verdict::Accept(keys.to_string(), Source::Screen, line.truncated);
            }
            if p.saw_output {
                // Completion, recall, search: only the screen knows. Taken
                // only from a line typed while watching its echo, so text
                // a program printed after a no-echo prompt is not mistaken
                // for it.
                return Verdict::Accept(cmd.to_string(), Source::Screen, false);
            }
            if is_subsequence(keys, cmd) {
                // Completion, recall or search typed ahead of its echo (a
                // paste, or keys faster than the round trip): every key typed
                // stands on the prompt line, in order, so the line was echoed
                // — a no-echo prompt shows none of them (and pure recall types
                // no text that could be a secret). Without this, a paste like
                // "ech\t id\r" or "\e[A\r" would run unrecorded (evasion).
                return Verdict::Accept(cmd.to_string(), Source::Screen, false);
            }
        }
        if decisive {
            Verdict::Reject
        } else {
            Verdict::Skip
        }
    }

    fn accepted(
        &mut self,
        text: String,
        source: Source,
        truncated: bool,
        continuation: bool,
        out: &mut Vec<Command>,
    ) {
        if let Some(m) = &mut self.multi {
            if continuation || m.continued {
                m.text.push('\n');
                m.text.push_str(&text);
                m.truncated |= truncated;
                if source == Source::Screen {
                    m.source = Source::Screen;
                }
                m.continued = false;
            } else {
                self.emit_multi(out);
                self.multi = Some(Multi {
                    text,
                    truncated,
                    source,
                    continued: false,
                });
            }
        } else {
            self.multi = Some(Multi {
                text,
                truncated,
                source,
                continued: false,
            });
        }
        if let Some(m) = &mut self.multi {
            if m.text.len() > MAX_COMMAND_BYTES {
                cut(&mut m.text, MAX_COMMAND_BYTES);
                m.truncated = true;
            }
            if shell::looks_complete(&m.text) {
                self.emit_multi(out);
            }
        }
    }

    fn emit_multi(&mut self, out: &mut Vec<Command>) {
        if let Some(m) = self.multi.take() {
            out.push(Command {
                text: m.text,
                truncated: m.truncated,
                source: m.source,
            });
        }
    }

    /// A command that may continue: does the screen now show PS2 (keep it),
    /// something else (emit it), or nothing yet (wait)?
    fn check_continuation(&mut self, out: &mut Vec<Command>) {
        let Some(m) = &mut self.multi else {
            return;
        };
        if m.continued || !self.pending.is_empty() {
            return;
        }
        if self.screen.alternate() {
            self.emit_multi(out);
            return;
        }
        let before = self.screen.before_cursor();
        if before.is_empty() || PS2.starts_with(before.as_str()) && before != PS2 {
            return;
        }
        if before == PS2 {
            m.continued = true;
        } else {
            self.emit_multi(out);
        }
    }

    /// The operator's window changed size.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.screen.resize(cols, rows);
    }

    /// The session is over: hand back anything still pending that is known
    /// to be a command. Lines never seen echoed are not.
    pub fn finish(&mut self, out: &mut Vec<Command>) {
        if !self.pending.is_empty() {
            // The session ended before the newline that follows an echoed
            // line (a dropped connection right after Enter): the screen as
            // it is now still tells whether the line was echoed.
            self.screen.sync();
            self.newline(out);
        }
        self.emit_multi(out);
        self.pending.clear();
        self.keys.reset();
        self.typing = None;
    }

    /// Heap held by the engine, for the boundedness tests.
    pub fn approx_heap_bytes(&self) -> usize {
        let pending: usize = self
            .pending
            .iter()
            .map(|p| {
                p.line.text.capacity()
                    + p.line.echo_tail.capacity()
                    + p.prompt.as_ref().map_or(0, String::capacity)
            })
            .sum();
        self.keys.approx_heap_bytes()
            + self.screen.approx_heap_bytes()
            + pending
            + self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.multi.as_ref().map_or(0, |m| m.text.capacity())
            + self.prompt.as_ref().map_or(0, |p| p.capacity())
            + self
                .typing
                .as_ref()
                .map_or(0, |p| p.as_ref().map_or(0, String::capacity))
    }
}

/// Cut `s` to at most `max` bytes on a char boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// A prompt longer than this is not one we can strip reliably.
const MAX_PROMPT_BYTES: usize = 4096;

fn bounded_prompt(p: String) -> Option<String> {
    // Keep nothing rather than a wrong prefix: the line then matches only
    // by its own echo.
    (p.len() <= MAX_PROMPT_BYTES).then_some(p)
}

/// Every character of `needle` appears in `hay`, in order.
fn is_subsequence(needle: &str, hay: &str) -> bool {
    let mut h = hay.chars();
    needle.chars().all(|c| h.any(|x| x == c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded xorshift: deterministic, no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const TOKENS: &[&[u8]] = &[
        b"\r",
        b"\n",
        b"\r\n",
        b"tgt$ ",
        b"> ",
        b"Password: ",
        b"\x1b[?1049h",
        b"\x1b[?1049l",
        b"\x1b[?47h",
        b"\x1b[200~",
        b"\x1b[201~",
        b"\x1b[A",
        b"\x1b[D",
        b"\x1bOD",
        b"\x1b[3~",
        b"\x1b[",
        b"\x1b]0;",
        b"\x07",
        b"\x1b",
        b"\x7f",
        b"\x08",
        b"\x03",
        b"\x15",
        b"\x17",
        b"\x0b",
        b"\x01",
        b"\x05",
        b"\x12",
        b"\t",
        b"echo hi",
        b"for i in 1; do",
        b"done",
        "\u{4f60}\u{597d}".as_bytes(),
        b"\xe4\xbd",
        b"\xff",
        b"\x1b[2J",
        b"\x1b[H",
        b"\x1b[K",
        b"\x1b[5;10H",
        b"\x1b[?2004h",
        b"\x1bc",
        b"x",
    ];

    fn chunk(rng: &mut Rng) -> Vec<u8> {
        let mut v = Vec::new();
        let n = 1 + rng.below(40);
        for _ in 0..n {
            if rng.below(3) == 0 {
                v.push(rng.next() as u8);
            } else {
                v.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            }
        }
        v
    }

    fn assert_sane(cmds: &[Command]) {
        for c in cmds {
            assert!(!c.text.trim().is_empty());
            assert!(c.text.len() <= MAX_COMMAND_BYTES);
            assert!(
                c.text.chars().all(|ch| ch == '\n' || !ch.is_control()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn stress_random_interleaving_is_total_and_bounded() {
        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut cap = Capture::new(rng.below(200) as u16, rng.below(60) as u16);
            let mut out = Vec::new();
            for _ in 0..1500 {
                match rng.below(20) {
                    // Mostly ordinary sizes; now and then an absurd one.
                    0 if rng.below(8) == 0 => cap.resize(rng.next() as u16, rng.next() as u16),
                    0 => cap.resize(rng.below(200) as u16, rng.below(60) as u16),
                    1..=9 => cap.input(&chunk(&mut rng), &mut out),
                    _ => cap.output(&chunk(&mut rng), &mut out),
                }
                assert!(
                    cap.approx_heap_bytes() < 40 << 20,
                    "{}",
                    cap.approx_heap_bytes()
                );
            }
            cap.finish(&mut out);
            assert_sane(&out);
        }
    }

    #[test]
    fn stress_huge_inputs_stay_bounded() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"tgt$ ", &mut out);
        // A megabyte line, no Enter, then Ctrl-U and again: memory stays put.
        let big = vec![b'a'; 1 << 20];
        cap.input(&big, &mut out);
        cap.input(b"\x01", &mut out);
        cap.input(&big, &mut out);
        cap.input(b"\x15", &mut out);
        cap.input(&big, &mut out);
        assert!(cap.approx_heap_bytes() < 8 << 20);
        // Thousands of lines typed ahead that are never echoed.
        for _ in 0..5000 {
            cap.input(b"secret-ish line\r", &mut out);
        }
        assert!(cap.pending.len() <= MAX_PENDING);
        // Output with no newline at all while they wait.
        let noise = vec![b'z'; 1 << 20];
        for _ in 0..10 {
            cap.output(&noise, &mut out);
        }
        assert!(cap.pending.is_empty());
        cap.finish(&mut out);
        assert_sane(&out);
        assert!(out.iter().all(|c| !c.text.contains("secret-ish")));
    }

    #[test]
    fn many_unechoed_lines_and_a_newline_flood_stay_fast() {
        let mut cap = Capture::new(500, 500);
        let mut out = Vec::new();
        cap.output(b"Password: ", &mut out);
        for _ in 0..1000 {
            cap.input(b"not echoed\r", &mut out);
        }
        let flood = vec![b'\n'; 1 << 20];
        let start = std::time::Instant::now();
        cap.output(&flood, &mut out);
        assert!(cap.pending.is_empty());
        // Generous even for a debug build on a busy machine.
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
        assert!(out.is_empty());
    }

    #[test]
    fn engine_can_move_to_the_relay_thread() {
        fn send<T: Send>() {}
        send::<Capture>();
    }

    #[test]
    fn completion_pasted_ahead_of_its_echo_is_recorded() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"tgt$ ", &mut out);
        // Keys arrive in one chunk, before any echo: as a paste would.
        cap.input(b"ech\t gotcha\r", &mut out);
        cap.output(b"ech", &mut out);
        cap.output(b"o ", &mut out);
        cap.output(b" gotcha\r\n", &mut out);
        cap.output(b"gotcha\r\ntgt$ ", &mut out);
        cap.finish(&mut out);
        let texts: Vec<&str> = out.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["echo  gotcha"]);
    }

    #[test]
    fn recall_pasted_ahead_of_its_echo_is_recorded() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"tgt$ ", &mut out);
        for b in b"echo first" {
            cap.input(&[*b], &mut out);
            cap.output(&[*b], &mut out);
        }
        cap.input(b"\r", &mut out);
        cap.output(b"\r\nfirst\r\ntgt$ ", &mut out);
        cap.input(b"\x1b[A\r", &mut out);
        cap.output(b"echo first\r\nfirst\r\ntgt$ ", &mut out);
        cap.finish(&mut out);
        let texts: Vec<&str> = out.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["echo first", "echo first"]);
    }

    #[test]
    fn secret_with_a_tab_at_a_no_echo_prompt_is_not_recorded() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"Password: ", &mut out);
        cap.input(b"hun\tter2\r", &mut out);
        cap.output(b"\r\ntgt$ ", &mut out);
        cap.finish(&mut out);
        assert!(out.iter().all(|c| !c.text.contains("hun")), "{out:?}");
    }

    #[test]
    fn subsequence() {
        assert!(is_subsequence("ec hi", "echo hi"));
        assert!(is_subsequence("", "x"));
        assert!(!is_subsequence("hunter2", "tgt$ "));
        assert!(!is_subsequence("ab", "ba"));
    }

    #[test]
    fn long_command_is_cut_and_marked() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"tgt$ ", &mut out);
        let mut line = b"echo ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 20_000));
        cap.input(&line, &mut out);
        cap.output(&line, &mut out);
        cap.input(b"\r", &mut out);
        cap.output(b"\r\n", &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].truncated);
        assert_eq!(out[0].text.len(), MAX_COMMAND_BYTES);
        assert!(out[0].text.starts_with("echo xxx"));
    }

    #[test]
    fn echoed_line_without_newline_is_kept_at_finish() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"tgt$ ", &mut out);
        for &b in b"reboot" {
            cap.input(&[b], &mut out);
            cap.output(&[b], &mut out);
        }
        cap.input(b"\r", &mut out);
        assert!(out.is_empty());
        cap.finish(&mut out);
        assert_eq!(out[0].text, "reboot");
        // Not echoed: nothing.
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"Password: ", &mut out);
        cap.input(b"hunter2\r", &mut out);
        cap.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn secret_at_column_zero_printed_back_is_not_a_command() {
        // `read -s x; echo $x`: no prompt, the password typed key by key
        // with no echo, then the program prints it on a line of its own.
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"tgt$ ", &mut out);
        cap.input(b"read -s x; echo $x\r", &mut out);
        cap.output(b"read -s x; echo $x\r\n", &mut out);
        for &b in b"hunter2\r" {
            cap.input(&[b], &mut out);
        }
        cap.output(b"hunter2\r\ntgt$ ", &mut out);
        cap.finish(&mut out);
        let t: Vec<_> = out.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(t, ["read -s x; echo $x"]);
    }

    #[test]
    fn unechoed_line_is_dropped() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        cap.output(b"Password: ", &mut out);
        cap.input(b"hunter2\r", &mut out);
        cap.output(b"\r\ntgt$ ", &mut out);
        cap.input(b"x", &mut out);
        cap.output(b"x", &mut out);
        cap.input(b"\x15", &mut out);
        cap.output(b"\x08 \x08", &mut out);
        cap.input(b"ls\r", &mut out);
        cap.output(b"ls\r\n", &mut out);
        cap.output(b"Password: ", &mut out);
        // Edited while not echoed, then the program prints on that line.
        cap.input(b"hunter3\x7f\x7f3\r", &mut out);
        cap.output(b" thanks\r\ntgt$ ", &mut out);
        cap.input(b"ls\r", &mut out);
        cap.output(b"ls\r\n", &mut out);
        cap.finish(&mut out);
        let t: Vec<_> = out.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(t, ["ls", "ls"]);
    }
}
