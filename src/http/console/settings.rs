//! `/console/settings` (`system:administer`): the session policy the
//! console edits, with a preview before a change that ends live sessions.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::ConsoleState;
use super::extract::{AdminViewer, Administer, CsrfForm, PageViewer};
use super::page::{Confirm, actor, chrome, confirm, failed, message_of, render};
use super::session::{Viewer, see_other};
use super::view::{Chrome, span};
use crate::duration::Secs;
use crate::http::form::Form;
use crate::http::pages::PageError;
use crate::policy::{
    GroupPolicy, POLICY_KEYS, PolicyKey, PolicyKeyDef, PolicySources, PolicyValue, SessionPolicy, Source,
};
use crate::service::settings::PolicyChange;
use crate::service::{self, ServiceError};

/// Where the console's settings page shows a key and how it is typed there.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleControl {
    /// The fieldset's legend; fieldsets appear in the order of their first key.
    pub group: &'static str,
    pub input: ConsoleInput,
}

/// The form controls of one key on the console's settings page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleInput {
    /// The "Automatically sign out inactive users" switch, then a preset or
    /// custom minutes: `{prefix}_enabled`, `{prefix}_choice`, `{prefix}_custom_minutes`.
    IdleSwitch { prefix: &'static str },
    /// Days, hours and minutes: `{prefix}_days`, `{prefix}_hours`, `{prefix}_minutes`.
    DaysHoursMinutes { prefix: &'static str },
    /// Whole minutes, 1 or more, in the field `name`.
    Minutes { name: &'static str, hint: &'static str },
    /// Whole seconds, 0 or more, in the field `name`.
    Seconds { name: &'static str, hint: &'static str },
    /// A whole number of sessions, 0 or more, in the field `name`.
    Count { name: &'static str, hint: &'static str },
    /// One of the modes of `on_session_limit`, in the select `name`.
    Choice { name: &'static str, hint: &'static str },
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

/// One option of a select.
pub struct ChoiceOption {
    pub value: &'static str,
    pub words: &'static str,
    pub selected: bool,
}

/// A select of one key (`on_session_limit`).
pub struct ChoiceForm {
    pub name: &'static str,
    pub label: &'static str,
    pub options: Vec<ChoiceOption>,
    pub hint: &'static str,
    pub source: &'static str,
    pub error: Option<String>,
}

/// The controls of one key on the settings page.
pub enum SettingsField {
    Idle(IdleForm),
    Lifetime(LifetimeForm),
    Number(NumberForm),
    Choice(ChoiceForm),
}

impl SettingsField {
    pub fn set_error(&mut self, message: String) {
        match self {
            SettingsField::Idle(f) => f.error = Some(message),
            SettingsField::Lifetime(f) => f.error = Some(message),
            SettingsField::Number(f) => f.error = Some(message),
            SettingsField::Choice(f) => f.error = Some(message),
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
    /// "Group policies" (SPEC 14): each group's values, by name.
    pub group_policies: Vec<GroupRow>,
}

/// One group of the "Group policies" part: its values as people read them
/// (`—`: the global value) and as the form takes them (minutes).
pub struct GroupRow {
    pub name: String,
    pub idle: String,
    pub max: String,
    pub ttl: String,
    pub sessions: String,
    pub source: &'static str,
}

impl GroupRow {
    fn of(v: &service::groups::GroupView) -> GroupRow {
        let shown = |s: Option<u64>| s.map_or_else(|| "—".to_owned(), span);
        GroupRow {
            name: v.name.clone(),
            idle: shown(v.idle_timeout),
            max: shown(v.max_lifetime),
            ttl: shown(v.access_token_ttl),
            sessions: v.max_sessions.map_or_else(|| "—".to_owned(), |n| n.to_string()),
            source: v.source,
        }
    }
}

const PRESETS: [(u64, &str); 5] =
    [(3600, "1 hour"), (10_800, "3 hours"), (21_600, "6 hours"), (43_200, "12 hours"), (86_400, "24 hours")];

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Default => "default",
        Source::File => "file",
        Source::Env => "env",
        Source::Admin => "admin",
    }
}

fn idle_form(prefix: &'static str, t: PolicyValue, source: Source) -> IdleForm {
    let (enabled, choice, custom_minutes) = match t {
        PolicyValue::Off | PolicyValue::Count(_) | PolicyValue::Mode(_) => {
            (false, PRESETS[0].0.to_string(), String::new())
        }
        PolicyValue::Secs(d) if PRESETS.iter().any(|(s, _)| *s == d.as_secs()) => {
            (true, d.as_secs().to_string(), String::new())
        }
        PolicyValue::Secs(d) => (true, "custom".to_owned(), d.as_secs().div_ceil(60).to_string()),
    };
    IdleForm {
        prefix,
        enabled,
        choice,
        custom_minutes,
        presets: PRESETS.to_vec(),
        source: source_name(source),
        error: None,
    }
}

fn idle_form_typed(prefix: &'static str, form: &Form, source: Source) -> IdleForm {
    IdleForm {
        prefix,
        enabled: form.get(&format!("{prefix}_enabled")) == Some("on"),
        choice: form.get(&format!("{prefix}_choice")).unwrap_or("custom").to_owned(),
        custom_minutes: form.text(&format!("{prefix}_custom_minutes")),
        presets: PRESETS.to_vec(),
        source: source_name(source),
        error: None,
    }
}

fn lifetime_form(prefix: &'static str, secs: u64, source: Source) -> LifetimeForm {
    LifetimeForm {
        prefix,
        days: (secs / 86_400).to_string(),
        hours: ((secs % 86_400) / 3600).to_string(),
        minutes: ((secs % 3600) / 60).to_string(),
        source: source_name(source),
        error: None,
    }
}

fn lifetime_form_typed(prefix: &'static str, form: &Form, source: Source) -> LifetimeForm {
    LifetimeForm {
        prefix,
        days: form.text(&format!("{prefix}_days")),
        hours: form.text(&format!("{prefix}_hours")),
        minutes: form.text(&format!("{prefix}_minutes")),
        source: source_name(source),
        error: None,
    }
}

/// The keys the settings page edits, each with its controls.
/// The controls of `key` on the settings page; `None`: not edited here
/// (file and environment only).
fn control(key: PolicyKey) -> Option<ConsoleControl> {
    let (group, input) = match key {
        PolicyKey::IdleTimeout => ("Sign-in sessions", ConsoleInput::IdleSwitch { prefix: "idle" }),
        PolicyKey::MaxLifetime => ("Sign-in sessions", ConsoleInput::DaysHoursMinutes { prefix: "max" }),
        PolicyKey::RememberMeIdleTimeout => ("Remember me", ConsoleInput::IdleSwitch { prefix: "rm_idle" }),
        PolicyKey::RememberMeMaxLifetime => ("Remember me", ConsoleInput::DaysHoursMinutes { prefix: "rm_max" }),
        PolicyKey::AccessTokenTtl => {
            ("Tokens", ConsoleInput::Minutes { name: "access_token_minutes", hint: "Never above the idle timeout." })
        }
        PolicyKey::RefreshReuseGrace => (
            "Tokens",
            ConsoleInput::Seconds {
                name: "grace_seconds",
                hint: "How long a just-replaced refresh token may be retried (0 = never).",
            },
        ),
        PolicyKey::MaxSessions => (
            "Session limit",
            ConsoleInput::Count { name: "max_sessions", hint: "Live sessions a user may keep at once (0 = no limit)." },
        ),
        PolicyKey::OnSessionLimit => (
            "Session limit",
            ConsoleInput::Choice {
                name: "on_session_limit",
                hint: "What a sign-in does when the user already has that many live sessions.",
            },
        ),
        PolicyKey::MaxLifetimeCeiling | PolicyKey::AdminFloor => return None,
    };
    Some(ConsoleControl { group, input })
}

fn console_keys() -> impl Iterator<Item = (&'static PolicyKeyDef, ConsoleControl)> {
    POLICY_KEYS.iter().filter_map(|d| control(d.key).map(|c| (d, c)))
}

/// A note under a fieldset's legend.
fn group_note(legend: &str) -> Option<&'static str> {
    (legend == "Remember me").then_some("For sign-ins with \"Remember me\" ticked.")
}

/// Seconds of a duration value (`off` shows as 0 where only durations go),
/// or a count.
fn shown_secs(v: PolicyValue) -> u64 {
    match v {
        PolicyValue::Secs(d) => d.as_secs(),
        PolicyValue::Count(n) => u64::try_from(n).unwrap_or(0),
        PolicyValue::Off | PolicyValue::Mode(_) => 0,
    }
}

/// The options of `on_session_limit`, in the console's words.
const ON_LIMIT_OPTIONS: [(&str, &str); 2] =
    [("end_oldest", "End the least recently active session"), ("ask", "Ask the user which session to end")];

/// The settings page: the values in force, or those just typed (after a
/// refusal), with errors beside the controls they concern.
async fn settings_page(
    state: &ConsoleState,
    viewer: &Viewer,
    typed: Option<&Form>,
    error: Option<String>,
    errors: Vec<(PolicyKey, String)>,
) -> SettingsPage {
    let policy = state.policy();
    let (p, sources): (&SessionPolicy, &PolicySources) = (&policy.0, &policy.1);
    let mut groups: Vec<SettingsGroup> = Vec::new();
    for (def, control) in console_keys() {
        let source = sources.of(def.key);
        let current = (def.effective)(p);
        let number = |name: &'static str, unit: &str, min: u64, hint: &'static str, shown: u64| NumberForm {
            name,
            label: format!("{} ({unit})", def.label),
            min,
            value: typed.map_or_else(|| shown.to_string(), |f| f.text(name)),
            hint,
            source: source_name(source),
            error: None,
        };
        let mut field = match control.input {
            ConsoleInput::IdleSwitch { prefix } => SettingsField::Idle(match typed {
                None => idle_form(prefix, current, source),
                Some(f) => idle_form_typed(prefix, f, source),
            }),
            ConsoleInput::DaysHoursMinutes { prefix } => SettingsField::Lifetime(match typed {
                None => lifetime_form(prefix, shown_secs(current), source),
                Some(f) => lifetime_form_typed(prefix, f, source),
            }),
            ConsoleInput::Minutes { name, hint } => {
                SettingsField::Number(number(name, "minutes", 1, hint, shown_secs(current).div_ceil(60)))
            }
            ConsoleInput::Seconds { name, hint } => {
                SettingsField::Number(number(name, "seconds", 0, hint, shown_secs(current)))
            }
            ConsoleInput::Count { name, hint } => SettingsField::Number(NumberForm {
                label: def.label.to_owned(),
                ..number(name, "", 0, hint, shown_secs(current))
            }),
            ConsoleInput::Choice { name, hint } => SettingsField::Choice(ChoiceForm {
                name,
                label: def.label,
                options: {
                    let shown = typed.map_or_else(|| current.to_string(), |f| f.text(name));
                    ON_LIMIT_OPTIONS
                        .iter()
                        .map(|&(value, words)| ChoiceOption { value, words, selected: value == shown })
                        .collect()
                },
                hint,
                source: source_name(source),
                error: None,
            }),
        };
        if let Some((_, message)) = errors.iter().rev().find(|(k, _)| *k == def.key) {
            field.set_error(message.clone());
        }
        match groups.iter_mut().find(|g| g.legend == control.group) {
            Some(g) => g.fields.push(field),
            None => groups.push(SettingsGroup {
                legend: control.group,
                note: group_note(control.group),
                fields: vec![field],
            }),
        }
    }
    SettingsPage {
        chrome: chrome(viewer, "Session settings", "/console/settings").await,
        error,
        ceiling: span(p.max_lifetime_ceiling.as_secs()),
        ceiling_source: source_name(sources.of(PolicyKey::MaxLifetimeCeiling)),
        floor: span(p.admin_floor.as_secs()),
        floor_source: source_name(sources.of(PolicyKey::AdminFloor)),
        groups,
        group_policies: service::groups::list(state).iter().map(GroupRow::of).collect(),
    }
}

/// `GET /console/settings` (`system:administer`).
pub async fn settings(
    State(state): State<ConsoleState>,
    PageViewer { viewer, .. }: AdminViewer,
) -> Result<Response, PageError> {
    let page = settings_page(&state, &viewer, None, None, Vec::new()).await;
    Ok(render(StatusCode::OK, page))
}

fn whole(raw: &str) -> Option<u64> {
    if raw.is_empty() { Some(0) } else { raw.parse().ok() }
}

/// An idle timeout as typed: `None` for off.
fn typed_idle(form: &Form, prefix: &str) -> Result<Option<u64>, String> {
    if form.get(&format!("{prefix}_enabled")) != Some("on") {
        return Ok(None);
    }
    match form.get(&format!("{prefix}_choice")) {
        Some(choice) if choice != "custom" => match choice.parse::<u64>() {
            Ok(secs) if PRESETS.iter().any(|(s, _)| *s == secs) => Ok(Some(secs)),
            _ => Err("Idle timeout: choose one of the listed timeouts or Custom".into()),
        },
        _ => match form.text(&format!("{prefix}_custom_minutes")).parse::<u64>() {
            Ok(m) if m >= 1 => m.checked_mul(60).map(Some).ok_or_else(|| "Idle timeout: too many minutes".into()),
            _ => Err("Idle timeout: enter the custom timeout as a whole number of minutes, 1 or more".into()),
        },
    }
}

/// A duration typed as days, hours and minutes (empty = 0).
fn typed_lifetime(form: &Form, prefix: &str) -> Result<u64, String> {
    let part = |name: &str| whole(&form.text(&format!("{prefix}_{name}")));
    let (Some(d), Some(h), Some(m)) = (part("days"), part("hours"), part("minutes")) else {
        return Err("Maximum session duration: days, hours and minutes must be whole numbers (0 or more)".into());
    };
    d.checked_mul(86_400)
        .and_then(|d| h.checked_mul(3600).and_then(|h| d.checked_add(h)))
        .and_then(|dh| m.checked_mul(60).and_then(|m| dh.checked_add(m)))
        .ok_or_else(|| "Maximum session duration: the duration is too long".into())
}

/// The changes the form makes to the values in force, as the settings use
/// case takes them: only the values that differ from what the form showed,
/// so untouched values keep their source.
fn settings_changes(p: &SessionPolicy, form: &Form) -> Result<PolicyChange, Vec<(PolicyKey, String)>> {
    let mut changes = PolicyChange::default();
    let mut errors = Vec::new();
    let shown_idle = |v: PolicyValue| match v {
        PolicyValue::Secs(d) => Some(d.as_secs()),
        _ => None,
    };
    // Checked idle timeouts first, then durations, minutes, seconds: the
    // order the refusal lists its complaints in.
    let mut keys: Vec<_> = console_keys().collect();
    keys.sort_by_key(|(_, c)| match c.input {
        ConsoleInput::IdleSwitch { .. } => 0,
        ConsoleInput::DaysHoursMinutes { .. } => 1,
        ConsoleInput::Minutes { .. } => 2,
        ConsoleInput::Seconds { .. } => 3,
        ConsoleInput::Count { .. } | ConsoleInput::Choice { .. } => 4,
    });
    for (def, control) in keys {
        let current = (def.effective)(p);
        let shown = shown_secs(current);
        let typed: Result<Option<PolicyValue>, String> = match control.input {
            ConsoleInput::IdleSwitch { prefix } => typed_idle(form, prefix).map(|t| {
                (t != shown_idle(current)).then(|| t.map_or(PolicyValue::Off, |s| PolicyValue::Secs(Secs::new(s))))
            }),
            ConsoleInput::DaysHoursMinutes { prefix } => typed_lifetime(form, prefix)
                .map(|secs| (secs != shown - shown % 60).then(|| PolicyValue::Secs(Secs::new(secs)))),
            ConsoleInput::Minutes { name, .. } => match form.text(name).parse::<u64>() {
                Ok(m) if m >= 1 => {
                    Ok((m != shown.div_ceil(60)).then(|| PolicyValue::Secs(Secs::new(m.saturating_mul(60)))))
                }
                _ => Err(format!("{}: a whole number of minutes, 1 or more", def.label)),
            },
            ConsoleInput::Seconds { name, .. } => match form.text(name).parse::<u64>() {
                Ok(s) => Ok((s != shown).then(|| PolicyValue::Secs(Secs::new(s)))),
                Err(_) => Err(format!("{}: a whole number of seconds, 0 or more", def.label)),
            },
            // A form without the control (an older page) changes nothing.
            ConsoleInput::Count { name, .. } => match form.get(name).map(|raw| raw.trim().parse::<u64>()) {
                None => Ok(None),
                Some(Ok(n)) => Ok((n != shown).then(|| PolicyValue::Count(i64::try_from(n).unwrap_or(i64::MAX)))),
                Some(Err(_)) => Err(format!("{}: a whole number of sessions, 0 or more (0 = no limit)", def.label)),
            },
            ConsoleInput::Choice { name, .. } => match form.get(name).map(str::parse) {
                None => Ok(None),
                Some(Ok(mode)) => Ok((PolicyValue::Mode(mode) != current).then_some(PolicyValue::Mode(mode))),
                Some(Err(e)) => Err(format!("{}: {e}", def.label)),
            },
        };
        match typed {
            Ok(Some(value)) => changes.set(def.key, Some(value)),
            Ok(None) => {}
            Err(e) => errors.push((def.key, e)),
        }
    }
    if errors.is_empty() { Ok(changes) } else { Err(errors) }
}

/// The refusal of the settings use case, and the control of the setting it
/// names (an `InvalidSetting` carries its key).
fn refusal_of(e: &ServiceError) -> (String, Vec<(PolicyKey, String)>) {
    let message = message_of(e);
    let control = match e {
        ServiceError::InvalidSetting { key, .. } => console_keys().find(|(d, _)| d.name == *key).map(|(d, _)| d.key),
        _ => None,
    };
    let errors = control.map(|c| vec![(c, message.clone())]).unwrap_or_default();
    (message, errors)
}

/// What a change sets, old value to new, in the words of the settings page.
fn change_lines(policy: &SessionPolicy, sources: &PolicySources, changes: &PolicyChange) -> Vec<String> {
    let current = service::settings::view(policy, sources);
    let shown = |v: Option<PolicyValue>| match v {
        Some(v) => v.to_string(),
        None => "the file or environment value".to_owned(),
    };
    changes
        .iter()
        .map(|(def, new)| format!("{}: {} → {}", def.label, shown(current.value(def.key)), shown(new)))
        .collect()
}

fn preview_lines(p: &service::explain::Preview) -> Vec<String> {
    let mut lines = vec![
        format!("{} sessions end now", p.sessions_ending_now),
        format!("{} sessions get shorter", p.sessions_shortened),
        format!("{} sessions are unchanged", p.sessions_unchanged),
    ];
    for (client, c) in &p.by_client {
        lines.push(format!(
            "client {client}: {} end now, {} shorter, {} unchanged",
            c.ending_now, c.shortened, c.unchanged
        ));
    }
    lines
}

/// `POST /console/settings`: refuse bad input inline; before a change that
/// ends or shortens live sessions, show the preview and ask to confirm.
pub async fn settings_save(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let policy = state.policy();
    let refused = |summary: String, errors: Vec<(PolicyKey, String)>| {
        let state = state.clone();
        let viewer = &viewer;
        let form = &form;
        async move {
            let page = settings_page(&state, viewer, Some(form), Some(summary), errors).await;
            render(StatusCode::BAD_REQUEST, page)
        }
    };
    let changes = match settings_changes(&policy.0, &form) {
        Ok(c) => c,
        Err(errors) => {
            let summary = errors.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join(". ");
            return Ok(refused(format!("Nothing was saved. {summary}."), errors).await);
        }
    };
    if changes.is_empty() {
        viewer.flash("Nothing to save: the values are those in force.").await;
        return Ok(see_other("/console/settings"));
    }
    let now = state.now();
    let preview = match service::settings::preview(&state, &changes, now).await {
        Ok(p) => p,
        Err(e) => {
            let (message, errors) = refusal_of(&e);
            return Ok(refused(format!("Nothing was saved: {message}"), errors).await);
        }
    };
    if !form.confirmed() && (preview.sessions_ending_now > 0 || preview.sessions_shortened > 0) {
        let c = Confirm {
            heading: "Apply to live sessions?",
            message: "This change ends or shortens sessions that are live now.".into(),
            details: change_lines(&policy.0, &policy.1, &changes).into_iter().chain(preview_lines(&preview)).collect(),
            action: "/console/settings".into(),
            confirm_label: "Save and apply",
            cancel_href: "/console/settings".into(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::settings::update(&state, &actor(&viewer), &changes, now).await {
        Ok(_) => {
            viewer.flash("Session settings saved.").await;
            see_other("/console/settings")
        }
        Err(e) => {
            let (message, errors) = refusal_of(&e);
            refused(format!("Nothing was saved: {message}"), errors).await
        }
    })
}

/// `POST /console/settings/reset`: drop the values set here, after showing
/// what that does to live sessions.
pub async fn settings_reset(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let now = state.now();
    if !form.confirmed() {
        let all_cleared = PolicyChange::clear_all();
        let details = match service::settings::preview(&state, &all_cleared, now).await {
            Ok(p) => preview_lines(&p),
            Err(e) => vec![message_of(&e)],
        };
        let c = Confirm {
            heading: "Reset session settings?",
            message:
                "Every value set in the console or admin API is dropped; the config file and environment apply again."
                    .into(),
            details,
            action: "/console/settings/reset".into(),
            confirm_label: "Reset",
            cancel_href: "/console/settings".into(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::settings::reset(&state, &actor(&viewer), now).await {
        Ok(_) => {
            viewer.flash("Session settings reset to the file and environment values.").await;
            see_other("/console/settings")
        }
        Err(e) => failed(&viewer, e, "/console/settings").await,
    })
}

// ---- Group policies (SPEC 14) ----

/// The group form: `name`, then `idle_minutes`, `max_minutes`,
/// `ttl_minutes` and `max_sessions`, each empty for the global value.
fn group_form(form: &Form) -> Result<(String, GroupPolicy), String> {
    let name = form.text("name").trim().to_owned();
    let minutes = |field: &str, label: &str| -> Result<Option<Secs>, String> {
        let raw = form.text(field);
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        whole(raw).map(|m| Some(Secs::minutes(m))).ok_or_else(|| format!("{label} must be whole minutes, not {raw:?}"))
    };
    let sessions = form.text("max_sessions");
    let sessions = sessions.trim();
    let max_sessions = if sessions.is_empty() {
        None
    } else {
        Some(sessions.parse::<u32>().map_err(|_| format!("Most sessions must be a whole number, not {sessions:?}"))?)
    };
    Ok((
        name,
        GroupPolicy {
            idle_timeout: minutes("idle_minutes", "Idle timeout")?,
            max_lifetime: minutes("max_minutes", "Maximum duration")?,
            access_token_ttl: minutes("ttl_minutes", "Access token lifetime")?,
            max_sessions,
        },
    ))
}

/// `POST /console/settings/groups`: add or change a group; before a change
/// that ends or shortens live sessions, show the preview and ask to confirm.
pub async fn group_save(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let back = "/console/settings#group-policies";
    let (name, g) = match group_form(&form) {
        Ok(v) => v,
        Err(message) => {
            let page =
                settings_page(&state, &viewer, None, Some(format!("Nothing was saved: {message}.")), Vec::new()).await;
            return Ok(render(StatusCode::BAD_REQUEST, page));
        }
    };
    let now = state.now();
    let preview = match service::groups::preview(&state, &name, Some(&g), now).await {
        Ok(p) => p,
        Err(e) => {
            let page = settings_page(
                &state,
                &viewer,
                None,
                Some(format!("Nothing was saved: {}", message_of(&e))),
                Vec::new(),
            )
            .await;
            return Ok(render(status_of_group(&e), page));
        }
    };
    if !form.confirmed() && (preview.sessions_ending_now > 0 || preview.sessions_shortened > 0) {
        let c = Confirm {
            heading: "Apply to live sessions?",
            message: format!("This change of group {name} ends or shortens sessions of its members that are live now."),
            details: preview_lines(&preview),
            action: "/console/settings/groups".into(),
            confirm_label: "Save and apply",
            cancel_href: back.into(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::groups::put(&state, &actor(&viewer), &name, g, now).await {
        Ok(_) => {
            viewer.flash(format!("Group {name} saved; it applies to its members' sessions at their next check.")).await;
            see_other(back)
        }
        Err(e) => failed(&viewer, e, back).await,
    })
}

fn status_of_group(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `POST /console/settings/groups/{name}/delete`: after showing what it
/// does to live sessions.
pub async fn group_delete(
    State(state): State<ConsoleState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let back = "/console/settings#group-policies";
    let now = state.now();
    if !form.confirmed() {
        let details = match service::groups::preview(&state, &name, None, now).await {
            Ok(p) => preview_lines(&p),
            Err(e) => vec![message_of(&e)],
        };
        let c = Confirm {
            heading: "Delete this group policy?",
            message: format!(
                "The values of group {name} set here are dropped; its members follow the config file's group, or the global policy."
            ),
            details,
            action: format!("/console/settings/groups/{}/delete", super::page::enc(&name)),
            confirm_label: "Delete",
            cancel_href: back.into(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::groups::delete(&state, &actor(&viewer), &name, now).await {
        Ok(_) => {
            viewer.flash(format!("Group policy {name} deleted.")).await;
            see_other(back)
        }
        Err(e) => failed(&viewer, e, back).await,
    })
}
