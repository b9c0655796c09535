//! Command capture: decides, at the moment the operator presses Enter and
//! before that Enter reaches the target, what the remote side is about to
//! receive — a command, a hidden input (a password), or nothing worth a
//! record — from the operator's keys and the screen they see.
//!
//! A pure, total, bounded state machine: no terminal, socket or file; time
//! comes in as arguments. The relay gives it every key through
//! [`Capture::input`], which lets keys through at once and *holds* each
//! Enter; the relay keeps the Enter back until [`Capture::settle`] decides
//! (normally within one round trip of the last key's echo, at most
//! [`Timing::max_wait`]) and writes the records it hands back before it
//! forwards the Enter. That order is the guarantee: no line reaches a shell
//! before its record is on disk, and a policy can stop it.
//!
//! How a held line is decided (`decide`):
//! - the screen is the witness: the text after the line's prompt on the
//!   screen, compared with the keys under two models — readline's editing
//!   (`keys.rs`) and the kernel's canonical mode (dash, `cat`) — decides the
//!   text and makes the record `verified`; what the keys cannot know (Tab
//!   completion, history, reverse search, a Ctrl-C that did not cancel) is
//!   read off the screen;
//! - nothing echoed: at a shell's prompt (learnt from the screen, or shaped
//!   like one) the keys are the command, `verified: false`; at any other
//!   prompt the line is a secret and only its prompt is recorded
//!   (`input_hidden`);
//! - the alternate screen (vim, less, top) is not a shell, except where a
//!   learnt shell prompt is drawn there, a pager's or editor's shell escape
//!   (`!cmd`, `:!cmd`) is typed, or an editor started by edit-and-execute
//!   (Ctrl-X Ctrl-E, `fc`) is left;
//! - a line that leaves a command open (`shell.rs`: a loop, a here-document,
//!   a quote) goes through without a record and is joined with the next
//!   lines, whatever the continuation prompt says; the record is written at
//!   the Enter that completes it.
#![forbid(unsafe_code)]

mod keys;
mod screen;
mod shell;

use std::time::{Duration, Instant};

use keys::{KeyEvent, Keys, Line};
use screen::Screen;

pub use keys::MAX_LINE_BYTES;

/// Longest command text kept whole, in bytes. A longer one keeps its first
/// and last [`KEEP_BYTES`] joined by `…` (so the end, where `; rm -rf /`
/// would hide, is always on record).
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;
pub const KEEP_BYTES: usize = 8 * 1024;
/// A prompt kept in an `input_hidden` record, at most.
pub const MAX_PROMPT_BYTES: usize = 256;
/// Prompts longer than this are not ones we learn or strip.
const MAX_LEARN_PROMPT: usize = 1024;
/// Shell prompts remembered.
const MAX_PROMPTS: usize = 8;

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
    /// The text, bounded (see [`MAX_COMMAND_BYTES`]).
    pub text: String,
    pub truncated: bool,
    /// Length in bytes of the whole text (before bounding).
    pub length: usize,
    /// The screen confirmed the line the shell received.
    pub verified: bool,
    pub source: Source,
    /// What the shell may hold instead: the line before, whose end only
    /// the screen reported (a prompt drawn with no Enter, which a program
    /// can fake), joined to this one. Policy checks it too; never recorded.
    pub also: Option<Split>,
}

/// A line that may be the rest of the one before it (see `Command::also`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The line before, as the keys typed it (already on record).
    pub before: String,
    /// `before` and this line joined, as the shell would hold them.
    pub joined: String,
    /// `before` is a line the policy blocked whose cancel the screen did
    /// not show (a shell without a line editor holds it until a newline
    /// comes, `stty eol` handed it over): this line cannot run without it.
    pub blocked: bool,
}

/// What one decided Enter (or a late discovery) puts on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Command(Command),
    /// A line a policy blocked that the shell ran all the same: the keys
    /// sent to cancel it were bound to run it (`bind '"\C-e":
    /// accept-line'`, `stty eol ^E`). Unverified; the session must end.
    Unstopped(Command),
    /// A line typed while the target did not echo, at a prompt that is not
    /// the shell's: a secret, recorded without its content.
    Hidden {
        prompt: String,
    },
}

/// What [`Capture::input`] did with a chunk of operator bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// `bytes[..forward]` may go to the target now.
    pub forward: usize,
    /// `bytes[forward..consumed]` are an Enter held for a decision (empty
    /// when nothing is held); `bytes[consumed..]` were not looked at yet
    /// (after an Enter, or waiting behind a Ctrl-C).
    pub consumed: usize,
}

/// Bytes at the end of an output chunk searched for a learnt prompt, to
/// note what the shell filled in after it (`note_prefill`).
const PREFILL_TAIL: usize = 512;

/// How long a held Enter waits for the screen.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Waiting for an echo that does not come, at least this long after
    /// the last key or output (a password typed with nothing coming back).
    pub min_wait: Duration,
    /// Never hold an Enter longer than this.
    pub max_wait: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            min_wait: Duration::from_millis(300),
            max_wait: Duration::from_millis(2000),
        }
    }
}

/// Where a line was begun: what the screen showed around the cursor.
#[derive(Debug, Clone, Default)]
struct Start {
    /// Text left of the cursor (the prompt); `None` when the screen could
    /// not show it yet (keys typed right after an Enter, ahead of output).
    prompt: Option<String>,
    /// Text right of the cursor on its row (a right prompt).
    rprompt: String,
}

struct Held {
    line: Line,
    start: Start,
    /// When the Enter arrived.
    at: Instant,
}

/// Lines of one command not complete yet (forwarded without a record).
struct Multi {
    text: String,
    length: usize,
    verified: bool,
    source: Source,
    /// Prompts its later lines were typed at (continuation prompts).
    prompts: Vec<String>,
    cancelled: bool,
}

/// An editor started by edit-and-execute: what it shows runs when it exits.
#[derive(Default)]
struct Editor {
    /// The last screen seen inside the editor.
    snapshot: String,
    entered: bool,
}

enum Verdict {
    /// The screen shows exactly what the keys say.
    Exact(String, Source),
    /// The screen shows this; take it once the output has settled.
    Screen(String),
    /// Something else is on the prompt line (the echo is still coming, or
    /// output got in the way).
    Other,
    /// The screen shows this but it could still be a partial echo: take
    /// it only at the deadline.
    ScreenLate(String),
    /// Nothing typed, and this after a shell's prompt: a line the shell
    /// filled in itself (the next history line after Ctrl-O, zsh's
    /// accept-and-hold or get-line), which the Enter runs. Only the screen
    /// says so: unverified.
    Prefilled(String),
    /// Nothing after the prompt.
    NoEcho,
}

/// The capture engine for one session.
pub struct Capture {
    keys: Keys,
    screen: Screen,
    timing: Timing,
    /// The line being typed, from its first key.
    start: Option<Start>,
    held: Option<Held>,
    multi: Option<Multi>,
    editor: Option<Editor>,
    /// Learnt shell prompts with how often a command was confirmed there.
    prompts: Vec<(String, u32)>,
    /// When the last key went to the target, and whether output came since.
    last_key: Option<Instant>,
    out_since_key: bool,
    last_out: Option<Instant>,
    /// An Enter was forwarded and no output has come since: the screen
    /// does not show the next prompt yet.
    after_enter: bool,
    /// Smoothed key → output delay (the echo round trip).
    rtt: Duration,
    alt_before: bool,
    /// Output since the last key held a line feed: the shell may have
    /// moved on to a new line (see `accepted_without_enter`).
    lf_since_key: bool,
    /// Output since the last key switched bracketed paste off: bash's and
    /// zsh's line editors do that when they hand a line to the shell.
    editor_left_since_key: bool,
    /// The text of a line taken as accepted without an Enter: until the
    /// next decided Enter, the shell may still hold it (the prompt that
    /// said otherwise may have been drawn by a program).
    split_from: Option<String>,
    /// The text a Ctrl-C cleared from the keys' model, until output goes
    /// down a line (the interrupt worked: the shell drew a new prompt).
    /// Still there at an Enter the screen cannot check (echo off), the
    /// shell may run it with what was typed after it (`stty intr undef`
    /// makes Ctrl-C a key readline ignores).
    interrupted: Option<String>,
    /// When the operator's Ctrl-C went to the target, until its answer
    /// (output going down a line) or `Timing::max_wait`: keys after it wait.
    /// bash and zsh given Ctrl-C and keys in one read keep the line and
    /// drop its first key (`xtouch` on the screen, `touch` run).
    interrupt_at: Option<Instant>,
    /// Keys are waiting behind `interrupt_at` (the relay must come back).
    keys_behind_interrupt: bool,
    /// Ctrl-Cs sent whose answer (a read with a line feed) has not come:
    /// a late answer to an earlier one must not let keys go that a later
    /// one is still being handled for.
    interrupts_owed: u32,
    /// A line feed came since the last answered (or sent) Ctrl-C: the
    /// answer has begun; it is complete at a shell's prompt at the cursor,
    /// or when the output has been quiet for `Timing::min_wait`.
    interrupt_lf: bool,
    /// The first key after a block's cancel keys went, while their effect
    /// is watched (`cancelling`): keys wait until the screen has shown it,
    /// at most `Timing::max_wait` from then, so that the shell's redraw for
    /// the cancel is not taken for its answer to an operator's Ctrl-C.
    cancel_hold: Option<Instant>,
    keys_behind_cancel: bool,
    /// Keys went after `Timing::max_wait` with an answer still owed: the
    /// shell may have dropped one, so the next decided line is recorded
    /// `verified: false` (and `policy_unverified` applies).
    interrupt_raced: bool,
    /// Text the shell put after its prompt with no key typed (zsh's pushed
    /// line coming back, `print -z`, accept-and-hold, Ctrl-O's next line),
    /// as last seen before the cursor; until a key or a decided Enter. A
    /// bare Enter runs it even when a background job has since cleared or
    /// scrolled the screen (`prefill_out_of_sight`).
    seen_prefill: Option<String>,
    /// The cursor stood at a learnt prompt after the last output looked at
    /// (`note_prefill`): the shell's redraw of its line may come in the
    /// next reads, without the prompt in them.
    prefill_watch: bool,
    /// The prompt of the last decided line (for `blocked`).
    decided_prompt: String,
    /// A blocked line, while the keys sent to cancel it take effect.
    cancelling: Option<Cancelling>,
    /// A blocked line and its prompt, until the screen shows the cancel
    /// cleared it: until then the shell may hold it, and the next Enter
    /// would run it (see `Split::blocked`). Also dropped when a fresh
    /// prompt is drawn on a new row with nothing typed, or after the
    /// operator's Ctrl-C with only the echo of the keys typed since
    /// (`interrupt_drew_a_prompt`).
    pending_block: Option<(String, String)>,
    /// The operator pressed Ctrl-C while a blocked line was held, and
    /// output went down a line after it (the shell's new prompt may come
    /// in a later read, after keys typed ahead of it).
    block_interrupted: bool,
    lf_after_interrupt: bool,
    /// The line being decided was read as a buffer of several rows behind
    /// this prompt (`buffer_text`).
    buffer_prompt: Option<String>,
    /// The last decided line was such a buffer.
    decided_buffer: bool,
}

/// A line a policy blocked, watched until the screen shows what the cancel
/// keys did (or the next Enter is decided): a cancel clears the line and
/// leaves the cursor after the prompt; a shell whose cancel keys run lines
/// leaves it standing and goes on below it.
struct Cancelling {
    /// The whole blocked command, and its last line (what the shell's
    /// line editor holds).
    command: String,
    text: String,
    prompt: String,
    /// Rows other than the cursor's showing the prompt and (the start of)
    /// the line when it was blocked: older runs of the same text.
    standing: usize,
    /// Line feeds in the output since.
    lfs: usize,
    /// Output bytes looked at one by one (see `feed_watching_cancel`).
    scanned: usize,
}

/// How far above the cursor a line editor's buffer is looked for.
const MAX_BUFFER_ROWS: usize = 20;

/// How much output after a cancel is fed a byte at a time.
const CANCEL_SCAN: usize = 16 * 1024;

impl Capture {
    pub fn new(cols: u16, rows: u16) -> Self {
        Self::with_timing(cols, rows, Timing::default())
    }

    pub fn with_timing(cols: u16, rows: u16, timing: Timing) -> Self {
        Capture {
            keys: Keys::new(),
            screen: Screen::new(cols, rows),
            timing,
            start: None,
            held: None,
            multi: None,
            editor: None,
            prompts: Vec::new(),
            last_key: None,
            out_since_key: false,
            last_out: None,
            after_enter: false,
            rtt: Duration::from_millis(20),
            alt_before: false,
            lf_since_key: false,
            editor_left_since_key: false,
            split_from: None,
            interrupted: None,
            interrupt_at: None,
            keys_behind_interrupt: false,
            interrupts_owed: 0,
            interrupt_lf: false,
            cancel_hold: None,
            keys_behind_cancel: false,
            interrupt_raced: false,
            seen_prefill: None,
            prefill_watch: false,
            decided_prompt: String::new(),
            cancelling: None,
            pending_block: None,
            block_interrupted: false,
            lf_after_interrupt: false,
            buffer_prompt: None,
            decided_buffer: false,
        }
    }

