//! The admin's config: read the TOML (`raw`), then validate it into typed
//! values. Every error names `path:line:column` and says what is wrong.
#![forbid(unsafe_code)]

mod inventory;
mod raw;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raw::{RawConfig, RawDuration, RawHost, RawPolicy, RawRule, RawSettings, RawSize};
use toml::Spanned;

use crate::core::command_policy::{Action, CommandPolicy, PolicyRule, Unverified};

/// Where an installed (privileged) Gatehouse reads its config. Fixed at
/// build time: nothing the operator controls may change it.
pub const SYSTEM_CONFIG: &str = match option_env!("GATEHOUSE_SYSTEM_CONFIG") {
    Some(p) => p,
    None => "/etc/gatehouse/config.toml",
};
pub const DEFAULT_LOG_DIR: &str = "/var/log/gatehouse";
pub const DEFAULT_KNOWN_HOSTS: &str = "/etc/gatehouse/known_hosts";
/// The sealing key, in a directory of its own (the key is replaced by
/// rename, so the gatehouse account must own the directory).
pub const DEFAULT_SEAL_KEY: &str = "/var/lib/gatehouse/seal/key";
pub const DEFAULT_SEAL_INTERVAL_SECS: u64 = 15 * 60;

/// Where the config is. Privileged: the built-in path only. Otherwise the
/// person running us is the admin of their own Gatehouse.
pub fn config_path(privileged: bool) -> PathBuf {
    if privileged {
        return PathBuf::from(SYSTEM_CONFIG);
    }
    if let Some(p) = std::env::var_os("GATEHOUSE_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dirs) = directories::ProjectDirs::from("", "", "gatehouse") {
        let p = dirs.config_dir().join("config.toml");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(SYSTEM_CONFIG)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Unknown and changed keys are refused.
    Strict,
    /// Unknown keys are remembered on first use; changed keys are refused.
    AcceptNew,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub log_dir: PathBuf,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    /// `None`: never time out.
    pub idle_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    pub recording: bool,
    pub record_input: bool,
    /// Size cap of one session's recording (`None`: no cap). Past it the
    /// recording stops with a marker; the session goes on.
    pub max_recording: Option<u64>,
    /// Also send each audit record to syslog (authpriv.info).
    pub syslog_copy: bool,
    /// Another syslog socket than /dev/log; ignored when privileged (tests).
    pub syslog_socket: Option<PathBuf>,
    /// The `bastion` field of every record; `None`: the host name.
    pub bastion_name: Option<String>,
    /// The forward-secure sealing key (`gatehouse seal --init` makes it;
    /// no file, no sealing).
    pub seal_key: PathBuf,
    /// Longest time a chain keeps unsealed records while records keep
    /// coming; `None` ("0"): seals only at session end and logout.
    pub seal_interval: Option<Duration>,
    /// A many-host request (`@web -- uptime`) connects to at most this many
    /// hosts at once.
    pub batch_parallel: usize,
}

/// `batch_parallel` when the config does not say.
pub const DEFAULT_BATCH_PARALLEL: usize = 16;
/// Its ceiling: each host in flight holds a socket, a libssh2 session and
/// its channel window (see src/operator/batch.rs), so the bound is on memory.
pub const MAX_BATCH_PARALLEL: usize = 256;

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub key: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    /// `agent = true`: log in with a key from the operator's own forwarded
    /// agent (`ssh -A`), tried before anything the bastion holds.
    pub agent: bool,
    /// `agent_fallback = true`: when the agent cannot log in, use `key` /
    /// `password_file`. Without it those are never used for an agent host.
    pub agent_fallback: bool,
    pub description: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum HostPattern {
    Name(String),
    Glob(glob::Pattern),
    Group(String),
}

impl HostPattern {
    pub fn matches(&self, host: &Host) -> bool {
        match self {
            HostPattern::Name(n) => *n == host.name,
            // `*` (every host) is the common rule of a big inventory; the
            // glob matcher costs ~50 ns a host even for it, every start
            // (issue 13). A valid host name is never empty, so `*` matches.
            HostPattern::Glob(g) => g.as_str() == "*" || g.matches(&host.name),
            HostPattern::Group(g) => host.groups.iter().any(|hg| hg == g),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub users: Vec<String>,
    pub unix_groups: Vec<String>,
    pub hosts: Vec<HostPattern>,
    /// Grants `HOST -- COMMAND` on these hosts (default false).
    pub exec: bool,
    /// Grants sftp / scp (sftp mode) on these hosts (default false).
    pub transfer: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub settings: Settings,
    pub hosts: Vec<Host>,
    pub access: Vec<Rule>,
    /// `[[policy]]` command rules and `policy_unverified`.
    pub policy: CommandPolicy,
}

#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read at all.
    Read { path: PathBuf, err: std::io::Error },
    /// Something at a place in the file is wrong.
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, err } => {
                write!(f, "{}: cannot read the config: {err}", path.display())
            }
            ConfigError::At {
                path,
                line,
                column,
                message,
            } => write!(f, "{}:{line}:{column}: {message}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text` as if read from `path`; relative paths in
    /// the file are taken relative to the file's directory.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let v = Validator { path, text };
        if let Some(config) = v.fast() {
            return Ok(config);
        }
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            v.err_at(at, e.message().trim().to_string())
        })?;
        v.validate(raw)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Whether any access or policy rule names `unix_groups`: only then do
    /// an operator's groups decide anything.
    pub fn names_unix_groups(&self) -> bool {
        self.access.iter().any(|r| !r.unix_groups.is_empty())
            || self
                .policy
                .rules
                .iter()
                .any(|r| r.unix_groups.as_ref().is_some_and(|g| !g.is_empty()))
    }
}

