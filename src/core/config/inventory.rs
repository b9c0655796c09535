//! A fast path for the `[[hosts]]` tables of a large inventory (issue 13,
//! point 5). The `toml` crate builds a whole document tree with spans before
//! serde sees it: 10,000 hosts (1.6 MB) took ~70 ms and 45 MB of heap, most
//! of the time from start to menu.
//!
//! This is not a second TOML parser. It recognises one narrow, common shape
//! — a `[[hosts]]` header alone on its line, then `key = value` lines whose
//! keys are `RawHost`'s fields and whose values are a basic string without
//! escapes, a decimal integer, or a one-line array of such strings — and
//! nothing else. The first line it does not recognise, anywhere in a hosts
//! table, makes it give up, and the whole file goes through `toml` as
//! before, so every error message (and every exotic but valid file) is
//! exactly the crate's. When it succeeds, the hosts tables are blanked
//! (every byte, newlines too, becomes a space) and the rest of the file —
//! settings, access and policy rules, a few lines — is parsed by `toml` at
//! the same byte offsets (only byte offsets matter to spans; line numbers
//! are computed from the original text), so every span and every
//! `path:line:column` is unchanged.
//! `tests` checks the outcome against `toml` itself.
#![forbid(unsafe_code)]

use std::ops::Range;

use toml::Spanned;

use super::raw::{RawConfig, RawHost};

/// Parses `text` as `RawConfig`: the fast path when it applies, `toml`
/// otherwise. `Err` is the crate's own error (from the full parse).
pub fn parse(text: &str) -> Result<RawConfig, toml::de::Error> {
    if let Some((hosts, rest)) = scan(text) {
        if let Ok(mut raw) = toml::from_str::<RawConfig>(&rest) {
            // A `hosts` key outside `[[hosts]]` headers (an inline array,
            // a dotted key): let the crate judge the whole file.
            if raw.hosts.is_empty() {
                raw.hosts = hosts;
                return Ok(raw);
            }
        }
    }
    toml::from_str(text)
}

/// The hosts tables, and `text` with them blanked; `None` when any part of
/// a hosts table is outside the shape this recognises.
fn scan(text: &str) -> Option<(Vec<RawHost>, String)> {
    // A multi-line string could hold a line that looks like a header; such
    // files are rare enough to leave to the crate.
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    let mut hosts = Vec::new();
    let mut rest = text.as_bytes().to_vec();
    let mut in_hosts = false;
    let mut fields = Fields::default();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.strip_suffix('\n').unwrap_or(line);
        let trimmed = body.trim_matches([' ', '\t']);
        if trimmed.starts_with('[') {
            if in_hosts {
                hosts.push(fields.finish()?);
                fields = Fields::default();
            }
            in_hosts = trimmed == "[[hosts]]";
            // Any other header that names hosts, or a header with a
            // comment or odd spacing: not ours to judge.
            if !in_hosts && trimmed.contains("hosts") && !is_plain_other_header(trimmed) {
                return None;
            }
        } else if in_hosts {
            if !(trimmed.is_empty() || trimmed.starts_with('#') && comment_ok(trimmed)) {
                fields.line(body, start)?;
            }
        } else {
            continue;
        }
        if in_hosts {
            // Newlines too: one run of blanks is one token for the crate's
            // lexer (a blank line per host line was 13% of the menu's start).
            // Only byte offsets matter to the spans, and what follows a
            // hosts table is a header, which may follow blanks.
            rest[start..offset].fill(b' ');
        }
    }
    if in_hosts {
        hosts.push(fields.finish()?);
    }
    if hosts.is_empty() {
        return None;
    }
    // Blanking kept every byte offset; the rest is still valid UTF-8 since
    // only whole lines became ASCII spaces.
    Some((hosts, String::from_utf8(rest).ok()?))
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
    use super::*;

    fn full(text: &str) -> String {
        format!(
            "{:?}",
            toml::from_str::<RawConfig>(text).map_err(|e| e.to_string())
        )
    }
    fn fast(text: &str) -> String {
        format!("{:?}", parse(text).map_err(|e| e.to_string()))
    }

    const HEAD: &str = "[settings]\nlog_dir = \"/var/log/gatehouse\" # where\n\n";
    const TAIL: &str = "\n[[access]]\nusers = [\"alice\"]\nhosts = [\"web*\", \"@db\"]\n";

    /// The fast path gives exactly what the crate gives, spans included,
    /// on inventories it takes.
    #[test]
    fn same_result_as_toml_on_simple_inventories() {
        let mut text = HEAD.to_string();
        for i in 0..50 {
            text += &format!(
                "[[hosts]]\nname = \"web{i:02}\"\n  address = \"10.0.0.{i}\"\nport = {p}\nuser = \"deploy\"\t# the account\n\
                 key = \"/etc/gatehouse/keys/k\"\ndescription = \"Ünïcödé rack {i}\"\ngroups = [\"web\", \"dc{i}\",]\n\n# a comment\n",
                p = 22 + i
            );
        }
        text += TAIL;
        assert!(scan(&text).is_some(), "the fast path applies");
        assert_eq!(fast(&text), full(&text));
        // Hosts first, then the other tables; no trailing newline.
        let text = format!("[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\ngroups = []{TAIL}[settings]\nrecording = false");
        assert!(scan(&text).is_some());
        assert_eq!(fast(&text), full(&text));
    }

    /// Everything outside the narrow shape goes to the crate, whose answer
    /// (value or error, with its line and column) is the one returned.
    #[test]
    fn anything_else_is_the_crates_answer() {
        let host = |body: &str| {
            format!("{HEAD}[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n{body}\n{TAIL}")
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
            format!("{HEAD}[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n[hosts.x]\ny = 1\n"),
            format!("{HEAD}hosts = [{{ name = \"a\", address = \"b\", user = \"c\" }}]\n[[hosts]]\nname = \"d\"\naddress = \"e\"\nuser = \"f\"\n"),
            "[[hosts]] # first\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n".to_string(),
            format!("{HEAD}[[hosts]]\nname = \"a\"\naddress = \"b\"\nuser = \"c\"\n[settings]\nbogus = 1\n"),
        ];
        for text in &cases {
            assert_eq!(fast(text), full(text), "{text}");
        }
        // And some of those were refused by the scanner itself, not by luck.
        assert!(scan(&cases[0]).is_none());
        assert!(scan(&cases[8]).is_none());
        assert!(scan(&cases[9]).is_none());
    }
}
