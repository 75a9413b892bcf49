//! How each answer of the admin API reads in a table: the views of
//! settings, explanations, previews, users, sessions, clients and keys.

use serde_json::Value;

use super::output::{self, Table};
use crate::clock::UnixTime;
use crate::policy::POLICY_KEYS;

pub(super) fn state(disabled: &Value) -> String {
    if disabled.as_bool().unwrap_or(false) { "disabled".to_owned() } else { "enabled".to_owned() }
}

pub(super) fn settings_table(v: &Value) -> String {
    let mut t = Table::new(&["SETTING", "VALUE", "SOURCE"]);
    for d in POLICY_KEYS {
        let name = d.name;
        let value = if d.is_duration() { output::duration(&v[name]) } else { output::text(&v[name]) };
        t.row(vec![name.to_owned(), value, output::text(&v["sources"][name])]);
    }
    t.render()
}

pub(super) fn explain_table(v: &Value) -> String {
    let mut head = format!("client {}", output::text(&v["client_id"]));
    if let Some(user) = v["username"].as_str() {
        head.push_str(&format!(", user {user}"));
    }
    head.push_str(&format!(", remember me: {}\n\n", output::yes_no(&v["remember_me"])));
    let mut t = Table::new(&["SETTING", "VALUE", "RULE", "REASON"]);
    for name in ["idle_timeout", "max_lifetime", "access_token_ttl", "refresh_reuse_grace"] {
        let e = &v[name];
        t.row(vec![
            name.to_owned(),
            output::duration(&e["value"]),
            output::text(&e["rule"]),
            output::text(&e["reason"]),
        ]);
    }
    for name in ["max_sessions", "on_session_limit"] {
        let e = &v[name];
        t.row(vec![name.to_owned(), output::text(&e["value"]), output::text(&e["rule"]), output::text(&e["reason"])]);
    }
    head + &t.render()
}