    /// An Enter is held, waiting for [`Capture::settle`].
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// The held line was typed ahead of the output (its prompt was not on
    /// the screen yet). For tools that replay recorded sessions, where
    /// output after a held Enter may belong to earlier lines.
    pub fn held_typed_ahead(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.start.prompt.is_none())
    }

    /// The screen line the cursor is on (for replay tools and tests).
    pub fn cursor_line(&mut self) -> String {
        self.screen.sync();
        self.screen.cursor_line()
    }

    /// Operator bytes, exactly as typed. Takes keys up to the first Enter,
    /// which it holds (see [`Gate`]); call again with the rest only after
    /// [`Capture::settle`] released it. Stops after a Ctrl-C: the keys
    /// behind it are taken (`Gate` of nothing until then) once the shell
    /// has answered it, or at [`Capture::deadline`].
    pub fn input(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<Record>) -> Gate {
        if self.held.is_some() || self.waiting_for_cancel(now) || self.waiting_for_interrupt(now) {
            return Gate {
                forward: 0,
                consumed: 0,
            };
        }
        if !bytes.is_empty() && self.keys.at_key_boundary() {
            self.record_accepted_without_enter(out);
        }
        let mut seq_start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if self.keys.at_key_boundary() {
                seq_start = i;
            }
            if self.keys.is_fresh() && b != b'\r' && b != b'\n' && self.start.is_none() {
                self.begin_line(out);
            }
            match self.keys.push(b) {
                KeyEvent::None => {}
                KeyEvent::Cancel(text) => {
                    // The operator's own interrupt: what the shell draws for
                    // it (a line feed, a prompt below the blocked line) is
                    // not the cancel keys running a blocked line.
                    self.cancelling = None;
                    // A held blocked line goes only once the screen shows
                    // the shell's new prompt after this Ctrl-C.
                    self.block_interrupted = self.pending_block.is_some();
                    self.lf_after_interrupt = false;
                    // Until output goes down a line (the shell's new
                    // prompt), the text may still be in the shell.
                    if !text.trim().is_empty() {
                        self.interrupted = Some(text);
                    }
                    if let Some(m) = &mut self.multi {
                        // Ctrl-C at a continuation prompt usually drops the
                        // command; the next prompt tells (`begin_line`).
                        m.cancelled = true;
                        self.start = None;
                    }
                    // Keys after it go once the shell has answered it
                    // (not in a full-screen program: no shell line there).
                    if !self.screen.alternate() {
                        self.interrupt_at = Some(now);
                        self.interrupts_owed += 1;
                        self.interrupt_lf = false;
                        self.key_sent(now);
                        return Gate {
                            forward: i + 1,
                            consumed: i + 1,
                        };
                    }
                }
                KeyEvent::Enter(line) => {
                    let start = self.start.take().unwrap_or_default();
                    self.held = Some(Held {
                        line,
                        start,
                        at: now,
                    });
                    if seq_start > 0 {
                        self.key_sent(now);
                    }
                    return Gate {
                        forward: seq_start,
                        consumed: i + 1,
                    };
                }
            }
        }
        if !bytes.is_empty() {
            self.key_sent(now);
        }
        Gate {
            forward: bytes.len(),
            consumed: bytes.len(),
        }
    }

    /// True while keys must wait for the shell's answer to a Ctrl-C: a
    /// line feed, or `Timing::max_wait` (2 s). Not the shorter wait of an
    /// Enter's echo: a shell that takes longer than that to answer (a
    /// loaded target) and gets the keys first drops one of them.
    fn waiting_for_interrupt(&mut self, now: Instant) -> bool {
        let Some(at) = self.interrupt_at else {
            return false;
        };
        if self.interrupt_quiet_until().is_some_and(|q| now >= q) {
            // Answered, at no prompt we know (a REPL, a program).
            self.interrupts_owed = self.interrupts_owed.saturating_sub(1);
            self.interrupt_lf = false;
            if self.interrupts_owed == 0 {
                self.interrupt_at = None;
                self.keys_behind_interrupt = false;
                return false;
            }
        }
        if now < at + self.timing.max_wait {
            self.keys_behind_interrupt = true;
            return true;
        }
        self.interrupt_at = None;
        self.keys_behind_interrupt = false;
        self.interrupt_raced |= self.interrupts_owed > 0;
        false
    }

    /// True while keys must wait for a block's cancel keys to show their
    /// effect (`cancel_hold`).
    fn waiting_for_cancel(&mut self, now: Instant) -> bool {
        if self.cancelling.is_none() {
            self.keys_behind_cancel = false;
            return false;
        }
        let from = *self.cancel_hold.get_or_insert(now);
        self.keys_behind_cancel = now < from + self.timing.max_wait;
        self.keys_behind_cancel
    }

    /// When an answer that went down a line and then stopped counts as
    /// complete.
    fn interrupt_quiet_until(&self) -> Option<Instant> {
        let last = self.last_out?;
        self.interrupt_lf.then(|| last + self.timing.min_wait)
    }

    /// Output while a Ctrl-C is owed its answer: a line feed begins it
    /// (bash, zsh and fish go down a line), a shell's prompt at the cursor
    /// after it ends it (zsh goes down a line first and still reads keys
    /// into the old line until it has redrawn).
    fn note_interrupt_answer(&mut self, bytes: &[u8]) {
        if self.interrupts_owed == 0 {
            return;
        }
        self.interrupt_lf |= bytes.contains(&b'\n');
        if !self.interrupt_lf {
            return;
        }
        self.screen.sync();
        let before = self.screen.before_cursor();
        if before.trim().is_empty() || !self.is_shell_prompt(&before) {
            return;
        }
        self.interrupts_owed -= 1;
        self.interrupt_lf = false;
        if self.interrupts_owed == 0 {
            self.interrupt_at = None;
            self.keys_behind_interrupt = false;
        }
    }

    /// How long an echo may take: four round trips, within the bounds.
    fn echo_wait(&self) -> Duration {
        (self.rtt * 4).clamp(self.timing.min_wait, self.timing.max_wait)
    }

    fn key_sent(&mut self, now: Instant) {
        self.seen_prefill = None;
        self.prefill_watch = false;
        self.last_key = Some(now);
        self.out_since_key = false;
        self.lf_since_key = false;
        self.editor_left_since_key = false;
    }

    /// The operator began a line: remember what the screen shows as its
    /// prompt, and settle what an earlier open command became.
    fn begin_line(&mut self, out: &mut Vec<Record>) {
        self.screen.sync();
        let prompt = if self.after_enter {
            None
        } else {
            let p = self.screen.before_cursor();
            // A line the shell filled in (Ctrl-O's next history line, zsh's
            // accept-and-hold) stands after the prompt: the learnt prompt
            // it begins with is the prompt, the rest is the line.
            let p = self
                .prompts
                .iter()
                .map(|(q, _)| q.as_str())
                .filter(|q| !q.trim().is_empty() && p.len() > q.len() && p.starts_with(*q))
                .max_by_key(|q| q.len())
                .map_or(p.clone(), str::to_string);
            (p.len() <= MAX_LEARN_PROMPT).then_some(p)
        };
        if let (Some(p), Some(m)) = (&prompt, &self.multi) {
            // A learnt main prompt where a continuation was expected: the
            // shell ran the text (our lexer was wrong) or dropped it.
            let main = self.is_learnt(p) && !m.prompts.iter().any(|q| q == p);
            if main {
                let m = self.multi.take().expect("checked");
                if !m.cancelled {
                    out.push(Record::Command(bounded(m.text, m.length, false, m.source)));
                }
            }
        }
        self.start = Some(Start {
            prompt,
            rprompt: self.screen.right_of_cursor(),
        });
    }

    /// When the relay must call [`Capture::settle`] at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        let interrupt = self
            .interrupt_at
            .filter(|_| self.keys_behind_interrupt)
            .map(|at| {
                let late = at + self.timing.max_wait;
                self.interrupt_quiet_until().map_or(late, |q| q.min(late))
            });
        let cancel = self
            .cancel_hold
            .filter(|_| self.keys_behind_cancel && self.cancelling.is_some())
            .map(|from| from + self.timing.max_wait);
        let interrupt = match (interrupt, cancel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(h) = self.held.as_ref() else {
            return interrupt;
        };
        let wait = self.echo_wait();
        // Wait for an echo counting from the last sign of life: keys typed
        // long ago with nothing coming back are decided at once.
        let mut last = self.last_key.unwrap_or(h.at);
        if let Some(o) = self.last_out {
            last = last.max(o);
        }
        Some((last + wait).min(h.at + self.timing.max_wait))
    }

    /// Decides the held Enter if the screen allows it (or the deadline has
    /// passed, or `force`). True when the Enter is released: its records are
    /// in `out` and it may be forwarded.
    pub fn settle(&mut self, now: Instant, force: bool, out: &mut Vec<Record>) -> bool {
        let Some(deadline) = self.deadline() else {
            return true;
        };
        let late = force || now >= deadline;
        // Output arrived after the last key and has been quiet for a while:
        // the line editor has drawn what it will draw.
        let quiet = self.out_since_key
            && self
                .last_out
                .is_some_and(|o| now.saturating_duration_since(o) >= self.quiet());
        self.screen.sync();
        let h = self.held.take().expect("deadline implies a held line");
        if self.decide(&h, late, late || quiet, out) {
            self.after_enter = true;
            self.start = None;
            self.interrupted = None;
            self.seen_prefill = None;
            self.prefill_watch = false;
            self.interrupts_owed = 0;
            self.interrupt_lf = false;
            self.interrupt_raced = false;
            true
        } else {
            self.held = Some(h);
            false
        }
    }

    fn quiet(&self) -> Duration {
        (self.rtt / 2).clamp(Duration::from_millis(10), Duration::from_millis(100))
    }

    fn decide(&mut self, h: &Held, late: bool, settled: bool, out: &mut Vec<Record>) -> bool {
        self.buffer_prompt = None;
        let alt = self.screen.alternate();
        if h.line.editor && !alt {
            // Ctrl-X Ctrl-E: nothing runs until the editor exits.
            self.editor = Some(Editor::default());
            return true;
        }
        if alt && !self.shell_prompt_on_alt(h) {
            return self.decide_alternate(h, settled, out);
        }
        if self.bare_enter_on_a_held_block(h, out) {
            return true;
        }
        let (text, verified, source) = match self.verdict(h) {
            Verdict::Exact(t, src) => (t, true, src),
            Verdict::Screen(t) if settled => (t, true, Source::Screen),
            Verdict::ScreenLate(t) if late => (t, true, Source::Screen),
            Verdict::Prefilled(t) => (t, false, Source::Screen),
            _ if !late => return false,
            Verdict::Screen(t) | Verdict::ScreenLate(t) => (t, true, Source::Screen),
            Verdict::Other => {
                let prompt = self.prompt_for_hidden(h);
                if looks_masked(&self.screen.cursor_line()) || !self.is_shell_prompt(&prompt) {
                    out.push(Record::Hidden {
                        prompt: bound_prompt(&prompt),
                    });
                    return true;
                }
                if let Some((prompt, buffer)) = self.buffer_text(h) {
                    self.buffer_prompt = Some(prompt);
                    (buffer, false, Source::Screen)
                } else {
                    (self.with_interrupted(&h.line), false, Source::Keys)
                }
            }
            Verdict::NoEcho => {
                let keys = self.with_interrupted(&h.line);
                if keys.trim().is_empty() {
                    // An empty line: nothing to run, nothing to record.
                    return true;
                }
                let prompt = self.prompt_for_hidden(h);
                if self.multi.is_none() && !self.is_shell_prompt(&prompt) {
                    out.push(Record::Hidden {
                        prompt: bound_prompt(&prompt),
                    });
                    return true;
                }
                (keys, false, Source::Keys)
            }
        };
        if text.trim().is_empty() {
            return true;
        }
        // The screen's line began with a shell prompt of its own: the line
        // was begun below it in a buffer of several rows (zsh's and fish's
        // Alt-Enter) and the cursor moved up into it. The whole buffer runs.
        let (text, verified, source) = match self.buffer_text(h) {
            Some((prompt, buffer))
                if source == Source::Screen && self.starts_with_prompt(&text) =>
            {
                self.buffer_prompt = Some(prompt);
                (buffer, false, Source::Screen)
            }
            _ => (text, verified, source),
        };
        if verified && self.multi.is_none() {
            if let Some(p) = self.matched_prompt(h) {
                self.learn(p);
            }
        }
        let length = text.len() + h.line.lost_bytes;
        let prompt = h.start.prompt.clone().unwrap_or_default();
        // A buffer of several rows is the line editor's, all of it: a block
        // leaves all of it held, behind the buffer's prompt.
        self.decided_buffer = self.buffer_prompt.is_some();
        self.decided_prompt = self.buffer_prompt.take().unwrap_or_else(|| prompt.clone());
        // After a line taken as accepted without an Enter, this one may be
        // its continuation (the "prompt" in between a program's drawing):
        // unverified, and the policy also sees the two joined.
        // A blocked line the cancel was never seen to clear: the shell may
        // hold it, and this Enter would run it (if this line is blocked
        // too, `blocked` watches again).
        self.cancelling = None;
        let pending = self.pending_block.take().map(|(_, blocked)| blocked);
        let blocked = pending.is_some();
        let split = pending.or(self.split_from.take());
        // An Enter sent with an Esc may not have run the line (bash's emacs
        // mode rings the bell); the next Enter records it again if so.
        // Keys that went while a Ctrl-C was still being answered: the shell
        // may have dropped one of them (`interrupt_raced`).
        let verified = verified && split.is_none() && !h.line.escaped_end && !self.interrupt_raced;
        let before = out.len();
        self.command(text, length, verified, source, prompt, out);
        if let Some(prev) = split {
            attach_split(&mut out[before..], &h.line, &prev, blocked);
        }
        true
    }

    /// A bare Enter where the shell may still hold a blocked line (its
    /// cancel was never seen to work): that line is what runs, whatever the
    /// screen shows now (a program may have cleared it). Recorded for the
    /// policy, which blocks it again.
    fn bare_enter_on_a_held_block(&mut self, h: &Held, out: &mut Vec<Record>) -> bool {
        if !h.line.text.trim().is_empty() || !h.line.cooked.iter().all(u8::is_ascii_whitespace) {
            return false;
        }
        let Some((prompt, held)) = self.pending_block.take() else {
            return false;
        };
        // Blocked again, the watch starts over at the same prompt.
        self.decided_prompt = prompt;
        self.cancelling = None;
        let len = held.len();
        let mut c = bounded(held.clone(), len, false, Source::Keys);
        c.also = Some(Split {
            before: held.clone(),
            joined: held,
            blocked: true,
        });
        out.push(Record::Command(c));
        true
    }

    /// The cursor stands right after a learnt shell prompt, or after the
    /// prompt of a blocked line the shell may hold (learnt or not: a shell
    /// whose lines were all unverified so far).
    fn at_a_known_prompt(&self) -> bool {
        let before = self.screen.before_cursor();
        self.is_learnt(&before)
            || self
                .pending_block
                .as_ref()
                .is_some_and(|(p, _)| !p.trim().is_empty() && *p == before)
    }

    /// The screen shows the shell no longer holds a blocked line: a fresh
    /// prompt on a new row with nothing typed (the shell dropped its input,
    /// Ctrl-C, or ran it with an Enter), or the prompt an operator's Ctrl-C
    /// brought (`interrupt_drew_a_prompt`).
    fn held_block_gone(&self, bytes: &[u8]) -> bool {
        if !self.screen.right_of_cursor().trim().is_empty() {
            return false;
        }
        let fresh = bytes.contains(&b'\n') && self.keys.is_fresh() && self.at_a_known_prompt();
        fresh || self.interrupt_drew_a_prompt()
    }

    /// After the operator's Ctrl-C, output went down a line and the cursor
    /// stands after a known prompt followed by no more than the echo of the
    /// keys typed since (typed ahead of the new prompt): the interrupt
    /// worked and the shell dropped what it held. Keys that edited, or
    /// whose effect only the screen knows, never count, nor keys that hold
    /// the prompt's text themselves: their echo could draw a "prompt".
    fn interrupt_drew_a_prompt(&self) -> bool {
        if !self.lf_after_interrupt {
            return false;
        }
        let typed = match &self.held {
            Some(h) => h.line.typed_text().map(str::to_string),
            None => self.keys.typed_text(),
        };
        let Some(typed) = typed else {
            return false;
        };
        let before = self.screen.before_cursor();
        let pending = self.pending_block.as_ref().map(|(p, _)| p);
        self.prompts
            .iter()
            .map(|(p, _)| p)
            .chain(pending)
            .filter(|p| !p.trim().is_empty() && !typed.contains(p.as_str()))
            .any(|p| {
                before
                    .strip_prefix(p.as_str())
                    .is_some_and(|echo| typed.starts_with(echo))
            })
    }

    /// The text starts with a learnt shell prompt.
    fn starts_with_prompt(&self, text: &str) -> bool {
        self.prompts
            .iter()
            .any(|(p, _)| !p.trim().is_empty() && text.starts_with(p.as_str()))
    }

    /// A line editor's buffer of several rows around the cursor, after
    /// history or editing keys only the screen follows (a recalled entry
    /// of several lines, zsh's and fish's multi-line editing): from the
    /// nearest row at or above the cursor that begins with a learnt shell
    /// prompt down to the last row of text below the cursor, the prompt
    /// taken off. `None` unless it spans more than one line.
    fn buffer_text(&self, h: &Held) -> Option<(String, String)> {
        if !h.line.unreliable || self.screen.alternate() {
            return None;
        }
        let rows = self.screen.rows_wrapped();
        let cursor = self.screen.cursor_row().min(rows.len().saturating_sub(1));
        let (top, prompt) = (cursor.saturating_sub(MAX_BUFFER_ROWS)..=cursor)
            .rev()
            .find_map(|i| {
                self.prompts
                    .iter()
                    .filter(|(p, _)| !p.trim().is_empty() && rows[i].0.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len())
                    .map(|(p, _)| (i, p.clone()))
            })?;
        let mut bottom = cursor;
        while bottom + 1 < rows.len() && !rows[bottom + 1].0.is_empty() {
            bottom += 1;
        }
        if bottom == top {
            return None;
        }
        // Another prompt below it: earlier output, not one buffer.
        let prompt_row = |row: &str| {
            self.prompts.iter().any(|(p, _)| {
                let p = p.trim_end();
                !p.is_empty() && row.starts_with(p)
            })
        };
        if rows[top + 1..=bottom].iter().any(|(r, _)| prompt_row(r)) {
            return None;
        }
        let mut text = rows[top].0[prompt.len()..].to_string();
        for i in top + 1..=bottom {
            if !rows[i - 1].1 {
                text.push('\n');
            }
            text.push_str(&rows[i].0);
        }
        (text.contains('\n') && !text.trim().is_empty()).then_some((prompt, text))
    }

    /// What the keys say the line is, after the text of a Ctrl-C that may
    /// not have interrupted (see `interrupted`).
    fn with_interrupted(&self, line: &Line) -> String {
        match &self.interrupted {
            // Readline's model: the kept text and the keys typed after it.
            Some(cut) => format!("{cut}{}", line.text).trim().to_string(),
            None => key_text(line),
        }
    }

    /// A decided line: join it to an open command, or record it.
    fn command(
        &mut self,
        text: String,
        length: usize,
        verified: bool,
        source: Source,
        prompt: String,
        out: &mut Vec<Record>,
    ) {
        let m = match self.multi.take() {
            Some(mut m) => {
                m.text.push('\n');
                m.text.push_str(&text);
                m.length += 1 + length;
                m.verified &= verified;
                if source == Source::Screen {
                    m.source = Source::Screen;
                }
                if m.prompts.len() < MAX_PROMPTS {
                    m.prompts.push(prompt);
                }
                m.cancelled = false;
                m
            }
            None => Multi {
                text,
                length,
                verified,
                source,
                prompts: Vec::new(),
                cancelled: false,
            },
        };
        if shell::looks_complete(&m.text) || m.text.len() > MAX_LINE_BYTES {
            self.editor = starts_editor(&m.text).then(Editor::default);
            out.push(Record::Command(bounded(
                m.text, m.length, m.verified, m.source,
            )));
        } else {
            self.multi = Some(m);
        }
    }

    /// On the alternate screen: a shell escape of a pager or editor, the
    /// exit of an edit-and-execute editor, or keys for a program.
    fn decide_alternate(&mut self, h: &Held, settled: bool, out: &mut Vec<Record>) -> bool {
        let typed = key_text(&h.line);
        let shown = self.screen.cursor_line();
        let escape = shell_escape(&shown);
        let quits = self.editor.is_some() && editor_quit(&shown);
        if escape.is_none() && !quits {
            // The echo of an escape may still be on its way.
            let maybe = typed.contains(['!', '|', ':']) || h.line.unreliable;
            return !maybe || settled;
        }
        if let Some(cmd) = escape {
            let cmd = cmd.trim().to_string();
            if !cmd.is_empty() {
                let len = cmd.len();
                out.push(Record::Command(bounded(cmd, len, true, Source::Screen)));
            }
        } else {
            let ed = self.editor.take().unwrap_or_default();
            let mut text = editor_text(&self.screen.contents());
            if text.is_empty() {
                text = editor_text(&ed.snapshot);
            }
            if !text.is_empty() {
                let len = text.len();
                out.push(Record::Command(bounded(text, len, false, Source::Screen)));
            }
        }
        true
    }

    /// A learnt shell prompt drawn on the alternate screen (a prompt that
    /// switches screens, or `cat` of a file that did).
    fn shell_prompt_on_alt(&self, h: &Held) -> bool {
        let before = match &h.start.prompt {
            Some(p) => p.clone(),
            None => self.screen.before_cursor(),
        };
        self.is_learnt(&before)
            || looks_like_shell_prompt(&before) && !looks_secret(&before)
            || self
                .prompts
                .iter()
                .any(|(p, _)| self.screen.cursor_line().starts_with(p.trim_end()))
    }

    /// Enter during readline's incremental search accepts the match the
    /// search line shows: `(reverse-i-search)`needle': cmd`.
    fn search_match(&self) -> Option<String> {
        let line = self.screen.cursor_line();
        let l = line.trim_start();
        if l.starts_with("(reverse-i-search)")
            || l.starts_with("(i-search)")
            || l.starts_with("(failed reverse-i-search)")
            || l.starts_with("(failed i-search)")
        {
            if let Some(k) = l.find("': ") {
                let found = l[k + 3..].trim();
                if !found.is_empty() && self.out_since_key {
                    return Some(found.to_string());
                }
            }
        }
        None
    }

    /// What follows each candidate prompt on the screen (the line's own,
    /// the learnt ones, none), as the whole line (without a right prompt
    /// drawn when the line began, zsh `RPROMPT`) and up to the cursor:
    /// `(prompt, text, text normalized)`. Enter runs the whole line
    /// wherever the cursor is (readline, zle, fish), so the whole line
    /// comes first where keys may have left the cursor inside it;
    /// otherwise text right of the cursor was never typed (fish's
    /// autosuggestion) and the line up to the cursor comes first.
    fn echoes<'a>(
        &'a self,
        h: &'a Held,
        lines_up: usize,
        octal: bool,
    ) -> Vec<(&'a str, String, String)> {
        let mut prefixes = prefixes_of(h, &self.prompts);
        prefixes.push("");
        let rp = h.start.rprompt.as_str();
        let order = if h.line.whole {
            [false, true]
        } else {
            [true, false]
        };
        let cursor_line = self.screen.cursor_line();
        let mut seen: Vec<(&str, String, String)> = Vec::new();
        for prefix in prefixes {
            let p = prefix.trim_end();
            for upto in order {
                let shown = match self.screen.text_from_prompt(p, upto, lines_up) {
                    Some(s) => s,
                    None if !p.is_empty() => match cursor_line.rfind(p) {
                        // The prompt after output that did not end its line
                        // (`read -s` answers Enter with nothing).
                        Some(k) if lines_up == 0 => cursor_line[k..].to_string(),
                        _ => continue,
                    },
                    None => continue,
                };
                let Some(mut rest) = shown.strip_prefix(p) else {
                    continue;
                };
                if !upto && !rp.is_empty() && rest.trim_end().ends_with(rp) {
                    let r = rest.trim_end();
                    rest = &r[..r.len() - rp.len()];
                }
                let rest = rest.trim();
                if !rest.is_empty() {
                    seen.push((p, rest.to_string(), norm_screen(rest, octal)));
                }
            }
        }
        seen
    }

    /// After output with no key typed since the last Enter: when it ends
    /// near a learnt prompt, what the shell filled in after that prompt
    /// (nothing, when the prompt stands empty). Bulk output is not looked
    /// at: only a chunk with a learnt prompt in its last bytes is.
    fn note_prefill(&mut self, bytes: &[u8]) {
        // A prompt line does not end in a line feed.
        if self.held.is_some()
            || !self.keys.is_fresh()
            || bytes.last() == Some(&b'\n')
            || self.screen.alternate()
        {
            return;
        }
        let end = &bytes[bytes.len().saturating_sub(PREFILL_TAIL)..];
        let near = self.prompts.iter().any(|(p, _)| {
            let p = p.trim_end().as_bytes();
            !p.is_empty() && end.windows(p.len()).any(|w| w == p)
        });
        if !near && !self.prefill_watch {
            return;
        }
        self.screen.sync();
        let before = self.screen.before_cursor();
        for (p, _) in &self.prompts {
            let p = p.trim_end();
            if p.is_empty() || !self.is_shell_prompt(p) {
                continue;
            }
            if let Some(rest) = before.strip_prefix(p) {
                let rest = rest.trim();
                self.seen_prefill = (!rest.is_empty()).then(|| rest.to_string());
                self.prefill_watch = true;
                return;
            }
        }
        // Not at a prompt (cleared, scrolled, a job's output): what was
        // seen stays.
        self.prefill_watch = false;
    }

    /// A bare Enter where the cursor's row shows no shell prompt at all
    /// (a background job cleared or scrolled the screen after the shell
    /// drew its line): what was last seen filled in after the prompt.
    fn prefill_out_of_sight(&self) -> Option<String> {
        let text = self.seen_prefill.as_ref()?;
        let before = self.screen.before_cursor();
        let at_a_prompt = self
            .prompts
            .iter()
            .any(|(p, _)| !p.trim().is_empty() && before.starts_with(p.trim_end()))
            || looks_like_shell_prompt(&before);
        (!at_a_prompt).then(|| text.clone())
    }

    /// What a bare Enter runs: text after a shell's prompt that no key
    /// typed (the shell filled the line in). Up to the cursor, so a right
    /// prompt is never taken for it.
    fn prefilled(&self, h: &Held) -> Option<String> {
        for p in prefixes_of(h, &self.prompts) {
            let p = p.trim_end();
            if p.is_empty() || !self.is_shell_prompt(p) {
                continue;
            }
            let Some(shown) = self.screen.text_from_prompt(p, true, 0) else {
                continue;
            };
            match shown.strip_prefix(p).map(str::trim) {
                Some(rest) if !rest.is_empty() => return Some(rest.to_string()),
                _ => {}
            }
        }
        None
    }

    /// Compares the screen with the keys.
    // long: the candidates in the order they are tried (exact keys,
    // canonical mode, what the shell filled in, whole line, up to the
    // cursor, late); that order is the rule (docs/audit-format.md).
    fn verdict(&self, h: &Held) -> Verdict {
        let rl = h.line.text.clone();
        let cooked = String::from_utf8_lossy(&h.line.cooked).into_owned();
        let plain = !h.line.edited && !h.line.unreliable;
        if h.line.unreliable {
            if let Some(found) = self.search_match() {
                return Verdict::Screen(found);
            }
        }
        // A multi-line buffer (a paste, a recalled loop) spans that many
        // more screen lines above the cursor.
        let lines_up = rl.matches('\n').count();
        // Readline draws bytes that are not UTF-8 as `\ooo`; only then is a
        // backslash and three digits not literal text.
        let octal = rl.contains('\u{fffd}') || cooked.contains('\u{fffd}');
        let keys_n = norm_keys(rl.trim());
        let cooked_n = norm_keys(cooked.trim());
        let seen = self.echoes(h, lines_up, octal);
        // First the screen showing exactly the keys, after any prompt.
        for (_, _, shown_n) in &seen {
            if !keys_n.is_empty() && *shown_n == keys_n {
                return Verdict::Exact(rl.trim().to_string(), source_of(plain));
            }
            if !cooked_n.is_empty() && *shown_n == cooked_n {
                return Verdict::Exact(cooked.trim().to_string(), Source::Keys);
            }
        }
        // The keys after a prompt the line was not begun at (typed ahead of
        // the output, or before the prompt was drawn): the echo ends the
        // line, and what stands before it is a shell's prompt.
        if plain && !keys_n.is_empty() {
            for (p, _, shown_n) in &seen {
                if !p.is_empty() {
                    continue;
                }
                if let Some(before) = shown_n.strip_suffix(&format!(" {keys_n}")) {
                    let typed_ahead = h.start.prompt.is_none();
                    if typed_ahead || self.is_shell_prompt(before) {
                        return Verdict::Exact(rl.trim().to_string(), Source::Keys);
                    }
                }
            }
        }
        if keys_n.is_empty() && cooked_n.is_empty() && lines_up == 0 {
            if let Some(text) = self.prefilled(h).or_else(|| self.prefill_out_of_sight()) {
                return Verdict::Prefilled(text);
            }
        }
        let mut other = false;
        for (p, rest, shown_n) in &seen {
            if p.is_empty()
                && !h
                    .start
                    .prompt
                    .as_deref()
                    .is_some_and(|s| s.trim().is_empty())
            {
                // A line longer than the screen: its prompt scrolled away,
                // and an echo that shows the line's end shows all of it
                // (echo comes in order).
                if plain && shown_n.len() >= 512 && keys_n.ends_with(shown_n.as_str()) {
                    return Verdict::Exact(rl.trim().to_string(), Source::Keys);
                }
                other = true;
                continue;
            }
            if plain && !keys_n.is_empty() {
                // A Ctrl-C that did not cancel (the screen has more in
                // front), or keys that partly went to a program that read
                // them without echo (the screen has less): the shell has
                // what the screen shows.
                if shown_n.ends_with(&keys_n) {
                    return Verdict::Screen(rest.clone());
                }
                // Only when the line did not begin at a shell's prompt:
                // keys typed at one went to the shell, whatever is drawn
                // after them (a background job can print a fake prompt
                // mid-line, and the screen then shows only the line's
                // end; the shell runs all of it).
                let at_shell = h
                    .start
                    .prompt
                    .as_deref()
                    .is_some_and(|sp| !sp.trim().is_empty() && self.is_shell_prompt(sp));
                if keys_n.ends_with(shown_n.as_str()) && !p.is_empty() && !at_shell {
                    return Verdict::ScreenLate(rest.clone());
                }
            }
            if !plain && self.out_since_key {
                // Completion, history, search: only the screen knows.
                // Pasted keys must all show up, in order, or the screen may
                // be showing a prompt's own text.
                let typed: String = rl.chars().filter(|c| !c.is_whitespace()).collect();
                if h.line.unreliable || is_subsequence(&typed, rest) {
                    return Verdict::Screen(rest.clone());
                }
            }
            other = true;
        }
        if other {
            Verdict::Other
        } else {
            Verdict::NoEcho
        }
    }

    /// The prompt a confirmed line was typed at, to learn it.
    fn matched_prompt(&self, h: &Held) -> Option<String> {
        if self.screen.alternate() {
            return None;
        }
        let p = h.start.prompt.clone()?;
        if p.trim().is_empty() || p.len() > MAX_LEARN_PROMPT || looks_secret(&p) {
            return None;
        }
        Some(p)
    }

    fn learn(&mut self, p: String) {
        if let Some(i) = self.prompts.iter().position(|(q, _)| *q == p) {
            let mut e = self.prompts.remove(i);
            e.1 = e.1.saturating_add(1);
            self.prompts.insert(0, e);
        } else {
            if self.prompts.len() >= MAX_PROMPTS {
                self.prompts.pop();
            }
            self.prompts.insert(0, (p, 1));
        }
    }

    /// A prompt the shell drew before (a command was confirmed there).
    fn is_learnt(&self, p: &str) -> bool {
        !p.trim().is_empty()
            && self
                .prompts
                .iter()
                .any(|(q, _)| q.trim_end() == p.trim_end())
    }

    /// A prompt at which an unechoed line is a command, not a secret.
    fn is_shell_prompt(&self, p: &str) -> bool {
        if looks_secret(p) {
            return false;
        }
        self.is_learnt(p) || looks_like_shell_prompt(p)
    }

    fn prompt_for_hidden(&self, h: &Held) -> String {
        match &h.start.prompt {
            Some(p) if !p.trim().is_empty() => p.clone(),
            _ => self.screen.before_cursor(),
        }
    }

    /// Bytes the target sent towards the operator.
    pub fn output(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<Record>) {
        if bytes.is_empty() {
            return;
        }
        if let Some(k) = self.last_key {
            if !self.out_since_key {
                let sample = now.saturating_duration_since(k).min(Duration::from_secs(1));
                self.rtt = (self.rtt * 7 + sample) / 8;
            }
        }
        self.out_since_key = true;
        self.last_out = Some(now);
        self.after_enter = false;
        if bytes.contains(&b'\n') {
            self.interrupted = None;
        }
        let watching = self.start.is_some()
            || self.held.is_some()
            || self.editor.is_some()
            || self.cancelling.is_some()
            || self.pending_block.is_some();
        if !watching {
            self.screen.skip(bytes);
            // Once every Ctrl-C sent is answered, the keys behind them go.
            self.note_interrupt_answer(bytes);
            self.note_prefill(bytes);
            return;
        }
        if self.cancelling.is_some() {
            self.feed_watching_cancel(bytes);
        } else {
            self.screen.feed(bytes);
        }
        self.note_interrupt_answer(bytes);
        self.check_cancel(bytes, out);
        if bytes.contains(&b'\n') {
            self.lf_since_key = true;
            self.lf_after_interrupt |= self.block_interrupted;
        }
        if self.cancelling.is_none() && self.pending_block.is_some() && self.held_block_gone(bytes)
        {
            self.pending_block = None;
        }
        if bytes.windows(PASTE_OFF.len()).any(|w| w == PASTE_OFF) {
            self.editor_left_since_key = true;
        }
        if let Some(ed) = &mut self.editor {
            let alt = self.screen.alternate();
            if alt {
                ed.entered = true;
                ed.snapshot = self.screen.contents();
            } else if ed.entered && self.alt_before {
                // The editor closed without a decided Enter (ZZ, Ctrl-X in
                // nano): what it showed last is what runs.
                let ed = self.editor.take().expect("checked");
                let text = editor_text(&ed.snapshot);
                if !text.is_empty() {
                    let len = text.len();
                    out.push(Record::Command(bounded(text, len, false, Source::Screen)));
                }
            }
        }
        self.alt_before = self.screen.alternate();
    }

    /// A line the shell took with no Enter (see `accepted_without_enter`)
    /// goes on record, late and unverified. Checked when the next key
    /// comes (by then a redraw split across reads has arrived) and at the
    /// end.
    fn record_accepted_without_enter(&mut self, out: &mut Vec<Record>) {
        if !self.accepted_without_enter() {
            return;
        }
        // A key other than Enter ran the line (`bind '"\C-t":
        // accept-line'`, zsh's accept-and-hold): it was never held, so
        // it is recorded now that the next prompt shows it ran —
        // late and unverified, but never lost.
        let line = self.keys.accepted_elsewhere();
        let start = self.start.take();
        let prompt = start
            .as_ref()
            .and_then(|s| s.prompt.clone())
            .unwrap_or_default();
        // The next line begins at the same prompt, whatever the shell drew
        // after it (zsh's accept-and-hold draws the line again).
        if self.screen.cursor_line().starts_with(prompt.trim_end()) {
            self.start = start.map(|s| Start {
                prompt: s.prompt,
                rprompt: self.screen.right_of_cursor(),
            });
        }
        // The key that accepted the line is no text; readline's model
        // of the line is the best the keys give.
        let text = match line.text.trim() {
            "" => key_text(&line),
            t => t.to_string(),
        };
        if !text.trim().is_empty() {
            let length = text.len() + line.lost_bytes;
            // Untrimmed: a blank typed before the "prompt" is part of
            // what the shell may hold.
            let mut split = self.split_from.take().unwrap_or_default();
            split.push_str(if line.text.trim().is_empty() {
                &text
            } else {
                &line.text
            });
            self.split_from = Some(bound_split(split));
            self.command(text, length, false, Source::Keys, prompt, out);
        }
    }

    /// The shell took the open line and drew its next prompt, though no
    /// Enter came: keys were typed at a shell's prompt, output since the
    /// last of them went down a line, and the cursor now stands right after
    /// that same prompt with nothing to its right. A line cleared in place
    /// (Ctrl-U, vi `dd`) never goes down a line; a redraw (Ctrl-L, a job
    /// notice) draws the typed text again after the prompt.
    fn accepted_without_enter(&self) -> bool {
        if !self.lf_since_key
            || self.held.is_some()
            || self.editor.is_some()
            || self.keys.is_fresh()
            || self.screen.alternate()
        {
            return false;
        }
        let Some(start) = &self.start else {
            return false;
        };
        let Some(p) = start.prompt.as_deref() else {
            return false;
        };
        if p.trim().is_empty() || !self.is_shell_prompt(p) {
            return false;
        }
        // The line editor said it handed a line over, and a prompt is
        // drawn again (zsh's accept-and-hold draws the same line after it).
        if self.editor_left_since_key && self.screen.cursor_line().starts_with(p.trim_end()) {
            return true;
        }
        if self.screen.before_cursor() != p {
            return false;
        }
        let right = self.screen.right_of_cursor();
        right.is_empty() || right == start.rprompt
    }

    /// A decided command was blocked (policy) and the relay sent the target
    /// keys that kill the line and interrupt. The earlier lines of a
    /// multi-line command may still sit in the shell if the interrupt did
    /// not work (`stty intr undef`): keep them, so whatever completes them
    /// later is checked as the whole command. Dropped when the next line
    /// starts at the main prompt.
    pub fn blocked(&mut self, text: &str) {
        // The shell holds the last line (the earlier ones are in its parser,
        // see below), or the whole of a line editor's buffer of several
        // rows; the screen shows it after its prompt until the cancel keys
        // clear it.
        let whole = std::mem::take(&mut self.decided_buffer);
        let last = if whole {
            text.to_string()
        } else {
            text.rsplit('\n').next().unwrap_or(text).to_string()
        };
        let prompt = std::mem::take(&mut self.decided_prompt);
        self.cancel_hold = None;
        self.block_interrupted = false;
        self.lf_after_interrupt = false;
        if !prompt.trim().is_empty() && !last.trim().is_empty() {
            self.screen.sync();
            let standing = self.standing_rows(&prompt, &last);
            self.pending_block = Some((prompt.clone(), last.clone()));
            self.cancelling = Some(Cancelling {
                command: text.to_string(),
                text: last,
                prompt,
                standing,
                lfs: 0,
                scanned: 0,
            });
        }
        if let Some((earlier, _)) = text.rsplit_once('\n').filter(|_| !whole) {
            self.multi = Some(Multi {
                text: earlier.to_string(),
                length: earlier.len(),
                verified: false,
                source: Source::Keys,
                prompts: Vec::new(),
                cancelled: true,
            });
        }
    }

    /// Rows other than the cursor's that show `prompt` followed by (the
    /// start of) `text`.
    fn standing_rows(&self, prompt: &str, text: &str) -> usize {
        let shown = format!("{prompt}{text}");
        let shown = shown.trim_end();
        let cursor = self.screen.cursor_row();
        self.screen
            .contents()
            .lines()
            .enumerate()
            .filter(|&(i, row)| {
                i != cursor && row.len() > prompt.trim_end().len() && shown.starts_with(row)
            })
            .count()
    }

    /// Feeds output while a cancel is watched, a byte at a time for its
    /// first bytes: the shell's answer to the cancel keys and the echo of
    /// the next keys can come in one read, and the moment the cursor stood
    /// right after the prompt with the line gone would be missed.
    fn feed_watching_cancel(&mut self, bytes: &[u8]) {
        let Some(c) = &mut self.cancelling else {
            self.screen.feed(bytes);
            return;
        };
        let n = bytes.len().min(CANCEL_SCAN.saturating_sub(c.scanned));
        c.scanned += n;
        let prompt = c.prompt.clone();
        for (i, &b) in bytes[..n].iter().enumerate() {
            self.screen.feed(&bytes[i..=i]);
            // Only after what moves the cursor back or erases: CR, BS,
            // the final byte of a CSI sequence.
            if (b == b'\r' || b == 0x08 || b.is_ascii_alphabetic())
                && self.screen.before_cursor() == prompt
            {
                self.cancelling = None;
                self.pending_block = None;
                self.screen.feed(&bytes[i + 1..]);
                return;
            }
        }
        self.screen.feed(&bytes[n..]);
    }

    /// Output after the keys that cancel a blocked line: did the shell run
    /// it? Either its row still stands with the output gone down past it
    /// (accept-line), the screen scrolled a whole page, or a prompt came
    /// back on its row after it (a canonical-mode line end: `stty eol`).
    fn check_cancel(&mut self, bytes: &[u8], out: &mut Vec<Record>) {
        let Some(c) = &mut self.cancelling else {
            return;
        };
        c.lfs += bytes.iter().filter(|&&b| b == b'\n').count();
        let (lfs, standing) = (c.lfs, c.standing);
        let (text, prompt) = (c.text.clone(), c.prompt.clone());
        let command = c.command.clone();
        self.screen.sync();
        let before = self.screen.before_cursor();
        let p = prompt.trim_end();
        let ran = (lfs > 0 && self.standing_rows(&prompt, &text) > standing)
            || lfs >= self.screen.rows()
            || (before.len() > prompt.len() + p.len()
                && before.starts_with(&prompt)
                && before.ends_with(p)
                && before.contains(text.trim()));
        if !ran && before == prompt {
            // The cancel worked: the cursor is back right after the prompt
            // with the line gone (readline and zsh redraw it, fish moves
            // back to it, canonical mode erases the echo). Watching on
            // would take later output (a background job's lines) for the
            // shell running it.
            self.cancelling = None;
            self.pending_block = None;
            return;
        }
        if ran {
            self.cancelling = None;
            let len = command.len();
            out.push(Record::Unstopped(bounded(
                command,
                len,
                false,
                Source::Keys,
            )));
        }
    }

    /// Bytes that paint the line being typed again, below a line Gatehouse
    /// printed (a policy notice), with the cursor where the target has it.
    pub fn repaint_line(&mut self) -> Vec<u8> {
        self.screen.repaint_line()
    }

    /// The operator's window changed size.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.screen.resize(cols, rows);
    }

    /// The session is over: a held Enter never reached the target (no
    /// record); an open command's lines did reach the shell, so it is
    /// recorded, unverified.
    pub fn finish(&mut self, now: Instant, out: &mut Vec<Record>) {
        let _ = now;
        // A held Enter was never forwarded: nothing of it ran.
        self.held = None;
        self.record_accepted_without_enter(out);
        // Keys typed at a shell's prompt, then output that went down a line
        // and the end: a key bound to accept-line may have run them with
        // an `exit` (no prompt followed to show it). Unverified, not lost.
        let began_at_shell = self.start.as_ref().is_some_and(|s| {
            s.prompt
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty() && self.is_shell_prompt(p))
        });
        if began_at_shell && self.lf_since_key && !self.keys.is_fresh() && !self.screen.alternate()
        {
            let line = self.keys.accepted_elsewhere();
            let text = match line.text.trim() {
                "" => key_text(&line),
                t => t.to_string(),
            };
            if !text.is_empty() {
                let length = text.len() + line.lost_bytes;
                let prompt = self.start.take().and_then(|s| s.prompt).unwrap_or_default();
                self.command(text, length, false, Source::Keys, prompt, out);
            }
        }
        if let Some(m) = self.multi.take() {
            if !m.cancelled {
                out.push(Record::Command(bounded(m.text, m.length, false, m.source)));
            }
        }
        self.keys.reset();
        self.start = None;
    }

    /// Heap held by the engine, for the boundedness tests.
    pub fn approx_heap_bytes(&self) -> usize {
        let start =
            |s: &Start| s.prompt.as_ref().map_or(0, String::capacity) + s.rprompt.capacity();
        self.keys.approx_heap_bytes()
            + self.screen.approx_heap_bytes()
            + self.start.as_ref().map_or(0, start)
            + self.held.as_ref().map_or(0, |h| {
                h.line.text.capacity() + h.line.cooked.capacity() + start(&h.start)
            })
            + self.multi.as_ref().map_or(0, |m| {
                m.text.capacity() + m.prompts.iter().map(String::capacity).sum::<usize>()
            })
            + self.editor.as_ref().map_or(0, |e| e.snapshot.capacity())
            + self
                .prompts
                .iter()
                .map(|(p, _)| p.capacity())
                .sum::<usize>()
    }
}

