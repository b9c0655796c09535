//! The command normalizer: one line of operator input (as Gatehouse will
//! record it) → the *simple commands* a POSIX shell would run, each as its
//! words joined by one space. Policy regexes are matched against these
//! (product.md, "Command policy").
//!
//! What it does, in shell terms:
//! - splits lists and pipelines (`;` `&` `&&` `||` `|` `|&` newline, `;;`);
//! - descends into `$(…)`, backticks (nested), `(…)` subshells, `{ …; }`
//!   groups, `<(…)`/`>(…)` and command substitutions inside double quotes,
//!   `${…}` and unquoted here-document bodies — each inner simple command
//!   is reported on its own, the outer word keeps the placeholder `$(…)`;
//! - removes quoting and backslashes (`r''m`, `\rm`, `"rm"`, `$'\x72m'` →
//!   `rm`), backslash-newline continuations, comments, redirections (with
//!   their targets) and here-document bodies (data, not commands);
//! - expands unquoted brace lists (`{rm,-rf,/}`) and treats an unquoted
//!   `$IFS`/`${IFS}` as a blank, two well-known filter bypasses;
//! - drops leading `NAME=value` assignments and reserved words (`if`,
//!   `then`, `do`, `!`, `{`, …), and a leading path from the program name
//!   (`/bin/rm`, `./rm` → `rm`);
//! - looks through wrappers with their options (`sudo -u root -E`, `env -i
//!   A=1`, `command`, `exec -a`, `nohup`, `nice -n 5`, `time -p`, and also
//!   `doas`, `builtin`, `busybox`, `setsid`, `timeout 5`, `ionice -c 3`,
//!   `stdbuf -o0`): every layer is reported (`sudo rm -rf /` *and*
//!   `rm -rf /`), so a rule can target either;
//! - reads the command string of `sh -c`/`bash -c` (and the other common
//!   shells), `su -c`, `eval` and `env -S` as a command line of its own.
//!
//! It does *not* expand variables, globs or aliases, nor look inside
//! `xargs`, `find -exec`, `watch`, scripts or a shell reading stdin: a text
//! policy cannot know what those run (README, "Command policy").
//!
//! Why not `shlex`: `shlex::split` knows quoting but not operators — `rm
//! -rf /;ls` is one word `/;ls` to it — nor `$(…)`, backticks, `$'…'`,
//! comments or here-documents, and it gives up (None) on an unclosed quote.
//! Each of those is a bypass here, so this is a small hand-written lexer.
//!
//! Total and bounded: any input gives a result, never a panic; nesting is
//! limited (`MAX_DEPTH`), as are the commands and bytes produced. When a
//! limit is reached `complete` is false, and the policy treats the line as
//! one it could not read (fail closed where a deny rule applies).
#![forbid(unsafe_code)]

/// Nesting of `(…)`, `$(…)`, backticks and re-read `sh -c` strings.
pub const MAX_DEPTH: usize = 32;
/// `sh -c`, `eval`, `su -c`, `env -S` strings re-read inside each other.
pub const MAX_REPARSE: usize = 8;
/// Simple commands reported for one line.
pub const MAX_COMMANDS: usize = 10_000;
/// Bytes of normalized text for one line.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Words one brace expansion may produce.
const MAX_BRACE_WORDS: usize = 64;

/// The simple commands of one line, in the order the shell meets them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalized {
    /// Each simple command as its words (quotes removed) joined by one
    /// space, program name without its path; one entry per wrapper layer.
    pub commands: Vec<String>,
    /// False when a limit cut the work short: some of the line was not
    /// taken apart.
    pub complete: bool,
    /// The line uses bash history expansion (`!!`, `!-2`, `!rm`, `^a^b`):
    /// the shell will run text that is not on the line, so no rule can
    /// see it. (Recalling with the arrow keys puts the text on the line.)
    pub history_expansion: bool,
}

/// Normalizes one command line. Pure and total.
pub fn normalize(line: &str) -> Normalized {
    let mut out = Out {
        commands: Vec::new(),
        bytes: 0,
        complete: true,
        full: false,
        history: line.trim_start().starts_with('^'),
    };
    Lexer::new(line, 0).list(0, Until::End, &mut out);
    Normalized {
        commands: out.commands,
        complete: out.complete,
        history_expansion: out.history,
    }
}

struct Out {
    commands: Vec<String>,
    bytes: usize,
    complete: bool,
    /// A push was refused: later work would be refused too, so skip it.
    full: bool,
    history: bool,
}

impl Out {
    fn push(&mut self, s: String) {
        if self.commands.len() >= MAX_COMMANDS || self.bytes + s.len() > MAX_OUTPUT {
            self.complete = false;
            self.full = true;
            return;
        }
        self.bytes += s.len();
        self.commands.push(s);
    }
}

/// One shell word being built: each character with whether it was quoted
/// or escaped (quoted `{`, `=`, digits … are not syntax).
#[derive(Debug, Clone, Default)]
struct Word {
    chars: Vec<(char, bool)>,
}

impl Word {
    fn push(&mut self, c: char, quoted: bool) {
        self.chars.push((c, quoted));
    }
    fn push_str(&mut self, s: &str, quoted: bool) {
        self.chars.extend(s.chars().map(|c| (c, quoted)));
    }
    fn text(&self) -> String {
        self.chars.iter().map(|(c, _)| *c).collect()
    }
    fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }
    /// The word as bare, unquoted text (reserved words, fd numbers).
    fn unquoted(&self) -> Option<String> {
        self.chars.iter().all(|(_, q)| !q).then(|| self.text())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The end of the text.
    End,
    /// A `)` closing `(`, `$(`, `<(` or `>(`.
    Paren,
}

