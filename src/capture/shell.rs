//! A deliberately rough sh lexer answering one question: is this text
//! certainly a complete command, so bash will run it rather than ask for
//! more with PS2?
//!
//! It only decides *when* a command is emitted, never its text: "complete"
//! lets the engine emit at the echoed newline; "maybe not" makes it wait for
//! the next output to show a PS2 prompt or not. So when unsure, it says
//! "maybe not".

/// Most nesting we follow; deeper text is treated as incomplete.
const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    Fi,
    Done,
    Esac,
    Brace,
}

/// True when `text` is certainly a complete shell command.
pub fn looks_complete(text: &str) -> bool {
    let mut stack: Vec<Close> = Vec::new();
    let mut parens = 0usize;
    let mut word = String::new();
    // At command position a word can be a reserved word.
    let mut cmd_pos = true;
    let mut last_op = false;
    let mut chars = text.chars().peekable();

    // Returns false when the text is certainly incomplete or too odd.
    let end_word = |word: &mut String, cmd_pos: &mut bool, stack: &mut Vec<Close>| -> bool {
        if word.is_empty() {
            return true;
        }
        let w = std::mem::take(word);
        if !*cmd_pos {
            return true;
        }
        let mut next_cmd = false;
        match w.as_str() {
            "if" => stack.push(Close::Fi),
            "for" | "while" | "until" | "select" => stack.push(Close::Done),
            "case" => {
                // `case … in … esac` has patterns we do not lex: unsure.
                return false;
            }
            "{" => {
                stack.push(Close::Brace);
                next_cmd = true;
            }
            "fi" | "done" | "esac" | "}" => {
                let want = match w.as_str() {
                    "fi" => Close::Fi,
                    "done" => Close::Done,
                    "esac" => Close::Esac,
                    _ => Close::Brace,
                };
                if stack.pop() != Some(want) {
                    return false;
                }
            }
            "then" | "do" | "else" | "elif" | "!" | "time" => next_cmd = true,
            _ => {}
        }
        if stack.len() > MAX_DEPTH {
            return false;
        }
        *cmd_pos = next_cmd;
        true
    };

    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                match chars.next() {
                    // A trailing backslash continues the line.
                    None | Some('\n') => return false,
                    Some(_) => {}
                }
                word.push('x');
                last_op = false;
            }
            '\'' => {
                loop {
                    match chars.next() {
                        None => return false,
                        Some('\'') => break,
                        Some(_) => {}
                    }
                }
                word.push('x');
                last_op = false;
            }
            '"' | '`' => {
                let q = c;
                loop {
                    match chars.next() {
                        None => return false,
                        Some('\\') => {
                            if chars.next().is_none() {
                                return false;
                            }
                        }
                        Some(d) if d == q => break,
                        Some(_) => {}
                    }
                }
                word.push('x');
                last_op = false;
            }
            ' ' | '\t' => {
                if !end_word(&mut word, &mut cmd_pos, &mut stack) {
                    return false;
                }
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                if !end_word(&mut word, &mut cmd_pos, &mut stack) {
                    return false;
                }
                match c {
                    '(' => parens += 1,
                    ')' => {
                        if parens == 0 {
                            return false;
                        }
                        parens -= 1;
                    }
                    _ => {}
                }
                // `|`, `&&`, `||` at the end want more; `;`, `&` and a
                // newline do not.
                last_op = c == '|' || (c == '&' && chars.peek() == Some(&'&'));
                if (c == '&' || c == '|') && chars.peek() == Some(&c) {
                    chars.next();
                }
                cmd_pos = c != ')';
            }
            '<' if chars.peek() == Some(&'<') => {
                // A here-document reads more lines.
                return false;
            }
            '$' if chars.peek() == Some(&'(') => {
                // Command substitution: count it as a paren group.
                chars.next();
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
    if !end_word(&mut word, &mut cmd_pos, &mut stack) {
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
            "f()",
            "( echo",
            "echo $(date",
            "{ echo a;",
            "case x in",
        ] {
            assert!(!looks_complete(t), "{t}");
        }
    }
}
