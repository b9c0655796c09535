//! A fast path for the `[[hosts]]` tables of a large inventory (issue 13).
//! The `toml` crate builds a whole document tree with spans before serde
//! sees it: 10,000 hosts (1.6 MB) took ~70 ms and 45 MB of heap, most of
//! the time from start to menu.
//!
//! This is not a second TOML parser. It recognises one narrow, common shape
//! — a `[[hosts]]` header alone on its line, then `key = value` lines whose
//! keys are `RawHost`'s fields and whose values are a basic string without
//! escapes, a decimal integer, or a one-line array of such strings — and
//! nothing else. The first line it does not recognise, anywhere in a hosts
//! table, makes it give up, and the whole file goes through `toml` as
//! before, so every error message (and every exotic but valid file) is
//! exactly the crate's. When it succeeds, each table is handed over as it
//! ends (`Config::parse` validates it into a `Host` at once: no list of raw
//! tables), and the lines outside the hosts tables — settings, access and
//! policy rules, a few lines — are returned for `toml`. Those lines lose
//! their offsets; `Config::parse` therefore reads the whole file again with
//! `toml` whenever anything in it is wrong, so every `path:line:column` is
//! the one the crate and the validator always gave. `tests` checks both
//! against `toml` itself.
#![forbid(unsafe_code)]

use std::ops::Range;

use toml::Spanned;

#[cfg(test)]
use super::raw::RawConfig;
use super::raw::RawHost;

/// Hands each hosts table to `each` as it ends, and returns the other
/// lines of `text`, in order; `None` when any part of a hosts table is
/// outside the shape this recognises, when there is no hosts table, or when
/// `each` returns `false` (the tables handed over so far are then to be
/// thrown away).
///
/// The other lines keep their own newlines, so they mean to `toml` what
/// they mean in the file: TOML is line-oriented and blank lines are
/// insignificant outside multi-line strings, which this refuses. Their
/// spans are not the file's, which is why `Config::parse` reads the whole
/// file again (with `toml`) whenever anything in it is wrong.
pub fn scan(text: &str, mut each: impl FnMut(RawHost) -> bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut any = false;
    let mut rest = String::new();
    let mut in_hosts = false;
    let mut fields = Fields::default();
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| start + i + 1);
        let line = &text[start..end];
        let at = start;
        start = end;
        let body = line.strip_suffix('\n').unwrap_or(line);
        let trimmed = body.trim_matches([' ', '\t']);
        if trimmed.starts_with('[') {
            if in_hosts && !each(std::mem::take(&mut fields).finish()?) {
                return None;
            }
            in_hosts = trimmed == "[[hosts]]";
            any |= in_hosts;
            // Any other header that names hosts, or a header with a
            // comment or odd spacing: not ours to judge.
            if !in_hosts && trimmed.contains("hosts") && !is_plain_other_header(trimmed) {
                return None;
            }
        } else if in_hosts {
            // A hosts line with a multi-line string is refused by
            // `Fields::line` (a string ends at its second quote).
            if !(trimmed.is_empty() || trimmed.starts_with('#') && comment_ok(trimmed)) {
                fields.line(body, at)?;
            }
        }
        if !in_hosts {
            // A multi-line string could hold a line that looks like a
            // header or a host key; such files are rare enough to leave to
            // the crate.
            if line.contains("\"\"\"") || line.contains("'''") {
                return None;
            }
            rest.push_str(line);
        }
    }
    if in_hosts && !each(fields.finish()?) {
        return None;
    }
    any.then_some(rest)
}

/// `[[access]]`, `[[policy]]`, `[settings]`: headers of other tables,
/// whose keys may well mention hosts (`hosts = ["web*"]` is a key line,
/// not a header; this is only for header lines).
fn is_plain_other_header(h: &str) -> bool {
    matches!(h, "[[access]]" | "[[policy]]" | "[settings]")
}

/// TOML comments may not hold control characters other than tab.
fn comment_ok(s: &str) -> bool {
    !s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// One hosts table being collected; every key at most once.
#[derive(Default)]
struct Fields {
    name: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    user: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    groups: Option<Vec<Spanned<String>>>,
}

impl Fields {
    /// One `key = value` line starting at byte `at` of the file.
    fn line(&mut self, line: &str, at: usize) -> Option<()> {
        let mut p = Cursor { s: line, i: 0 };
        p.blanks();
        let key = p.bare_key()?;
        p.blanks();
        p.eat(b'=')?;
        p.blanks();
        let string = |p: &mut Cursor<'_>| p.string().map(|(v, r)| span(v, r, at));
        match key {
            "port" => set(&mut self.port, p.integer().map(|(v, r)| span(v, r, at))?)?,
            "groups" => {
                if self.groups.is_some() {
                    return None;
                }
                self.groups = Some(p.string_array(at)?);
            }
            "name" => set(&mut self.name, string(&mut p)?)?,
            "address" => set(&mut self.address, string(&mut p)?)?,
            "user" => set(&mut self.user, string(&mut p)?)?,
            "key" => set(&mut self.key, string(&mut p)?)?,
            "password_file" => set(&mut self.password_file, string(&mut p)?)?,
            "description" => set(&mut self.description, string(&mut p)?)?,
            _ => return None,
        }
        p.end()
    }

    /// The table as `RawHost`, when its required keys are there.
    fn finish(self) -> Option<RawHost> {
        Some(RawHost {
            name: self.name?,
            address: self.address?,
            port: self.port,
            user: self.user?,
            key: self.key,
            password_file: self.password_file,
            description: self.description,
            groups: self.groups.unwrap_or_default(),
            // A table with `agent` keys is not plain: the crate reads it.
            agent: None,
            agent_fallback: None,
        })
    }
}

fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None; // a duplicate key: the crate says so, with its words
    }
    *slot = Some(v);
    Some(())
}

