//! The pure core: what Gatehouse decides, with no terminal, socket or
//! process code — config (raw TOML → validated), invocation (argv/env →
//! what to do), access policy (operator × rules → hosts), command policy,
//! the capture engine (keys + screen → commands), the record schema and
//! its hash chain, and the SFTP protocol parser.
//!
//! Anyone may import `core`; `core` imports nothing outside itself (plus
//! std and its crates). Its parsers take hostile input and are total and
//! bounded; most of it has unit tests beside the code and fuzz targets.
pub mod agent_socket;
pub mod capture;
pub mod chain;
pub mod command_policy;
pub mod config;
pub mod invocation;
pub mod known_hosts;
pub mod policy;
pub mod record;
pub mod sftp;
pub mod text;