struct Heredoc {
    delimiter: String,
    strip_tabs: bool,
    /// Unquoted delimiter: the body is expanded, so its `$(…)` runs.
    expands: bool,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    pending: Vec<Heredoc>,
    /// How many `sh -c`-like strings this text is nested in.
    reparse: usize,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Characters that end an unquoted word.
fn is_meta(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The placeholder an outer word keeps for a substitution.
const SUBST: &str = "$(…)";

impl Lexer {
    fn new(text: &str, reparse: usize) -> Lexer {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            pending: Vec::new(),
            reparse,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).copied()
    }

    /// A list of commands up to `until`; every simple command goes to `out`.
    fn list(&mut self, depth: usize, until: Until, out: &mut Out) {
        let mut cmd: Vec<Word> = Vec::new();
        let mut w = Word::default();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => {
                    self.pos += 1;
                    end_word(&mut cmd, &mut w);
                }
                '\n' => {
                    self.pos += 1;
                    end_word(&mut cmd, &mut w);
                    self.end_command(&mut cmd, depth, out);
                    self.heredoc_bodies(depth, out);
                }
                '&' if self.peek_at(1) == Some('>') => {
                    end_word(&mut cmd, &mut w);
                    self.redirect(&mut cmd, &mut w, depth, out);
                }
                ';' | '&' | '|' => {
                    // `;;`, `;&`, `&&`, `||`, `|&`: all end a simple command.
                    self.pos += 1;
                    if matches!(self.peek(), Some(';' | '&' | '|')) {
                        self.pos += 1;
                    }
                    end_word(&mut cmd, &mut w);
                    self.end_command(&mut cmd, depth, out);
                }
                '(' => {
                    end_word(&mut cmd, &mut w);
                    self.end_command(&mut cmd, depth, out);
                    match self.arithmetic_end(self.pos, out) {
                        // `(( … ))`: an arithmetic command; its `<<` is a
                        // shift, not a here-document.
                        Some(end) => self.pos = end,
                        None => {
                            self.pos += 1;
                            self.nested(depth, out);
                        }
                    }
                }
                ')' => {
                    self.pos += 1;
                    end_word(&mut cmd, &mut w);
                    self.end_command(&mut cmd, depth, out);
                    if until == Until::Paren {
                        return;
                    }
                    // A stray `)` (a `case` pattern): only a separator.
                }
                '<' | '>' if self.peek_at(1) == Some('(') => {
                    // Process substitution: a word part that runs a list.
                    self.pos += 2;
                    self.nested(depth, out);
                    w.push_str(SUBST, true);
                }
                '<' | '>' => self.redirect(&mut cmd, &mut w, depth, out),
                '#' if w.is_empty() => {
                    // A comment, up to (not including) the newline.
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => self.word_part(&mut w, &mut cmd, depth, out),
            }
        }
        end_word(&mut cmd, &mut w);
        self.end_command(&mut cmd, depth, out);
    }

    /// After an opening `(`, `$(`, `<(`: the inner list up to its `)`.
    /// Past `MAX_DEPTH` the inner text is skipped (balanced parentheses)
    /// and the result marked incomplete.
    fn nested(&mut self, depth: usize, out: &mut Out) {
        if depth < MAX_DEPTH {
            self.list(depth + 1, Until::Paren, out);
        } else {
            out.complete = false;
            self.skip_balanced(')');
        }
    }

    /// At `from`, `((`: is it arithmetic (`(( … ))`, the inner group
    /// closed by `))`)? Then the position after it. Bash reads `((a) )` as
    /// nested subshells instead (parse.y, parse_dparen), so do we. The
    /// look-ahead is bounded; a longer one is taken as arithmetic and the
    /// line marked incomplete (fail closed where a deny rule applies).
    fn arithmetic_end(&self, from: usize, out: &mut Out) -> Option<usize> {
        const LOOKAHEAD: usize = 4096;
        if self.chars.get(from) != Some(&'(') || self.chars.get(from + 1) != Some(&'(') {
            return None;
        }
        let mut level = 0usize;
        let mut i = from + 2;
        while i < self.chars.len() {
            if i - from > LOOKAHEAD {
                out.complete = false;
                return Some(self.chars.len());
            }
            match self.chars[i] {
                '\\' => i += 1,
                '(' => level += 1,
                ')' if level > 0 => level -= 1,
                ')' => {
                    return (self.chars.get(i + 1) == Some(&')')).then_some(i + 2);
                }
                _ => {}
            }
            i += 1;
        }
        // Unclosed: the shell would wait for more and run nothing yet; read
        // it as subshells, so whatever is inside is seen.
        None
    }