/// The prompts a held line may follow: the one it began at, then the
/// learnt ones.
/// Marks the commands just recorded as possibly the rest of `prev` (see
/// `Command::also`): the policy checks the two joined as well.
fn attach_split(records: &mut [Record], line: &Line, prev: &str, blocked: bool) {
    let typed = Some(line.text.as_str()).filter(|t| !t.trim().is_empty());
    for r in records {
        if let Record::Command(c) = r {
            let rest = typed.unwrap_or(c.text.as_str());
            c.also = Some(Split {
                joined: bound_split(format!("{prev}{rest}")),
                before: prev.to_string(),
                blocked,
            });
        }
    }
}

fn prefixes_of<'a, T>(h: &'a Held, learnt: &'a [(String, T)]) -> Vec<&'a str> {
    let mut prefixes: Vec<&str> = Vec::new();
    if let Some(p) = &h.start.prompt {
        prefixes.push(p);
    }
    for (p, _) in learnt {
        prefixes.push(p);
    }
    prefixes
}

fn source_of(plain: bool) -> Source {
    if plain {
        Source::Keys
    } else {
        Source::Screen
    }
}

/// The best text the keys give for a line the screen did not confirm:
/// readline's model, or the raw line when it carries bytes readline would
/// have acted on (dash keeps an arrow key's bytes).
fn key_text(line: &Line) -> String {
    let rl = line.text.trim();
    if line.unreliable || rl.is_empty() {
        let raw = String::from_utf8_lossy(&line.cooked);
        let raw = raw.trim();
        if !raw.is_empty() {
            return raw.to_string();
        }
    }
    rl.to_string()
}

