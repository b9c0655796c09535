//! A small sh lexer answering one question at the moment Enter is pressed:
//! will the shell run this text now, or ask for more (a continuation
//! prompt)?
//!
//! The answer decides whether the record is written before this Enter (the
//! command runs) or the line is held to be joined with the next ones (a
//! `for` loop, a here-document, an open quote). Being wrong one way splits a
//! command into several records; being wrong the other way would let a
//! command run before its record, so when unsure the answer is "complete".
//! The engine also watches the screen after the Enter: a main prompt where
//! a continuation was expected writes the record at once (late, marked
//! unverified).

/// Most nesting we follow; deeper text is taken as complete.
const MAX_DEPTH: usize = 64;
/// Here-documents waiting for their bodies that we follow.
const MAX_HEREDOCS: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Close {
    Fi,
    Done,
    /// `case … in`: `pattern` says we are before a pattern's `)`.
    Esac {
        pattern: bool,
    },
    Brace,
    /// A fish block (`begin`, `switch`, `function`) closed by `end`.
    End,
}

struct Heredoc {
    delim: String,
    strip_tabs: bool,
}

/// True unless `text` is certainly waiting for more lines.
pub fn looks_complete(text: &str) -> bool {
    let mut lexer = Lexer::new(text);
    if lexer.run().is_err() {
        return false;
    }
    let t = text.trim_end();
    lexer.stack.is_empty() && lexer.parens == 0 && !lexer.last_op && !t.ends_with("()")
}

/// The text stops inside something only more lines can close: a quote, a
/// trailing backslash, a here-document without its delimiter line.
struct Open;

/// The lexer's state while it walks the text once, left to right.
struct Lexer {
    chars: Vec<char>,
    /// The next character to read.
    i: usize,
    /// Open compound commands, innermost last.
    stack: Vec<Close>,
    /// Open `(` and `$(`.
    parens: usize,
    /// The word being read (quoted parts as `x`, long words cut).
    word: String,
    /// The next word is at command position (a reserved word counts).
    cmd_pos: bool,
    /// The last token was `|`, `&&` or `||`: the line wants more.
    last_op: bool,
    /// Here-documents named on this line, whose bodies follow it.
    heredocs: Vec<Heredoc>,
}

impl Lexer {
    fn new(text: &str) -> Self {
        Lexer {
            chars: text.chars().collect(),
            i: 0,
            stack: Vec::new(),
            parens: 0,
            word: String::new(),
            cmd_pos: true,
            last_op: false,
            heredocs: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn run(&mut self) -> Result<(), Open> {
        while self.i < self.chars.len() {
            let c = self.chars[self.i];
            self.i += 1;
            match c {
                '\\' => self.backslash()?,
                '\'' => self.single_quote()?,
                '"' | '`' => self.double_quote(c)?,
                '#' if self.word.is_empty() => {
                    // A comment runs to the end of the line.
                    while self.i < self.chars.len() && self.chars[self.i] != '\n' {
                        self.i += 1;
                    }
                }
                ' ' | '\t' => self.end_word(),
                '\n' => self.newline()?,
                ';' | '&' | '|' | '(' | ')' => self.operator(c),
                '<' if self.peek() == Some('<') => self.heredoc(),
                '$' if self.peek() == Some('(') => {
                    self.i += 1;
                    self.word.push('x');
                    self.parens += 1;
                    self.cmd_pos = true;
                    self.last_op = false;
                }
                _ => {
                    self.word.push(c);
                    self.last_op = false;
                    if self.word.len() > 64 {
                        // Long words are never reserved words; keep memory small.
                        self.word.truncate(8);
                    }
                }
            }
        }
        self.end_word();
        if !self.heredocs.is_empty() {
            return Err(Open);
        }
        Ok(())
    }

    fn backslash(&mut self) -> Result<(), Open> {
        match self.peek() {
            // A trailing backslash continues the line.
            None => return Err(Open),
            Some('\n') => {}
            Some(_) => self.word.push('x'),
        }
        self.i += 1;
        self.last_op = false;
        Ok(())
    }

    fn single_quote(&mut self) -> Result<(), Open> {
        match self.chars[self.i..].iter().position(|&d| d == '\'') {
            None => return Err(Open),
            Some(k) => self.i += k + 1,
        }
        self.word.push('x');
        self.last_op = false;
        Ok(())
    }

    /// `"…"` or `` `…` ``, where a backslash escapes the next character.
    fn double_quote(&mut self, q: char) -> Result<(), Open> {
        loop {
            match self.peek() {
                None => return Err(Open),
                Some('\\') => self.i += 2,
                Some(d) if d == q => {
                    self.i += 1;
                    break;
                }
                Some(_) => self.i += 1,
            }
        }
        self.word.push('x');
        self.last_op = false;
        Ok(())
    }

    fn newline(&mut self) -> Result<(), Open> {
        self.end_word();
        // Here-document bodies follow the line that named them.
        for h in std::mem::take(&mut self.heredocs) {
            self.heredoc_body(&h)?;
        }
        if !self.last_op {
            self.cmd_pos = true;
        }
        Ok(())
    }

    /// Skips the lines of one here-document, its delimiter line included.
    fn heredoc_body(&mut self, h: &Heredoc) -> Result<(), Open> {
        let chars = &self.chars;
        loop {
            if self.i >= chars.len() {
                return Err(Open);
            }
            let end = chars[self.i..]
                .iter()
                .position(|&d| d == '\n')
                .map_or(chars.len(), |k| self.i + k);
            let line: String = chars[self.i..end].iter().collect();
            self.i = (end + 1).min(chars.len());
            let line = if h.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line.as_str()
            };
            if line == h.delim {
                return Ok(());
            }
            if end >= chars.len() {
                return Err(Open);
            }
        }
    }

    /// `;`, `&`, `|`, `(`, `)`, doubled or not.
    fn operator(&mut self, c: char) {
        self.end_word();
        let double = self.peek() == Some(c);
        if let Some(Close::Esac { pattern }) = self.stack.last_mut() {
            if *pattern && c == ')' {
                *pattern = false;
                self.cmd_pos = true;
                self.last_op = false;
                return;
            }
            if *pattern && c == '(' {
                return;
            }
            if c == ';' && double {
                // `;;`, `;;&` end a case item; `;&` falls through.
                *pattern = true;
                self.i += 1;
                if self.peek() == Some('&') {
                    self.i += 1;
                }
                self.last_op = false;
                return;
            }
            if *pattern {
                return;
            }
        }
        match c {
            '(' => self.parens += 1,
            ')' => self.parens = self.parens.saturating_sub(1),
            _ => {}
        }
        // `|`, `&&`, `||` at the end want more; `;` and `&` do not.
        self.last_op = c == '|' || (c == '&' && double);
        if (c == '&' || c == '|') && double {
            self.i += 1;
        }
        // `|&` (bash) pipes stderr too.
        if c == '|' && self.peek() == Some('&') {
            self.i += 1;
        }
        self.cmd_pos = c != ')';
    }

    /// After `<<`: a here-string (`<<<`) or a here-document's delimiter.
    fn heredoc(&mut self) {
        self.end_word();
        self.i += 1;
        if self.peek() == Some('<') {
            // A here-string is a single word.
            self.i += 1;
            return;
        }
        let strip_tabs = self.peek() == Some('-');
        if strip_tabs {
            self.i += 1;
        }
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
        let mut delim = String::new();
        while let Some(d) = self.peek() {
            if matches!(
                d,
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')'
            ) {
                break;
            }
            self.i += 1;
            match d {
                '\'' | '"' | '\\' => {}
                _ => delim.push(d),
            }
        }
        if delim.is_empty() {
            return;
        }
        if self.heredocs.len() < MAX_HEREDOCS {
            self.heredocs.push(Heredoc { delim, strip_tabs });
        }
        self.last_op = false;
    }

    /// Ends the current word; reserved words only count at command position.
    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let w = std::mem::take(&mut self.word);
        if let Some(Close::Esac { pattern: true }) = self.stack.last() {
            if w == "esac" {
                self.stack.pop();
                self.cmd_pos = false;
            }
            return;
        }
        if !self.cmd_pos {
            if w == "in" {
                if let Some(Close::Esac { .. }) = self.stack.last() {
                    self.stack.pop();
                    self.stack.push(Close::Esac { pattern: true });
                }
            }
            return;
        }
        let next_cmd = self.reserved_word(&w);
        if self.stack.len() > MAX_DEPTH {
            self.stack.clear();
        }
        // After `case` the next word is its subject, not a command.
        self.cmd_pos = next_cmd;
    }