pub(super) fn preview_table(v: &Value) -> String {
    let n = |x: &Value| x.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
    let mut out = output::fields(&[
        ("valid", output::yes_no(&v["valid"])),
        ("sessions ending now", n(&v["sessions_ending_now"])),
        ("sessions shortened", n(&v["sessions_shortened"])),
        ("sessions unchanged", n(&v["sessions_unchanged"])),
        ("sessions extended", n(&v["sessions_extended"])),
    ]);
    if let Some(by_client) = v["by_client"].as_object().filter(|m| !m.is_empty()) {
        let mut t = Table::new(&["CLIENT", "ENDING NOW", "SHORTENED", "UNCHANGED", "EXTENDED"]);
        for (client, c) in by_client {
            t.row(vec![client.clone(), n(&c["ending_now"]), n(&c["shortened"]), n(&c["unchanged"]), n(&c["extended"])]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out.push_str("\nnothing was changed; `tenure admin settings set` with the same values applies them\n");
    out
}

pub(super) fn user_fields(u: &Value) -> String {
    output::fields(&[
        ("username", output::text(&u["username"])),
        ("name", output::text(&u["name"])),
        ("email", output::text(&u["email"])),
        ("permissions", output::list(&u["permissions"], ", ")),
        ("groups", output::list(&u["groups"], ", ")),
        ("state", state(&u["disabled"])),
        ("source", output::text(&u["source"])),
        ("created", output::text(&u["created_at"])),
    ])
}

/// The group policies (SPEC 14): one row a group; `-` where a group leaves
/// the key to the global policy.
pub(super) fn groups_table(groups: &[Value]) -> String {
    let mut t = Table::new(&["GROUP", "IDLE TIMEOUT", "MAX LIFETIME", "ACCESS TOKEN TTL", "MAX SESSIONS", "SOURCE"]);
    for g in groups {
        t.row(vec![
            output::text(&g["name"]),
            output::duration(&g["idle_timeout"]),
            output::duration(&g["max_lifetime"]),
            output::duration(&g["access_token_ttl"]),
            g["max_sessions"].as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string()),
            output::text(&g["source"]),
        ]);
    }
    if t.is_empty() { "no groups\n".to_owned() } else { t.render() }
}

pub(super) fn sessions_table(v: &Value, username: &str, now: UnixTime) -> String {
    let mut t = Table::new(&[
        "SID",
        "CLIENTS",
        "SIGNED IN",
        "LAST ACTIVE",
        "IDLE EXPIRES",
        "EXPIRES",
        "REMEMBER",
        "IP",
        "USER AGENT",
    ]);
    let sessions = || v["sessions"].as_array().into_iter().flatten();
    for s in sessions().filter(|s| s["ended"] != true) {
        t.row(vec![
            output::text(&s["sid"]),
            output::list(&s["client_ids"], ","),
            output::text(&s["created_at"]),
            output::relative(&s["last_active_at"], now),
            output::relative(&s["idle_expires_at"], now),
            output::relative(&s["expires_at"], now),
            output::yes_no(&s["remember_me"]),
            output::text(&s["ip"]),
            output::text(&s["user_agent"]),
        ]);
    }
    let mut out = if t.is_empty() { format!("{username} has no live sessions\n") } else { t.render() };
    // SPEC 14: the sessions that ended in the last 30 days, and why.
    let mut ended = Table::new(&["ENDED SID", "ENDED", "WHY"]);
    for s in sessions().filter(|s| s["ended"] == true) {
        ended.row(vec![output::text(&s["sid"]), output::text(&s["ended_at"]), output::text(&s["end_summary"])]);
    }
    if !ended.is_empty() {
        out.push('\n');
        out.push_str(&ended.render());
    }
    out
}

/// Keys with their role and state; the last column says when the state
/// changes (a `next` key becomes active, a `retired` one unpublished) or
/// changed (`expired`, `revoked`).
pub(super) fn keys_table(v: &Value, now: UnixTime) -> String {
    let mut t = Table::new(&["KID", "ALG", "ROLE", "STATE", "CREATED", "AGE", "WHEN"]);
    for k in v["keys"].as_array().into_iter().flatten() {
        let when = match k["state"].as_str() {
            Some("next") => format!("active {}", output::relative(&k["active_from"], now)),
            Some("retired") => format!("unpublished {}", output::relative(&k["published_until"], now)),
            Some("expired") => format!("retired {}", output::relative(&k["retired_at"], now)),
            Some("revoked") => format!("revoked {}", output::relative(&k["revoked_at"], now)),
            _ => "-".to_owned(),
        };
        t.row(vec![
            output::text(&k["kid"]),
            output::text(&k["alg"]),
            output::text(&k["role"]),
            output::text(&k["state"]),
            output::text(&k["created_at"]),
            k["age_seconds"].as_u64().map_or_else(|| "-".to_owned(), output::rough),
            when,
        ]);
    }
    if t.is_empty() { "no keys\n".to_owned() } else { t.render() }
}

pub(super) fn client_type(c: &Value) -> String {
    if c["public"].as_bool().unwrap_or(false) { "public".to_owned() } else { "confidential".to_owned() }
}

/// `idle 15m, max 1h, access 5m`, or `-` without an override.
pub(super) fn session_override(s: &Value) -> String {
    let parts: Vec<String> = [("idle", "idle_timeout"), ("max", "max_lifetime"), ("access", "access_token_ttl")]
        .into_iter()
        .filter(|(_, key)| !s[*key].is_null())
        .map(|(label, key)| format!("{label} {}", output::duration(&s[key])))
        .collect();
    if parts.is_empty() { "-".to_owned() } else { parts.join(", ") }
}

pub(super) fn client_fields(c: &Value) -> String {
    output::fields(&[
        ("id", output::text(&c["id"])),
        ("type", client_type(c)),
        ("redirect uris", output::list(&c["redirect_uris"], " ")),
        ("web origins", output::list(&c["web_origins"], " ")),
        ("grant types", output::list(&c["grant_types"], " ")),
        ("scopes", output::list(&c["scopes"], " ")),
        ("permissions", output::list(&c["permissions"], " ")),
        ("exchange audiences", output::list(&c["token_exchange_audiences"], " ")),
        ("back-channel logout", output::text(&c["backchannel_logout_uri"])),
        ("session", session_override(&c["session"])),
        ("source", output::text(&c["source"])),
    ])
}

/// A secret the server shows once, printed once and plainly.
pub(super) fn secret_notice(id: &str, secret: &str) -> String {
    format!(
        "\nclient_secret: {secret}\n\nThis secret is shown once: store it now. \
         `tenure admin clients rotate-secret {id}` replaces it.\n"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn client_overrides_read_as_durations() {
        assert_eq!(session_override(&json!({"max_lifetime": 3600, "idle_timeout": 900})), "idle 15m, max 1h");
        assert_eq!(session_override(&Value::Null), "-");
    }

    #[test]
    fn keys_say_when_their_state_changes() {
        let now = UnixTime(1_800_000_000); // 2027-01-15T08:00:00Z
        let keys = json!({"keys": [
            {"kid": "k3", "alg": "ES256", "role": "primary", "state": "next", "created_at": "2027-01-15T08:00:00Z",
             "age_seconds": 0, "active_from": "2027-01-15T08:10:00Z"},
            {"kid": "k2", "alg": "ES256", "role": "primary", "state": "active", "created_at": "2027-01-14T08:00:00Z",
             "age_seconds": 86_400, "active_from": "2027-01-14T08:00:00Z"},
            {"kid": "k1", "alg": "ES256", "role": "primary", "state": "retired", "created_at": "2027-01-01T08:00:00Z",
             "age_seconds": 1_209_600, "active_from": "2027-01-01T08:00:00Z",
             "retired_at": "2027-01-14T08:00:00Z", "published_until": "2027-01-15T09:30:00Z"}
        ]});
        let table = keys_table(&keys, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].ends_with("0s   active in 10m"), "{table}");
        assert!(lines[2].ends_with("1d   -"), "{table}");
        assert!(lines[3].ends_with("14d  unpublished in 1h30m"), "{table}");
    }

    #[test]
    fn a_preview_shows_every_count_and_says_nothing_changed() {
        let preview = json!({"valid": true, "sessions_ending_now": 1, "sessions_shortened": 2, "sessions_unchanged": 3,
            "sessions_extended": 0, "by_client": {"web": {"ending_now": 1, "shortened": 2, "unchanged": 3, "extended": 0}}});
        let text = preview_table(&preview);
        assert!(
            text.starts_with("valid                yes\nsessions ending now  1\nsessions shortened   2\n"),
            "{text}"
        );
        assert!(text.contains("web     1           2          3          0"), "{text}");
        assert!(text.ends_with("nothing was changed; `tenure admin settings set` with the same values applies them\n"));
    }
}
