//! The TOML file as written: serde structs that mirror it, with spans so
//! that every later validation error can point at `path:line:column`.
#![forbid(unsafe_code)]

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub settings: RawSettings,
    #[serde(default)]
    pub hosts: Vec<RawHost>,
    #[serde(default)]
    pub access: Vec<RawRule>,
    #[serde(default)]
    pub policy: Vec<RawPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub log_dir: Option<Spanned<String>>,
    pub known_hosts: Option<Spanned<String>>,
    pub host_key_policy: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<RawDuration>>,
    pub connect_timeout: Option<Spanned<RawDuration>>,
    pub keepalive_interval: Option<Spanned<RawDuration>>,
    pub recording: Option<bool>,
    pub record_input: Option<bool>,
    pub max_recording: Option<Spanned<RawSize>>,
    pub syslog_copy: Option<bool>,
    pub syslog_socket: Option<Spanned<String>>,
    pub policy_unverified: Option<Spanned<String>>,
    pub bastion_name: Option<Spanned<String>>,
    pub seal_key: Option<Spanned<String>>,
    pub seal_interval: Option<Spanned<RawDuration>>,
    /// Hosts of one many-host request connected at once.
    pub batch_parallel: Option<Spanned<i64>>,
}

/// `"30m"` or a bare number of seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Text(String),
    Seconds(i64),
}

/// `"1G"`, `"500M"`, `"0"`, or a bare number of bytes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Text(String),
    Bytes(i64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    pub port: Option<Spanned<i64>>,
    pub user: Spanned<String>,
    pub key: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    /// The operator's own forwarded agent logs in (issue 18).
    pub agent: Option<Spanned<bool>>,
    /// With `agent`: fall back to `key` / `password_file` when the agent
    /// cannot log in.
    pub agent_fallback: Option<Spanned<bool>>,
    pub description: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    #[serde(default)]
    pub unix_groups: Vec<Spanned<String>>,
    pub hosts: Spanned<Vec<Spanned<String>>>,
    /// May run `HOST -- COMMAND` (automation).
    pub exec: Option<bool>,
    /// May move files with sftp / scp (sftp mode).
    pub transfer: Option<bool>,
}

/// A `[[policy]]` command rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: Spanned<String>,
    pub action: Spanned<String>,
    pub commands: Spanned<Vec<Spanned<String>>>,
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub users: Option<Spanned<Vec<Spanned<String>>>>,
    pub unix_groups: Option<Spanned<Vec<Spanned<String>>>>,
    pub message: Option<Spanned<String>>,
}
