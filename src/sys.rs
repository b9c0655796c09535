//! The only module with `unsafe`: signal dispositions, the window size
//! ioctl, the environment reset, pidfd signalling, the per-thread
//! effective ids (`set_thread_euid`, for reaching the operator's agent),
//! dropping read-only file pages from the resident set
//! (`forget_read_only_pages`) and a socket's receive low-water mark.
//!
//! Signals reach the rest of Gatehouse as bytes on a non-blocking pipe (the
//! self-pipe trick), so the relay sees them in its poll(2) set and the menu
//! sees them as an interrupted read. Everything else uses nix's safe API.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Write end of the self-pipe, read by the async-signal handler.
static PIPE_WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// Bit set of signals received since the last `take_pending` (bit = signo).
static PENDING: AtomicU32 = AtomicU32::new(0);

/// Set for good by the first SIGHUP or SIGTERM: the process is leaving.
static LEAVING: AtomicBool = AtomicBool::new(false);
/// The menu's idle alarm is armed / has fired.
static MENU_TIMER: AtomicBool = AtomicBool::new(false);
static MENU_TIMED_OUT: AtomicBool = AtomicBool::new(false);
/// SIGINT arrived since the last `take_interrupt` (only once
/// `catch_interrupt` replaced its default of being ignored).
static SIGINT_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signo: nix::libc::c_int) {
    if signo == nix::libc::SIGHUP || signo == nix::libc::SIGTERM || signo == nix::libc::SIGALRM {
        if signo != nix::libc::SIGALRM {
            LEAVING.store(true, Ordering::SeqCst);
        } else if MENU_TIMER.load(Ordering::SeqCst) {
            MENU_TIMED_OUT.store(true, Ordering::SeqCst);
        }
        if LEAVING.load(Ordering::SeqCst) || MENU_TIMED_OUT.load(Ordering::SeqCst) {
            // A signal that lands just before the menu's key reader blocks
            // in poll(2) (it watches the terminal only, and learns of
            // signals from EINTR) would be missed until the next key. Re-arming an alarm interrupts that poll within a
            // second, for as long as we are leaving; never otherwise.
            // SAFETY: alarm(2) is async-signal-safe and has no memory effects.
            unsafe {
                nix::libc::alarm(1);
            }
        }
        if signo == nix::libc::SIGALRM {
            return;
        }
    }
    if signo == nix::libc::SIGINT {
        SIGINT_SEEN.store(true, Ordering::SeqCst);
    }
    if (0..32).contains(&signo) {
        PENDING.fetch_or(1 << signo, Ordering::SeqCst);
    }
    let fd = PIPE_WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = [signo as u8];
        // SAFETY: write(2) is async-signal-safe; `fd` is the write end of a
        // pipe owned by the `SignalPipe` that lives for the whole process
        // (it is leaked on purpose, see `SignalPipe::install`), and the buffer
        // is a live stack array. A full pipe just drops the byte (O_NONBLOCK):
        // the PENDING bits still carry the signal.
        unsafe {
            nix::libc::write(fd, byte.as_ptr().cast(), 1);
        }
    }
}

/// Signals Gatehouse reacts to; everything else keeps its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Hangup,
    Terminate,
    WindowChange,
    /// SIGUSR1: an administrator asks the running session to end
    /// (`gatehouse kill`; the reason waits in a note only the gatehouse
    /// account can write, see `live.rs`).
    Kill,
}

impl Sig {
    fn signal(self) -> Signal {
        match self {
            Sig::Hangup => Signal::SIGHUP,
            Sig::Terminate => Signal::SIGTERM,
            Sig::WindowChange => Signal::SIGWINCH,
            Sig::Kill => Signal::SIGUSR1,
        }
    }
}

/// The read end of the self-pipe; readable whenever a watched signal arrived.
pub struct SignalPipe {
    read: OwnedFd,
}