/// Keys as a terminal would draw them: control characters in caret
/// notation, tabs as blanks; blanks collapsed (tabs expand to any width).
fn norm_keys(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' | ' ' | '\n' => out.push(' '),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c => out.push(c),
        }
    }
    collapse(&out)
}

/// The screen's text, normalised the same way; readline shows bytes that
/// are not valid UTF-8 as `\ooo`, the keys hold them as U+FFFD.
fn norm_screen(s: &str, octal: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if octal
            && chars[i] == '\\'
            && i + 3 < chars.len()
            && chars[i + 1..=i + 3].iter().all(|c| ('0'..='7').contains(c))
        {
            out.push('\u{fffd}');
            i += 4;
            continue;
        }
        out.push(if chars[i] == '\n' { ' ' } else { chars[i] });
        i += 1;
    }
    collapse(&out)
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = false;
    for c in s.trim().chars() {
        if c == ' ' {
            if !blank {
                out.push(' ');
            }
            blank = true;
        } else {
            out.push(c);
            blank = false;
        }
    }
    out
}

/// Bounds a command's text: over [`MAX_COMMAND_BYTES`], the first and last
/// [`KEEP_BYTES`] joined by `…`.
/// What bash's and zsh's line editors write when they hand a line to the
/// shell (bracketed paste off, xterm mode 2004).
const PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// A split candidate is only for the policy: keep it within the command
/// bound (its end, where the joined text is).
fn bound_split(mut text: String) -> String {
    if text.len() > MAX_COMMAND_BYTES {
        let mut cut = text.len() - MAX_COMMAND_BYTES;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
    }
    text
}