/// The hosts validated so far, and the groups they name.
#[derive(Default)]
struct Hosts {
    list: Vec<Host>,
    groups: HashSet<String>,
}

impl Hosts {
    fn with_capacity(n: usize) -> Hosts {
        Hosts {
            list: Vec::with_capacity(n),
            groups: HashSet::new(),
        }
    }

    fn add(&mut self, v: &Validator<'_>, h: RawHost, duplicate: bool) -> Result<(), ConfigError> {
        let host = v.host(h, duplicate, &mut self.groups)?;
        self.list.push(host);
        Ok(())
    }
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn err_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError::At {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    fn err<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.err_at(at.span().start, message)
    }

    fn path_value(&self, s: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        self.path_value_owned(s.clone())
    }

    /// Same, keeping the string's allocation for an absolute path.
    fn path_value_owned(&self, s: Spanned<String>) -> Result<PathBuf, ConfigError> {
        let p = s.get_ref();
        if p.is_empty() || p.contains('\0') {
            return Err(self.err(&s, "a path must not be empty"));
        }
        let p = PathBuf::from(s.into_inner());
        Ok(if p.is_absolute() {
            p
        } else {
            let base = self.path.parent().unwrap_or(Path::new("."));
            let base = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base
            };
            base.join(p)
        })
    }

    fn duration(&self, d: &Spanned<RawDuration>) -> Result<Option<Duration>, ConfigError> {
        let parsed = match d.get_ref() {
            RawDuration::Seconds(n) if *n >= 0 => Ok(*n as u64),
            RawDuration::Seconds(_) => Err("a duration cannot be negative".to_string()),
            RawDuration::Text(t) => parse_duration(t),
        };
        match parsed {
            Ok(0) => Ok(None),
            Ok(secs) => Ok(Some(Duration::from_secs(secs))),
            Err(m) => Err(self.err(d, m)),
        }
    }

    /// The fast path for a big inventory (inventory.rs): each `[[hosts]]`
    /// table is validated into a `Host` as soon as it is scanned, so no
    /// list of raw tables is built, and the few lines around them go
    /// through `toml` on their own (with 10,000 hosts, fresh pages for the
    /// raw tables and a blanked copy of the file were most of the start to
    /// the menu: page faults, issue 13). `None` when it does not apply *or
    /// anything is wrong*: then the whole file goes through `toml` and
    /// `validate`, which say what is wrong, where, exactly as they always
    /// have (the spans of the lines around the hosts are not the file's
    /// here; a good config never uses them).
    fn fast(&self) -> Option<Config> {
        let text = self.text;
        let mut hosts = Hosts::default();
        let mut names: HashSet<&str> = HashSet::new();
        let rest = inventory::scan(text, |h| {
            // The fast path's strings have no escapes: a name is the text
            // between its span's quotes, borrowed from the file.
            let span = h.name.span();
            let duplicate = !names.insert(&text[span.start + 1..span.end - 1]);
            hosts.add(self, h, duplicate).is_ok()
        })?;
        let raw: RawConfig = toml::from_str(&rest).ok()?;
        // A `hosts` key outside `[[hosts]]` headers (an inline array, a
        // dotted key): let the crate judge the whole file.
        if !raw.hosts.is_empty() {
            return None;
        }
        let settings = self.settings(&raw.settings).ok()?;
        let (access, policy) = self.rules(&raw, &names, &hosts.groups).ok()?;
        Some(Config {
            path: self.path.to_path_buf(),
            settings,
            hosts: hosts.list,
            access,
            policy,
        })
    }

    /// The whole file through `toml` (the fast path did not apply).
    fn validate(&self, mut raw: RawConfig) -> Result<Config, ConfigError> {
        let settings = self.settings(&raw.settings)?;
        let mut hosts = Hosts::with_capacity(raw.hosts.len());
        // Duplicate names are found first, borrowing, so that the error
        // reported is still the first one in file order.
        let first_duplicate = {
            let mut seen = HashSet::with_capacity(raw.hosts.len());
            raw.hosts
                .iter()
                .position(|h| !seen.insert(h.name.get_ref().as_str()))
        };
        for (i, h) in std::mem::take(&mut raw.hosts).into_iter().enumerate() {
            hosts.add(self, h, first_duplicate == Some(i))?;
        }
        let names: HashSet<&str> = hosts.list.iter().map(|h| h.name.as_str()).collect();
        let (access, policy) = self.rules(&raw, &names, &hosts.groups)?;
        drop(names);
        Ok(Config {
            path: self.path.to_path_buf(),
            settings,
            hosts: hosts.list,
            access,
            policy,
        })
    }

    /// `[settings]`, defaults filled in.
    fn settings(&self, s: &RawSettings) -> Result<Settings, ConfigError> {
        let log_dir = match &s.log_dir {
            Some(p) => self.path_value(p)?,
            None => PathBuf::from(DEFAULT_LOG_DIR),
        };
        let known_hosts = match &s.known_hosts {
            Some(p) => self.path_value(p)?,
            None => PathBuf::from(DEFAULT_KNOWN_HOSTS),
        };
        let host_key_policy = self.host_key_policy(s)?;
        let idle_timeout = match &s.idle_timeout {
            Some(d) => self.duration(d)?,
            None => None,
        };
        let connect_timeout = match &s.connect_timeout {
            Some(d) => self.duration(d)?.unwrap_or(Duration::from_secs(10)),
            None => Duration::from_secs(10),
        };
        let keepalive_interval = match &s.keepalive_interval {
            Some(d) => self.duration(d)?.unwrap_or(Duration::from_secs(30)),
            None => Duration::from_secs(30),
        };
        let batch_parallel = self.batch_parallel(s)?;
        Ok(Settings {
            batch_parallel,
            log_dir,
            known_hosts,
            host_key_policy,
            idle_timeout,
            connect_timeout,
            keepalive_interval,
            recording: s.recording.unwrap_or(true),
            record_input: s.record_input.unwrap_or(false),
            max_recording: self.max_recording(s)?,
            syslog_copy: s.syslog_copy.unwrap_or(false),
            syslog_socket: match &s.syslog_socket {
                Some(p) => Some(self.path_value(p)?),
                None => None,
            },
            bastion_name: match &s.bastion_name {
                Some(n) if valid_bastion_name(n.get_ref()) => Some(n.get_ref().clone()),
                Some(n) => {
                    return Err(self.err(
                        n,
                        "bastion_name must be 1-253 characters of letters, digits, '.', '_' or '-'",
                    ))
                }
                None => None,
            },
            seal_key: match &s.seal_key {
                Some(p) => self.path_value(p)?,
                None => PathBuf::from(DEFAULT_SEAL_KEY),
            },
            seal_interval: match &s.seal_interval {
                Some(d) => self.duration(d)?,
                None => Some(Duration::from_secs(DEFAULT_SEAL_INTERVAL_SECS)),
            },
        })
    }

    fn host_key_policy(&self, s: &RawSettings) -> Result<HostKeyPolicy, ConfigError> {
        Ok(match &s.host_key_policy {
            None => HostKeyPolicy::Strict,
            Some(p) => match p.get_ref().as_str() {
                "strict" => HostKeyPolicy::Strict,
                "accept-new" => HostKeyPolicy::AcceptNew,
                other => {
                    return Err(self.err(
                        p,
                        format!(
                            "host_key_policy must be \"strict\" or \"accept-new\", not {other:?}"
                        ),
                    ))
                }
            },
        })
    }

    fn batch_parallel(&self, s: &RawSettings) -> Result<usize, ConfigError> {
        Ok(match &s.batch_parallel {
            None => DEFAULT_BATCH_PARALLEL,
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(v) if (1..=MAX_BATCH_PARALLEL).contains(&v) => v,
                _ => {
                    return Err(self.err(
                        n,
                        format!(
                            "batch_parallel must be between 1 and {MAX_BATCH_PARALLEL}, not {}",
                            n.get_ref()
                        ),
                    ))
                }
            },
        })
    }

    /// `None`: no cap ("0").
    fn max_recording(&self, s: &RawSettings) -> Result<Option<u64>, ConfigError> {
        Ok(match &s.max_recording {
            None => Some(DEFAULT_MAX_RECORDING),
            Some(v) => {
                let n = match v.get_ref() {
                    RawSize::Text(t) => parse_size(t),
                    RawSize::Bytes(b) => u64::try_from(*b)
                        .map_err(|_| format!("max_recording must not be negative, not {b}")),
                }
                .map_err(|m| self.err(v, m))?;
                (n > 0).then_some(n)
            }
        })
    }

    /// One `[[hosts]]` table, taken apart: its strings become the `Host`'s
    /// (moved, not copied). `duplicate`: an earlier table has the same
    /// name. Its groups are added to `host_groups` for the rules that
    /// refer to them.
    fn host(
        &self,
        mut h: RawHost,
        duplicate: bool,
        host_groups: &mut HashSet<String>,
    ) -> Result<Host, ConfigError> {
        let name = h.name.get_ref();
        if !valid_host_name(name) {
            return Err(self.err(
                &h.name,
                format!(
                    "host name {name:?} must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
                ),
            ));
        }
        if duplicate {
            return Err(self.err(&h.name, format!("host {name:?} is defined twice")));
        }
        let address = h.address.get_ref();
        if address.is_empty()
            || address.len() > 255
            || address.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(self.err(
                &h.address,
                "address must be a host name or IP address without spaces",
            ));
        }
        let port = match &h.port {
            None => 22,
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(n) if n > 0 => n,
                _ => return Err(self.err(p, "port must be between 1 and 65535")),
            },
        };
        let user = h.user.get_ref();
        if user.is_empty() || user.len() > 255 || user.chars().any(|c| c.is_control()) {
            return Err(self.err(&h.user, "user must be a login name"));
        }
        // Where the bastion-held credential is, before its string moves.
        let credential_at = h.key.as_ref().or(h.password_file.as_ref());
        let credential_at = credential_at.map(|s| s.span().start);
        let key = h.key.take().map(|k| self.path_value_owned(k)).transpose()?;
        let password_file = h
            .password_file
            .take()
            .map(|k| self.path_value_owned(k))
            .transpose()?;
        let (agent, agent_fallback) = self.credentials(&h, credential_at)?;
        let mut groups = Vec::with_capacity(h.groups.len());
        for g in h.groups {
            if !valid_host_name(g.get_ref()) {
                return Err(self.err(&g, format!("group name {:?} is not valid", g.get_ref())));
            }
            if !host_groups.contains(g.get_ref()) {
                host_groups.insert(g.get_ref().clone());
            }
            groups.push(g.into_inner());
        }
        let description = h
            .description
            .map(|d| sanitize_owned(d.into_inner(), 200))
            .unwrap_or_default();
        Ok(Host {
            name: h.name.into_inner(),
            address: h.address.into_inner(),
            port,
            user: h.user.into_inner(),
            key,
            password_file,
            agent,
            agent_fallback,
            description,
            groups,
        })
    }

    /// How a host logs in must be said, and said once: a bastion-held
    /// credential (`key` or `password_file`; `credential_at`: where the
    /// first of them is, `None` without one), the operator's agent, or the
    /// agent with a declared fallback. Returns `agent` and
    /// `agent_fallback`.
    fn credentials(
        &self,
        h: &RawHost,
        credential_at: Option<usize>,
    ) -> Result<(bool, bool), ConfigError> {
        let name = h.name.get_ref();
        let held = credential_at.is_some();
        let agent = h.agent.as_ref().is_some_and(|a| *a.get_ref());
        let agent_fallback = h.agent_fallback.as_ref().is_some_and(|a| *a.get_ref());
        if !agent && !held {
            return Err(self.err(
                &h.name,
                format!(
                    "host {name:?} needs `key` or `password_file` (or both), or `agent = true`"
                ),
            ));
        }
        // An agent host uses the bastion's credentials only as a
        // declared fallback: a key that is silently never used (or used
        // when the admin thought only operators' own keys log in) is a
        // surprise either way.
        if let Some(f) = h.agent_fallback.as_ref().filter(|f| *f.get_ref()) {
            if !agent {
                return Err(self.err(f, "agent_fallback needs `agent = true`"));
            }
            if !held {
                return Err(self.err(
                    f,
                    "agent_fallback needs `key` or `password_file` to fall back to",
                ));
            }
        }
        if agent && held && !agent_fallback {
            return Err(self.err_at(
                credential_at.unwrap_or(h.name.span().start),
                format!(
                    "host {name:?} has `agent = true` and a bastion-held credential that would never be used: \
                     add `agent_fallback = true` to fall back to it, or remove it"
                ),
            ));
        }
        Ok((agent, agent_fallback))
    }

    /// `[[access]]`, then `policy_unverified` and `[[policy]]`, against
    /// the hosts' `names` and `groups`.
    fn rules(
        &self,
        raw: &RawConfig,
        names: &HashSet<&str>,
        groups: &HashSet<String>,
    ) -> Result<(Vec<Rule>, CommandPolicy), ConfigError> {
        let mut access = Vec::with_capacity(raw.access.len());
        for r in &raw.access {
            access.push(self.rule(r, names, groups)?);
        }
        let policy = self.command_policy(raw, names, groups)?;
        Ok((access, policy))
    }

    /// `policy_unverified` and the `[[policy]]` rules.
    fn command_policy(
        &self,
        raw: &RawConfig,
        names: &HashSet<&str>,
        groups: &HashSet<String>,
    ) -> Result<CommandPolicy, ConfigError> {
        let unverified = match &raw.settings.policy_unverified {
            None => Unverified::default(),
            Some(p) => match p.get_ref().as_str() {
                "match" => Unverified::Match,
                "confirm" => Unverified::Confirm,
                "block" => Unverified::Block,
                other => {
                    return Err(self.err(
                        p,
                        format!(
                            "policy_unverified must be \"match\", \"confirm\" or \"block\", not {other:?}"
                        ),
                    ))
                }
            },
        };
        let mut rules = Vec::with_capacity(raw.policy.len());
        let mut rule_names = HashSet::new();
        for p in &raw.policy {
            let rule = self.policy_rule(p, names, groups)?;
            if !rule_names.insert(rule.name.clone()) {
                return Err(self.err(
                    &p.name,
                    format!("policy rule {:?} is defined twice", rule.name),
                ));
            }
            rules.push(rule);
        }
        Ok(CommandPolicy { rules, unverified })
    }

    /// `names`, `globs*` and `@groups`, as in `[[access]]`.
    fn host_patterns(
        &self,
        list: &[Spanned<String>],
        names: &HashSet<&str>,
        groups: &HashSet<String>,
    ) -> Result<Vec<HostPattern>, ConfigError> {
        let mut hosts = Vec::new();
        for p in list {
            let text = p.get_ref();
            let pattern = if let Some(g) = text.strip_prefix('@') {
                if !groups.contains(g) {
                    return Err(self.err(p, format!("no host is in group {g:?}")));
                }
                HostPattern::Group(g.to_string())
            } else if text.contains(['*', '?', '[']) {
                match glob::Pattern::new(text) {
                    Ok(g) => HostPattern::Glob(g),
                    Err(e) => {
                        return Err(self.err(p, format!("bad host pattern {text:?}: {}", e.msg)))
                    }
                }
            } else {
                if !names.contains(text.as_str()) {
                    return Err(self.err(p, format!("no host named {text:?} in [[hosts]]")));
                }
                HostPattern::Name(text.clone())
            };
            hosts.push(pattern);
        }
        Ok(hosts)
    }

    /// A `[[policy]]` rule: every regex compiled (linear time, bounded
    /// size), every name checked.
    fn policy_rule(
        &self,
        p: &RawPolicy,
        names: &HashSet<&str>,
        groups: &HashSet<String>,
    ) -> Result<PolicyRule, ConfigError> {
        let name = p.name.get_ref();
        if !valid_rule_name(name) {
            return Err(self.err(
                &p.name,
                format!(
                    "policy rule name {name:?} must be 1-63 characters of letters, digits, '.', '_' or '-'"
                ),
            ));
        }
        let action = match p.action.get_ref().as_str() {
            "deny" => Action::Deny,
            "confirm" => Action::Confirm,
            "alert" => Action::Alert,
            other => {
                return Err(self.err(
                    &p.action,
                    format!("action must be \"deny\", \"confirm\" or \"alert\", not {other:?}"),
                ))
            }
        };
        if p.commands.get_ref().is_empty() {
            return Err(self.err(
                &p.commands,
                format!("policy rule {name:?} lists no `commands` regexes"),
            ));
        }
        let mut commands = Vec::with_capacity(p.commands.get_ref().len());
        for c in p.commands.get_ref() {
            let re = regex::RegexBuilder::new(c.get_ref())
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| self.err(c, regex_error(c.get_ref(), &e)))?;
            commands.push((c.get_ref().clone(), re));
        }
        let hosts = match &p.hosts {
            None => None,
            Some(h) if h.get_ref().is_empty() => {
                return Err(self.err(h, "`hosts` lists no hosts; leave it out to mean every host"))
            }
            Some(h) => Some(self.host_patterns(h.get_ref(), names, groups)?),
        };
        let who = |list: &Option<Spanned<Vec<Spanned<String>>>>, what: &str| match list {
            None => Ok(None),
            Some(l) if l.get_ref().is_empty() => Err(self.err(
                l,
                format!("`{what}` lists no one; leave it out to mean everyone"),
            )),
            Some(l) => {
                let mut v = Vec::new();
                for u in l.get_ref() {
                    if u.get_ref().is_empty() || u.get_ref().chars().any(|c| c.is_control()) {
                        return Err(self.err(u, "not a valid user or group name"));
                    }
                    v.push(u.get_ref().clone());
                }
                Ok(Some(v))
            }
        };
        let users = who(&p.users, "users")?;
        let unix_groups = who(&p.unix_groups, "unix_groups")?;
        let message = p
            .message
            .as_ref()
            .map(|m| sanitize_text(m.get_ref(), 300))
            .filter(|m| !m.trim().is_empty());
        Ok(PolicyRule {
            name: name.clone(),
            action,
            commands,
            hosts,
            users,
            unix_groups,
            message,
        })
    }

    fn rule(
        &self,
        r: &RawRule,
        names: &HashSet<&str>,
        groups: &HashSet<String>,
    ) -> Result<Rule, ConfigError> {
        if r.users.is_empty() && r.unix_groups.is_empty() {
            return Err(self.err(
                &r.hosts,
                "this access rule names no `users` and no `unix_groups`, so it applies to no one",
            ));
        }
        if r.hosts.get_ref().is_empty() {
            return Err(self.err(&r.hosts, "this access rule lists no hosts"));
        }
        for u in r.users.iter().chain(&r.unix_groups) {
            if u.get_ref().is_empty() || u.get_ref().chars().any(|c| c.is_control()) {
                return Err(self.err(u, "not a valid user or group name"));
            }
        }
        let hosts = self.host_patterns(r.hosts.get_ref(), names, groups)?;
        Ok(Rule {
            users: r.users.iter().map(|u| u.get_ref().clone()).collect(),
            unix_groups: r.unix_groups.iter().map(|u| u.get_ref().clone()).collect(),
            hosts,
            exec: r.exec.unwrap_or(false),
            transfer: r.transfer.unwrap_or(false),
        })
    }
}

