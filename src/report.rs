//! Problems for the admin that cannot reach the JSONL (a broken config, an
//! unwritable log dir) go to syslog, facility authpriv, ident `gatehouse`.
//! The operator gets one calm line instead.
#![forbid(unsafe_code)]

use std::os::unix::net::UnixDatagram;

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
        crate::config::sanitize_text(message, 2000)
    );
    let _ = sock.send_to(line.as_bytes(), "/dev/log");
}

/// An admin-facing problem: syslog always, and stderr too when nobody but
/// the invoking user is involved (unprivileged runs: demo, tests, a person
/// running their own Gatehouse), since they are the admin then.
pub fn admin(privileged: bool, message: &str) {
    syslog(message);
    if !privileged {
        eprintln!("gatehouse: {message}");
    }
}

/// The one line an operator sees when the service cannot work.
pub fn unavailable(why: &str) {
    eprintln!("gatehouse: service unavailable ({why}); please tell your administrator.");
}