impl SignalPipe {
    /// Installs the handlers. Call once, early in `main`.
    ///
    /// SIGINT, SIGQUIT and SIGTSTP (and the tty job-control signals) are
    /// ignored: an operator's Ctrl-C / Ctrl-\ / Ctrl-Z at the menu must not
    /// kill or stop Gatehouse (product.md, security model). SIGHUP and
    /// SIGTERM are caught *without* SA_RESTART so that a blocking read or
    /// write returns EINTR and the menu can exit cleanly (SIGALRM backs
    /// that up, see `on_signal`); SIGWINCH and SIGUSR1 keep SA_RESTART.
    /// SA_RESTART does not cover poll(2), which fails with EINTR after
    /// any handler (signal(7)): so every prompt waiting for keys waits
    /// again after a signal that does not concern it, keeping the bytes
    /// it read (`menu::KeyReader`, the relay's policy question), and a
    /// resize or a bare kill request does not disturb it.
    pub fn install() -> nix::Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        PIPE_WRITE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        // The write end must outlive every possible signal delivery.
        std::mem::forget(write);

        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        for sig in [
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGTSTP,
            Signal::SIGTTIN,
            Signal::SIGTTOU,
            Signal::SIGPIPE,
        ] {
            // SAFETY: installing SIG_IGN has no handler code to be unsound.
            unsafe { sigaction(sig, &ignore) }?;
        }
        for (sig, flags) in [
            (Signal::SIGHUP, SaFlags::empty()),
            (Signal::SIGTERM, SaFlags::empty()),
            (Signal::SIGALRM, SaFlags::empty()),
            (Signal::SIGWINCH, SaFlags::SA_RESTART),
            // Like a resize, a kill request must not disturb a prompt: only
            // the relay acts on it (and a prompt whose poll it interrupts
            // waits again unless the administrator's note is there).
            (Signal::SIGUSR1, SaFlags::SA_RESTART),
        ] {
            let action = SigAction::new(SigHandler::Handler(on_signal), flags, SigSet::empty());
            // SAFETY: `on_signal` only touches atomics and calls write(2)
            // and alarm(2), all async-signal-safe.
            unsafe { sigaction(sig, &action) }?;
        }
        Ok(SignalPipe { read })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the pipe and returns the signals received since last time.
    pub fn take_pending(&self) -> Vec<Sig> {
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(self.read.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
        }
        let bits = PENDING.swap(0, Ordering::SeqCst);
        [Sig::Hangup, Sig::Terminate, Sig::WindowChange, Sig::Kill]
            .into_iter()
            .filter(|s| bits & (1 << (s.signal() as i32)) != 0)
            .collect()
    }

    /// From now on SIGINT is caught instead of ignored: with `ssh -t`, a
    /// Ctrl-C on the operator's terminal reaches us as SIGINT (the bastion
    /// pty's line discipline), and a many-host request stops on it
    /// (src/operator/batch.rs). It wakes the poll loop through the pipe.
    pub fn catch_interrupt(&self) -> nix::Result<()> {
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: `on_signal` only touches atomics and calls write(2) and
        // alarm(2), all async-signal-safe.
        unsafe { sigaction(Signal::SIGINT, &action) }?;
        Ok(())
    }

    /// From now on SIGUSR1 (`gatehouse kill`) interrupts a blocking system
    /// call instead of restarting it. For every session whose writes to
    /// the operator block (exec, transfer, batch and the interactive relay;
    /// src/operator/exec.rs `write_all_fd`): an operator who stops reading
    /// would otherwise hold a write, and the session, forever. The admin's
    /// `kill` signals again while it waits, so a signal that lands just
    /// before the write blocks is not lost. Not while the menu is shown:
    /// the relay, which the menu follows, puts it back with
    /// `restart_on_kill` as it ends.
    pub fn interrupt_on_kill(&self) -> nix::Result<()> {
        kill_action(SaFlags::empty())
    }

    /// Undoes `interrupt_on_kill`: SIGUSR1 restarts an interrupted system
    /// call again, as `install` set it, for the menu that follows a
    /// session. (Its wait for a key, a poll(2), sees EINTR either way and
    /// waits again: `menu::KeyReader`.)
    pub fn restart_on_kill(&self) -> nix::Result<()> {
        kill_action(SaFlags::SA_RESTART)
    }

    /// Whether SIGINT arrived since the last call (see `catch_interrupt`).
    pub fn take_interrupt(&self) -> bool {
        SIGINT_SEEN.swap(false, Ordering::SeqCst)
    }

    /// True once a hang-up or terminate arrived (it stays true).
    pub fn must_leave(&self) -> bool {
        LEAVING.load(Ordering::SeqCst)
    }

    /// Whether SIGUSR1 arrived since the last `take_pending`, without
    /// taking it: a cheap test before looking for a kill note.
    pub fn kill_pending(&self) -> bool {
        PENDING.load(Ordering::SeqCst) & (1 << Sig::Kill.signal() as i32) != 0
    }
}