/// Compiled size limit of one policy regex (the `regex` crate's own
/// default is 10 MiB): a pattern is a few KiB; this only stops a runaway
/// one from costing memory in every session.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Policy rule names are shown to operators and written to records; like
/// host names, but `:` is kept out so Gatehouse's own decisions
/// (`gatehouse:unverified`) can never be mistaken for a rule.
pub fn valid_rule_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// One line from the `regex` crate's error, which is several: the
/// pattern, a caret line, then `error: what`. Says where in the pattern.
fn regex_error(pattern: &str, e: &regex::Error) -> String {
    // The pattern as the admin wrote it, control characters made visible.
    let shown: String = pattern
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    match e {
        regex::Error::Syntax(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let what = lines
                .iter()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or("syntax error");
            // The caret line (only blanks and `^`) sits under the pattern
            // line, both indented alike.
            let at = lines
                .iter()
                .rposition(|l| !l.trim().is_empty() && l.trim().chars().all(|c| c == '^'))
                .and_then(|i| {
                    let above = lines.get(i.checked_sub(1)?)?;
                    let indent = above.len() - above.trim_start().len();
                    let caret = lines[i].find('^')?;
                    Some(lines[i].get(indent..caret)?.chars().count() + 1)
                });
            match at {
                Some(col) => {
                    format!("bad regex '{shown}': {what} (at character {col} of the pattern)")
                }
                None => format!("bad regex '{shown}': {what}"),
            }
        }
        regex::Error::CompiledTooBig(limit) => format!(
            "regex '{shown}' is too big: over {limit} bytes compiled; simplify it or split it into several"
        ),
        other => format!(
            "bad regex '{shown}': {}",
            other.to_string().lines().last().unwrap_or("")
        ),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// The default `max_recording`: 1 GiB, about an hour of a busy build log
/// or `tail -f` (README, "Recordings: cost"), far more than interactive
/// work ever prints.
pub const DEFAULT_MAX_RECORDING: u64 = 1 << 30;

/// `"1G"`, `"500M"`, `"64K"`, `"2048"` (bytes; binary units), `"0"` = no limit.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("{text:?} is not a size: write a number with a unit, like \"500M\" or \"2G\" (\"0\" means no limit)")
    };
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim_end_matches(['B', 'b', 'i']) {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        "T" | "t" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// `"90s"`, `"30m"`, `"2h"`, `"1d"`, `"0"`, or a combination like `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration: write a number with a unit, like \"90s\", \"30m\" or \"2h\" (\"0\" means never)"
        )
    };
    let t = text.trim();
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Host names appear in file names, menus and audit records: keep them tame.
pub fn valid_host_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// `bastion_name`: a DNS-style name (it names central files and records).
pub fn valid_bastion_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// `sanitize_text` that keeps `s` itself when there is nothing to drop
/// (nearly always: one pass, no copy).
fn sanitize_owned(s: String, max_chars: usize) -> String {
    if s.len() <= max_chars && !s.chars().any(|c| c.is_control()) {
        return s; // at most `len` characters, none of them control
    }
    sanitize_text(&s, max_chars)
}

