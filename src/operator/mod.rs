//! What runs for an operator: the login flow, the host menu, the
//! interactive session (session bookkeeping, the poll(2) relay, the
//! upstream SSH connection), exec and batch requests, file transfer and
//! the operator's forwarded agent.
//!
//! Only `lib.rs` (the dispatch) imports `operator`; `admin` never does.
//! It builds on `core` (decisions) and the shared modules (audit writer,
//! privilege, identity, tty, sys).
pub mod agent;
pub mod batch;
pub mod bulk_reads;
pub mod error;
pub mod exec;
pub mod login;
pub mod menu;
pub mod relay;
pub mod session;
pub mod sftp;
pub mod upstream;
