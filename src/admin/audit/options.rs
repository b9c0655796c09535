//! `gatehouse audit`'s command line, in two steps: each option as typed
//! (`Builder::option`), then what they mean together (`Builder::finish`:
//! the grep regex, the combinations that make no sense, the colour).
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

use crate::admin::args::{Arg, Args};
use crate::admin::filter::{parse_when, ts_key, Filter};
use crate::core::record::EVENTS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Show,
    Check,
    Verify,
}

pub(super) struct Opts {
    pub filter: Filter,
    pub json: bool,
    pub color: bool,
    pub follow: bool,
    pub mode: Mode,
    pub dirs: Vec<PathBuf>,
    pub config: Option<PathBuf>,
    pub keys: Vec<String>,
    pub seal_key: Option<PathBuf>,
}

/// The options as typed, before they are checked together.
struct Builder {
    filter: Filter,
    json: bool,
    follow: bool,
    mode: Mode,
    dirs: Vec<PathBuf>,
    config: Option<PathBuf>,
    keys: Vec<String>,
    seal_key: Option<PathBuf>,
    color: Option<bool>,
    grep: Option<String>,
    icase: bool,
    fixed: bool,
    now: chrono::DateTime<chrono::Utc>,
}

/// The options, or `None` for `--help`.
pub(super) fn parse(args: Vec<OsString>) -> Result<Option<Opts>, String> {
    let mut a = Args::new("audit", args);
    let mut b = Builder {
        filter: Filter::default(),
        json: false,
        follow: false,
        mode: Mode::Show,
        dirs: Vec::new(),
        config: None,
        keys: Vec::new(),
        seal_key: None,
        color: None,
        grep: None,
        icase: false,
        fixed: false,
        now: chrono::Utc::now(),
    };
    while let Some(arg) = a.next()? {
        let (name, inline) = match arg {
            Arg::Opt { name, inline } => (name, inline),
            Arg::Positional(p) => return Err(format!("audit: unexpected argument {p:?}")),
        };
        if name == "--help" || name == "-h" {
            return Ok(None);
        }
        b.option(&mut a, &name, inline)?;
    }
    b.finish().map(Some)
}

impl Builder {
    /// One option and its value.
    fn option(&mut self, a: &mut Args, name: &str, inline: Option<String>) -> Result<(), String> {
        let value = || a.value(name, inline);
        match name {
            "--user" | "-u" => self.filter.users.push(value()?),
            "--host" => self.filter.hosts.push(pattern(name, &value()?)?),
            "--session" | "-s" => self.filter.sessions.push(value()?),
            "--bastion" => self.filter.bastions.push(pattern(name, &value()?)?),
            "--event" | "-e" => self.filter.events.extend(events(&value()?)?),
            "--since" => self.filter.since = Some(self.when(name, &value()?)?),
            "--until" => self.filter.until = Some(self.when(name, &value()?)?),
            "--grep" | "-g" => self.grep = Some(value()?),
            "--ignore-case" | "-i" => self.icase = true,
            "--fixed-strings" | "-F" => self.fixed = true,
            "--json" => self.json = true,
            "--color" | "--colour" => self.color = Some(color(&value()?)?),
            "--follow" | "-f" => self.follow = true,
            "--unverified" => self.filter.unverified = true,
            "--check" => self.mode = Mode::Check,
            "--verify" => self.mode = Mode::Verify,
            "--log-dir" | "--dir" => self.dirs.push(PathBuf::from(value()?)),
            "--key" => self.keys.push(value()?),
            "--seal-key" => self.seal_key = Some(PathBuf::from(value()?)),
            "--config" => self.config = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "audit: unknown option {other:?}; see `gatehouse audit --help`"
                ))
            }
        }
        Ok(())
    }

    /// `--since`/`--until` as a `ts` string (`filter::ts_key`).
    fn when(&self, name: &str, v: &str) -> Result<String, String> {
        let t = parse_when(v, self.now).map_err(|e| format!("audit: {name}: {e}"))?;
        Ok(ts_key(t))
    }

    /// The options together.
    fn finish(mut self) -> Result<Opts, String> {
        if let Some(g) = &self.grep {
            self.filter.grep = Some(grep(g, self.fixed, self.icase)?);
        }
        if (!self.keys.is_empty() || self.seal_key.is_some()) && self.mode != Mode::Verify {
            return Err("audit: --key and --seal-key go with --verify".into());
        }
        if self.follow && self.mode != Mode::Show {
            return Err("audit: --follow cannot be combined with --check or --verify".into());
        }
        let color = self.color.unwrap_or_else(color_auto);
        Ok(Opts {
            filter: self.filter,
            json: self.json,
            color: color && !self.json,
            follow: self.follow,
            mode: self.mode,
            dirs: self.dirs,
            config: self.config,
            keys: self.keys,
            seal_key: self.seal_key,
        })
    }
}