fn bounded(mut text: String, length: usize, verified: bool, source: Source) -> Command {
    let length = length.max(text.len());
    let truncated = length > MAX_COMMAND_BYTES || text.len() > MAX_COMMAND_BYTES;
    if text.len() > MAX_COMMAND_BYTES {
        let mut head = KEEP_BYTES;
        while !text.is_char_boundary(head) {
            head -= 1;
        }
        let mut tail = text.len() - KEEP_BYTES;
        while !text.is_char_boundary(tail) {
            tail += 1;
        }
        text = format!("{}…{}", &text[..head], &text[tail..]);
    } else if truncated {
        // The middle was lost while typing (a line of megabytes).
        let mid = text.len() / 2;
        let mut k = mid;
        while !text.is_char_boundary(k) {
            k += 1;
        }
        text.insert(k, '…');
    }
    Command {
        text,
        truncated,
        length,
        verified,
        source,
        also: None,
    }
}

fn bound_prompt(p: &str) -> String {
    let p = p.trim();
    if p.len() <= MAX_PROMPT_BYTES {
        return p.to_string();
    }
    // The end of a long prompt is the part next to the input.
    let mut k = p.len() - MAX_PROMPT_BYTES;
    while !p.is_char_boundary(k) {
        k += 1;
    }
    format!("…{}", &p[k..])
}

/// Every character of `needle` appears in `hay`, in order.
fn is_subsequence(needle: &str, hay: &str) -> bool {
    let mut h = hay.chars();
    needle.chars().all(|c| h.any(|x| x == c))
}