    /// Skips to just after the `close` that balances an already consumed
    /// opener, ignoring quoting (used only past the limits).
    fn skip_balanced(&mut self, close: char) {
        let open = if close == ')' { '(' } else { '{' };
        let mut level = 1usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == '\\' {
                self.pos += 1;
            } else if c == open {
                level += 1;
            } else if c == close {
                level -= 1;
                if level == 0 {
                    return;
                }
            }
        }
        self.pos = self.pos.min(self.chars.len());
    }

    fn end_command(&mut self, cmd: &mut Vec<Word>, depth: usize, out: &mut Out) {
        if !cmd.is_empty() {
            let words = std::mem::take(cmd);
            self.simple(words, depth, out);
        }
    }

    /// One unit of an unquoted word (a character, an escape, a quoted
    /// string, an expansion) at `pos`; always advances.
    fn word_part(&mut self, w: &mut Word, cmd: &mut Vec<Word>, depth: usize, out: &mut Out) {
        let Some(c) = self.peek() else { return };
        self.pos += 1;
        match c {
            '\\' => match self.peek() {
                // Line continuation: both characters vanish.
                Some('\n') => self.pos += 1,
                Some(n) => {
                    self.pos += 1;
                    w.push(n, true);
                }
                None => w.push('\\', true),
            },
            '\'' => {
                while let Some(n) = self.peek() {
                    self.pos += 1;
                    if n == '\'' {
                        return;
                    }
                    w.push(n, true);
                }
            }
            '"' => self.double_quoted(w, depth, out),
            '`' => {
                self.backticks(depth, out);
                w.push_str(SUBST, true);
            }
            '$' => self.dollar(w, cmd, false, depth, out),
            '!' => {
                self.bang(false, out);
                w.push('!', false);
            }
            c => w.push(c, false),
        }
    }

    /// Just after a `!` outside single quotes: does it start a history
    /// expansion? Not before a blank, newline, `=` or `(`, nor before the
    /// closing `"` (bash(1), HISTORY EXPANSION). Only typed lines are
    /// expanded, not `sh -c` strings.
    fn bang(&self, in_quotes: bool, out: &mut Out) {
        // bash (`bash_history_inhibit_expansion`) leaves alone `$!` (a
        // parameter), `[!` when a `]` follows somewhere on the line (a
        // pattern) and `${!` when a `}` does (indirection); without the
        // closing character it expands (`[!!` runs the last line).
        let at = |back: usize| self.pos.checked_sub(back).and_then(|i| self.chars.get(i));
        let rest = self.chars.get(self.pos..).unwrap_or_default();
        let inhibited = match at(2) {
            Some('$') => true,
            Some('[') => rest.contains(&']'),
            Some('{') => at(3) == Some(&'$') && rest.contains(&'}'),
            _ => false,
        };
        if inhibited {
            return;
        }
        let expands = match self.peek() {
            None | Some(' ' | '\t' | '\n' | '\r' | '=' | '(') => false,
            Some('"') => !in_quotes,
            Some(_) => true,
        };
        if expands && self.reparse == 0 {
            out.history = true;
        }
    }

    /// After an opening `"`: up to the closing one.
    fn double_quoted(&mut self, w: &mut Word, depth: usize, out: &mut Out) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '"' => return,
                '\\' => match self.peek() {
                    Some('\n') => self.pos += 1,
                    Some(n @ ('$' | '`' | '"' | '\\')) => {
                        self.pos += 1;
                        w.push(n, true);
                    }
                    _ => w.push('\\', true),
                },
                '`' => {
                    self.backticks(depth, out);
                    w.push_str(SUBST, true);
                }
                '$' => {
                    let mut unused = Vec::new();
                    self.dollar(w, &mut unused, true, depth, out)
                }
                '!' => {
                    self.bang(true, out);
                    w.push('!', true);
                }
                c => w.push(c, true),
            }
        }
    }

    /// After a `$`: `$'…'`, `$"…"`, `$((…))`, `$(…)`, `${…}`, `$IFS`, or a
    /// plain `$` (a parameter, kept as written).
    fn dollar(
        &mut self,
        w: &mut Word,
        cmd: &mut Vec<Word>,
        in_quotes: bool,
        depth: usize,
        out: &mut Out,
    ) {
        match self.peek() {
            Some('\'') if !in_quotes => {
                self.pos += 1;
                self.ansi_c(w);
            }
            Some('"') if !in_quotes => {
                self.pos += 1;
                self.double_quoted(w, depth, out);
            }
            Some('(') if self.arithmetic_end(self.pos, out).is_some() => {
                // `$(( … ))`: arithmetic, kept as text.
                let start = self.pos;
                let end = self.arithmetic_end(start, out).unwrap_or(start + 1);
                w.push('$', true);
                for i in start..end.min(self.chars.len()) {
                    w.push(self.chars[i], true);
                }
                self.pos = end;
            }
            Some('(') => {
                self.pos += 1;
                self.nested(depth, out);
                w.push_str(SUBST, true);
            }
            Some('{') => {
                self.pos += 1;
                if !in_quotes && self.looking_at("IFS}") {
                    self.pos += 4;
                    end_word(cmd, w);
                    return;
                }
                self.braced_parameter(w, depth, out);
            }
            Some('I') if !in_quotes && self.looking_at("IFS") => {
                if self.peek_at(3).is_some_and(is_name_char) {
                    w.push('$', true);
                } else {
                    // Unquoted `$IFS` splits into a blank: `rm$IFS-rf$IFS/`.
                    self.pos += 3;
                    end_word(cmd, w);
                }
            }
            _ => w.push('$', true),
        }
    }

    fn looking_at(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    /// After `${`: up to the matching `}`; substitutions inside run.
    fn braced_parameter(&mut self, w: &mut Word, depth: usize, out: &mut Out) {
        w.push_str("${", true);
        let mut level = 1usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\\' => {
                    if let Some(n) = self.peek() {
                        self.pos += 1;
                        w.push(n, true);
                    }
                }
                '{' => {
                    level += 1;
                    w.push(c, true);
                }
                '}' => {
                    w.push(c, true);
                    level -= 1;
                    if level == 0 {
                        return;
                    }
                }
                '`' => {
                    self.backticks(depth, out);
                    w.push_str(SUBST, true);
                }
                '$' if self.peek() == Some('(') && self.peek_at(1) != Some('(') => {
                    self.pos += 1;
                    self.nested(depth, out);
                    w.push_str(SUBST, true);
                }
                // History expansion comes before parsing: a `!` in here
                // expands like anywhere else (`bang` knows `${!…}`).
                '!' => {
                    self.bang(false, out);
                    w.push(c, true);
                }
                c => w.push(c, true),
            }
        }
    }

    /// After `$'`: bash's ANSI-C quoting, decoded (`$'\x72\x6d'` is `rm`).
    fn ansi_c(&mut self, w: &mut Word) {
        // Octal and hex escapes are bytes: collect them and decode as UTF-8.
        let mut bytes: Vec<u8> = Vec::new();
        let flush = |bytes: &mut Vec<u8>, w: &mut Word| {
            if !bytes.is_empty() {
                w.push_str(&String::from_utf8_lossy(bytes), true);
                bytes.clear();
            }
        };
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == '\'' {
                break;
            }
            if c != '\\' {
                flush(&mut bytes, w);
                w.push(c, true);
                continue;
            }
            let Some(e) = self.peek() else {
                flush(&mut bytes, w);
                w.push('\\', true);
                break;
            };
            self.pos += 1;
            let simple = match e {
                'a' => Some('\x07'),
                'b' => Some('\x08'),
                'e' | 'E' => Some('\x1b'),
                'f' => Some('\x0c'),
                'n' => Some('\n'),
                'r' => Some('\r'),
                't' => Some('\t'),
                'v' => Some('\x0b'),
                '\\' | '\'' | '"' | '?' => Some(e),
                _ => None,
            };
            if let Some(s) = simple {
                flush(&mut bytes, w);
                w.push(s, true);
                continue;
            }
            match e {
                '0'..='7' => {
                    let v = self.digits(8, 2, e.to_digit(8).unwrap_or(0));
                    bytes.push((v & 0xff) as u8);
                }
                'x' => match self.peek().and_then(|d| d.to_digit(16)) {
                    Some(d) => {
                        self.pos += 1;
                        let v = self.digits(16, 1, d);
                        bytes.push(v as u8);
                    }
                    None => {
                        flush(&mut bytes, w);
                        w.push_str("\\x", true);
                    }
                },
                'u' | 'U' => {
                    let max = if e == 'u' { 4 } else { 8 };
                    match self.peek().and_then(|d| d.to_digit(16)) {
                        Some(d) => {
                            self.pos += 1;
                            let v = self.digits(16, max - 1, d);
                            flush(&mut bytes, w);
                            w.push(char::from_u32(v).unwrap_or('\u{fffd}'), true);
                        }
                        None => {
                            flush(&mut bytes, w);
                            w.push('\\', true);
                            w.push(e, true);
                        }
                    }
                }
                'c' => match self.peek() {
                    Some(x) => {
                        self.pos += 1;
                        flush(&mut bytes, w);
                        let v = (x as u32) & 0x1f;
                        w.push(char::from_u32(v).unwrap_or('\u{fffd}'), true);
                    }
                    None => {
                        flush(&mut bytes, w);
                        w.push_str("\\c", true);
                    }
                },
                other => {
                    flush(&mut bytes, w);
                    w.push('\\', true);
                    w.push(other, true);
                }
            }
        }
        flush(&mut bytes, w);
    }

    /// Up to `more` further digits of `radix` after a first value.
    fn digits(&mut self, radix: u32, more: usize, first: u32) -> u32 {
        let mut v = first;
        for _ in 0..more {
            match self.peek().and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    self.pos += 1;
                    v = v.saturating_mul(radix).saturating_add(d);
                }
                None => break,
            }
        }
        v
    }

    /// After an opening backtick: the text up to the closing one, with the
    /// backslashes that quote inside backticks removed, read as a list.
    fn backticks(&mut self, depth: usize, out: &mut Out) {
        let mut inner = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '`' => break,
                '\\' => match self.peek() {
                    Some(n @ ('`' | '\\' | '$')) => {
                        self.pos += 1;
                        inner.push(n);
                    }
                    _ => inner.push('\\'),
                },
                c => inner.push(c),
            }
        }
        if depth < MAX_DEPTH {
            Lexer::new(&inner, self.reparse).list(depth + 1, Until::End, out);
        } else {
            out.complete = false;
        }
    }

    /// A redirection at `pos` (`<`, `>`, `&>` …): a preceding fd number is
    /// not a word, and the target is not one either (but substitutions in
    /// it still run). `<<` and `<<-` queue a here-document.
    fn redirect(&mut self, cmd: &mut Vec<Word>, w: &mut Word, depth: usize, out: &mut Out) {
        let fd = w
            .unquoted()
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            || w.unquoted().is_some_and(|t| {
                t.len() > 2
                    && t.starts_with('{')
                    && t.ends_with('}')
                    && t[1..t.len() - 1].bytes().all(|b| is_name_char(b as char))
            });
        if fd {
            *w = Word::default();
        } else {
            end_word(cmd, w);
        }
        let mut heredoc = None;
        let first = self.peek().unwrap_or('>');
        self.pos += 1;
        match (first, self.peek(), self.peek_at(1)) {
            ('<', Some('<'), Some('<')) => self.pos += 2,
            ('<', Some('<'), Some('-')) => {
                self.pos += 2;
                heredoc = Some(true);
            }
            ('<', Some('<'), _) => {
                self.pos += 1;
                heredoc = Some(false);
            }
            ('<', Some('>' | '&'), _) => self.pos += 1,
            ('>', Some('>' | '&' | '|'), _) => self.pos += 1,
            ('&', Some('>'), Some('>')) => self.pos += 2,
            ('&', Some('>'), _) => self.pos += 1,
            _ => {}
        }
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
        let mut target = Word::default();
        let mut unused = Vec::new();
        let start = self.pos;
        while self.peek().is_some_and(|c| !is_meta(c)) {
            self.word_part(&mut target, &mut unused, depth, out);
        }
        let raw = &self.chars[start..self.pos.min(self.chars.len())];
        // `cat <<` alone is a syntax error to bash (the line is dropped and
        // the next one runs): no here-document to swallow the next lines.
        let heredoc = heredoc.filter(|_| !raw.is_empty());
        if let Some(strip_tabs) = heredoc {
            // The delimiter is the word as written with quote removal only,
            // no expansion (bash(1), Here Documents): `<<$(x)` ends at a
            // line `$(x)`.
            let mut delimiter = String::new();
            let mut quoted = false;
            let mut it = raw.iter();
            while let Some(&c) = it.next() {
                match c {
                    '\\' => {
                        quoted = true;
                        if let Some(&n) = it.next() {
                            delimiter.push(n);
                        }
                    }
                    '\'' | '"' => quoted = true,
                    c => delimiter.push(c),
                }
            }
            self.pending.push(Heredoc {
                expands: !quoted,
                delimiter,
                strip_tabs,
            });
        }
    }

    /// Just after a newline: the bodies of the here-documents queued on
    /// the line. Data, not commands, except that an unquoted body's
    /// substitutions run.
    fn heredoc_bodies(&mut self, depth: usize, out: &mut Out) {
        let docs = std::mem::take(&mut self.pending);
        for doc in docs {
            loop {
                if self.pos >= self.chars.len() {
                    return;
                }
                // Is this line the delimiter?
                let mut end = self.pos;
                while end < self.chars.len() && self.chars[end] != '\n' {
                    end += 1;
                }
                let mut start = self.pos;
                if doc.strip_tabs {
                    while start < end && self.chars[start] == '\t' {
                        start += 1;
                    }
                }
                let is_delim = self.chars[start..end]
                    .iter()
                    .copied()
                    .eq(doc.delimiter.chars());
                if is_delim {
                    self.pos = (end + 1).min(self.chars.len());
                    break;
                }
                if doc.expands {
                    self.body_line(depth, out);
                } else {
                    self.pos = (end + 1).min(self.chars.len());
                }
            }
        }
    }

    /// One line of an expanding here-document body, from `pos` through its
    /// newline, running the substitutions in it.
    fn body_line(&mut self, depth: usize, out: &mut Out) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\n' => return,
                '\\' if self.peek().is_some() => self.pos += 1,
                '`' => self.backticks(depth, out),
                '$' if self.peek() == Some('(') && self.peek_at(1) != Some('(') => {
                    self.pos += 1;
                    self.nested(depth, out);
                }
                _ => {}
            }
        }
    }

    /// A complete simple command: expand braces, then report it and every
    /// command it wraps.
    fn simple(&mut self, words: Vec<Word>, depth: usize, out: &mut Out) {
        if out.full {
            return;
        }
        let mut expanded: Vec<Word> = Vec::with_capacity(words.len());
        for w in words {
            if !expand_braces(w, &mut expanded) {
                out.complete = false;
            }
        }
        let words: Vec<(String, Word)> = expanded
            .into_iter()
            .filter(|w| !w.is_empty())
            .map(|w| (w.text(), w))
            .collect();
        // A new history character (`histchars='@^#'`, then `@-1`) would
        // hide history expansion from the check of `!`.
        if words
            .iter()
            .any(|(t, _)| t.starts_with("histchars=") || t.starts_with("histchars+="))
        {
            out.history = true;
        }
        let mut i = 0;
        loop {
            while i < words.len() && (is_reserved(&words[i].1) || is_assignment(&words[i].1)) {
                i += 1;
            }
            if i >= words.len() {
                return;
            }
            if out.full {
                return;
            }
            let program = program_name(&words[i].0);
            let args: Vec<&str> = words[i + 1..].iter().map(|(t, _)| t.as_str()).collect();
            if reruns_history(program, &args) {
                out.history = true;
            }
            let mut text = program.to_string();
            for a in &args {
                text.push(' ');
                text.push_str(a);
            }
            out.push(text);
            match look_through(program, &args) {
                Through::Next(skip) => i += 1 + skip,
                Through::Reparse(s) => {
                    self.reparse_text(&s, depth, out);
                    return;
                }
                Through::Stop => return,
            }
        }
    }

    /// A string a shell will read as a command line of its own.
    fn reparse_text(&mut self, text: &str, depth: usize, out: &mut Out) {
        if self.reparse >= MAX_REPARSE || depth >= MAX_DEPTH {
            out.complete = false;
            return;
        }
        Lexer::new(text, self.reparse + 1).list(depth + 1, Until::End, out);
    }
}

