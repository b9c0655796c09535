//! What `gatehouse audit` keeps: pure predicates over records, and the
//! time expressions of `--since`/`--until`.
#![forbid(unsafe_code)]

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// `--since`/`--until`: RFC 3339 (`2026-11-28T18:24:56Z`, any offset), a
/// date (`2026-11-28`, midnight UTC), a UTC date and time without zone
/// (`2026-11-28 18:24`), `now`, or an age like `2h`, `30m`, `7d`, `1h30m`.
pub fn parse_when(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if t.starts_with(|c: char| c.is_ascii_digit()) && t != "0" {
        if let Ok(secs) = crate::core::config::parse_duration(t) {
            if let Some(d) = chrono::Duration::try_seconds(secs as i64) {
                return Ok(now - d);
            }
        }
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2026-11-28T18:24:56Z), a date (2026-11-28), or an age (90s, 30m, 2h, 7d)"
    ))
}

/// The record's timestamp in our fixed format, comparable as text.
pub fn ts_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[derive(Debug, Default)]
pub struct Filter {
    pub users: Vec<String>,
    pub hosts: Vec<glob::Pattern>,
    /// The `bastion` field (many bastions' files read at once: `--dir`).
    pub bastions: Vec<glob::Pattern>,
    pub sessions: Vec<String>,
    pub events: Vec<String>,
    /// Inclusive bounds, as `ts` strings (`ts_key`).
    pub since: Option<String>,
    pub until: Option<String>,
    pub grep: Option<regex::Regex>,
    /// Only `command` records the screen could not confirm.
    pub unverified: bool,
}

fn field<'a>(rec: &'a Value, k: &str) -> Option<&'a str> {
    rec.get(k).and_then(|v| v.as_str())
}

impl Filter {
    pub fn matches(&self, rec: &Value) -> bool {
        if !self.users.is_empty()
            && !field(rec, "user").is_some_and(|u| self.users.iter().any(|x| x == u))
        {
            return false;
        }
        if !self.hosts.is_empty()
            && !field(rec, "host").is_some_and(|h| self.hosts.iter().any(|p| p.matches(h)))
        {
            return false;
        }
        if !self.bastions.is_empty()
            && !field(rec, "bastion").is_some_and(|b| self.bastions.iter().any(|p| p.matches(b)))
        {
            return false;
        }
        if !self.sessions.is_empty()
            && !field(rec, "session").is_some_and(|s| {
                self.sessions
                    .iter()
                    .any(|x| s == x || s.starts_with(x.as_str()) || s.ends_with(x.as_str()))
            })
        {
            return false;
        }
        if !self.events.is_empty()
            && !field(rec, "event").is_some_and(|e| self.events.iter().any(|x| x == e))
        {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(ts) = field(rec, "ts") else {
                return false;
            };
            // Our timestamps are fixed-width UTC: text order is time order.
            if self.since.as_deref().is_some_and(|s| ts < s) {
                return false;
            }
            if self.until.as_deref().is_some_and(|u| ts > u) {
                return false;
            }
        }
        if self.unverified
            && !(field(rec, "event") == Some("command")
                && rec.get("verified").and_then(Value::as_bool) == Some(false))
        {
            return false;
        }
        if let Some(re) = &self.grep {
            let text = field(rec, "command").or_else(|| field(rec, "request"));
            if !text.is_some_and(|t| re.is_match(t)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T18:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn times() {
        let t = |s| parse_when(s, now()).map(ts_key);
        assert_eq!(t("2h").unwrap(), "2026-11-28T16:00:00.000Z");
        assert_eq!(t("30m").unwrap(), "2026-11-28T17:30:00.000Z");
        assert_eq!(t("7d").unwrap(), "2026-11-21T18:00:00.000Z");
        assert_eq!(t("1h30m").unwrap(), "2026-11-28T16:30:00.000Z");
        assert_eq!(t("now").unwrap(), "2026-11-28T18:00:00.000Z");
        assert_eq!(
            t("2026-11-28T19:24:56.5+01:00").unwrap(),
            "2026-11-28T18:24:56.500Z"
        );
        assert_eq!(t("2026-11-27").unwrap(), "2026-11-27T00:00:00.000Z");
        assert_eq!(t("2026-11-27 08:15").unwrap(), "2026-11-27T08:15:00.000Z");
        assert!(t("yesterday").is_err());
        assert!(t("2x").is_err());
        assert!(t("").is_err());
    }

    fn rec() -> Value {
        json!({"ts":"2026-11-28T17:00:00.000Z","event":"command","user":"alice","host":"web01","bastion":"bastion1",
               "session":"0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001","command":"sudo systemctl restart nginx"})
    }

    #[test]
    fn unverified_keeps_only_unconfirmed_commands() {
        let f = Filter {
            unverified: true,
            ..Default::default()
        };
        assert!(!f.matches(&rec()), "no verified field: not unverified");
        let mut r = rec();
        r["verified"] = json!(false);
        assert!(f.matches(&r));
        r["verified"] = json!(true);
        assert!(!f.matches(&r));
        r["verified"] = json!(false);
        r["event"] = json!("login");
        assert!(!f.matches(&r));
    }

    #[test]
    fn filters() {
        assert!(Filter::default().matches(&rec()));
        let f = |f: Filter| f.matches(&rec());
        assert!(f(Filter {
            users: vec!["alice".into()],
            ..Default::default()
        }));
        assert!(!f(Filter {
            users: vec!["bob".into()],
            ..Default::default()
        }));
        assert!(f(Filter {
            hosts: vec![glob::Pattern::new("web*").unwrap()],
            ..Default::default()
        }));
        assert!(!f(Filter {
            hosts: vec![glob::Pattern::new("db*").unwrap()],
            ..Default::default()
        }));
        assert!(f(Filter {
            bastions: vec![glob::Pattern::new("bastion*").unwrap()],
            ..Default::default()
        }));
        assert!(!f(Filter {
            bastions: vec![glob::Pattern::new("other").unwrap()],
            ..Default::default()
        }));
        assert!(f(Filter {
            sessions: vec!["0190aaaa".into()],
            ..Default::default()
        }));
        assert!(f(Filter {
            sessions: vec!["ffff0001".into()],
            ..Default::default()
        }));
        assert!(!f(Filter {
            sessions: vec!["nope".into()],
            ..Default::default()
        }));
        assert!(f(Filter {
            events: vec!["login".into(), "command".into()],
            ..Default::default()
        }));
        assert!(!f(Filter {
            events: vec!["login".into()],
            ..Default::default()
        }));
        assert!(f(Filter {
            since: Some("2026-11-28T16:00:00.000Z".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            since: Some("2026-11-28T17:00:00.001Z".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            until: Some("2026-11-28T17:00:00.000Z".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            until: Some("2026-11-28T16:59:59.999Z".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            grep: Some(regex::Regex::new("restart (nginx|apache)").unwrap()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            grep: Some(regex::Regex::new("^rm ").unwrap()),
            ..Default::default()
        }));
        let login = json!({"event":"login","user":"alice"});
        assert!(!Filter {
            grep: Some(regex::Regex::new("").unwrap()),
            ..Default::default()
        }
        .matches(&login));
        assert!(!Filter {
            hosts: vec![glob::Pattern::new("*").unwrap()],
            ..Default::default()
        }
        .matches(&login));
    }
}
