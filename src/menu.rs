//! The host menu: the only user of dialoguer. It owns the cursor (shown
//! again after every prompt) and makes sure a menu is only drawn on a real
//! terminal (FuzzySelect would redraw in a hot loop on anything else).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios};
use nix::unistd::{dup, dup2_stdin, pipe2};

use console::Term;
use dialoguer::theme::ColorfulTheme;
use dialoguer::FuzzySelect;

use crate::config::Host;

pub enum Choice {
    Host(usize),
    Quit,
    /// Ctrl-C or a signal interrupted the prompt: the caller decides.
    Interrupted,
}

const QUIT_LABEL: &str = "quit — leave Gatehouse";

/// One line per host: name, padded, then the description. Labels must be
/// unique (FuzzySelect returns the first equal label); host names are.
pub fn labels(hosts: &[&Host]) -> Vec<String> {
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let mut items: Vec<String> = hosts
        .iter()
        .map(|h| {
            if h.description.is_empty() {
                h.name.clone()
            } else {
                format!("{:<width$}  {}", h.name, h.description)
            }
        })
        .collect();
    items.push(QUIT_LABEL.to_string());
    items
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

pub fn choose(items: &[String], user: &str) -> io::Result<Choice> {
    // Without the shim the menu still works; only Ctrl-D does nothing.
    let _shim = KeyShim::install().ok();
    let term = Term::stdout();
    let rows = term.size().0.max(6) as usize;
    let result = FuzzySelect::with_theme(&ColorfulTheme::default())
        .with_prompt(format!(
            "{user}@gatehouse: pick a host (type to filter, Esc or Ctrl-D to quit)"
        ))
        .items(items)
        .default(0)
        .max_length(rows.saturating_sub(3).max(3))
        .clear(true)
        .interact_on_opt(&term);
    let _ = term.show_cursor();
    match result {
        Ok(Some(i)) if i + 1 == items.len() => Ok(Choice::Quit),
        Ok(Some(i)) => Ok(Choice::Host(i)),
        Ok(None) => Ok(Choice::Quit),
        Err(dialoguer::Error::IO(e)) if e.kind() == io::ErrorKind::Interrupted => {
            Ok(Choice::Interrupted)
        }
        Err(dialoguer::Error::IO(e)) => Err(e),
    }
}