fn end_word(cmd: &mut Vec<Word>, w: &mut Word) {
    if !w.is_empty() {
        cmd.push(std::mem::take(w));
    }
}

/// Reserved words that may start a simple command and run nothing
/// themselves (`if rm -rf /; then …`).
fn is_reserved(w: &Word) -> bool {
    w.unquoted().is_some_and(|t| {
        matches!(
            t.as_str(),
            "!" | "{"
                | "}"
                | "if"
                | "then"
                | "elif"
                | "else"
                | "fi"
                | "do"
                | "done"
                | "while"
                | "until"
                | "esac"
                | "coproc"
                | "function"
        )
    })
}

/// `NAME=value`, `NAME+=value`, `NAME[i]=value` with the name and `=`
/// unquoted: an assignment, not a command.
fn is_assignment(w: &Word) -> bool {
    let c = &w.chars;
    let Some(&(first, false)) = c.first() else {
        return false;
    };
    if !is_name_start(first) {
        return false;
    }
    let mut i = 1;
    while i < c.len() && !c[i].1 && is_name_char(c[i].0) {
        i += 1;
    }
    if i < c.len() && c[i] == ('[', false) {
        while i < c.len() && c[i] != (']', false) {
            i += 1;
        }
        i += 1;
    }
    if i < c.len() && c[i] == ('+', false) {
        i += 1;
    }
    i < c.len() && c[i] == ('=', false)
}

