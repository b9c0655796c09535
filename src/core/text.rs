//! Untrusted text on its way to a terminal: what must never be shown raw.
//! Shared by the operator side (a kill reason) and the admin tools (the
//! `audit` table, `replay`), so it lives in neither.
#![forbid(unsafe_code)]

/// Unicode format characters (general category Cf) and the line and
/// paragraph separators: invisible, and the bidi controls among them
/// (U+202A–U+202E, U+2066–U+2069) reorder what follows, so a command can
/// be made to read as something else. Shown escaped, never raw.
pub fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{ad}'
        | '\u{600}'..='\u{605}'
        | '\u{61c}'
        | '\u{6dd}'
        | '\u{70f}'
        | '\u{890}'..='\u{891}'
        | '\u{8e2}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}')
}
