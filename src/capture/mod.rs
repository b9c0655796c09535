//! Command capture: turns the operator's keystrokes and the target's output
//! into the commands the remote shell received.
//!
//! This is a pure, total, bounded state machine: it touches no terminal,
//! socket or file. The relay feeds it both byte streams; it hands back
//! completed commands.
#![forbid(unsafe_code)]

mod keys;

use keys::{KeyEvent, Keys};

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

/// The capture engine for one session.
pub struct Capture {
    keys: Keys,
}

impl Capture {
    pub fn new(_cols: u16, _rows: u16) -> Self {
        Capture { keys: Keys::new() }
    }

    /// Bytes the operator typed, exactly as they are sent to the target.
    /// Completed commands are appended to `out`.
    pub fn input(&mut self, bytes: &[u8], out: &mut Vec<Command>) {
        for &b in bytes {
            if let KeyEvent::Enter(line) = self.keys.push(b) {
                let text = line.text.trim();
                if !text.is_empty() {
                    out.push(Command {
                        text: text.to_string(),
                        truncated: line.truncated,
                        source: Source::Keys,
                    });
                }
            }
        }
    }

    /// Bytes the target sent towards the operator. May complete commands
    /// whose fate depended on the output (echo, continuation prompts).
    pub fn output(&mut self, _bytes: &[u8], _out: &mut Vec<Command>) {}

    /// The operator's window changed size.
    pub fn resize(&mut self, _cols: u16, _rows: u16) {}

    /// The session is over: hand back anything still pending that is known
    /// to be a command.
    pub fn finish(&mut self, _out: &mut Vec<Command>) {}
}
