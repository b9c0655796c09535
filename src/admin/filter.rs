//! What `gatehouse audit` keeps: pure predicates over records, and the
//! time expressions of `--since`/`--until`.
#![forbid(unsafe_code)]

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::core::record::read::{Body, Record};

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

impl Filter {
    pub fn matches(&self, rec: &Record) -> bool {
        let h = &rec.head;
        // An empty list allows everything; otherwise the field must be
        // there and match one entry.
        let names = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        let globs = |list: &[glob::Pattern], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|p| p.matches(v)))
        };
        let session = |s: &str| {
            self.sessions
                .iter()
                .any(|x| s == x || s.starts_with(x.as_str()) || s.ends_with(x.as_str()))
        };
        names(&self.users, h.user.as_deref())
            && globs(&self.hosts, h.host.as_deref())
            && globs(&self.bastions, h.bastion.as_deref())
            && (self.sessions.is_empty() || h.session.as_deref().is_some_and(session))
            && names(&self.events, h.event.as_deref())
            && self.in_time(h.ts.as_deref())
            && (!self.unverified || unverified(rec))
            && self.grep_matches(rec)
    }

    fn in_time(&self, ts: Option<&str>) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(ts) = ts else {
            return false;
        };
        // Our timestamps are fixed-width UTC: text order is time order.
        !(self.since.as_deref().is_some_and(|s| ts < s)
            || self.until.as_deref().is_some_and(|u| ts > u))
    }

    /// `--grep`: commands, and refused requests.
    fn grep_matches(&self, rec: &Record) -> bool {
        let Some(re) = &self.grep else {
            return true;
        };
        let text = match &rec.body {
            Body::Command(c) => Some(&c.command),
            Body::Policy(p) => Some(&p.command),
            Body::Exec(e) => Some(&e.command),
            Body::Denied(d) => Some(&d.request),
            _ => None,
        };
        text.is_some_and(|t| re.is_match(t))
    }
}

/// A `command` the screen did not confirm (`verified: false`).
fn unverified(rec: &Record) -> bool {
    matches!(&rec.body, Body::Command(c) if c.verified == Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn typed(v: &Value) -> Record {
        Record::parse(serde_json::to_vec(v).unwrap()).unwrap()
    }

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
        assert!(
            !f.matches(&typed(&rec())),
            "no verified field: not unverified"
        );
        let mut r = rec();
        r["verified"] = json!(false);
        assert!(f.matches(&typed(&r)));
        r["verified"] = json!(true);
        assert!(!f.matches(&typed(&r)));
        r["verified"] = json!(false);
        r["event"] = json!("login");
        assert!(!f.matches(&typed(&r)));
    }

    #[test]
    fn filters() {
        assert!(Filter::default().matches(&typed(&rec())));
        let f = |f: Filter| f.matches(&typed(&rec()));
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
        .matches(&typed(&login)));
        assert!(!Filter {
            hosts: vec![glob::Pattern::new("*").unwrap()],
            ..Default::default()
        }
        .matches(&typed(&login)));
    }

    /// A newer writer's record (an event and fields this reader does not
    /// know) is filtered on the fields every record has, like any other.
    #[test]
    fn an_unknown_event_is_filtered_on_its_common_fields() {
        let r = typed(
            &json!({"v":1,"ts":"2026-11-28T17:00:00.000Z","event":"port_forward",
            "user":"alice","host":"web01","session":"0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001",
            "listen":"127.0.0.1:8080","extra":{"nested":[1,2]}}),
        );
        assert!(Filter::default().matches(&r));
        let events = |e: &str| Filter {
            events: vec![e.into()],
            users: vec!["alice".into()],
            hosts: vec![glob::Pattern::new("web*").unwrap()],
            sessions: vec!["ffff0001".into()],
            since: Some("2026-11-28T16:00:00.000Z".into()),
            ..Default::default()
        };
        assert!(events("port_forward").matches(&r));
        assert!(!events("command").matches(&r));
    }
}