/// A prompt asking for a secret (sudo, passwd, ssh-keygen, PIN and token
/// prompts): an unechoed line there is never a command.
fn looks_secret(p: &str) -> bool {
    let l = p.to_lowercase();
    [
        "password",
        "passphrase",
        "passcode",
        "pin",
        "secret",
        "token",
        "otp",
        "verification code",
        "mot de passe",
        "kennwort",
        "passwort",
        "密码",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// Shaped like a shell's prompt: ends with `$`, `#`, `%`, `>` or `❯`.
fn looks_like_shell_prompt(p: &str) -> bool {
    let t = p.trim_end();
    t.ends_with(['$', '#', '%', '>', '❯', '»', 'λ'])
}

/// A line of `*` or `•` answers a password prompt with feedback.
fn looks_masked(line: &str) -> bool {
    let t = line.trim_end();
    let tail: String = t.chars().rev().take_while(|c| !c.is_whitespace()).collect();
    !tail.is_empty() && tail.chars().all(|c| matches!(c, '*' | '•' | '●'))
}

/// A pager's or an editor's shell escape on the cursor line: the command
/// that goes to a shell. less/more/man: `!cmd`, `|Xcmd`; vi/vim/ex:
/// `:!cmd`, `:r !cmd`, `:w !cmd`, `:{range}!cmd`.
fn shell_escape(line: &str) -> Option<String> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('!') {
        return Some(rest.to_string());
    }
    if let Some(rest) = t.strip_prefix('|') {
        // less: `|` then a mark letter (or ^ $ .), then the command.
        let mut c = rest.chars();
        c.next()?;
        return Some(c.as_str().to_string());
    }
    let rest = t.strip_prefix(':')?;
    let rest = rest.trim_start();
    // An optional range: `%`, `.`, `1,5`, `'<,'>`.
    let rest = rest.trim_start_matches(|c: char| {
        c.is_ascii_digit()
            || matches!(
                c,
                '%' | '.' | ',' | '$' | '\'' | '<' | '>' | '+' | '-' | ';'
            )
    });
    let rest = rest.trim_start();
    for prefix in ["read", "r", "write", "w", "silent!", "silent", ""] {
        if let Some(after) = rest.strip_prefix(prefix) {
            let after = after.trim_start();
            if let Some(cmd) = after.strip_prefix('!') {
                return Some(cmd.to_string());
            }
        }
    }
    None
}

/// An editor command line that leaves the editor (vi/vim: `:wq`, `:x`,
/// `:q`, `:exit`, with `!` or `a`).
fn editor_quit(line: &str) -> bool {
    let t = line.trim();
    let Some(cmd) = t.strip_prefix(':') else {
        return false;
    };
    let cmd = cmd.trim().trim_end_matches('!');
    matches!(
        cmd,
        "wq" | "x"
            | "xit"
            | "exit"
            | "q"
            | "quit"
            | "wqa"
            | "wqall"
            | "xa"
            | "xall"
            | "qa"
            | "qall"
    )
}

/// The file an editor shows: its rows minus vim's `~` filler and the
/// status and command lines at the bottom.
fn editor_text(screen: &str) -> String {
    let mut rows: Vec<&str> = screen.lines().collect();
    // The command line / status line at the bottom.
    rows.pop();
    while rows
        .last()
        .is_some_and(|r| r.trim().is_empty() || r.trim() == "~")
    {
        rows.pop();
    }
    let rows: Vec<&str> = rows.into_iter().filter(|r| r.trim() != "~").collect();
    rows.join("\n").trim().to_string()
}

/// `fc` (without `-l`/`-s`) opens an editor whose content runs at its exit.
fn starts_editor(cmd: &str) -> bool {
    let mut w = cmd.split_whitespace();
    w.next() == Some("fc") && !w.any(|a| a.starts_with("-l") || a.starts_with("-s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Types `keys` one at a time with their echo, then Enter; returns
    /// whether the Enter was released at once.
    fn type_line(cap: &mut Capture, t: &mut Instant, keys: &str, out: &mut Vec<Record>) -> bool {
        for ch in keys.chars() {
            *t += Duration::from_millis(50);
            let s = ch.to_string();
            let g = cap.input(s.as_bytes(), *t, out);
            assert_eq!(g.forward, s.len());
            *t += Duration::from_millis(5);
            cap.output(s.as_bytes(), *t, out);
        }
        *t += Duration::from_millis(200);
        let g = cap.input(b"\r", *t, out);
        assert_eq!((g.forward, g.consumed), (0, 1), "Enter is held");
        cap.settle(*t, false, out)
    }

    fn texts(out: &[Record]) -> Vec<String> {
        out.iter()
            .map(|r| match r {
                Record::Command(c) => c.text.clone(),
                Record::Unstopped(c) => format!("<unstopped {}>", c.text),
                Record::Hidden { prompt } => format!("<hidden {prompt}>"),
            })
            .collect()
    }

    #[test]
    fn prompt_on_the_alternate_screen_is_still_a_shell() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        let mut t = Instant::now();
        cap.output(b"tgt$ ", t, &mut out);
        assert!(type_line(
            &mut cap,
            &mut t,
            "printf '\\033[?1049h'",
            &mut out
        ));
        cap.output(b"\r\n\x1b[?2004l\r\x1b[?1049h\x1b[?2004htgt$ ", t, &mut out);
        assert!(type_line(&mut cap, &mut t, "echo on-alt", &mut out));
        assert_eq!(texts(&out), ["printf '\\033[?1049h'", "echo on-alt"]);
    }

    #[test]
    fn enter_is_held_until_the_echo_then_released_verified() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        let t = Instant::now();
        cap.output(b"tgt$ ", t, &mut out);
        let g = cap.input(b"ls -l\r", t, &mut out);
        assert_eq!((g.forward, g.consumed), (5, 6));
        assert!(!cap.settle(t, false, &mut out), "no echo yet");
        cap.output(b"ls -l", t + Duration::from_millis(3), &mut out);
        assert!(cap.settle(t + Duration::from_millis(3), false, &mut out));
        match &out[..] {
            [Record::Command(c)] => {
                assert_eq!(c.text, "ls -l");
                assert!(c.verified);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_echo_at_a_password_prompt_is_hidden_after_the_deadline() {
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        let t = Instant::now();
        cap.output(b"[sudo] password for alice: ", t, &mut out);
        cap.input(b"hunter2\r", t, &mut out);
        assert!(!cap.settle(t, false, &mut out));
        let d = cap.deadline().unwrap();
        assert!(cap.settle(d, false, &mut out));
        assert_eq!(texts(&out), ["<hidden [sudo] password for alice:>"]);
    }

    #[test]
    fn long_lines_keep_head_and_tail() {
        let text = format!("{}{}", "a".repeat(10_000), "b".repeat(10_000));
        let c = bounded(text.clone(), text.len(), true, Source::Keys);
        assert!(c.truncated);
        assert_eq!(c.length, 20_000);
        assert!(c.text.starts_with(&"a".repeat(KEEP_BYTES)));
        assert!(c.text.ends_with(&"b".repeat(KEEP_BYTES)));
        assert_eq!(c.text.chars().filter(|&ch| ch == '…').count(), 1);
        let short = bounded("ls".into(), 2, true, Source::Keys);
        assert!(!short.truncated);
    }

    #[test]
    fn escapes_of_pagers_and_editors() {
        assert_eq!(shell_escape("!touch x").as_deref(), Some("touch x"));
        assert_eq!(shell_escape(":!ls -l").as_deref(), Some("ls -l"));
        assert_eq!(shell_escape(":r !date").as_deref(), Some("date"));
        assert_eq!(shell_escape(":'<,'>!sort").as_deref(), Some("sort"));
        assert_eq!(shell_escape(":%!jq .").as_deref(), Some("jq ."));
        assert_eq!(shell_escape(":wq"), None);
        assert_eq!(shell_escape("/pattern!"), None);
        assert!(editor_quit(":wq"));
        assert!(editor_quit(":x"));
        assert!(editor_quit(":q!"));
        assert!(!editor_quit(":w"));
    }

    #[test]
    fn secret_and_shell_prompts() {
        assert!(looks_secret("[sudo] password for alice: "));
        assert!(looks_secret("Enter passphrase (empty for no passphrase): "));
        assert!(!looks_secret("tgt$ "));
        assert!(looks_like_shell_prompt("alice@web01:~$ "));
        assert!(looks_like_shell_prompt("root@db# "));
        assert!(!looks_like_shell_prompt("Name: "));
    }

    #[test]
    fn keys_normalise_like_the_terminal_draws_them() {
        assert_eq!(norm_keys("echo a\tb"), norm_screen("echo a      b", false));
        assert_eq!(
            norm_keys("echo x\u{1b}[D"),
            norm_screen("echo x^[[D", false)
        );
        assert_eq!(norm_keys("a\u{fffd}b"), norm_screen("a\\377b", true));
        assert_eq!(
            norm_keys("printf '\\033'"),
            norm_screen("printf '\\033'", false)
        );
    }
    /// Drives the engine as the relay does: keys through the gate, a held
    /// Enter decided when the screen allows or its deadline passes.
    struct Sim {
        cap: Capture,
        out: Vec<Record>,
        t: Instant,
        pending: Vec<u8>,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                cap: Capture::new(80, 24),
                out: Vec::new(),
                t: Instant::now(),
                pending: Vec::new(),
            }
        }
        fn pump(&mut self) {
            loop {
                if self.cap.holding() && !self.cap.settle(self.t, false, &mut self.out) {
                    return;
                }
                if self.pending.is_empty() {
                    return;
                }
                let g = self.cap.input(&self.pending, self.t, &mut self.out);
                self.pending.drain(..g.consumed);
                if g.consumed == 0 && !self.cap.holding() {
                    // Keys waiting for the shell's answer to a Ctrl-C.
                    return;
                }
            }
        }
        fn keys(&mut self, b: &[u8]) {
            self.t += Duration::from_millis(1);
            self.pending.extend_from_slice(b);
            self.pump();
        }
        fn screen(&mut self, b: &[u8]) {
            self.t += Duration::from_millis(1);
            self.cap.output(b, self.t, &mut self.out);
            self.pump();
        }
        fn wait(&mut self, ms: u64) {
            self.t += Duration::from_millis(ms);
            self.pump();
        }
        /// Command records so far: (text, verified).
        fn commands(&self) -> Vec<(String, bool)> {
            self.out
                .iter()
                .filter_map(|r| match r {
                    Record::Command(c) | Record::Unstopped(c) => Some((c.text.clone(), c.verified)),
                    Record::Hidden { .. } => None,
                })
                .collect()
        }
        fn done(mut self) -> Vec<String> {
            self.wait(5000);
            self.cap.finish(self.t, &mut self.out);
            texts(&self.out)
        }
    }

    /// Type `text` key by key at the prompt, each echoed.
    fn typed(sim: &mut Sim, text: &str) {
        for b in text.bytes() {
            sim.keys(&[b]);
            sim.screen(&[b]);
        }
    }

    /// After a block, keys (a Ctrl-C too) wait while the cancel keys'
    /// effect is watched: the shell's redraw for the cancel must not be
    /// taken for its answer to the operator's Ctrl-C. Until the screen
    /// shows the line cleared, or 2 s.
    #[test]
    fn keys_wait_while_a_blocks_cancel_is_watched() {
        let gate = |g: Gate| (g.forward, g.consumed);
        for cleared in [true, false] {
            let mut sim = Sim::new();
            sim.screen(b"tgt$ ");
            typed(&mut sim, "touch x");
            sim.keys(b"\r");
            sim.wait(50);
            sim.cap.blocked("touch x");
            let t = sim.t + Duration::from_millis(1);
            assert_eq!(gate(sim.cap.input(b"\x03", t, &mut sim.out)), (0, 0));
            let back = sim.cap.deadline().expect("the relay comes back");
            let t = if cleared {
                sim.cap.output(b"^E\rtgt$ \x1b[K", t, &mut sim.out);
                t + Duration::from_millis(1)
            } else {
                assert!(back <= t + Duration::from_secs(2), "{back:?}");
                back
            };
            assert_eq!(
                gate(sim.cap.input(b"\x03", t, &mut sim.out)),
                (1, 1),
                "cleared: {cleared}"
            );
        }
    }

    /// Keys let go after the wait with the Ctrl-C still unanswered may
    /// reach a shell still handling it (which drops one): that line is on
    /// record unverified.
    #[test]
    fn keys_let_go_before_a_ctrl_c_was_answered_make_an_unverified_line() {
        let mut sim = Sim::new();
        sim.screen(b"tgt$ ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\ntgt$ ");
        sim.keys(b"\x03echo hi");
        sim.wait(2500);
        sim.screen(b"^C\r\ntgt$ echo hi");
        sim.keys(b"\r");
        sim.screen(b"\r\nhi\r\ntgt$ ");
        typed(&mut sim, "echo two");
        sim.keys(b"\r");
        sim.screen(b"\r\ntwo\r\ntgt$ ");
        assert_eq!(
            sim.commands(),
            [
                ("echo one".to_string(), true),
                ("echo hi".to_string(), false),
                ("echo two".to_string(), true)
            ]
        );
    }

    /// A line the shell filled in after its prompt (zsh's pushed line,
    /// `print -z`) is what a bare Enter runs, also once a background job
    /// cleared or scrolled the screen; not once the shell drew an empty
    /// prompt, and not after a key.
    #[test]
    fn a_bare_enter_runs_the_line_last_seen_filled_in_after_the_prompt() {
        let filled = |away: &[u8], after: &[u8]| {
            let mut sim = Sim::new();
            sim.screen(b"tgt$ ");
            typed(&mut sim, "echo one");
            sim.keys(b"\r");
            sim.screen(b"\r\none\r\ntgt$ touch x");
            sim.wait(2000);
            sim.screen(away);
            for &k in after {
                sim.keys(&[k]);
            }
            sim.keys(b"\r");
            sim.wait(5000);
            sim.commands()
        };
        let one = ("echo one".to_string(), true);
        let touch = ("touch x".to_string(), false);
        // Cleared, or scrolled away by line feeds.
        assert_eq!(filled(b"\x1b[H\x1b[2J", b""), [one.clone(), touch.clone()]);
        // The prompt and the shell's redraw of the line in separate reads.
        let mut sim = Sim::new();
        sim.screen(b"tgt$ ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\ntgt$ ");
        sim.screen(b"touch x");
        sim.wait(2000);
        sim.screen(b"\x1b[H\x1b[2J");
        sim.keys(b"\r");
        sim.wait(5000);
        assert_eq!(sim.commands(), [one.clone(), touch.clone()]);
        assert_eq!(filled(&[b'\n'; 30], b""), [one.clone(), touch.clone()]);
        // Output below it, the prompt still on screen above: as before.
        assert_eq!(filled(b"\r\njob done\r\n", b""), [one.clone(), touch]);
        // The shell drew an empty prompt since: nothing runs.
        assert_eq!(
            filled(b"\x1b[H\x1b[2Jtgt$ ", b""),
            std::slice::from_ref(&one)
        );
        // A key (Ctrl-U) since: the screen and the keys decide, as ever.
        assert_eq!(filled(b"\x1b[H\x1b[2J", b"\x15"), [one]);
    }

    #[test]
    fn a_line_accepted_by_another_key_is_recorded_when_its_prompt_shows() {
        let mut sim = Sim::new();
        sim.screen(b"tgt$ ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\ntgt$ ");
        typed(&mut sim, "echo bound");
        // Ctrl-T bound to accept-line: no Enter, the shell runs the line.
        sim.keys(b"\x14");
        sim.screen(b"\r\nbound\r\ntgt$ ");
        // The next key finds the line gone to the shell.
        sim.keys(b"e");
        sim.screen(b"e");
        assert_eq!(
            sim.commands(),
            [
                ("echo one".to_string(), true),
                ("echo bound".to_string(), false)
            ],
            "on record before the next key goes on, unverified"
        );
        // The next line may be its continuation (a faked prompt): the
        // joined text goes with it for the policy.
        typed(&mut sim, "cho next");
        sim.keys(b"\r");
        sim.screen(b"\r\nnext\r\ntgt$ ");
        sim.wait(10);
        let Some(Record::Command(c)) = sim.out.last() else {
            panic!("no record: {:?}", sim.out)
        };
        assert_eq!(c.text, "echo next");
        assert!(!c.verified);
        assert_eq!(
            c.also
                .as_ref()
                .map(|s| (s.before.as_str(), s.joined.as_str())),
            Some(("echo bound", "echo boundecho next"))
        );
        assert_eq!(sim.done(), ["echo one", "echo bound", "echo next"]);
    }

    #[test]
    fn a_bare_enter_runs_what_the_shell_filled_in_but_never_a_right_prompt() {
        let mut sim = Sim::new();
        sim.screen(b"z% \x1b[1;70H[right]\x1b[1;4H");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\nz% \x1b[3;70H[right]\x1b[3;4H");
        // Enter on an empty line: the right prompt is no command.
        sim.keys(b"\r");
        sim.screen(b"\r\nz% \x1b[4;70H[right]\x1b[4;4H");
        sim.wait(3000);
        assert_eq!(texts(&sim.out), ["echo one"]);
        // The shell filled the line in (Ctrl-O's next history line): a bare
        // Enter runs it, on record from the screen, unverified.
        sim.screen(b"echo two");
        sim.keys(b"\r");
        sim.screen(b"\r\ntwo\r\nz% ");
        sim.wait(10);
        let Some(Record::Command(c)) = sim.out.last() else {
            panic!("no record: {:?}", sim.out)
        };
        assert_eq!((c.text.as_str(), c.verified), ("echo two", false));
    }

    #[test]
    fn text_right_of_the_cursor_counts_only_where_keys_may_have_left_it_there() {
        // A Tab with a suggestion still drawn after the cursor: the keys
        // never reached it; the line is what stands up to the cursor.
        let mut sim = Sim::new();
        sim.screen(b"f> ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\nf> ");
        typed(&mut sim, "echo sugg");
        sim.keys(b"\t");
        sim.screen(b"est-me-1\x1b[8D");
        sim.keys(b"\r");
        sim.wait(500);
        sim.screen(b"\r\nsugg\r\nf> ");
        // A recalled line with the cursor moved left: all of it runs.
        sim.keys(b"\x1b[A");
        sim.screen(b"echo sugg-2");
        sim.keys(b"\x1b[D\x1b[D");
        sim.screen(b"\x08\x08");
        sim.keys(b"\r");
        sim.wait(500);
        sim.screen(b"\r\nsugg-2\r\nf> ");
        assert_eq!(sim.done(), ["echo one", "echo sugg", "echo sugg-2"]);
    }

    #[test]
    fn a_line_cleared_in_place_or_redrawn_is_not_taken_as_run() {
        let mut sim = Sim::new();
        sim.screen(b"tgt$ ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\ntgt$ ");
        // vi `dd`: the line is cleared in place, no line feed.
        typed(&mut sim, "echo gone");
        sim.keys(b"\x1bdd");
        sim.screen(b"\r\x1b[Ktgt$ ");
        // A job notice redraws prompt and line below: the text is still
        // there after the prompt.
        sim.screen(b"\r\n[1]+  Done   sleep 1\r\ntgt$ ");
        sim.screen(b"partial");
        sim.keys(b"x");
        assert!(
            sim.out.len() == 1,
            "nothing but the first command: {:?}",
            sim.out
        );
    }

    /// A recalled history entry of two lines, drawn on two rows: the
    /// buffer from the prompt's row down is the line (unverified); rows of
    /// earlier output with a prompt between are never taken for it.
    #[test]
    fn a_buffer_of_several_rows_is_read_from_its_prompt_down() {
        let mut sim = Sim::new();
        sim.screen(b"tgt$ ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\ntgt$ ");
        sim.keys(b"\x1b[A");
        sim.screen(b"touch x\r\necho b");
        sim.keys(b"\r");
        sim.wait(5000);
        match &sim.out[..] {
            [Record::Command(first), Record::Command(c)] => {
                assert_eq!(first.text, "echo one");
                assert_eq!(c.text, "touch x\necho b");
                assert!(!c.verified);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A blocked line, then what the shell does with the keys that cancel
    /// it: clear it (bash emacs, vi, canonical mode), run it (a cancel key
    /// bound to accept-line), or keep it (`stty eol`, until a newline).
    #[test]
    fn what_the_cancel_of_a_blocked_line_did_is_read_off_the_screen() {
        let blocked = |cancel: &[u8]| {
            let mut sim = Sim::new();
            sim.screen(b"tgt$ ");
            typed(&mut sim, "echo one");
            sim.keys(b"\r");
            sim.screen(b"\r\none\r\ntgt$ ");
            typed(&mut sim, "touch x");
            sim.keys(b"\r");
            sim.wait(50);
            assert_eq!(texts(&sim.out), ["echo one", "touch x"]);
            sim.out.clear();
            sim.cap.blocked("touch x");
            sim.screen(cancel);
            sim
        };
        let unstopped = |sim: &Sim| {
            sim.out
                .iter()
                .any(|r| matches!(r, Record::Unstopped(c) if c.text == "touch x"))
        };
        for cleared in [
            &b"\rtgt$ \x1b[K"[..],
            b"^E\rtgt$ \x1b[K",
            b"^E\x08 \x08\x08 \x08\x08 \x08\x08 \x08\x08 \x08\x08 \x08\x08 \x08\x08 \x08\x08 \x08",
        ] {
            let mut sim = blocked(cleared);
            assert!(!unstopped(&sim), "{:?}", sim.out);
            // A background job prints a screenful before the next key: not
            // the blocked line running.
            sim.screen(&b"\r\n[job] tick"[..].repeat(30));
            sim.screen(b"\r\ntgt$ ");
            assert!(!unstopped(&sim), "{:?}", sim.out);
            typed(&mut sim, "echo ok");
            sim.keys(b"\r");
            sim.wait(50);
            match &sim.out[..] {
                [Record::Command(c)] => {
                    assert_eq!(c.text, "echo ok");
                    assert!(c.verified && c.also.is_none(), "{c:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        // Ctrl-E bound to accept-line: the line stands, the shell goes on
        // below it.
        let sim = blocked(b"\r\n");
        assert!(unstopped(&sim), "{:?}", sim.out);
        // `stty eol ^E`: the line stands on its row; the next Enter would
        // run it, so that line carries it for the policy.
        let mut sim = blocked(b"^E");
        assert!(!unstopped(&sim), "{:?}", sim.out);
        // (Keys wait while the cancel's effect is watched, 2 s at most.)
        sim.keys(b"t");
        sim.wait(2500);
        sim.screen(b"t");
        typed(&mut sim, "rue");
        sim.keys(b"\r");
        sim.wait(5000);
        let also = sim.out.iter().find_map(|r| match r {
            Record::Command(c) => c.also.clone(),
            _ => None,
        });
        let also = also.expect("the held line goes with the next");
        assert!(also.blocked && also.before == "touch x", "{also:?}");
    }

    /// A shell that holds the blocked line `held` at `tgt$ ` (its cancel
    /// keys did not clear it: `stty eol ^E`, a rebound Ctrl-U).
    fn holding(held: &str) -> Sim {
        let mut sim = Sim::new();
        sim.screen(b"tgt$ ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\ntgt$ ");
        typed(&mut sim, held);
        sim.keys(b"\r");
        sim.wait(50);
        sim.cap.blocked(held);
        sim.screen(b"^E");
        sim.out.clear();
        sim
    }

    /// The Enter just decided: its text, and whether the held blocked line
    /// went with it (for the policy, which blocks it again).
    fn decided(sim: &Sim) -> (String, bool) {
        match &sim.out[..] {
            [Record::Command(c)] => (c.text.clone(), c.also.as_ref().is_some_and(|a| a.blocked)),
            other => panic!("{other:?}"),
        }
    }

    /// bash and zsh given Ctrl-C and keys in one read keep the line and
    /// drop its first key: the screen and the keys say `xtouch`, `touch`
    /// runs. So the keys after a Ctrl-C wait for the shell's answer (a line
    /// feed), or for as long as an echo may take.
    #[test]
    fn a_ctrl_c_holds_the_keys_after_it_until_the_shell_answers() {
        let ms = Duration::from_millis;
        let gate = |g: Gate| (g.forward, g.consumed);
        let mut cap = Capture::new(80, 24);
        let mut out = Vec::new();
        let t = Instant::now();
        cap.output(b"tgt$ ", t, &mut out);
        // The Ctrl-C goes alone; the keys behind it wait, and the relay is
        // told when to come back.
        assert_eq!(gate(cap.input(b"\x03xtouch y", t, &mut out)), (1, 1));
        assert_eq!(cap.deadline(), None);
        assert_eq!(gate(cap.input(b"xtouch y", t + ms(1), &mut out)), (0, 0));
        assert!(cap.deadline().is_some_and(|d| d > t + ms(1)));
        // Output without a line feed is not the answer.
        cap.output(b"^C", t + ms(2), &mut out);
        assert_eq!(gate(cap.input(b"xtouch y", t + ms(3), &mut out)), (0, 0));
        cap.output(b"\r\ntgt$ ", t + ms(4), &mut out);
        assert_eq!(cap.deadline(), None);
        assert_eq!(gate(cap.input(b"xtouch y", t + ms(5), &mut out)), (8, 8));
        // No answer at all: they go after `max_wait`.
        let t = t + ms(10);
        assert_eq!(gate(cap.input(b"\x03ls", t, &mut out)), (1, 1));
        assert_eq!(gate(cap.input(b"ls", t + ms(100), &mut out)), (0, 0));
        let back = cap.deadline().expect("keys are waiting");
        assert_eq!(gate(cap.input(b"ls", back, &mut out)), (2, 2));
        assert_eq!(cap.deadline(), None);
        // Two Ctrl-Cs sent (the second after the first's wait ran out): the
        // first one's late answer does not let keys go, the second's does.
        let mut cap = Capture::new(80, 24);
        let t = t + ms(5000);
        cap.output(b"tgt$ ", t, &mut out);
        assert_eq!(gate(cap.input(b"\x03", t, &mut out)), (1, 1));
        assert_eq!(gate(cap.input(b"\x03ls", t + ms(100), &mut out)), (0, 0));
        let back = cap.deadline().expect("keys are waiting");
        assert_eq!(gate(cap.input(b"\x03ls", back, &mut out)), (1, 1));
        cap.output(b"^C\r\ntgt$ ", back + ms(1), &mut out);
        assert_eq!(gate(cap.input(b"ls", back + ms(2), &mut out)), (0, 0));
        cap.output(b"^C\r\ntgt$ ", back + ms(3), &mut out);
        assert_eq!(gate(cap.input(b"ls", back + ms(4), &mut out)), (2, 2));
        // zsh goes down a line first and reads keys into the old line until
        // its prompt is drawn again; a program without a known prompt is
        // taken as answered once quiet after its line feed.
        let mut cap = Capture::new(80, 24);
        let t = back + ms(5000);
        cap.output(b"z% ", t, &mut out);
        assert_eq!(gate(cap.input(b"\x03ls", t, &mut out)), (1, 1));
        cap.output(b"\x1b[?2004l\r\r\n", t + ms(1), &mut out);
        assert_eq!(gate(cap.input(b"ls", t + ms(2), &mut out)), (0, 0));
        cap.output(b"\x1b[Jz% \x1b[K", t + ms(3), &mut out);
        assert_eq!(gate(cap.input(b"ls", t + ms(4), &mut out)), (2, 2));
        let t = t + ms(100);
        assert_eq!(gate(cap.input(b"\x03ls", t, &mut out)), (1, 1));
        cap.output(b"\r\nKeyboardInterrupt\r\n", t + ms(1), &mut out);
        assert_eq!(gate(cap.input(b"ls", t + ms(2), &mut out)), (0, 0));
        let quiet = cap.deadline().expect("keys are waiting");
        assert!(quiet < t + ms(1000), "the quiet wait, not the long one");
        assert_eq!(gate(cap.input(b"ls", quiet, &mut out)), (2, 2));
        // In a full-screen program Ctrl-C is a key like the others.
        cap.output(b"\x1b[?1049h", t + ms(3000), &mut out);
        assert_eq!(gate(cap.input(b"\x03:q", t + ms(3001), &mut out)), (3, 3));
    }

    /// The operator's Ctrl-C, with keys typed right after it: the shell's
    /// new prompt on a row of its own, followed by no more than their
    /// echo, shows the held line was dropped, in whatever reads it comes.
    #[test]
    fn a_held_block_is_dropped_at_the_fresh_prompt_of_a_ctrl_c_with_keys_typed_after_it() {
        // Keys typed with or after the Ctrl-C wait for its line feed (see
        // `a_ctrl_c_holds_the_keys_after_it_until_the_shell_answers`).
        let cases: [&[(&str, &[u8])]; 4] = [
            // One burst; the redraw, then the echo.
            &[("k", b"\x03exit"), ("o", b"^C\r\ntgt$ "), ("o", b"exit")],
            // The line feed, keys, then the prompt and their echo.
            &[
                ("k", b"\x03"),
                ("o", b"^C\r\n"),
                ("k", b"exit"),
                ("o", b"tgt$ "),
                ("o", b"exit"),
            ],
            // The prompt, then the echo in pieces.
            &[
                ("k", b"\x03exit"),
                ("o", b"^C\r\n"),
                ("o", b"tgt$ "),
                ("o", b"ex"),
                ("o", b"it"),
            ],
            // The prompt itself split between reads.
            &[
                ("k", b"\x03exit"),
                ("o", b"^C\r\ntg"),
                ("o", b"t$ "),
                ("o", b"exit"),
            ],
        ];
        for (i, steps) in cases.iter().enumerate() {
            let mut sim = holding("touch x");
            for (what, b) in *steps {
                match *what {
                    "k" => sim.keys(b),
                    _ => sim.screen(b),
                }
            }
            sim.keys(b"\r");
            sim.wait(5000);
            assert_eq!(decided(&sim), ("exit".to_string(), false), "case {i}");
        }
        // Enter typed ahead too: held while the redraw comes.
        let mut sim = holding("touch x");
        sim.keys(b"\x03exit\r");
        sim.screen(b"^C\r\ntgt$ ");
        sim.screen(b"exit");
        sim.wait(5000);
        assert_eq!(decided(&sim), ("exit".to_string(), false));
    }

    /// Fail-safe: the held line stays wherever the screen does not show a
    /// fresh prompt after the Ctrl-C with only the typed keys' echo.
    #[test]
    fn a_held_block_stays_after_a_ctrl_c_without_a_fresh_prompt() {
        let held = |steps: &[(&str, &[u8])], line: &str| {
            let mut sim = holding(line);
            for (what, b) in steps {
                match *what {
                    "k" => sim.keys(b),
                    // No answer to a Ctrl-C: the keys behind it go.
                    "w" => sim.wait(2500),
                    _ => sim.screen(b),
                }
            }
            sim.keys(b"\r");
            sim.wait(5000);
            // Keys still behind the cancel's watch and an unanswered Ctrl-C
            // went at those waits.
            sim.wait(5000);
            sim.wait(5000);
            // (An echo that went down a line may first be taken as a line
            // the shell accepted by another key: recorded late.)
            sim.out.iter().any(
                |r| matches!(r, Record::Command(c) if c.also.as_ref().is_some_and(|a| a.blocked)),
            )
        };
        // `stty intr undef`: a bell, and the keys go on the held line.
        assert!(held(
            &[
                ("k", b"\x03exit"),
                ("o", b"\x07"),
                ("w", b""),
                ("o", b"exit")
            ],
            "touch x"
        ));
        // No answer to the Ctrl-C at all before the Enter is decided.
        assert!(held(&[("k", b"\x03exit")], "touch x"));
        // Canonical mode, the line feed and the prompt in separate reads:
        // the kernel echoed the keys let through at the line feed before
        // the prompt came. Not told apart from a program's text before a
        // prompt-like string: held (a second Ctrl-C drops it).
        assert!(held(
            &[("k", b"\x03exit"), ("o", b"^C\r\n"), ("o", b"exittgt$ ")],
            "touch x"
        ));
        // A line feed, but the keys' echo is not what follows the prompt.
        assert!(held(
            &[("k", b"\x03exit"), ("o", b"^C\r\ntgt$ rm -rf /")],
            "touch x"
        ));
        // Keys that edited (their echo is not the text as typed), typed
        // before the line feed came: they are let through after it, so a
        // prompt drawn then is fresh and the edit is a new line's.
        // Typed after the line feed and before the prompt, they stay:
        assert!(held(
            &[
                ("k", b"\x03"),
                ("o", b"^C\r\n"),
                ("k", b"exiq\x7ft"),
                ("o", b"tgt$ exiq\x08 \x08t")
            ],
            "touch x"
        ));
        // No Ctrl-C: a line feed and a prompt with keys typed after it
        // (a program's output) are not an interrupt.
        assert!(held(&[("k", b"exit"), ("o", b"\r\ntgt$ exit")], "touch x"));
        // Keys that hold the prompt's text draw a "prompt" themselves: a
        // Ctrl-C that did not interrupt, and an echo that wraps to a row
        // beginning with `tgt$ ` (`tgt$ touch xyzw` and 13 more `tgt$ `
        // fill 80 columns).
        let ahead = "tgt$ ".repeat(14);
        let mut echo = ahead.as_bytes()[..65].to_vec();
        echo.extend_from_slice(b"\r\n");
        echo.extend_from_slice(&ahead.as_bytes()[65..]);
        let keys = format!("\x03{ahead}");
        assert!(held(
            &[
                ("k", keys.as_bytes()),
                ("w", b""),
                ("o", b"\x07"),
                ("w", b""),
                ("o", &echo)
            ],
            "touch xyzw"
        ));
    }

    #[test]
    fn a_line_run_by_another_key_with_exit_is_recorded_at_the_end() {
        let mut sim = Sim::new();
        sim.screen(b"tgt$ ");
        typed(&mut sim, "echo one");
        sim.keys(b"\r");
        sim.screen(b"\r\none\r\ntgt$ ");
        typed(&mut sim, "echo last; exit");
        sim.keys(b"\x14");
        sim.screen(b"\r\nlast\r\nexit\r\n");
        assert_eq!(sim.done(), ["echo one", "echo last; exit"]);
    }

    #[test]
    fn keys_typed_before_the_prompt_was_drawn_are_not_taken_with_it() {
        // `send_line` right after the output, before the prompt arrived: the
        // line begins at column 0, the prompt and the echo come after.
        let mut s = Sim::new();
        s.screen(b"tgt$ ");
        for b in b"echo one" {
            s.keys(&[*b]);
            s.screen(&[*b]);
        }
        s.keys(b"\r");
        s.screen(b"\r\none\r\n");
        s.keys(b"exit 5\r");
        s.screen(b"tgt$ exit 5");
        s.wait(150);
        assert_eq!(s.done(), ["echo one", "exit 5"]);
    }

    #[test]
    fn a_held_enter_at_the_end_of_a_session_is_no_record() {
        let mut s = Sim::new();
        s.screen(b"tgt$ ");
        s.keys(b"reboot\r");
        // The session ends before the echo (and the Enter) went anywhere.
        s.cap.finish(s.t, &mut s.out);
        assert!(s.out.is_empty(), "{:?}", s.out);
    }

    #[test]
    fn completion_pasted_ahead_of_its_echo_is_recorded() {
        let mut s = Sim::new();
        s.screen(b"tgt$ ");
        // Keys in one chunk, before any echo: as a paste would.
        s.keys(b"ech\t gotcha\r");
        s.screen(b"ech");
        s.screen(b"o ");
        s.screen(b" gotcha");
        s.wait(150);
        assert_eq!(s.done(), ["echo  gotcha"]);
    }

    #[test]
    fn recall_pasted_ahead_of_its_echo_is_recorded() {
        let mut s = Sim::new();
        s.screen(b"tgt$ ");
        for b in b"echo first" {
            s.keys(&[*b]);
            s.screen(&[*b]);
        }
        s.keys(b"\r");
        s.screen(b"\r\nfirst\r\ntgt$ ");
        s.keys(b"\x1b[A\r");
        s.screen(b"echo first");
        s.wait(150);
        assert_eq!(s.done(), ["echo first", "echo first"]);
    }

    #[test]
    fn secret_with_a_tab_at_a_no_echo_prompt_is_hidden() {
        let mut s = Sim::new();
        s.screen(b"Password: ");
        s.keys(b"hun\tter2\r");
        let out = s.done();
        assert_eq!(out, ["<hidden Password:>"]);
    }

    #[test]
    fn secret_at_column_zero_printed_back_is_not_a_command() {
        // `read -s x; echo $x`: no prompt, the password typed with no echo,
        // then the program prints it on a line of its own.
        let mut s = Sim::new();
        s.screen(b"tgt$ ");
        s.keys(b"read -s x; echo $x\r");
        s.screen(b"read -s x; echo $x");
        s.screen(b"\r\n");
        for &b in b"hunter2" {
            s.keys(&[b]);
            s.wait(100);
        }
        s.keys(b"\r");
        s.wait(1000);
        s.screen(b"hunter2\r\ntgt$ ");
        let out = s.done();
        assert_eq!(out, ["read -s x; echo $x", "<hidden >"]);
    }

    #[test]
    fn stty_echo_off_at_the_shell_prompt_is_a_command_not_a_secret() {
        let mut s = Sim::new();
        s.screen(b"tgt$ ");
        for line in ["ls", "stty -echo"] {
            for b in line.bytes() {
                s.keys(&[b]);
                s.screen(&[b]);
            }
            s.keys(b"\r");
            s.screen(b"\r\ntgt$ ");
        }
        s.keys(b"touch /tmp/x\r");
        s.wait(1000);
        let recs = {
            s.wait(5000);
            s.cap.finish(s.t, &mut s.out);
            s.out.clone()
        };
        match recs.last() {
            Some(Record::Command(c)) => {
                assert_eq!(c.text, "touch /tmp/x");
                assert!(!c.verified);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn here_document_and_loop_are_one_record_whatever_the_continuation_prompt() {
        let mut s = Sim::new();
        s.screen(b"tgt$ ");
        for (line, next) in [
            ("cat <<EOF", "\r\n... "),
            ("body", "\r\n... "),
            ("EOF", "\r\nbody\r\ntgt$ "),
            ("for i in 1; do", "\r\ncont> "),
            ("echo $i", "\r\ncont> "),
            ("done", "\r\n1\r\ntgt$ "),
        ] {
            for b in line.bytes() {
                s.keys(&[b]);
                s.screen(&[b]);
            }
            s.keys(b"\r");
            s.screen(next.as_bytes());
        }
        assert_eq!(
            s.done(),
            ["cat <<EOF\nbody\nEOF", "for i in 1; do\necho $i\ndone"]
        );
    }

    #[test]
    fn stress_random_interleaving_is_total_and_bounded() {
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
            b"\x1b[200~",
            b"\x1b[201~",
            b"\x1b[A",
            b"\x1b[D",
            b"\x1bOM",
            b"\x7f",
            b"\x03",
            b"\x15",
            b"\x16",
            b"\x18\x05",
            b"\x12",
            b"\t",
            b"echo hi",
            b"for i in 1; do",
            b"done",
            b"cat <<E",
            b"E",
            b"\xff",
            b"\x1b[2J",
            b"\x1b[H",
            b":!ls",
            b"!ls",
            b":wq",
            b"x",
        ];
        for seed in 1..=6u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut s = Sim::new();
            for _ in 0..800 {
                let mut chunk = Vec::new();
                for _ in 0..1 + rng.below(20) {
                    if rng.below(3) == 0 {
                        chunk.push(rng.next() as u8);
                    } else {
                        chunk.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
                    }
                }
                match rng.below(20) {
                    0 if rng.below(8) == 0 => s.cap.resize(rng.next() as u16, rng.next() as u16),
                    0 => s.cap.resize(rng.below(200) as u16, rng.below(60) as u16),
                    1..=8 => s.keys(&chunk),
                    9 => s.wait(rng.below(3000) as u64),
                    _ => s.screen(&chunk),
                }
                assert!(s.cap.approx_heap_bytes() < 40 << 20);
            }
            s.wait(5000);
            s.cap.finish(s.t, &mut s.out);
            for r in &s.out {
                if let Record::Command(c) = r {
                    assert!(!c.text.trim().is_empty());
                    assert!(c.text.len() <= MAX_COMMAND_BYTES + 3);
                }
            }
        }
    }
}
