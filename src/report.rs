//! Problems for the admin that cannot reach the JSONL (a broken config, an
//! unwritable log dir) go to syslog, facility authpriv, ident `gatehouse`.
//! The operator gets one calm line instead.
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::net::UnixDatagram;

/// Like `eprintln!`, but never panics: after a hang-up stderr is gone
/// (EIO) and the login must still finish its records.
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => { $crate::report::write_err(&format!($($arg)*)) };
}

/// Like `println!`, but never panics (see `say_err!`).
#[macro_export]
macro_rules! say_out {
    ($($arg:tt)*) => { $crate::report::write_out(&format!($($arg)*)) };
}

pub fn write_err(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
    let _ = e.flush();
}

pub fn write_out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

const LOG_AUTHPRIV: u8 = 10;
const LOG_ERR: u8 = 3;

/// Sends `message` to the local syslog socket. Best effort: there may be no
/// syslog daemon; the caller has already decided what the operator sees.
pub fn syslog(message: &str) {
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let pri = LOG_AUTHPRIV * 8 + LOG_ERR;
    // RFC 3164 without timestamp/hostname: the local daemon fills them in.
    let line = format!(
        "<{pri}>gatehouse[{}]: {}",
        std::process::id(),
        crate::core::config::sanitize_text(message, 2000)
    );
    let _ = sock.send_to(line.as_bytes(), "/dev/log");
}

/// An admin-facing problem: syslog always, and stderr too when nobody but
/// the invoking user is involved (unprivileged runs: demo, tests, a person
/// running their own Gatehouse), since they are the admin then.
pub fn admin(privileged: bool, message: &str) {
    syslog(message);
    if !privileged {
        write_err(&format!("gatehouse: {message}"));
    }
}

/// The one line an operator sees when the service cannot work.
pub fn unavailable(why: &str) {
    write_err(&format!(
        "gatehouse: service unavailable ({why}); please tell your administrator."
    ));
}
