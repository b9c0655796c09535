//! A small, faithful argument reader for the admin tools: `--name VALUE`,
//! `--name=VALUE`, flags, and positionals. No new dependency for what fits
//! in forty lines.
#![forbid(unsafe_code)]

use std::ffi::OsString;

pub struct Args {
    items: std::vec::IntoIter<OsString>,
    tool: &'static str,
}

pub enum Arg {
    /// `--name` (with `=value` split off into `inline`).
    Opt {
        name: String,
        inline: Option<String>,
    },
    Positional(String),
}

impl Args {
    pub fn new(tool: &'static str, args: Vec<OsString>) -> Args {
        Args {
            items: args.into_iter(),
            tool,
        }
    }

    pub fn next(&mut self) -> Result<Option<Arg>, String> {
        let Some(a) = self.items.next() else {
            return Ok(None);
        };
        let a = a
            .into_string()
            .map_err(|a| format!("{}: argument {a:?} is not valid UTF-8", self.tool))?;
        if a.starts_with('-') && a.len() > 1 {
            match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => Ok(Some(Arg::Opt {
                    name: n.to_string(),
                    inline: Some(v.to_string()),
                })),
                _ => Ok(Some(Arg::Opt {
                    name: a,
                    inline: None,
                })),
            }
        } else {
            Ok(Some(Arg::Positional(a)))
        }
    }

    /// The value of `--name`: inline, or the next argument.
    pub fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, String> {
        if let Some(v) = inline {
            return Ok(v);
        }
        self.items
            .next()
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| format!("{}: {name} needs a value", self.tool))
    }
}