fn span<T>(v: T, r: Range<usize>, at: usize) -> Spanned<T> {
    Spanned::new(at + r.start..at + r.end, v)
}

/// A position in one line.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }
    fn blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.i += 1)
    }
    fn bare_key(&mut self) -> Option<&'a str> {
        let start = self.i;
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-')
        ) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }
    /// `"…"` without escapes or control characters; the span covers the
    /// quotes, as the crate's does.
    fn string(&mut self) -> Option<(String, Range<usize>)> {
        let start = self.i;
        self.eat(b'"')?;
        let from = self.i;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                b if (b < 0x20 && b != b'\t') || b == 0x7f => return None,
                _ => self.i += 1,
            }
        }
        let value = self.s[from..self.i].to_string();
        self.i += 1;
        Some((value, start..self.i))
    }
    /// A decimal integer as TOML writes it: no sign, no `_`, no leading
    /// zero; small enough for `i64`.
    fn integer(&mut self) -> Option<(i64, Range<usize>)> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        if digits.is_empty() || digits.len() > 18 || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        Some((digits.parse().ok()?, start..self.i))
    }
    /// `["a", "b"]` on one line (a trailing comma allowed).
    fn string_array(&mut self, at: usize) -> Option<Vec<Spanned<String>>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        loop {
            self.blanks();
            if self.eat(b']').is_some() {
                return Some(out);
            }
            let (v, r) = self.string()?;
            out.push(span(v, r, at));
            self.blanks();
            if self.eat(b',').is_none() {
                self.blanks();
                self.eat(b']')?;
                return Some(out);
            }
        }
    }
    /// Only blanks and a comment may follow a value.
    fn end(&mut self) -> Option<()> {
        self.blanks();
        match self.peek() {
            None => Some(()),
            Some(b'#') => comment_ok(&self.s[self.i..]).then_some(()),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Validator};
    use super::*;
    use std::path::Path;

    const PATH: &str = "/etc/gatehouse/config.toml";

    /// The hosts tables as the crate reads them, spans included.
    fn toml_hosts(text: &str) -> String {
        format!("{:?}", toml::from_str::<RawConfig>(text).map(|r| r.hosts))
    }
    /// The hosts tables as the scanner hands them over.
    fn scanned_hosts(text: &str) -> String {
        let mut hosts = Vec::new();
        let rest = scan(text, |h| {
            hosts.push(h);
            true
        });
        assert!(rest.is_some(), "the fast path applies");
        format!("{:?}", Ok::<_, ()>(hosts))
    }
    /// `Config::parse`'s answer (value or error line).
    fn config(text: &str) -> String {
        format!(
            "{:?}",
            Config::parse(Path::new(PATH), text).map_err(|e| e.to_string())
        )
    }
    /// The reference: the whole file through `toml`, then `validate`.
    fn reference(text: &str) -> String {
        let v = Validator {
            path: Path::new(PATH),
            text,
        };
        let r = match toml::from_str::<RawConfig>(text) {
            Ok(raw) => v.validate(raw),
            Err(e) => Err(v.err_at(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_string(),
            )),
        };
        format!("{:?}", r.map_err(|e| e.to_string()))
    }
    fn takes_fast_path(text: &str) -> bool {
        Validator {
            path: Path::new(PATH),
            text,
        }
        .fast()
        .is_some()
    }

    const HEAD: &str = "[settings]\nlog_dir = \"/var/log/gatehouse\" # where\n\n";
    const TAIL: &str = "\n[[access]]\nusers = [\"alice\"]\nhosts = [\"web*\", \"@db\"]\n";
    const KEY: &str = "key = \"/etc/gatehouse/keys/k\"\n";

    /// The fast path gives exactly what the crate gives: the same hosts
    /// tables, spans included, and the same validated config.
    #[test]
    fn same_result_as_toml_on_simple_inventories() {
        let mut text = HEAD.to_string();
        for i in 0..50 {
            text += &format!(
                "[[hosts]]\nname = \"web{i:02}\"\n  address = \"10.0.0.{i}\"\nport = {p}\nuser = \"deploy\"\t# the account\n\
                 key = \"/etc/gatehouse/keys/k\"\ndescription = \"Ünïcödé rack {i}\"\ngroups = [\"web\", \"db\", \"dc{i}\",]\n\n# a comment\n",
                p = 22 + i
            );
        }
        text += TAIL;
        assert!(takes_fast_path(&text));
        assert_eq!(scanned_hosts(&text), toml_hosts(&text));
        assert_eq!(config(&text), reference(&text));
        // Hosts first, then the other tables; no trailing newline; a
        // relative key path.
        let text = format!("[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\nkey = \"k\"\ngroups = [\"db\"]{TAIL}[settings]\nrecording = false");
        assert!(takes_fast_path(&text));
        assert_eq!(scanned_hosts(&text), toml_hosts(&text));
        assert_eq!(config(&text), reference(&text));
    }

    /// Everything outside the narrow shape goes to the crate, whose answer
    /// (value or error, with its line and column) is the one returned.
    #[test]
    fn anything_else_is_the_crates_answer() {
        let host = |body: &str| {
            format!(
                "{HEAD}[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n{KEY}{body}\n{TAIL}"
            )
        };
        let cases = [
            host("port = 0x16"),
            host("port = 2_2"),
            host("port = -1"),
            host("port = \"22\""),
            host("description = \"tab\\there\""),
            host("description = 'literal'"),
            host("description = \"\"\"multi\nline\"\"\""),
            host("name = \"again\""),
            host("agent = true"),
            host("unknown = 1"),
            host("groups = [\"a\",\n \"b\"]"),
            host("groups = [\"a\"] x"),
            host("\"user\" = \"quoted key\""),
            host("port = 22\r"),
            format!("{HEAD}[[hosts]]\nname = \"a\"\n{TAIL}"),
            format!("{HEAD}[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n{KEY}[hosts.x]\ny = 1\n"),
            format!("{HEAD}hosts = [{{ name = \"a\", address = \"b\", user = \"c\" }}]\n[[hosts]]\nname = \"d\"\naddress = \"e\"\nuser = \"f\"\n{KEY}"),
            format!("[[hosts]] # first\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n{KEY}"),
            format!("{HEAD}[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n{KEY}[settings]\nbogus = 1\n"),
            format!("{HEAD}[[policy]]\nname = \"p\"\naction = \"deny\"\ncommands = ['''^rm''']\n[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n{KEY}"),
        ];
        for text in &cases {
            assert_eq!(config(text), reference(text), "{text}");
        }
        // And some of those were refused by the scanner itself, not by luck.
        for i in [0, 8, 9, 19] {
            assert!(scan(&cases[i], |_| true).is_none(), "{}", cases[i]);
        }
    }

    /// Any error in a file of the fast path's shape — in the settings, a
    /// host, a rule, or between two hosts — is found by reading the whole
    /// file again: the same line, column and words as ever.
    #[test]
    fn errors_in_a_plain_inventory_keep_their_place() {
        let hosts = |n: usize, extra: &str| {
            let mut t = String::new();
            for i in 0..n {
                t += &format!("[[hosts]]\nname = \"web{i}\"\naddress = \"10.0.0.{i}\"\nuser = \"u\"\n{KEY}groups = [\"db\"]\n");
                if i == 2 {
                    t += extra;
                }
            }
            t
        };
        let good = format!("{HEAD}{}{TAIL}", hosts(5, ""));
        assert!(takes_fast_path(&good));
        assert!(config(&good).starts_with("Ok("));
        let cases = [
            (
                format!("{HEAD}{}{TAIL}", hosts(5, "port = 70000\n")),
                ":22:8: port must be between 1 and 65535",
            ),
            (
                format!(
                    "{HEAD}{}{TAIL}",
                    hosts(
                        5,
                        "[[hosts]]\nname = \"web1\"\naddress = \"x\"\nuser = \"u\"\nkey = \"/k\"\n"
                    )
                ),
                ":23:8: host \"web1\" is defined twice",
            ),
            (
                format!("{HEAD}{}{TAIL}", hosts(5, "").replace("10.0.0.3", "10 0")),
                ":24:11: address must be",
            ),
            (
                format!(
                    "[settings]\nidle_timeout = \"soon\"\n{}{TAIL}",
                    hosts(5, "")
                ),
                ":2:16: \"soon\" is not a duration",
            ),
            (
                format!("{HEAD}{}{}", hosts(5, ""), TAIL.replace("web*", "nope")),
                ":37:10: no host named \"nope\"",
            ),
            (
                format!("{HEAD}{}{}", hosts(5, ""), TAIL.replace("@db", "@web")),
                ":37:18: no host is in group \"web\"",
            ),
            (
                format!("{}[settings]\nrecording = \"yes\"\n{TAIL}", hosts(5, "")),
                ":32:13: invalid type",
            ),
            (
                format!(
                    "{HEAD}{}[settings]\nrecording = false\n{TAIL}",
                    hosts(5, "")
                ),
                ":34:2: duplicate key",
            ),
        ];
        for (text, want) in &cases {
            assert_eq!(config(text), reference(text), "{text}");
            let got = Config::parse(Path::new(PATH), text)
                .unwrap_err()
                .to_string();
            assert!(got.contains(want), "{got}\nwants {want}");
            assert!(!takes_fast_path(text), "{text}");
        }
    }
}