/// The program name without a leading path: `/bin/rm`, `./rm` → `rm`.
/// Builtins that run lines from the history, like `!!`: bash's `fc` (all
/// but a listing: `fc -s`, `fc 12` with an editor) and zsh's `r`.
fn reruns_history(program: &str, args: &[&str]) -> bool {
    let lists = args
        .iter()
        .take_while(|a| a.starts_with('-') && **a != "--")
        .any(|a| a.contains('l'));
    (program == "fc" && !lists) || program == "r"
}

fn program_name(word: &str) -> &str {
    let trimmed = word.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) if i + 1 < trimmed.len() => &trimmed[i + 1..],
        _ => word,
    }
}

/// Bash-style brace expansion of the leftmost unquoted `{a,b}` (with
/// nesting), recursively; appends the words to `out`. False when the
/// expansion would exceed `MAX_BRACE_WORDS` (the word is kept as it is).
fn expand_braces(w: Word, out: &mut Vec<Word>) -> bool {
    let mut words = vec![w];
    let mut done: Vec<Word> = Vec::new();
    let mut ok = true;
    while let Some(w) = words.pop() {
        match brace_split(&w) {
            Some(alternatives)
                if done.len() + words.len() + alternatives.len() <= MAX_BRACE_WORDS =>
            {
                // Keep the left-to-right order: push reversed.
                words.extend(alternatives.into_iter().rev());
            }
            Some(_) => {
                ok = false;
                done.push(w);
            }
            None => done.push(w),
        }
    }
    out.extend(done);
    ok
}

/// The alternatives of the leftmost brace list that has a comma, each
/// with the prefix and suffix; None when there is none. Linear.
fn brace_split(w: &Word) -> Option<Vec<Word>> {
    let c = &w.chars;
    // (index of `{`, saw a comma at its level)
    let mut stack: Vec<(usize, bool)> = Vec::new();
    let mut best: Option<(usize, usize)> = None;
    for (i, &(ch, quoted)) in c.iter().enumerate() {
        if quoted {
            continue;
        }
        match ch {
            '{' => stack.push((i, false)),
            ',' => {
                if let Some(top) = stack.last_mut() {
                    top.1 = true;
                }
            }
            '}' => {
                if let Some((open, comma)) = stack.pop() {
                    let leftmost = match best {
                        Some((o, _)) => open < o,
                        None => true,
                    };
                    if comma && leftmost {
                        best = Some((open, i));
                    }
                }
            }
            _ => {}
        }
    }
    let (open, close) = best?;
    let mut parts: Vec<Vec<(char, bool)>> = vec![Vec::new()];
    let mut level = 0usize;
    for &(ch, quoted) in &c[open + 1..close] {
        if !quoted {
            match ch {
                '{' => level += 1,
                '}' => level = level.saturating_sub(1),
                ',' if level == 0 => {
                    parts.push(Vec::new());
                    continue;
                }
                _ => {}
            }
        }
        if let Some(p) = parts.last_mut() {
            p.push((ch, quoted));
        }
    }
    Some(
        parts
            .into_iter()
            .map(|p| {
                let mut chars = c[..open].to_vec();
                chars.extend(p);
                chars.extend_from_slice(&c[close + 1..]);
                Word { chars }
            })
            .collect(),
    )
}

/// What a program does with the rest of its words.
enum Through {
    /// A wrapper: the wrapped command starts this many words further on.
    Next(usize),
    /// Runs this string as a command line (`sh -c`, `eval`).
    Reparse(String),
    /// Runs nothing we can see.
    Stop,
}

/// How a wrapper's options look.
struct Wrapper {
    /// Short options that take an argument (`-u root`, `-uroot`).
    short_arg: &'static str,
    /// Long options that take an argument when written without `=`.
    long_arg: &'static [&'static str],
    /// Options after which no command runs (`command -v`, `sudo -l`).
    stop_short: &'static str,
    stop_long: &'static [&'static str],
    /// Operands before the command (`timeout DURATION`).
    operands: usize,
    /// `NAME=value` words may precede the command (env, sudo).
    assignments: bool,
}