/// SIGUSR1 to `on_signal`, with `flags` (SA_RESTART or not).
fn kill_action(flags: SaFlags) -> nix::Result<()> {
    let action = SigAction::new(SigHandler::Handler(on_signal), flags, SigSet::empty());
    // SAFETY: `on_signal` only touches atomics and calls write(2) and
    // alarm(2), all async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &action) }?;
    Ok(())
}

/// Makes the process non-dumpable with no core file, so target credentials
/// read into memory cannot be recovered from a core dump or by ptrace from
/// the operator's uid.
pub fn harden_process() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)?;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
}

/// Sets the effective uid of the calling thread only (`setresuid(-1, uid,
/// -1)` as a raw syscall). glibc's `seteuid`/`setresuid` wrappers apply a
/// change to every thread of the process (POSIX semantics); the kernel's
/// credentials are per thread, and `privilege::as_operator` wants exactly
/// one thread switched. The fs uid follows the effective uid.
pub fn set_thread_euid(uid: u32) -> Result<(), nix::errno::Errno> {
    // -1 leaves an id unchanged; the kernel truncates each argument to uid_t.
    let (keep, uid) = (-1 as nix::libc::c_long, nix::libc::c_long::from(uid));
    // SAFETY: setresuid(2) takes three integers and touches no memory of
    // ours; the kernel checks that `uid` is one of our real, effective or
    // saved uids.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_setresuid, keep, uid, keep) };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

/// The same for the effective gid of the calling thread (`setresgid`).
pub fn set_thread_egid(gid: u32) -> Result<(), nix::errno::Errno> {
    let (keep, gid) = (-1 as nix::libc::c_long, nix::libc::c_long::from(gid));
    // SAFETY: setresgid(2) takes three integers and touches no memory of
    // ours; the kernel checks that `gid` is one of our real, effective or
    // saved gids.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_setresgid, keep, gid, keep) };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

/// Arms the menu's idle timeout: after `secs` the menu's key read is
/// interrupted and `menu_timed_out` turns true (dialoguer owns the reads,
/// so an alarm is the only way to wake it).
pub fn arm_menu_timeout(secs: u32) {
    MENU_TIMED_OUT.store(false, Ordering::SeqCst);
    MENU_TIMER.store(true, Ordering::SeqCst);
    // SAFETY: alarm(2) has no memory effects; SIGALRM's handler is ours.
    unsafe {
        nix::libc::alarm(secs.max(1));
    }
}

pub fn disarm_menu_timeout() {
    MENU_TIMER.store(false, Ordering::SeqCst);
    if !LEAVING.load(Ordering::SeqCst) {
        // SAFETY: as above; cancels a pending alarm.
        unsafe {
            nix::libc::alarm(0);
        }
    }
}

pub fn menu_timed_out() -> bool {
    MENU_TIMED_OUT.load(Ordering::SeqCst)
}

/// The window size (columns, rows) of the terminal on `fd`, from the
/// TIOCGWINSZ ioctl; `None` when `fd` is not a terminal. Never falls back
/// to running a program (crossterm's `size()` runs `tput` when the ioctl
/// reports 0×0 — a setuid process must never execute anything).
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes exactly one `struct winsize` through the
    // pointer, which points to a live, aligned local of that type; `fd` is
    // a borrowed, open descriptor for the duration of the call.
    let r = unsafe {
        nix::libc::ioctl(
            fd.as_raw_fd(),
            nix::libc::TIOCGWINSZ,
            &mut ws as *mut nix::libc::winsize,
        )
    };
    (r == 0).then_some((ws.ws_col, ws.ws_row))
}

/// Empties the process environment, entries that `std::env` cannot name
/// included (`==x` has the name "=", which `remove_var` refuses with a
/// panic). Call only while single-threaded (`privilege::enter`).
pub fn clear_environment() {
    // SAFETY: clearenv(3) only resets libc's `environ`; we are still
    // single-threaded, so no other thread reads the environment meanwhile,
    // and std keeps no pointers into it.
    unsafe {
        nix::libc::clearenv();
    }
}

/// A process handle that cannot be redirected by pid reuse: after
/// `pidfd_open`, the descriptor names that process even if the pid is
/// recycled, so a signal sent through it never hits another process.
pub struct PidFd(OwnedFd);

impl PidFd {
    /// `None` with the errno when the kernel has no pidfd (before 5.3) or
    /// the process is gone.
    pub fn open(pid: i32) -> Result<PidFd, nix::errno::Errno> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(nix::errno::Errno::last());
        }
        // SAFETY: the kernel just returned this descriptor to us; nothing
        // else owns it.
        Ok(PidFd(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
        }))
    }

    pub fn signal(&self, sig: Signal) -> Result<(), nix::errno::Errno> {
        // SAFETY: pidfd_send_signal(2) with a null siginfo and no flags
        // reads no memory of ours; the descriptor is open (owned by self).
        let r = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig as i32,
                std::ptr::null::<nix::libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            Err(nix::errno::Errno::last())
        } else {
            Ok(())
        }
    }
}

