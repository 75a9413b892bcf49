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
            clients: if s.client_ids.is_empty() { "Sign-in only".to_owned() } else { s.client_ids.join(", ") },
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

/// The first-run page (SPEC 9): create the first administrator.
#[derive(Template)]
#[template(path = "console/setup.html")]
pub struct SetupPage {
    pub token: String,
    pub csrf: String,
    pub username: String,
    /// Why the last post was refused, and which field it was about.
    pub error: Option<String>,
    pub error_field: &'static str,
    pub min_password: usize,
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

#[derive(Template)]
#[template(path = "console/account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub sessions: Vec<SessionRow>,
    pub sessions_caption: &'static str,
}

/// The idle-timeout controls of one group.
pub struct IdleForm {
    pub prefix: &'static str,
    pub enabled: bool,
    /// A preset's seconds, or "custom".
    pub choice: String,
    pub custom_minutes: String,
    pub presets: Vec<(u64, &'static str)>,
    pub source: &'static str,
    pub error: Option<String>,
}

/// The days/hours/minutes controls of one group.
pub struct LifetimeForm {
    pub prefix: &'static str,
    pub days: String,
    pub hours: String,
    pub minutes: String,
    pub source: &'static str,
    pub error: Option<String>,
}

/// A whole-number field (minutes or seconds) of one key.
pub struct NumberForm {
    pub name: &'static str,
    pub label: String,
    pub min: u64,
    pub value: String,
    pub hint: &'static str,
    pub source: &'static str,
    pub error: Option<String>,
}

/// The controls of one key on the settings page.
pub enum SettingsField {
    Idle(IdleForm),
    Lifetime(LifetimeForm),
    Number(NumberForm),
}

impl SettingsField {
    pub fn set_error(&mut self, message: String) {
        match self {
            SettingsField::Idle(f) => f.error = Some(message),
            SettingsField::Lifetime(f) => f.error = Some(message),
            SettingsField::Number(f) => f.error = Some(message),
        }
    }
}

/// One fieldset of the settings page.
pub struct SettingsGroup {
    pub legend: &'static str,
    pub note: Option<&'static str>,
    pub fields: Vec<SettingsField>,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
pub struct SettingsPage {
    pub chrome: Chrome,
    pub error: Option<String>,
    pub ceiling: String,
    pub ceiling_source: &'static str,
    pub floor: String,
    pub floor_source: &'static str,
    /// The keys of the policy table the console edits, in its order.
    pub groups: Vec<SettingsGroup>,
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub query: String,
    pub users: Vec<crate::service::users::UserView>,
    pub page: usize,
    pub next_page: Option<usize>,
    pub error: Option<String>,
    pub form_username: String,
    pub form_email: String,
    pub can_set_permissions: bool,
}

#[derive(Template)]
#[template(path = "console/user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub user: crate::service::users::UserView,
    pub read_only: bool,
    pub error: Option<String>,
    pub can_set_permissions: bool,
    pub has_administer: bool,
    pub has_users_edit: bool,
    pub sessions: Vec<SessionRow>,
    pub sessions_caption: &'static str,
}

pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub grant_types: String,
    pub limits: String,
    pub source: &'static str,
    pub editable: bool,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
pub struct ClientsPage {
    pub chrome: Chrome,
    pub clients: Vec<ClientRow>,
}

/// The client form's values (as typed, or from the client).
#[derive(Default)]
pub struct ClientForm {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub redirect_uris: String,
    pub web_origins: String,
    pub grant_types: Vec<(&'static str, bool)>,
    pub scopes: String,
    pub idle: String,
    pub max: String,
    pub access: String,
}

#[derive(Template)]
#[template(path = "console/client.html")]
pub struct ClientPage {
    pub chrome: Chrome,
    pub creating: bool,
    pub f: ClientForm,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
pub struct SecretPage {
    pub chrome: Chrome,
    pub client_id: String,
    pub secret: String,
}

pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub role: &'static str,
    pub state: &'static str,
    pub age: String,
    pub created: Time,
    pub published_until: Option<Time>,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
pub struct KeysPage {
    pub chrome: Chrome,
    pub keys: Vec<KeyRow>,
}

pub struct EventRow {
    pub at: Time,
    pub kind: String,
    pub actor: String,
    pub target: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub user: String,
    pub kind: String,
    pub events: Vec<EventRow>,
    pub next: Option<String>,
    pub error: Option<String>,
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
