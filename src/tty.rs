//! The operator's terminal: raw mode on the way in, the saved mode restored
//! on the way out (Drop, panic hook and every error path), window size, and
//! a validated `TERM`.
#![forbid(unsafe_code)]

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::sync::Mutex;

use nix::sys::termios::{self, SetArg, Termios};

/// The mode to restore if we panic while raw (read by the panic hook).
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Puts stdin's terminal in raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> nix::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if let Ok(mut s) = SAVED.lock() {
            *s = Some(saved.clone());
        }
        termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // EIO after a hang-up is expected: there is no terminal left.
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved);
        if let Ok(mut s) = SAVED.lock() {
            *s = None;
        }
    }
}

/// For the panic hook: put the terminal back and show the cursor.
pub fn emergency_restore() {
    if let Ok(mut s) = SAVED.try_lock() {
        if let Some(t) = s.take() {
            let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &t);
        }
    }
    if io::stdout().is_terminal() {
        let _ = console::Term::stdout().show_cursor();
    }
}

/// Both ends are terminals: the only case where a menu or session may run.
pub fn is_interactive() -> bool {
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// Bounds on a window size we pass on. A pty nobody sized reports 0×0;
/// a hostile client may claim 65535×65535.
pub const MIN_COLS: u16 = 20;
pub const MIN_ROWS: u16 = 5;
pub const MAX_COLS: u16 = 1000;
pub const MAX_ROWS: u16 = 1000;

pub fn clamp_size(cols: u16, rows: u16) -> (u16, u16) {
    let cols = if cols == 0 {
        80
    } else {
        cols.clamp(MIN_COLS, MAX_COLS)
    };
    let rows = if rows == 0 {
        24
    } else {
        rows.clamp(MIN_ROWS, MAX_ROWS)
    };
    (cols, rows)
}

/// The operator's window, clamped; 80×24 when unknown. Read with the
/// TIOCGWINSZ ioctl on stdin, then stdout (`sys::window_size`): nothing is
/// ever run to find it out (crossterm's `size()` runs `tput` when the ioctl
/// says 0×0, which an operator can arrange).
pub fn window_size() -> (u16, u16) {
    let (c, r) = crate::sys::window_size(io::stdin().as_fd())
        .filter(|&(c, r)| c > 0 && r > 0)
        .or_else(|| crate::sys::window_size(io::stdout().as_fd()))
        .unwrap_or((80, 24));
    clamp_size(c, r)
}

/// `TERM` as the operator's client sent it, if it is a plausible terminal
/// name; otherwise a safe default. It goes to the target and to records.
pub fn term_name(raw: Option<&str>) -> String {
    match raw {
        Some(t)
            if !t.is_empty()
                && t.len() <= 64
                && t.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+')
                }) =>
        {
            t.to_string()
        }
        _ => "xterm-256color".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(clamp_size(0, 0), (80, 24));
        assert_eq!(clamp_size(65535, 65535), (MAX_COLS, MAX_ROWS));
        assert_eq!(clamp_size(132, 43), (132, 43));
        assert_eq!(clamp_size(1, 1), (MIN_COLS, MIN_ROWS));
    }

    #[test]
    fn terms() {
        assert_eq!(term_name(Some("xterm-256color")), "xterm-256color");
        assert_eq!(term_name(Some("screen.xterm")), "screen.xterm");
        assert_eq!(term_name(Some("\x1b]0;pwn\x07")), "xterm-256color");
        assert_eq!(term_name(Some(&"x".repeat(10_000))), "xterm-256color");
        assert_eq!(term_name(None), "xterm-256color");
    }
}
