//! Session ids as people type them. Ids are UUIDv7: time first, so two
//! sessions of one login share their first characters, and a prefix the
//! admin copies from an id can match a whole login (issue 17). The last
//! characters come from the random part: the short form the audit table
//! prints is those, and any unambiguous prefix or suffix of an id names it
//! in `audit --session` and `replay`. An ambiguous one is an error that
//! lists the candidates.
#![forbid(unsafe_code)]

/// Characters of the short form: the end of the random part of a UUIDv7
/// (32 random bits; a collision only makes a lookup list its candidates).
pub const SHORT_LEN: usize = 8;

/// The short form of a session id: its last `SHORT_LEN` characters.
pub fn short(id: &str) -> &str {
    let mut start = id.len().saturating_sub(SHORT_LEN);
    while !id.is_char_boundary(start) {
        start += 1;
    }
    &id[start..]
}

/// What a typed id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// One session: its full id.
    Found(String),
    /// No session.
    None,
    /// Several sessions start or end with it: their ids, in the order seen.
    Ambiguous(Vec<String>),
}

/// Resolves `query` (a full id, or a prefix or suffix of one; letter case
/// ignored) against the known ids. A full id always wins, even when it is
/// also the prefix of another.
pub fn lookup<'a>(query: &str, ids: impl IntoIterator<Item = &'a str>) -> Lookup {
    let q = query.trim().to_ascii_lowercase();
    if q.is_empty() {
        return Lookup::None;
    }
    let mut hits: Vec<String> = Vec::new();
    for id in ids {
        let l = id.to_ascii_lowercase();
        if l == q {
            return Lookup::Found(id.to_string());
        }
        if (l.starts_with(&q) || l.ends_with(&q)) && !hits.iter().any(|h| h == id) {
            hits.push(id.to_string());
        }
    }
    match hits.len() {
        0 => Lookup::None,
        1 => Lookup::Found(hits.remove(0)),
        _ => Lookup::Ambiguous(hits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two sessions of one login, a millisecond apart: UUIDv7s share the
    // time prefix, not the random end.
    const A: &str = "019ae5c1-7d2e-7a01-8f3b-4c1de0a9b27e";
    const B: &str = "019ae5c1-7d2f-7c44-b812-9e07f13c5d10";
    const C: &str = "019ae5c2-0000-7000-8000-00000000b27e";

    #[test]
    fn short_form_is_the_random_end() {
        assert_eq!(short(A), "e0a9b27e");
        assert_eq!(short(B), "f13c5d10");
        assert_eq!(short("S-1"), "S-1");
    }

    #[test]
    fn lookup_table() {
        let ids = [A, B, C];
        let found = |id: &str| Lookup::Found(id.to_string());
        let table: &[(&str, Lookup)] = &[
            (A, found(A)),
            ("e0a9b27e", found(A)), // the short form
            ("E0A9B27E", found(A)), // letter case aside
            ("5d10", found(B)),     // any unambiguous suffix
            ("019ae5c2", found(C)), // any unambiguous prefix
            ("019ae5c1-7d2f", found(B)),
            ("019ae5c1", Lookup::Ambiguous(vec![A.into(), B.into()])),
            ("b27e", Lookup::Ambiguous(vec![A.into(), C.into()])),
            ("ffff", Lookup::None),
            ("", Lookup::None),
        ];
        for (q, want) in table {
            assert_eq!(&lookup(q, ids), want, "{q:?}");
        }
        // Repeated ids (one per record) count once.
        assert_eq!(lookup("5d10", [B, B, B]), found(B));
    }
}