    /// A word at command position: opens or closes a compound command when
    /// it is a reserved word. True when the next word is a command again.
    fn reserved_word(&mut self, w: &str) -> bool {
        let stack = &mut self.stack;
        match w {
            "if" => stack.push(Close::Fi),
            "for" | "while" | "until" | "select" => stack.push(Close::Done),
            "case" => stack.push(Close::Esac { pattern: false }),
            "begin" | "switch" => stack.push(Close::End),
            "{" => {
                stack.push(Close::Brace);
                return true;
            }
            "fi" | "done" | "}" => {
                let want = match w {
                    "fi" => Close::Fi,
                    "done" => Close::Done,
                    _ => Close::Brace,
                };
                if stack.last() == Some(&want) {
                    stack.pop();
                }
            }
            "esac" => {
                if matches!(stack.last(), Some(Close::Esac { .. })) {
                    stack.pop();
                }
            }
            // fish closes every block with `end`.
            "end" if !stack.is_empty() => {
                stack.pop();
            }
            "then" | "do" | "else" | "elif" | "!" | "time" => return true,
            _ => {}
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::looks_complete;

    #[test]
    fn complete() {
        for t in [
            "ls -la",
            "echo do done for",
            "for i in 1 2; do\necho $i\ndone",
            "if true; then echo y; fi",
            "echo 'a b' \"c\\\"d\" $(date) `x`",
            "{ echo a; }",
            "a && b || c &",
            "echo héllo 你好",
            "cat <<< hi",
            "cat <<EOF\nbody\nEOF",
            "cat <<-'EOF' | wc -l\n\tbody\n\tEOF",
            "cat <<A <<B\na\nA\nb\nB",
            "case x in a) echo a;; *) echo b;; esac",
            "case x in\n(a|b) echo a ;;\nesac",
            "echo # a comment with 'quote",
            "for i in 1 2; echo $i; end",
            "begin; echo; end",
            "echo ) unbalanced",
            "ls |& cat",
        ] {
            assert!(looks_complete(t), "{t}");
        }
    }

    #[test]
    fn incomplete() {
        for t in [
            "for i in 1 2; do",
            "for i in 1 2; do\necho $i",
            "if true; then",
            "echo 'abc",
            "echo \"abc",
            "echo abc \\",
            "ls |",
            "true &&",
            "cat <<EOF",
            "cat <<EOF\nbody",
            "cat <<-EOF\nbody\n EOF",
            "f()",
            "( echo",
            "echo $(date",
            "{ echo a;",
            "case x in",
            "case x in a) echo a;;",
            "while true",
            "for i in 1 2",
        ] {
            assert!(!looks_complete(t), "{t}");
        }
    }
}