const fn wrapper(short_arg: &'static str, long_arg: &'static [&'static str]) -> Wrapper {
    Wrapper {
        short_arg,
        long_arg,
        stop_short: "",
        stop_long: &[],
        operands: 0,
        assignments: false,
    }
}

fn wrapper_spec(program: &str) -> Option<Wrapper> {
    Some(match program {
        // sudo(8): -e/-l/-v/-V/-K run nothing (sudoedit, list, validate).
        "sudo" => Wrapper {
            stop_short: "elvVK",
            stop_long: &["edit", "list", "validate", "version", "help"],
            assignments: true,
            ..wrapper(
                "ugpCDrtTRUh",
                &[
                    "user",
                    "group",
                    "prompt",
                    "close-from",
                    "chdir",
                    "role",
                    "type",
                    "command-timeout",
                    "other-user",
                    "host",
                    "chroot",
                ],
            )
        },
        "doas" => Wrapper {
            stop_short: "LC",
            ..wrapper("u", &[])
        },
        // env(1), GNU and BSD; -S is handled by the caller.
        "env" => Wrapper {
            assignments: true,
            stop_long: &["help", "version"],
            ..wrapper("uCSPa", &["unset", "chdir", "split-string", "argv0"])
        },
        "command" => Wrapper {
            stop_short: "vV",
            ..wrapper("", &[])
        },
        "exec" => wrapper("a", &[]),
        "nohup" | "builtin" | "busybox" | "setsid" => wrapper("", &[]),
        "nice" => wrapper("n", &["adjustment"]),
        "time" => wrapper("fo", &["format", "output"]),
        "timeout" => Wrapper {
            operands: 1,
            ..wrapper("sk", &["signal", "kill-after"])
        },
        "ionice" => Wrapper {
            stop_short: "pPu",
            ..wrapper("cn", &["class", "classdata"])
        },
        "stdbuf" => wrapper("ioe", &["input", "output", "error"]),
        _ => return None,
    })
}

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash", "posh", "rbash",
    // Not POSIX shells, but a simple command reads the same in them.
    "fish", "csh", "tcsh",
];

fn look_through(program: &str, args: &[&str]) -> Through {
    if let Some(spec) = wrapper_spec(program) {
        return wrapper_through(program, &spec, args);
    }
    if SHELLS.contains(&program) {
        return shell_command_string(args).map_or(Through::Stop, Through::Reparse);
    }
    match program {
        "eval" => Through::Reparse(args.join(" ")),
        "su" | "runuser" => su_command_string(args).map_or(Through::Stop, Through::Reparse),
        _ => Through::Stop,
    }
}

fn wrapper_through(program: &str, spec: &Wrapper, args: &[&str]) -> Through {
    let mut i = 0;
    let mut split: Option<String> = None;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if program == "env" && a == "-" {
            i += 1;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if spec.stop_long.contains(&name) {
                return Through::Stop;
            }
            let takes = spec.long_arg.contains(&name);
            let value = match value {
                Some(v) => Some(v.to_string()),
                None if takes => {
                    i += 1;
                    args.get(i).map(|v| v.to_string())
                }
                None => None,
            };
            if program == "env" && name == "split-string" {
                split = value;
            }
            i += 1;
            continue;
        }
        if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (k, ch) in cluster.char_indices() {
                if spec.stop_short.contains(ch) {
                    return Through::Stop;
                }
                if spec.short_arg.contains(ch) {
                    let inline = &cluster[k + ch.len_utf8()..];
                    let value = if inline.is_empty() {
                        i += 1;
                        args.get(i).map(|v| v.to_string())
                    } else {
                        Some(inline.to_string())
                    };
                    if program == "env" && ch == 'S' {
                        split = value;
                    }
                    break;
                }
            }
            i += 1;
            continue;
        }
        break;
    }
    i += spec.operands;
    if spec.assignments {
        while i < args.len() && looks_like_assignment(args[i]) {
            i += 1;
        }
    }
    if let Some(s) = split {
        // env -S 'rm -rf' /: the string is split into words that come
        // before the remaining arguments.
        let mut line = s;
        for a in args.iter().skip(i) {
            line.push(' ');
            line.push_str(a);
        }
        return Through::Reparse(line);
    }
    if i >= args.len() {
        return Through::Stop;
    }
    Through::Next(i)
}

/// `NAME=value` as env(1) and sudo(8) see it (quotes already removed).
fn looks_like_assignment(a: &str) -> bool {
    match a.split_once('=') {
        Some((name, _)) => {
            let mut cs = name.chars();
            cs.next().is_some_and(is_name_start) && cs.all(is_name_char)
        }
        None => false,
    }
}

/// The command string of `sh [options] -c STRING …`, if any.
fn shell_command_string(args: &[&str]) -> Option<String> {
    let mut has_c = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" || a == "-" {
            i += 1;
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if matches!(long, "rcfile" | "init-file") {
                i += 1;
            }
            i += 1;
            continue;
        }
        if let Some(cluster) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) {
            if cluster.is_empty() {
                break;
            }
            if cluster.contains('c') {
                has_c = true;
            }
            // -o NAME / -O NAME take the next word.
            if cluster.ends_with(['o', 'O']) {
                i += 1;
            }
            i += 1;
            continue;
        }
        break;
    }
    if has_c {
        args.get(i).map(|s| s.to_string())
    } else {
        None
    }
}