/// Set once SIGINT, SIGTERM or SIGHUP reached `gatehouse replay`.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signo: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let fd = PIPE_WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = [1u8];
        // SAFETY: write(2) is async-signal-safe; `fd` is the leaked write
        // end of the pipe made in `catch_interrupts`, and the buffer is a
        // live stack array. A full pipe drops the byte; the flag remains.
        unsafe {
            nix::libc::write(fd, byte.as_ptr().cast(), 1);
        }
    }
}

/// For `gatehouse replay`: SIGINT (Ctrl-C when the keyboard is not ours),
/// SIGTERM and SIGHUP end the replay through its normal exit, so the
/// terminal is restored, instead of killing it mid-sequence. Returns the
/// read end of a pipe that turns readable when one arrived; `interrupted`
/// says whether one did.
pub fn catch_interrupts() -> nix::Result<OwnedFd> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    PIPE_WRITE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
    // The write end must outlive every possible signal delivery.
    std::mem::forget(write);
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let action = SigAction::new(
            SigHandler::Handler(on_interrupt),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: `on_interrupt` only stores an atomic and calls write(2),
        // both async-signal-safe.
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(read)
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sets a socket's receive low-water mark (`SO_RCVLOWAT`; nix has no
/// wrapper for it): poll(2) reports it readable only when that many bytes
/// wait (`operator::bulk_reads`).
pub fn set_receive_low_water(fd: BorrowedFd<'_>, bytes: i32) -> nix::Result<()> {
    // SAFETY: `fd` is a live descriptor for the borrow; the option value is
    // an `i32` read by the kernel for the length given, nothing is kept.
    let r = unsafe {
        nix::libc::setsockopt(
            fd.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_RCVLOWAT,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as nix::libc::socklen_t,
        )
    };
    nix::errno::Errno::result(r).map(drop)
}

/// Takes the pages of this process's read-only file mappings (the code
/// and constant data of the program and its libraries) out of its
/// resident set; each page comes back from the page cache, unchanged, on
/// its next use. Called before a session connects and again before its
/// bytes flow, so the code only the start needed (config, menu, login,
/// key exchange) does not count against a session for its whole life —
/// nor stay mapped by it: the kernel can reclaim such page cache without
/// unmapping it from every session first. Best effort: a mapping the
/// advice fails for stays as it was.
pub fn forget_read_only_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // Read whole before the loop: nothing below allocates, frees or maps,
    // and no other thread runs at the call sites (before a session
    // connects, before its bytes flow), so each range is still the mapping
    // smaps described when it is advised.
    let mappings = smaps_mappings(&smaps);
    for m in mappings.iter().filter(|m| m.read_only_file) {
        let m = &m.range;
        let Some(start) = std::ptr::NonNull::new(m.start as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: `m` is a whole mapping listed in /proc/self/smaps as
        // private, backed by a file, not writable and with no anonymous
        // (copied-on-write) page, so no byte in it differs from the file:
        // MADV_DONTNEED only removes its page-table entries and the next
        // access maps the same file bytes again. Nothing is unmapped, so
        // every pointer into it stays valid. Writable or written mappings
        // (data, relocated RELRO) are never passed here; dropping those
        // would lose their contents.
        let _ = unsafe {
            nix::sys::mman::madvise(
                start,
                m.end - m.start,
                nix::sys::mman::MmapAdvise::MADV_DONTNEED,
            )
        };
    }
}

/// One mapping of a `/proc/PID/smaps` text.
#[derive(Debug, PartialEq)]
pub struct Mapping {
    pub range: std::ops::Range<usize>,
    /// The file's path, as smaps shows it (empty for anonymous memory).
    pub path: String,
    /// What `forget_read_only_pages` may drop: readable, not writable,
    /// private (`r--p`, `r-xp`), backed by a file (an absolute path and an
    /// inode), and without one anonymous (written) page.
    pub read_only_file: bool,
    pub rss_kb: u64,
}

/// The mappings of a `/proc/PID/smaps` text, in order.
pub fn smaps_mappings(smaps: &str) -> Vec<Mapping> {
    let mut found: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        // "start-end perms offset dev inode   path": one space between the
        // first five fields, padding before the path (which may hold spaces).
        let mut fields = line.splitn(6, ' ');
        if let Some(range) = address_range(fields.next().unwrap_or("")) {
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            let path = fields.next().unwrap_or("").trim().to_string();
            let read_only_file =
                matches!(perms, "r--p" | "r-xp") && inode != "0" && path.starts_with('/');
            found.push(Mapping {
                range,
                path,
                read_only_file,
                rss_kb: 0,
            });
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), Some(last)) = (fields.next(), found.last_mut()) else {
            continue;
        };
        let kb = fields.next().and_then(|v| v.parse::<u64>().ok());
        match key {
            "Rss:" => last.rss_kb = kb.unwrap_or(0),
            "Anonymous:" if kb != Some(0) => last.read_only_file = false,
            _ => {}
        }
    }
    found
}