/// Drops control characters (terminal escapes) and bounds the length.
pub fn sanitize_text(s: &str, max_chars: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[settings]
log_dir = "/var/log/gatehouse"
known_hosts = "/etc/gatehouse/known_hosts"
host_key_policy = "strict"
idle_timeout = "30m"

[[hosts]]
name = "web01"
address = "10.1.2.3"
port = 22
user = "deploy"
key = "/etc/gatehouse/keys/deploy_ed25519"
description = "frontend"
groups = ["web", "prod"]

[[hosts]]
name = "db01"
address = "10.1.2.4"
user = "dba"
password_file = "pw/db01"

[[access]]
users = ["alice"]
unix_groups = ["ops"]
hosts = ["web01", "db*", "@prod"]
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/gatehouse/config.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn product_example_loads() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.hosts.len(), 2);
        assert_eq!(c.settings.idle_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(c.settings.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(c.hosts[1].port, 22);
        assert_eq!(
            c.hosts[1].password_file.as_deref(),
            Some(Path::new("/etc/gatehouse/pw/db01"))
        );
        assert_eq!(c.access[0].hosts.len(), 3);
        assert!(!c.access[0].exec && !c.access[0].transfer);
    }

    /// The operator's groups are looked up only when a rule can use them
    /// (issue 13: the lookup loads NSS modules).
    #[test]
    fn names_unix_groups_only_when_a_rule_does() {
        assert!(parse(GOOD).unwrap().names_unix_groups());
        let users_only = GOOD.replace("unix_groups = [\"ops\"]\n", "");
        assert!(!parse(&users_only).unwrap().names_unix_groups());
        let policy = POLICY.replace("unix_groups = [\"ops\"]\n", "");
        assert!(!parse(&with_policy_on(&users_only, &policy))
            .unwrap()
            .names_unix_groups());
        assert!(parse(&with_policy_on(&users_only, POLICY))
            .unwrap()
            .names_unix_groups());
    }

    fn with_policy_on(base: &str, policy: &str) -> String {
        format!("{base}{policy}")
    }

    #[test]
    fn exec_and_transfer_grants() {
        let c = parse(&GOOD.replace(
            "hosts = [\"web01\", \"db*\", \"@prod\"]",
            "hosts = [\"web01\"]\nexec = true\ntransfer = true",
        ))
        .unwrap();
        assert!(c.access[0].exec && c.access[0].transfer);
        let e = err(&GOOD.replace(
            "hosts = [\"web01\", \"db*\", \"@prod\"]",
            "hosts = [\"web01\"]\nexec = \"yes\"",
        ));
        assert!(e.contains(":27:8: ") && e.contains("boolean"), "{e}");
    }

    #[test]
    fn bastion_and_sealing_settings() {
        let c = parse("").unwrap();
        assert_eq!(c.settings.bastion_name, None);
        assert_eq!(c.settings.seal_key, Path::new(DEFAULT_SEAL_KEY));
        assert_eq!(c.settings.seal_interval, Some(Duration::from_secs(900)));
        let c = parse(
            "[settings]\nbastion_name = \"bastion-1.example.com\"\nseal_key = \"seal/key\"\nseal_interval = \"0\"\n",
        )
        .unwrap();
        assert_eq!(
            c.settings.bastion_name.as_deref(),
            Some("bastion-1.example.com")
        );
        assert_eq!(c.settings.seal_key, Path::new("/etc/gatehouse/seal/key"));
        assert_eq!(c.settings.seal_interval, None);
        let e = err("[settings]\nbastion_name = \"../etc\"\n");
        assert!(
            e.starts_with("/etc/gatehouse/config.toml:2:16: bastion_name"),
            "{e}"
        );
        assert!(err("[settings]\nseal_interval = \"soon\"\n").contains(":2:17:"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn recording_sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn idle_timeout_zero_means_never() {
        let c = parse(&GOOD.replace("\"30m\"", "\"0\"")).unwrap();
        assert_eq!(c.settings.idle_timeout, None);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = err("[settings]\nlog_dir = \n");
        assert!(e.starts_with("/etc/gatehouse/config.toml:2:"), "{e}");
    }

    #[test]
    fn bad_duration_points_at_value() {
        let e = err(&GOOD.replace("\"30m\"", "\"thirty\""));
        assert!(e.starts_with("/etc/gatehouse/config.toml:6:16: "), "{e}");
        assert!(e.contains("not a duration"), "{e}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = err(&GOOD.replace("port = 22", "prot = 22"));
        assert!(e.contains(":11:1: "), "{e}");
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn bad_policy() {
        let e = err(&GOOD.replace("\"strict\"", "\"yolo\""));
        assert!(e.contains(":5:19: host_key_policy must be"), "{e}");
    }

    #[test]
    fn duplicate_host() {
        let e = err(&GOOD.replace("name = \"db01\"", "name = \"web01\""));
        assert!(e.contains(":18:8: host \"web01\" is defined twice"), "{e}");
    }

    #[test]
    fn host_without_credentials() {
        let e = err(&GOOD.replace("password_file = \"pw/db01\"", ""));
        assert!(e.contains("needs `key` or `password_file`"), "{e}");
    }

    /// Issue 18: `agent = true` alone is a complete host; a bastion-held
    /// credential beside it needs `agent_fallback`, which needs both.
    #[test]
    fn agent_hosts_and_their_fallback() {
        let only_agent = GOOD.replace("password_file = \"pw/db01\"", "agent = true");
        let c = parse(&only_agent).unwrap();
        assert!(c.hosts[1].agent && !c.hosts[1].agent_fallback);
        assert!(!c.hosts[0].agent);
        assert_eq!(c.hosts[1].password_file, None);

        let fallback = GOOD.replace(
            "password_file = \"pw/db01\"",
            "password_file = \"pw/db01\"\nagent = true\nagent_fallback = true",
        );
        let c = parse(&fallback).unwrap();
        assert!(c.hosts[1].agent && c.hosts[1].agent_fallback);

        // A key beside the agent that would never be used: pointed at.
        let unused = GOOD.replace(
            "password_file = \"pw/db01\"",
            "password_file = \"pw/db01\"\nagent = true",
        );
        let e = err(&unused);
        assert!(
            e.contains(":21:17: host \"db01\" has `agent = true`"),
            "{e}"
        );
        assert!(e.contains("agent_fallback = true"), "{e}");

        let e = err(&GOOD.replace(
            "password_file = \"pw/db01\"",
            "agent = true\nagent_fallback = true",
        ));
        assert!(
            e.contains(":22:18: agent_fallback needs `key` or `password_file`"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "password_file = \"pw/db01\"",
            "password_file = \"pw/db01\"\nagent_fallback = true",
        ));
        assert!(
            e.contains(":22:18: agent_fallback needs `agent = true`"),
            "{e}"
        );
        // `agent = false` is no credential.
        let e = err(&GOOD.replace("password_file = \"pw/db01\"", "agent = false"));
        assert!(e.contains("or `agent = true`"), "{e}");
        let e = err(&GOOD.replace("password_file = \"pw/db01\"", "agent = \"yes\""));
        assert!(e.contains(":21:9:"), "{e}");
    }

    #[test]
    fn hostile_host_name() {
        let e = err(&GOOD.replace("name = \"db01\"", "name = \"db01\\u001b[2J\""));
        assert!(e.contains("host name"), "{e}");
        let e = err(&GOOD.replace("name = \"db01\"", "name = \"../x\""));
        assert!(e.contains("host name"), "{e}");
    }

    #[test]
    fn batch_parallel_default_and_bounds() {
        assert_eq!(parse(GOOD).unwrap().settings.batch_parallel, 16);
        let with =
            |v: &str| GOOD.replace("idle_timeout = \"30m\"", &format!("batch_parallel = {v}"));
        assert_eq!(parse(&with("2")).unwrap().settings.batch_parallel, 2);
        for bad in ["0", "-1", "100000"] {
            let e = err(&with(bad));
            assert!(
                e.contains(":6:18: batch_parallel must be between 1 and 256"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn port_range() {
        let e = err(&GOOD.replace("port = 22", "port = 70000"));
        assert!(e.contains(":11:8: port must be"), "{e}");
    }

    #[test]
    fn rule_with_unknown_host_and_group() {
        let e = err(&GOOD.replace("\"web01\", \"db*\"", "\"web02\", \"db*\""));
        assert!(e.contains("no host named \"web02\""), "{e}");
        let e = err(&GOOD.replace("@prod", "@staging"));
        assert!(e.contains("no host is in group \"staging\""), "{e}");
    }

    #[test]
    fn rule_for_no_one() {
        let e = err(&GOOD
            .replace("users = [\"alice\"]\n", "")
            .replace("unix_groups = [\"ops\"]\n", ""));
        assert!(e.contains("applies to no one"), "{e}");
    }

    #[test]
    fn description_loses_control_characters() {
        let c = parse(&GOOD.replace("\"frontend\"", "\"front\\u001b[31mend\"")).unwrap();
        assert_eq!(c.hosts[0].description, "front[31mend");
    }

    const POLICY: &str = r#"
[[policy]]
name = "no-root-wipe"
action = "deny"
commands = ['^rm\s+(-\w+\s+)*/\s*$', '^(shutdown|reboot|halt)\b']
hosts = ["@prod"]
users = ["alice"]
unix_groups = ["ops"]
message = "Not on production; use the change process."
"#;

    fn with_policy(policy: &str) -> String {
        format!("{GOOD}{policy}")
    }

    /// Line of the first line of `text` that contains `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn product_policy_example_loads() {
        let c = parse(&with_policy(POLICY)).unwrap();
        assert_eq!(c.policy.rules.len(), 1);
        let r = &c.policy.rules[0];
        assert_eq!(r.name, "no-root-wipe");
        assert_eq!(r.action, Action::Deny);
        assert_eq!(r.commands.len(), 2);
        assert_eq!(r.hosts.as_ref().map(|h| h.len()), Some(1));
        assert_eq!(r.users.as_deref(), Some(&["alice".to_string()][..]));
        assert_eq!(c.policy.unverified, Unverified::Match, "the default");
        // No [[policy]] at all: an empty policy.
        assert!(parse(GOOD).unwrap().policy.is_empty());
    }

    #[test]
    fn policy_bad_regex_points_at_it() {
        let text = with_policy(&POLICY.replace("'^(shutdown", "'^(shutdown(("));
        let e = err(&text);
        let line = line_of(&text, "shutdown((");
        assert!(
            e.starts_with(&format!("/etc/gatehouse/config.toml:{line}:")),
            "{e}"
        );
        assert!(e.contains("bad regex"), "{e}");
        assert!(
            e.contains("bad regex '^(shutdown((|reboot|halt)\\b': unclosed group (at character 11 of the pattern)"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }

    #[test]
    fn policy_regex_size_is_bounded() {
        let e = err(&with_policy(
            &POLICY.replace("'^(shutdown|reboot|halt)\\b'", "'\\w{1000}\\w{1000}'"),
        ));
        assert!(e.contains("too big"), "{e}");
    }

    #[test]
    fn policy_field_errors() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "action = \"deny\"",
                "action = \"block\"",
                "action must be \"deny\", \"confirm\" or \"alert\", not \"block\"",
            ),
            ("commands = [", "commands = [] #", "lists no `commands`"),
            (
                "name = \"no-root-wipe\"",
                "name = \"no root\"",
                "policy rule name",
            ),
            (
                "name = \"no-root-wipe\"",
                "name = \"gatehouse:x\"",
                "policy rule name",
            ),
            (
                "hosts = [\"@prod\"]",
                "hosts = []",
                "leave it out to mean every host",
            ),
            (
                "hosts = [\"@prod\"]",
                "hosts = [\"web02\"]",
                "no host named \"web02\"",
            ),
            (
                "hosts = [\"@prod\"]",
                "hosts = [\"@nope\"]",
                "no host is in group \"nope\"",
            ),
            (
                "users = [\"alice\"]",
                "users = []",
                "leave it out to mean everyone",
            ),
            ("message =", "mesage =", "unknown field"),
        ];
        for (from, to, want) in cases {
            let policy = POLICY.replace(from, to);
            assert_ne!(policy, POLICY, "{from}");
            let e = err(&with_policy(&policy));
            assert!(e.contains(want), "{from} -> {to}: {e}");
            assert!(e.starts_with("/etc/gatehouse/config.toml:"), "{e}");
        }
    }

    #[test]
    fn policy_names_are_unique() {
        let text = with_policy(&format!("{POLICY}{POLICY}"));
        let e = err(&text);
        assert!(
            e.contains("policy rule \"no-root-wipe\" is defined twice"),
            "{e}"
        );
        let second = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("name = \"no-root-wipe\""))
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert!(e.contains(&format!(":{second}:8: ")), "{e}");
    }

    #[test]
    fn policy_unverified_setting() {
        let set = |v: &str| {
            GOOD.replace(
                "idle_timeout = \"30m\"",
                &format!("idle_timeout = \"30m\"\npolicy_unverified = \"{v}\""),
            )
        };
        assert_eq!(
            parse(&set("block")).unwrap().policy.unverified,
            Unverified::Block
        );
        assert_eq!(
            parse(&set("confirm")).unwrap().policy.unverified,
            Unverified::Confirm
        );
        assert_eq!(
            parse(&set("match")).unwrap().policy.unverified,
            Unverified::Match
        );
        let e = err(&set("deny"));
        assert!(e.contains(":7:21: policy_unverified must be"), "{e}");
    }

    #[test]
    fn policy_message_loses_control_characters() {
        let c = parse(&with_policy(
            &POLICY.replace("Not on production;", "Not\\u001b[2J on production;"),
        ))
        .unwrap();
        assert_eq!(
            c.policy.rules[0].message.as_deref(),
            Some("Not[2J on production; use the change process.")
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("", 5), (1, 1));
    }
}
