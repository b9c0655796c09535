//! File transfer: sftp (and OpenSSH 9's scp, which speaks sftp) relayed to
//! the target's sftp subsystem, with one `file` record per operation.
//!
//! `core::sftp` follows the protocol (pure, bounded, fuzzed); `AuditTap` sits
//! in the exec pump (src/operator/exec.rs) and writes each operation's record
//! before the packet that makes it is forwarded. A stream the parser
//! cannot follow ends the transfer with an `error` record: nothing is
//! relayed blind.
#![forbid(unsafe_code)]

use crate::audit::{AuditError, AuditLog, Event};
use crate::core::sftp::{Dir, FileOp, Watcher};
use crate::operator::exec::{Tap, TapError};

pub struct AuditTap<'a> {
    audit: &'a mut AuditLog,
    session: &'a str,
    host: &'a str,
    watcher: Watcher,
    ops: Vec<FileOp>,
}

impl<'a> AuditTap<'a> {
    pub fn new(audit: &'a mut AuditLog, session: &'a str, host: &'a str) -> AuditTap<'a> {
        AuditTap {
            audit,
            session,
            host,
            watcher: Watcher::new(),
            ops: Vec::new(),
        }
    }

    fn write_ops(&mut self) -> Result<(), AuditError> {
        for op in self.ops.drain(..) {
            self.audit.write(&Event::File {
                session: self.session,
                host: self.host,
                op: op.op.as_str(),
                path: &op.path,
                to: op.to.as_deref(),
                bytes: op.bytes,
                mode: op.mode.map(|m| format!("{:04o}", m & 0o7777)),
                incomplete: op.incomplete,
            })?;
        }
        Ok(())
    }

    fn feed(&mut self, dir: Dir, data: &[u8], out: &mut Vec<u8>) -> Result<(), TapError> {
        if let Err(e) = self.watcher.feed(dir, data, out, &mut self.ops) {
            // The pump forwards nothing of this chunk after an error, so
            // the operations parsed from it never reach the target.
            self.ops.clear();
            return Err(TapError {
                reason: "sftp_protocol",
                detail: format!("file transfer stopped: {e}"),
                admin: None,
            });
        }
        self.write_ops().map_err(|e| TapError {
            reason: "audit_failed",
            detail: e.to_string(),
            admin: None,
        })
    }

    /// The transfer is over: files still open get their records.
    pub fn finish(mut self) -> Result<(), AuditError> {
        self.watcher.finish(&mut self.ops);
        self.write_ops()
    }
}

impl Tap for AuditTap<'_> {
    fn to_target(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TapError> {
        self.feed(Dir::ToServer, data, out)
    }
    fn to_operator(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TapError> {
        self.feed(Dir::ToClient, data, out)
    }
}