/// `7f00-7f80` → 0x7f00..0x7f80 (a smaps header's first field).
fn address_range(field: &str) -> Option<std::ops::Range<usize>> {
    let (a, b) = field.split_once('-')?;
    let start = usize::from_str_radix(a, 16).ok()?;
    let end = usize::from_str_radix(b, 16).ok()?;
    (start < end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the relay's batched reads rely on (`operator::bulk_reads`):
    /// below the mark poll(2) does not report the socket, a non-blocking
    /// read still returns what is there, at the mark poll does, at 1 it
    /// does again for a byte, and end-of-file is reported whatever the mark.
    #[test]
    fn the_receive_low_water_mark_gates_poll_but_not_reads_or_eof() {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut rx, _) = listener.accept().unwrap();
        rx.set_nonblocking(true).unwrap();
        let readable = |rx: &std::net::TcpStream, ms: u16| {
            let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
        };
        set_receive_low_water(rx.as_fd(), 1000).unwrap();
        tx.write_all(&[b'a'; 10]).unwrap();
        assert!(
            !readable(&rx, 50),
            "10 bytes woke a reader waiting for 1000"
        );
        let mut buf = [0u8; 2000];
        assert_eq!(rx.read(&mut buf).unwrap(), 10, "a read below the mark");
        tx.write_all(&[b'b'; 1000]).unwrap();
        assert!(readable(&rx, 5000), "1000 bytes did not wake it");
        let mut got = 0;
        while got < 1000 {
            got += rx.read(&mut buf).unwrap();
        }
        set_receive_low_water(rx.as_fd(), 1).unwrap();
        tx.write_all(b"c").unwrap();
        assert!(readable(&rx, 5000), "one byte at a mark of 1");
        assert_eq!(rx.read(&mut buf).unwrap(), 1);
        set_receive_low_water(rx.as_fd(), 1000).unwrap();
        drop(tx);
        assert!(readable(&rx, 5000), "end-of-file hidden by the mark");
        assert_eq!(rx.read(&mut buf).unwrap(), 0);
    }

    /// SIGUSR1's flags as installed now (set to a probe and back: the
    /// only way sigaction(2) reports them through nix).
    fn kill_flags() -> SaFlags {
        let probe = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_IGN has no handler code; the disposition found is put
        // back at once, and nothing in the test binary sends SIGUSR1.
        let now = unsafe { sigaction(Signal::SIGUSR1, &probe) }.unwrap();
        // SAFETY: restores the action just read, whose handler (if any) is
        // `on_signal`, async-signal-safe.
        unsafe { sigaction(Signal::SIGUSR1, &now) }.unwrap();
        now.flags()
    }

    /// The relay (and the exec pump) let a kill request interrupt a
    /// blocked write; the menu after a session must get restarted calls
    /// back, as `install` set them.
    #[test]
    fn a_kill_request_interrupts_only_between_interrupt_and_restart() {
        let (read, _write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        // Without `install`: no other disposition of the test binary moves.
        let pipe = SignalPipe { read };
        pipe.interrupt_on_kill().unwrap();
        assert!(!kill_flags().contains(SaFlags::SA_RESTART));
        pipe.restart_on_kill().unwrap();
        assert!(kill_flags().contains(SaFlags::SA_RESTART));
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: back to the default disposition; no handler code.
        unsafe { sigaction(Signal::SIGUSR1, &default) }.unwrap();
    }

    const SMAPS: &str = "\
55d0c0a00000-55d0c0b00000 r--p 00000000 fe:01 1234  /usr/bin/prog
Rss:                 400 kB
Anonymous:             0 kB
55d0c0b00000-55d0c0c00000 r-xp 00100000 fe:01 1234  /usr/bin/prog
Anonymous:             0 kB
55d0c0c00000-55d0c0c10000 r--p 00200000 fe:01 1234  /usr/bin/prog
Anonymous:            64 kB
55d0c0c10000-55d0c0c20000 rw-p 00210000 fe:01 1234  /usr/bin/prog
Anonymous:             8 kB
7f0000000000-7f0000100000 r--s 00000000 fe:01 99    /usr/lib/cache
Anonymous:             0 kB
7f0000100000-7f0000200000 r--p 00000000 00:00 0
Anonymous:             0 kB
7f0000200000-7f0000201000 ---p 00000000 fe:01 77    /usr/lib/libx.so
Anonymous:             0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0     [vdso]
Anonymous:             0 kB
7f0000300000-7f0000400000 r-xp 00000000 fe:01 77    /usr/lib/lib with space.so
Anonymous:             0 kB
";

    /// Only code and constants that no write has touched: never data,
    /// relocated RELRO (anonymous pages), shared, anonymous, guard or
    /// kernel-provided mappings.
    #[test]
    fn only_unwritten_read_only_file_mappings_are_forgotten() {
        let forgettable = |text: &str| -> Vec<std::ops::Range<usize>> {
            smaps_mappings(text)
                .into_iter()
                .filter(|m| m.read_only_file)
                .map(|m| m.range)
                .collect()
        };
        assert_eq!(
            forgettable(SMAPS),
            vec![
                0x55d0c0a00000..0x55d0c0b00000,
                0x55d0c0b00000..0x55d0c0c00000,
                0x7f0000300000..0x7f0000400000,
            ]
        );
        let all = smaps_mappings(SMAPS);
        assert_eq!(all.len(), 9);
        assert_eq!(all[0].rss_kb, 400);
        assert_eq!(all[8].path, "/usr/lib/lib with space.so");
        assert!(forgettable("").is_empty());
        assert!(forgettable("garbage\nAnonymous: 0 kB\n").is_empty());
    }

    /// Rss of the mapping of `path` in this process, in kB.
    fn mapped_rss_kb(path: &std::path::Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        smaps_mappings(&smaps)
            .iter()
            .filter(|m| std::path::Path::new(&m.path) == path)
            .map(|m| m.rss_kb)
            .sum()
    }

    /// A read-only private file mapping leaves the resident set and reads
    /// back the same bytes afterwards.
    #[test]
    fn forgotten_pages_leave_the_resident_set_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("constants");
        let data: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let len = std::num::NonZeroUsize::new(data.len()).unwrap();
        // SAFETY: a fresh private read-only mapping of a file nothing else
        // writes; unmapped at the end of the test, after its last use.
        let ptr = unsafe {
            nix::sys::mman::mmap(
                None,
                len,
                nix::sys::mman::ProtFlags::PROT_READ,
                nix::sys::mman::MapFlags::MAP_PRIVATE,
                &file,
                0,
            )
        }
        .unwrap();
        // SAFETY: the mapping is `len` readable bytes and lives until munmap.
        let mapped = unsafe { std::slice::from_raw_parts(ptr.as_ptr() as *const u8, len.get()) };
        let sum = |m: &[u8]| m.iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
        let expected = sum(&data);
        assert_eq!(sum(mapped), expected);
        assert!(mapped_rss_kb(&path) >= 1000, "every page was touched");
        forget_read_only_pages();
        assert_eq!(mapped_rss_kb(&path), 0);
        assert_eq!(mapped, &data[..]);
        // SAFETY: `mapped` is not used past this point.
        unsafe { nix::sys::mman::munmap(ptr, len.get()) }.unwrap();
    }
}
