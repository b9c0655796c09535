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
    let chars: Vec<char> = text.chars().collect();
    let mut stack: Vec<Close> = Vec::new();
    let mut parens = 0usize;
    let mut word = String::new();
    let mut cmd_pos = true;
    let mut last_op = false;
    let mut heredocs: Vec<Heredoc> = Vec::new();
    let mut i = 0;

    // Ends the current word; reserved words only count at command position.
    let end_word = |word: &mut String, cmd_pos: &mut bool, stack: &mut Vec<Close>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        if let Some(Close::Esac { pattern: true }) = stack.last() {
            if w == "esac" {
                stack.pop();
                *cmd_pos = false;
            }
            return;
        }
        if !*cmd_pos {
            if w == "in" {
                if let Some(Close::Esac { .. }) = stack.last() {
                    stack.pop();
                    stack.push(Close::Esac { pattern: true });
                }
            }
            return;
        }
        let mut next_cmd = false;
        match w.as_str() {
            "if" => stack.push(Close::Fi),
            "for" | "while" | "until" | "select" => stack.push(Close::Done),
            "case" => stack.push(Close::Esac { pattern: false }),
            "begin" | "switch" => stack.push(Close::End),
            "{" => {
                stack.push(Close::Brace);
                next_cmd = true;
            }
            "fi" | "done" | "}" => {
                let want = match w.as_str() {
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
            "then" | "do" | "else" | "elif" | "!" | "time" => next_cmd = true,
            _ => {}
        }
        if stack.len() > MAX_DEPTH {
            stack.clear();
        }
        // After `case` the next word is its subject, not a command.
        *cmd_pos = next_cmd;
    };

    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                match chars.get(i) {
                    // A trailing backslash continues the line.
                    None => return false,
                    Some('\n') => {}
                    Some(_) => word.push('x'),
                }
                i += 1;
                last_op = false;
            }
            '\'' => {
                match chars[i..].iter().position(|&d| d == '\'') {
                    None => return false,
                    Some(k) => i += k + 1,
                }
                word.push('x');
                last_op = false;
            }
            '"' | '`' => {
                let q = c;
                loop {
                    match chars.get(i) {
                        None => return false,
                        Some('\\') => i += 2,
                        Some(&d) if d == q => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                word.push('x');
                last_op = false;
            }
            '#' if word.is_empty() => {
                // A comment runs to the end of the line.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ' ' | '\t' => end_word(&mut word, &mut cmd_pos, &mut stack),
            '\n' => {
                end_word(&mut word, &mut cmd_pos, &mut stack);
                // Here-document bodies follow the line that named them.
                for h in std::mem::take(&mut heredocs) {
                    loop {
                        if i >= chars.len() {
                            return false;
                        }
                        let end = chars[i..]
                            .iter()
                            .position(|&d| d == '\n')
                            .map_or(chars.len(), |k| i + k);
                        let line: String = chars[i..end].iter().collect();
                        i = (end + 1).min(chars.len());
                        let line = if h.strip_tabs {
                            line.trim_start_matches('\t')
                        } else {
                            line.as_str()
                        };
                        if line == h.delim {
                            break;
                        }
                        if end >= chars.len() {
                            return false;
                        }
                    }
                }
                if !last_op {
                    cmd_pos = true;
                }
            }
            ';' | '&' | '|' | '(' | ')' => {
                end_word(&mut word, &mut cmd_pos, &mut stack);
                let double = chars.get(i) == Some(&c);
                if let Some(Close::Esac { pattern }) = stack.last_mut() {
                    if *pattern && c == ')' {
                        *pattern = false;
                        cmd_pos = true;
                        last_op = false;
                        continue;
                    }
                    if *pattern && c == '(' {
                        continue;
                    }
                    if c == ';' && double {
                        // `;;`, `;;&` end a case item; `;&` falls through.
                        *pattern = true;
                        i += 1;
                        if chars.get(i) == Some(&'&') {
                            i += 1;
                        }
                        last_op = false;
                        continue;
                    }
                    if *pattern {
                        continue;
                    }
                }
                match c {
                    '(' => parens += 1,
                    ')' => parens = parens.saturating_sub(1),
                    _ => {}
                }
                // `|`, `&&`, `||` at the end want more; `;` and `&` do not.
                last_op = c == '|' || (c == '&' && double);
                if (c == '&' || c == '|') && double {
                    i += 1;
                }
                // `|&` (bash) pipes stderr too.
                if c == '|' && chars.get(i) == Some(&'&') {
                    i += 1;
                }
                cmd_pos = c != ')';
            }
            '<' if chars.get(i) == Some(&'<') => {
                end_word(&mut word, &mut cmd_pos, &mut stack);
                i += 1;
                if chars.get(i) == Some(&'<') {
                    // A here-string is a single word.
                    i += 1;
                    continue;
                }
                let strip_tabs = chars.get(i) == Some(&'-');
                if strip_tabs {
                    i += 1;
                }
                while matches!(chars.get(i), Some(' ' | '\t')) {
                    i += 1;
                }
                let mut delim = String::new();
                while let Some(&d) = chars.get(i) {
                    if matches!(
                        d,
                        ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')'
                    ) {
                        break;
                    }
                    i += 1;
                    match d {
                        '\'' | '"' | '\\' => {}
                        _ => delim.push(d),
                    }
                }
                if delim.is_empty() {
                    continue;
                }
                if heredocs.len() < MAX_HEREDOCS {
                    heredocs.push(Heredoc { delim, strip_tabs });
                }
                last_op = false;
            }
            '$' if chars.get(i) == Some(&'(') => {
                i += 1;
                word.push('x');
                parens += 1;
                cmd_pos = true;
                last_op = false;
            }
            _ => {
                word.push(c);
                last_op = false;
                if word.len() > 64 {
                    // Long words are never reserved words; keep memory small.
                    word.truncate(8);
                }
            }
        }
    }
    end_word(&mut word, &mut cmd_pos, &mut stack);
    if !heredocs.is_empty() {
        return false;
    }
    let t = text.trim_end();
    stack.is_empty() && parens == 0 && !last_op && !t.ends_with("()")
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
