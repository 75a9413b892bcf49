//! What the console's templates show: the page structs (askama, checked at
//! compile time, HTML-escaped by default) and the small pure helpers that
//! turn domain values into text.

use askama::Template;

use crate::service::sessions::SessionView;

/// One link of the navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    pub title: String,
    pub username: String,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub flash: Option<String>,
    pub css: &'static str,
    pub js: &'static str,
}

/// A time for `<time datetime>`: RFC 3339 UTC, and readable UTC text the
/// script replaces with local time and a relative one.
pub struct Time {
    pub iso: String,
    pub text: String,
}

impl Time {
    pub fn from_rfc3339(iso: &str) -> Time {
        let text = match chrono::DateTime::parse_from_rfc3339(iso) {
            Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
            Err(_) => iso.to_owned(),
        };
        Time { iso: iso.to_owned(), text }
    }
}

/// "1 d 4 h", "2 h 10 min", "45 s".
pub fn span(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d} d"));
    }
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 && d == 0 {
        parts.push(format!("{m} min"));
    }
    if parts.is_empty() { format!("{secs} s") } else { parts.join(" ") }
}

/// A readable device from a User-Agent: "Firefox on Windows".
pub fn device(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|u| !u.is_empty()) else { return "Unknown device".to_owned() };
    let browser = if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if let Some((name, _)) = ua.split_once('/') {
        return name.chars().take(40).collect();
    } else {
        return ua.chars().take(40).collect();
    };
    let os = if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        return browser.to_owned();
    };
    format!("{browser} on {os}")
}

/// The clients of a session, for its table row.
fn clients(client_ids: &[String]) -> String {
    if client_ids.is_empty() { "Sign-in only".to_owned() } else { client_ids.join(", ") }
}

/// One row of a sessions table.
pub struct SessionRow {
    pub sid: String,
    pub clients: String,
    pub device: String,
    pub ip: String,
    pub signed_in: Time,
    pub last_active: Time,
    pub idle_expires: Time,
    pub expires: Time,
    pub remember_me: bool,
    pub current: bool,
    pub revoke_action: String,
    pub revoke_label: &'static str,
}

impl SessionRow {
    pub fn of(s: SessionView, revoke_action: String, revoke_label: &'static str) -> SessionRow {
        SessionRow {
            clients: clients(&s.client_ids),
            device: device(s.user_agent.as_deref()),
            ip: s.ip.unwrap_or_else(|| "—".to_owned()),
            signed_in: Time::from_rfc3339(&s.created_at),
            last_active: Time::from_rfc3339(&s.last_active_at),
            idle_expires: Time::from_rfc3339(&s.idle_expires_at),
            expires: Time::from_rfc3339(&s.expires_at),
            remember_me: s.remember_me,
            current: s.current,
            sid: s.sid,
            revoke_action,
            revoke_label,
        }
    }
}

/// One ended session as a console table shows it (SPEC 14).
pub struct EndedRow {
    pub sid: String,
    pub clients: String,
    pub device: String,
    pub ip: String,
    pub signed_in: Time,
    pub ended_at: Time,
    /// "Ended: idle for 30 min", "Ended: revoked by helpdesk".
    pub why: String,
    /// The SPEC 14 code, for scripts and tests (`data-end-reason`).
    pub reason: &'static str,
}

impl EndedRow {
    pub fn of(s: SessionView) -> EndedRow {
        EndedRow {
            clients: clients(&s.client_ids),
            device: device(s.user_agent.as_deref()),
            ip: s.ip.unwrap_or_else(|| "—".to_owned()),
            signed_in: Time::from_rfc3339(&s.created_at),
            ended_at: Time::from_rfc3339(s.ended_at.as_deref().unwrap_or(&s.last_active_at)),
            why: format!("Ended: {}", s.end_summary.as_deref().unwrap_or("ended")),
            reason: s.end_reason.map_or("", |r| r.as_str()),
            sid: s.sid,
        }
    }
}

/// Split a listing (SPEC 14) into the live sessions' rows, each with its
/// revoke action, and the ended ones'.
pub fn session_rows(
    sessions: Vec<SessionView>,
    live: impl Fn(SessionView) -> SessionRow,
) -> (Vec<SessionRow>, Vec<EndedRow>) {
    let (ended, open): (Vec<_>, Vec<_>) = sessions.into_iter().partition(|s| s.ended);
    (open.into_iter().map(live).collect(), ended.into_iter().map(EndedRow::of).collect())
}

#[derive(Template)]
#[template(path = "console/plain.html")]
pub struct PlainPage {
    pub heading: String,
    pub message: String,
    pub alert: bool,
    pub link_href: &'static str,
    pub link_label: &'static str,
    pub css: &'static str,
}

#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
    pub back_href: String,
    pub back_label: String,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
    pub details: Vec<String>,
    pub action: String,
    pub hidden: Vec<(String, String)>,
    pub confirm_label: String,
    pub cancel_href: String,
    pub danger: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixTime;

    #[test]
    fn devices_read_from_user_agents() {
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(device(Some(firefox)), "Firefox on Windows");
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36";
        assert_eq!(device(Some(chrome)), "Chrome on Linux");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device(Some(safari)), "Safari on iOS");
        assert_eq!(device(Some("curl/8.5.0")), "curl");
        assert_eq!(device(None), "Unknown device");
    }

    #[test]
    fn spans_read_like_a_person_says_them() {
        assert_eq!(span(45), "45 s");
        assert_eq!(span(7800), "2 h 10 min");
        assert_eq!(span(30 * 86_400 + 3600), "30 d 1 h");
    }

    #[test]
    fn times_show_utc_until_the_script_localises_them() {
        let t = Time::from_rfc3339(&UnixTime(1_700_000_000).to_rfc3339());
        assert_eq!(t.iso, "2023-11-14T22:13:20Z");
        assert_eq!(t.text, "2023-11-14 22:13 UTC");
    }
}