fn pattern(name: &str, v: &str) -> Result<glob::Pattern, String> {
    glob::Pattern::new(v).map_err(|e| format!("audit: {name} {v:?} is not a valid pattern: {e}"))
}

/// `--event LIST`: comma-separated names from `record::EVENTS`.
fn events(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for e in list.split(',').filter(|e| !e.is_empty()) {
        if !EVENTS.contains(&e) {
            return Err(format!(
                "audit: unknown event {e:?}; events are {}",
                EVENTS.join(", ")
            ));
        }
        out.push(e.to_string());
    }
    Ok(out)
}

fn color(v: &str) -> Result<bool, String> {
    match v {
        "always" => Ok(true),
        "never" => Ok(false),
        "auto" => Ok(color_auto()),
        v => Err(format!(
            "audit: --color must be auto, always or never, not {v:?}"
        )),
    }
}

/// Colour on a terminal, unless NO_COLOR is set.
fn color_auto() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `--grep` (with `-F`, `-i`): a linear-time regex, size-capped.
fn grep(g: &str, fixed: bool, icase: bool) -> Result<regex::Regex, String> {
    let pat = if fixed {
        regex::escape(g)
    } else {
        g.to_string()
    };
    regex::RegexBuilder::new(&pat)
        .case_insensitive(icase)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            format!("audit: --grep {g:?} is not a valid regex (use -F for plain text): {e}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<(), String> {
        parse(a.iter().map(OsString::from).collect()).map(|_| ())
    }

    #[test]
    fn parse_rejects_nonsense() {
        assert!(p(&["--event", "nope"]).is_err());
        assert!(p(&["--since", "yesterday"]).is_err());
        assert!(p(&["--grep", "("]).is_err());
        assert!(p(&["--grep", "(", "-F"]).is_ok());
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--follow", "--verify"]).is_err());
        assert!(p(&["--key", "k"]).is_err());
        assert!(p(&["--color", "sometimes"]).is_err());
        assert!(p(&["--host", "[x"]).is_err());
    }

    #[test]
    fn every_event_of_the_schema_is_a_filter() {
        for e in EVENTS {
            assert!(p(&["--event", e]).is_ok(), "{e}");
        }
        assert!(p(&["--event", "policy"]).is_ok());
        assert!(p(&["--event", "exec,file"]).is_ok());
    }

    #[test]
    fn options_land_in_the_filter() {
        let o = parse(
            [
                "--user",
                "alice",
                "-e",
                "command,login",
                "--since",
                "2026-11-28",
                "-g",
                "Rm",
                "-i",
                "--json",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.filter.users, ["alice"]);
        assert_eq!(o.filter.events, ["command", "login"]);
        assert_eq!(o.filter.since.as_deref(), Some("2026-11-28T00:00:00.000Z"));
        assert!(o.filter.grep.unwrap().is_match("rm -rf"));
        assert!(o.json && !o.color && o.mode == Mode::Show);
    }

    /// Every spelling `Builder::option` accepts (read from its source, so
    /// a new one is caught) is in `gatehouse audit --help`: `-u`, `-s`,
    /// `-e`, `-g` and `--colour` were accepted but not listed.
    #[test]
    fn the_usage_lists_every_option_the_parser_takes() {
        let src = include_str!("options.rs");
        let start = src.find("fn option(").unwrap();
        let end = start + src[start..].find("other =>").unwrap();
        let accepted: Vec<&str> = src[start..end]
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.starts_with('-'))
            .collect();
        assert!(accepted.len() > 25, "{accepted:?}");
        let usage = super::super::USAGE;
        let listed = |opt: &str| {
            usage.match_indices(opt).any(|(i, _)| {
                let before = usage[..i].chars().next_back();
                let after = usage[i + opt.len()..].chars().next();
                let word =
                    |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
                !word(before) && !word(after)
            })
        };
        let missing: Vec<&&str> = accepted.iter().filter(|o| !listed(o)).collect();
        assert!(missing.is_empty(), "not in audit --help: {missing:?}");
    }
}
