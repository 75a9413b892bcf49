//! What people read: aligned tables, durations as they write them (`30m`,
//! `1d12h`), times as RFC 3339 or relative to now (`in 27m`, `3m ago`).

use std::fmt::Write as _;

use serde_json::Value;

use crate::clock::UnixTime;
use crate::duration::Secs;

/// Columns padded to their widest cell; the last column is not padded.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 < columns {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines, keys aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect()
}

/// A duration field of the API (integer seconds, or `"off"`) as people
/// write it; `-` when absent.
pub fn duration(value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_u64().map_or_else(|| n.to_string(), |s| Secs::new(s).to_string()),
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A string field, `-` when absent or empty.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Null | Value::String(_) => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A list of strings joined with `sep`, `-` when empty.
pub fn list(value: &Value, sep: &str) -> String {
    let items: Vec<String> = value.as_array().into_iter().flatten().map(text).collect();
    if items.is_empty() { "-".to_owned() } else { items.join(sep) }
}

pub fn yes_no(value: &Value) -> String {
    if value.as_bool().unwrap_or(false) { "yes".to_owned() } else { "no".to_owned() }
}

/// An RFC 3339 time relative to `now`: `in 27m`, `3m ago`, `now`; the
/// value itself when it is not a time.
pub fn relative(value: &Value, now: UnixTime) -> String {
    let Some(at) = value.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else {
        return text(value);
    };
    let at = at.timestamp();
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    match at.cmp(&now) {
        std::cmp::Ordering::Equal => "now".to_owned(),
        std::cmp::Ordering::Greater => format!("in {}", rough(at.abs_diff(now))),
        std::cmp::Ordering::Less => format!("{} ago", rough(at.abs_diff(now))),
    }
}

/// The two largest units, rounded down: `45s`, `29m30s`, `5h3m`, `1d12h`.
pub fn rough(secs: u64) -> String {
    let kept = match secs {
        0..3_600 => secs,
        3_600..86_400 => secs / 60 * 60,
        _ => secs / 3_600 * 3_600,
    };
    Secs::new(kept).to_string()
}

/// Pretty JSON, as the server gave it.
pub fn json(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_every_column_but_the_last() {
        let mut t = Table::new(&["USERNAME", "EMAIL", "STATE"]);
        t.row(vec!["alice".into(), "alice@example.com".into(), "enabled".into()]);
        t.row(vec!["bob".into(), "-".into(), "disabled".into()]);
        assert_eq!(
            t.render(),
            "USERNAME  EMAIL              STATE\n\
             alice     alice@example.com  enabled\n\
             bob       -                  disabled\n"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(&json!(2700)), "45m");
        assert_eq!(duration(&json!(129_600)), "1d12h");
        assert_eq!(duration(&json!("off")), "off");
        assert_eq!(duration(&json!(0)), "0s");
        assert_eq!(duration(&Value::Null), "-");
    }

    #[test]
    fn times_relative_to_now_keep_two_units() {
        let now = UnixTime(1_800_000_000); // 2027-01-15T08:00:00Z
        assert_eq!(relative(&json!("2027-01-15T08:27:30Z"), now), "in 27m30s");
        assert_eq!(relative(&json!("2027-01-15T07:57:00Z"), now), "3m ago");
        assert_eq!(relative(&json!("2027-01-16T20:05:00Z"), now), "in 1d12h");
        assert_eq!(relative(&json!("2027-01-15T13:03:59Z"), now), "in 5h3m");
        assert_eq!(relative(&json!("2027-01-15T08:00:00Z"), now), "now");
        assert_eq!(relative(&json!("2027-01-15T08:00:09Z"), now), "in 9s");
        assert_eq!(relative(&Value::Null, now), "-");
    }

    #[test]
    fn lists_and_texts_show_a_dash_when_empty() {
        assert_eq!(list(&json!(["a", "b"]), ","), "a,b");
        assert_eq!(list(&json!([]), ","), "-");
        assert_eq!(text(&json!("")), "-");
        assert_eq!(yes_no(&json!(true)), "yes");
    }
}