/// The command of `su [options] [-] [user] -c COMMAND`.
fn su_command_string(args: &[&str]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "-c" || *a == "--command" {
            return it.next().map(|s| s.to_string());
        }
        if let Some(v) = a.strip_prefix("--command=") {
            return Some(v.to_string());
        }
        if let Some(v) = a.strip_prefix("-c") {
            if !v.is_empty() && !a.starts_with("--") {
                return Some(v.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(line: &str) -> Vec<String> {
        let r = normalize(line);
        assert!(r.complete, "{line:?} incomplete");
        r.commands
    }

    #[track_caller]
    fn is(line: &str, want: &[&str]) {
        assert_eq!(n(line), want, "normalizing {line:?}");
    }

    #[test]
    fn plain_and_blanks() {
        is("rm -rf /", &["rm -rf /"]);
        is("  rm \t -rf   /  ", &["rm -rf /"]);
        is("", &[]);
        is("   ", &[]);
    }

    #[test]
    fn lists_and_pipelines() {
        is(
            "ls; rm -rf / && echo ok || true & wait",
            &["ls", "rm -rf /", "echo ok", "true", "wait"],
        );
        is("ls|rm -rf /", &["ls", "rm -rf /"]);
        is("ls |& grep x", &["ls", "grep x"]);
        is("a\nb\n\nc", &["a", "b", "c"]);
        is("ls;rm -rf /", &["ls", "rm -rf /"]);
    }

    #[test]
    fn quoting_removed() {
        is("r''m -rf /", &["rm -rf /"]);
        is("\\rm -rf /", &["rm -rf /"]);
        is("\"rm\" -rf /", &["rm -rf /"]);
        is("'r'\"m\" -rf /", &["rm -rf /"]);
        is("$'rm' -rf /", &["rm -rf /"]);
        is("$'\\x72\\x6d' -rf /", &["rm -rf /"]);
        is("$'\\162\\155' -rf /", &["rm -rf /"]);
        is("$'\\u0072m' -rf /", &["rm -rf /"]);
        is("$\"rm\" -rf /", &["rm -rf /"]);
        is("echo 'a  b'", &["echo a  b"]);
        is("echo \"a\\\"b\\$c\\x\"", &["echo a\"b$c\\x"]);
    }

    #[test]
    fn line_continuation() {
        is("r\\\nm -rf /", &["rm -rf /"]);
        is("rm \\\n -rf \\\n /", &["rm -rf /"]);
        is("\"r\\\nm\" x", &["rm x"]);
        is("'a\\\nb'", &["a\\\nb"]);
    }

    #[test]
    fn echo_of_quoted_text_is_an_echo() {
        is("echo \"rm -rf /\"", &["echo rm -rf /"]);
        is("echo 'rm -rf /; reboot'", &["echo rm -rf /; reboot"]);
        is("printf '%s\\n' \"$(date)\"", &["date", "printf %s\\n $(…)"]);
    }

    #[test]
    fn paths_dropped_from_the_program() {
        is("/bin/rm -rf /", &["rm -rf /"]);
        is("./rm x", &["rm x"]);
        is("/usr//bin//rm x", &["rm x"]);
        is("../bin/rm /bin/x", &["rm /bin/x"]);
        is("/", &["/"]);
    }

    #[test]
    fn wrappers_looked_through() {
        is("sudo rm -rf /", &["sudo rm -rf /", "rm -rf /"]);
        is(
            "sudo -u root -E rm -rf /",
            &["sudo -u root -E rm -rf /", "rm -rf /"],
        );
        is("sudo -Eu root rm x", &["sudo -Eu root rm x", "rm x"]);
        is("sudo --user=root rm x", &["sudo --user=root rm x", "rm x"]);
        is("sudo --user root rm x", &["sudo --user root rm x", "rm x"]);
        is("sudo FOO=1 rm x", &["sudo FOO=1 rm x", "rm x"]);
        is(
            "env -i A=1 B=2 /bin/rm x",
            &["env -i A=1 B=2 /bin/rm x", "rm x"],
        );
        is("env -u HOME - rm x", &["env -u HOME - rm x", "rm x"]);
        is("command rm x", &["command rm x", "rm x"]);
        is("command -v rm", &["command -v rm"]);
        is("exec -a foo rm x", &["exec -a foo rm x", "rm x"]);
        is("nohup rm x", &["nohup rm x", "rm x"]);
        is("nice -n 5 rm x", &["nice -n 5 rm x", "rm x"]);
        is("nice -5 rm x", &["nice -5 rm x", "rm x"]);
        is("time -p rm x", &["time -p rm x", "rm x"]);
        is(
            "timeout -s KILL 5 rm x",
            &["timeout -s KILL 5 rm x", "rm x"],
        );
        is(
            "sudo nice -n 1 env X=1 rm x",
            &[
                "sudo nice -n 1 env X=1 rm x",
                "nice -n 1 env X=1 rm x",
                "env X=1 rm x",
                "rm x",
            ],
        );
        is("/usr/bin/sudo -- rm x", &["sudo -- rm x", "rm x"]);
        is("sudo -l rm x", &["sudo -l rm x"]);
        is("sudo", &["sudo"]);
        is("env", &["env"]);
        is("env -S 'rm -rf' /", &["env -S rm -rf /", "rm -rf /"]);
    }

    #[test]
    fn assignments_and_reserved_words_dropped() {
        is("FOO=1 rm x", &["rm x"]);
        is("A=1 B+=2 c[3]=4 rm x", &["rm x"]);
        is("\"FOO=1\" x", &["FOO=1 x"]);
        is("FOO=1", &[]);
        is("if rm x; then ls; fi", &["rm x", "ls"]);
        is("while true; do rm x; done", &["true", "rm x"]);
        is("! rm x", &["rm x"]);
        is("{ rm x; }", &["rm x"]);
        is("'if' x", &["if x"]);
    }

    #[test]
    fn substitutions() {
        is("echo $(rm -rf /)", &["rm -rf /", "echo $(…)"]);
        is("echo `rm -rf /`", &["rm -rf /", "echo $(…)"]);
        is("echo \"$(rm -rf /)\"", &["rm -rf /", "echo $(…)"]);
        is(
            "echo $(echo $(rm -rf /))",
            &["rm -rf /", "echo $(…)", "echo $(…)"],
        );
        is(
            "echo `echo \\`rm x\\``",
            &["rm x", "echo $(…)", "echo $(…)"],
        );
        is("$(echo rm) -rf /", &["echo rm", "$(…) -rf /"]);
        is("(rm -rf /)", &["rm -rf /"]);
        is("(cd /; rm -rf x) && ls", &["cd /", "rm -rf x", "ls"]);
        is("diff <(rm x) >(ls)", &["rm x", "ls", "diff $(…) $(…)"]);
        is("echo ${x:-$(rm x)}", &["rm x", "echo ${x:-$(…)}"]);
        is("echo $((1+(2*3)))", &["echo $((1+(2*3)))"]);
        is("echo $((x<<2))\nrm y", &["echo $((x<<2))", "rm y"]);
        is("(( x = 1 << 2 ))\nrm -rf /", &["rm -rf /"]);
        is("((cd /; rm x) )", &["cd /", "rm x"]);
        is("echo $((rm x) )", &["rm x", "echo $(…)"]);
        is("((rm x", &["rm x"]);
    }

    #[test]
    fn redirections_are_not_words() {
        is("rm -rf / 2>/dev/null", &["rm -rf /"]);
        is(">/dev/null rm -rf /", &["rm -rf /"]);
        is("rm -rf / >x 2>&1 &>y", &["rm -rf /"]);
        is("rm x>out", &["rm x"]);
        is("echo a2>x", &["echo a2"]);
        is("cat < $(rm x)", &["rm x", "cat"]);
    }

    #[test]
    fn comments() {
        is("# rm -rf /", &[]);
        is("ls # rm -rf /", &["ls"]);
        is("ls #x\nrm y", &["ls", "rm y"]);
        is("echo a#b", &["echo a#b"]);
    }

    #[test]
    fn heredocs() {
        is("cat <<EOF\nrm -rf /\nEOF\nls", &["cat", "ls"]);
        is("cat <<'EOF'\n$(rm x)\nEOF", &["cat"]);
        is("cat <<EOF\n$(rm x)\nEOF", &["cat", "rm x"]);
        is("cat <<-EOF\n\trm\n\tEOF\nls", &["cat", "ls"]);
        is("cat <<EOF", &["cat"]);
        is("cat <<<'rm -rf /'", &["cat"]);
        is("cat <<\nrm -rf /", &["cat", "rm -rf /"]);
        is(
            "cat <<$(x)\nbody\n$(x)\nrm -rf /",
            &["x", "cat", "rm -rf /"],
        );
        is("cat <<\"E\"'F'\nrm x\nEF\nls", &["cat", "ls"]);
    }

    #[test]
    fn shell_strings_are_read() {
        is("bash -c 'rm -rf /'", &["bash -c rm -rf /", "rm -rf /"]);
        is("sh -ec \"rm x; ls\"", &["sh -ec rm x; ls", "rm x", "ls"]);
        is(
            "bash -o pipefail -c 'rm x'",
            &["bash -o pipefail -c rm x", "rm x"],
        );
        is("bash script.sh", &["bash script.sh"]);
        is("fish -c 'rm x'", &["fish -c rm x", "rm x"]);
        is(
            "busybox sh -c 'rm x'",
            &["busybox sh -c rm x", "sh -c rm x", "rm x"],
        );
        is("eval 'rm' -rf /", &["eval rm -rf /", "rm -rf /"]);
        is("su -c 'rm x' root", &["su -c rm x root", "rm x"]);
        is(
            "sudo sh -c 'rm x'",
            &["sudo sh -c rm x", "sh -c rm x", "rm x"],
        );
    }

    #[test]
    fn ifs_and_braces() {
        is("rm${IFS}-rf${IFS}/", &["rm -rf /"]);
        is("rm$IFS-rf$IFS/", &["rm -rf /"]);
        is("echo $IFSX", &["echo $IFSX"]);
        is("{rm,-rf,/}", &["rm -rf /"]);
        is("echo a{b,c}d", &["echo abd acd"]);
        is("echo '{a,b}'", &["echo {a,b}"]);
        is("echo {a,{b,c}}", &["echo a b c"]);
        is("echo {a}", &["echo {a}"]);
    }

    #[test]
    fn history_expansion_is_noticed() {
        for line in [
            "!!",
            "sudo !!",
            "!-2",
            "!rm",
            "!?rm?",
            "echo \"!!\"",
            "^foo^bar",
            "ls; !42",
            // Without the closing character bash expands them.
            "[!!",
            "${!!",
            "echo [!-1",
            // Builtins that re-run history, and a new history character.
            "fc -s",
            "fc -s rm=ls",
            "fc 12",
            "r",
            "r ls",
            "histchars='@^#'",
            "export histchars=@",
        ] {
            assert!(normalize(line).history_expansion, "{line:?}");
        }
        for line in [
            "echo 'a!!b'",
            "echo \\!!",
            "[ ! -f x ]",
            "test a != b",
            "echo \"hello!\"",
            "echo hello!",
            "bash -c 'echo !!'",
            "echo $'!!'",
            "echo a^b",
            "kill $!; wait $!",
            "ls [!a]*",
            "echo ${!prefix*}",
            "echo ${!x}",
            "fc -l",
            "fc -ln -5",
            "echo histchars",
        ] {
            assert!(!normalize(line).history_expansion, "{line:?}");
        }
    }

    #[test]
    fn unclosed_things_are_total() {
        for s in [
            "'",
            "\"",
            "$(",
            "`",
            "${",
            "$'",
            "(((",
            ")))",
            "\\",
            "<<",
            "<",
            "$((",
            "a<(",
            "cat <<E\n",
            "$'\\x",
            "$'\\u",
            "$'\\c",
            "{,",
            "}{,}{",
        ] {
            let _ = normalize(s);
        }
        is("rm 'unclosed", &["rm unclosed"]);
        is("echo $(rm x", &["rm x", "echo $(…)"]);
    }

    #[test]
    fn limits_mark_incomplete() {
        let deep = "$(".repeat(MAX_DEPTH + 5) + "rm x";
        let r = normalize(&deep);
        assert!(!r.complete);
        let many = "a;".repeat(MAX_COMMANDS + 1);
        let r = normalize(&many);
        assert!(!r.complete);
        assert_eq!(r.commands.len(), MAX_COMMANDS);
        let braces = "{a,b}".repeat(8);
        assert!(!normalize(&braces).complete);
        let mut s = "rm x".to_string();
        for _ in 0..(MAX_REPARSE + 2) {
            s = format!("sh -c {}", shell_quote(&s));
        }
        assert!(!normalize(&s).complete);
    }

    fn shell_quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', "'\\''"))
    }

    /// A small seeded stand-in for the fuzz target (fuzz/, not run in CI):
    /// soups of shell syntax must come out bounded, and the same twice.
    #[test]
    fn random_shell_soup_is_total() {
        const PARTS: &[&str] = &[
            "rm", " ", "\t", "\n", ";", "&", "&&", "|", "||", "(", ")", "$(", "`", "\\`", "'",
            "\"", "\\", "\\\n", "$'", "\\x7", "${", "}", "{", ",", "<<", "<<-", "EOF", "<", ">",
            "2>&1", "#", "!", "^", "sudo", "-u", "env", "A=1", "sh", "-c", "eval", "$IFS", "$((",
            "/bin/", "é", "\u{0}",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let len = (next() % 40) as usize;
            let line: String = (0..len)
                .map(|_| PARTS[(next() % PARTS.len() as u64) as usize])
                .collect();
            let a = normalize(&line);
            assert!(a.commands.len() <= MAX_COMMANDS);
            assert_eq!(a, normalize(&line), "{line:?}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        for unit in [
            "$(", "(", "((", "((a) ", "$((", "`", "\"$(", "${", "<(", "bash -c ",
        ] {
            let s = unit.repeat(50_000);
            let _ = normalize(&s);
        }
    }
}
