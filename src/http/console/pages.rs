//! The console's handlers: extract, check the viewer's session, CSRF token
//! and permission, call one use case in `crate::service`, render a template or
//! redirect (post/redirect/get). Destructive actions first answer with a
//! confirmation page (no script needed); the confirmed post carries
//! `confirmed=1`.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value};

use super::ConsoleState;
use super::session::{self, CallbackError, Viewer, see_other};
use super::view::*;
use super::{CSS, JS};
use crate::http::admin::client_input;
use crate::oauth::client::{GrantType, Permission};
use crate::policy::{
    ConsoleControl, ConsoleInput, POLICY_KEYS, PolicyKey, PolicyKeyDef, PolicySources, PolicyValue, SessionPolicy,
    Source,
};
use crate::service::users::UserPatch;
use crate::service::{self, Actor, ServiceError};

/// A posted form, in order; names may repeat (checkboxes).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &Bytes) -> Form {
        Form(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
    fn confirmed(&self) -> bool {
        self.get("confirmed") == Some("1")
    }
    /// Every field but the CSRF token and the confirmation, to post again.
    fn to_repost(&self) -> Vec<(String, String)> {
        self.0.iter().filter(|(k, _)| k != "csrf" && k != "confirmed").cloned().collect()
    }
}

pub(super) fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

fn nav(viewer: &Viewer, current: &str) -> Vec<NavItem> {
    let mut items = Vec::new();
    let mut add =
        |href: &'static str, label: &'static str| items.push(NavItem { href, label, current: href == current });
    if viewer.has(Permission::SystemAdminister) {
        add("/console/settings", "Session settings");
    }
    if viewer.has(Permission::UsersEdit) {
        add("/console/users", "Users");
    }
    if viewer.has(Permission::SystemAdminister) {
        add("/console/clients", "Clients");
        add("/console/keys", "Signing keys");
    }
    if viewer.has(Permission::UsersEdit) {
        add("/console/audit", "Audit log");
    }
    add("/console/account", "My sessions");
    items
}

async fn chrome(viewer: &Viewer, title: &str, current: &str) -> Chrome {
    Chrome {
        title: title.to_owned(),
        username: viewer.username().to_owned(),
        csrf: viewer.csrf.clone(),
        nav: nav(viewer, current),
        flash: viewer.take_flash().await,
        css: &CSS.path,
        js: &JS.path,
    }
}

fn actor(viewer: &Viewer) -> Actor {
    Actor::new(viewer.username(), &viewer.caller.permissions)
}

/// The viewer of a page, or the redirect to sign in and come back.
async fn page_viewer(state: &ConsoleState, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
    session::viewer(state, headers, path).await
}

/// The viewer of a posted form with a valid CSRF token. Without a session
/// the browser signs in and lands on the console's start page (a post cannot
/// be replayed).
async fn form_viewer(state: &ConsoleState, headers: &HeaderMap, form: &Form) -> Result<Viewer, Response> {
    let viewer = session::viewer(state, headers, "/console").await?;
    if form.0.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
        // No field may hold NUL (PostgreSQL could not store it): refused
        // alike with either store (SPEC 7).
        let page = MessagePage {
            chrome: chrome(&viewer, "Bad form", "").await,
            heading: "This form cannot be used".into(),
            message: "A field holds a NUL character, which no name or value may contain, so nothing was changed."
                .into(),
            back_href: "/console".into(),
            back_label: "Back to the console".into(),
        };
        return Err(render(StatusCode::BAD_REQUEST, page));
    }
    if !viewer.csrf_ok(state, form.get("csrf").unwrap_or_default()) {
        let page = MessagePage {
            chrome: chrome(&viewer, "Form expired", "").await,
            heading: "This form has expired".into(),
            message: "The form did not carry this console session's security token, so nothing was changed. Go back, reload the page and try again.".into(),
            back_href: "/console".into(),
            back_label: "Back to the console".into(),
        };
        return Err(render(StatusCode::FORBIDDEN, page));
    }
    Ok(viewer)
}

async fn forbidden(viewer: &Viewer, what: Permission) -> Response {
    let page = MessagePage {
        chrome: chrome(viewer, "Not allowed", "").await,
        heading: "You cannot open this page".into(),
        message: format!("This page needs the {} permission, which your account does not have.", what.as_str()),
        back_href: "/console/account".into(),
        back_label: "Go to My sessions".into(),
    };
    render(StatusCode::FORBIDDEN, page)
}

fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::Invalid(_) | ServiceError::InvalidSetting { .. } => StatusCode::BAD_REQUEST,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn message_of(e: &ServiceError) -> String {
    match e {
        ServiceError::Invalid(m)
        | ServiceError::InvalidSetting { message: m, .. }
        | ServiceError::NotFound(m)
        | ServiceError::Conflict(m)
        | ServiceError::Forbidden(m) => m.clone(),
        ServiceError::Unavailable { .. } => "The server is busy; try again in a moment.".to_owned(),
        ServiceError::Internal(Some(context)) => format!("The server could not complete the request ({context})."),
        _ => "The server could not complete the request.".to_owned(),
    }
}

async fn failed(viewer: &Viewer, e: ServiceError, back: &str) -> Response {
    let page = MessagePage {
        chrome: chrome(viewer, "Not done", "").await,
        heading: "That did not work".into(),
        message: message_of(&e),
        back_href: back.to_owned(),
        back_label: "Back".into(),
    };
    render(status_of(&e), page)
}

struct Confirm<'a> {
    heading: &'a str,
    message: String,
    details: Vec<String>,
    action: String,
    confirm_label: &'a str,
    cancel_href: String,
}

async fn confirm(viewer: &Viewer, form: &Form, c: Confirm<'_>) -> Response {
    let page = ConfirmPage {
        chrome: chrome(viewer, c.heading, "").await,
        heading: c.heading.to_owned(),
        message: c.message,
        details: c.details,
        action: c.action,
        hidden: form.to_repost(),
        confirm_label: c.confirm_label.to_owned(),
        cancel_href: c.cancel_href,
        danger: true,
    };
    render(StatusCode::OK, page)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- sign-in and sign-out ----

/// `/console`: the first page the viewer may see.
pub async fn home(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let viewer = match session::viewer(&state, &headers, "/console").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if viewer.has(Permission::SystemAdminister) {
        see_other("/console/settings")
    } else if viewer.has(Permission::UsersEdit) {
        see_other("/console/users")
    } else {
        see_other("/console/account")
    }
}

pub(super) fn plain(status: StatusCode, heading: &str, message: &str, alert: bool) -> Response {
    let page = PlainPage {
        heading: heading.to_owned(),
        message: message.to_owned(),
        alert,
        link_href: "/console",
        link_label: "Sign in to the console",
        css: &CSS.path,
    };
    render(status, page)
}

/// `/console/callback`: the end of the console's code + PKCE flow.
pub async fn callback(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match session::finish_sign_in(&state, &headers, &params).await {
        Ok(response) => response,
        Err(CallbackError::NoSignIn) => plain(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser, was already used, or took too long. Sign in again.",
            true,
        ),
        Err(CallbackError::Refused(reason)) => {
            plain(StatusCode::BAD_REQUEST, "Sign-in failed", &format!("The sign-in did not complete: {reason}"), true)
        }
    }
}

/// `POST /console/sign-out`: revoke the console's family, forget the tokens,
/// clear the cookie.
pub async fn sign_out(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(fid) = session::family_of(&viewer) {
        let revocation = state.revocation(state.now());
        if let Err(e) = revocation.family(fid, viewer.username(), "console_signed_out").await {
            tracing::error!(error = %e, "revoking the console's family at sign-out");
            return failed(&viewer, ServiceError::Internal(Some("signing out".into())), "/console").await;
        }
    }
    signed_out_of_console(&state, &viewer).await
}

async fn signed_out_of_console(state: &ConsoleState, viewer: &Viewer) -> Response {
    viewer.end(state).await;
    session::clear_cookie(state, see_other("/console/signed-out"))
}

/// `/console/signed-out`: the landing page of a sign-out clears the
/// browser's cache again (a browser may not act on `Clear-Site-Data` of the
/// redirect that led here).
pub async fn signed_out() -> Response {
    let mut response = plain(StatusCode::OK, "Signed out", "You have signed out of the tenure console.", false);
    response.headers_mut().insert("clear-site-data", HeaderValue::from_static(session::CLEAR_CACHE));
    response
}

pub async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Page not found", "There is no such page in the console.", true)
}

// ---- session settings ----

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
        PolicyValue::Off => (false, PRESETS[0].0.to_string(), String::new()),
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
fn console_keys() -> impl Iterator<Item = (&'static PolicyKeyDef, ConsoleControl)> {
    POLICY_KEYS.iter().filter_map(|d| d.console.map(|c| (d, c)))
}

/// A note under a fieldset's legend.
fn group_note(legend: &str) -> Option<&'static str> {
    (legend == "Remember me").then_some("For sign-ins with \"Remember me\" ticked.")
}

/// Seconds of a duration value (`off` shows as 0 where only durations go).
fn shown_secs(v: PolicyValue) -> u64 {
    match v {
        PolicyValue::Secs(d) => d.as_secs(),
        PolicyValue::Off => 0,
    }
}

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
    }
}

/// `GET /console/settings` (`system:administer`).
pub async fn settings(State(state): State<ConsoleState>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::SystemAdminister) {
        return forbidden(&viewer, Permission::SystemAdminister).await;
    }
    let page = settings_page(&state, &viewer, None, None, Vec::new()).await;
    render(StatusCode::OK, page)
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
fn settings_changes(p: &SessionPolicy, form: &Form) -> Result<Map<String, Value>, Vec<(PolicyKey, String)>> {
    let mut changes = Map::new();
    let mut errors = Vec::new();
    let shown_idle = |v: PolicyValue| match v {
        PolicyValue::Off => None,
        PolicyValue::Secs(d) => Some(d.as_secs()),
    };
    // Checked idle timeouts first, then durations, minutes, seconds: the
    // order the refusal lists its complaints in.
    let mut keys: Vec<_> = console_keys().collect();
    keys.sort_by_key(|(_, c)| match c.input {
        ConsoleInput::IdleSwitch { .. } => 0,
        ConsoleInput::DaysHoursMinutes { .. } => 1,
        ConsoleInput::Minutes { .. } => 2,
        ConsoleInput::Seconds { .. } => 3,
    });
    for (def, control) in keys {
        let current = (def.effective)(p);
        let shown = shown_secs(current);
        let typed: Result<Option<Value>, String> = match control.input {
            ConsoleInput::IdleSwitch { prefix } => typed_idle(form, prefix)
                .map(|t| (t != shown_idle(current)).then(|| t.map(Value::from).unwrap_or_else(|| Value::from("off")))),
            ConsoleInput::DaysHoursMinutes { prefix } => {
                typed_lifetime(form, prefix).map(|secs| (secs != shown - shown % 60).then(|| secs.into()))
            }
            ConsoleInput::Minutes { name, .. } => match form.text(name).parse::<u64>() {
                Ok(m) if m >= 1 => Ok((m != shown.div_ceil(60)).then(|| m.saturating_mul(60).into())),
                _ => Err(format!("{}: a whole number of minutes, 1 or more", def.label)),
            },
            ConsoleInput::Seconds { name, .. } => match form.text(name).parse::<u64>() {
                Ok(s) => Ok((s != shown).then(|| s.into())),
                Err(_) => Err(format!("{}: a whole number of seconds, 0 or more", def.label)),
            },
        };
        match typed {
            Ok(Some(value)) => {
                changes.insert(def.name.to_owned(), value);
            }
            Ok(None) => {}
            Err(e) => errors.push((def.key, e)),
        }
    }
    if errors.is_empty() { Ok(changes) } else { Err(errors) }
}

/// The control a refusal of the settings use case concerns ("... (field
/// idle_timeout)").
fn control_of(message: &str) -> Option<PolicyKey> {
    let field = message.rsplit_once("(field ")?.1.trim_end_matches(')');
    console_keys().find(|(d, _)| d.name == field).map(|(d, _)| d.key)
}

/// What a change sets, old value to new, in the words of the settings page.
fn change_lines(policy: &SessionPolicy, sources: &PolicySources, changes: &Map<String, Value>) -> Vec<String> {
    let current = service::settings::view(policy, sources);
    let shown = |v: &Value| match v {
        Value::Number(n) => n.as_u64().map_or_else(|| n.to_string(), |s| crate::duration::Secs::new(s).to_string()),
        Value::String(s) => s.clone(),
        Value::Null => "the file or environment value".to_owned(),
        other => other.to_string(),
    };
    changes
        .iter()
        .map(|(key, new)| {
            let label = POLICY_KEYS.iter().find(|d| d.name == key).map_or(key.as_str(), |d| d.label);
            format!("{label}: {} → {}", shown(&current[key.as_str()]), shown(new))
        })
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
pub async fn settings_save(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::SystemAdminister) {
        return forbidden(&viewer, Permission::SystemAdminister).await;
    }
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
            return refused(format!("Nothing was saved. {summary}."), errors).await;
        }
    };
    if changes.is_empty() {
        viewer.flash("Nothing to save: the values are those in force.").await;
        return see_other("/console/settings");
    }
    let now = state.now();
    let preview = match service::settings::preview(&state, &changes, now).await {
        Ok(p) => p,
        Err(e) => {
            let message = message_of(&e);
            let errors = control_of(&message).map(|c| vec![(c, message.clone())]).unwrap_or_default();
            return refused(format!("Nothing was saved: {message}"), errors).await;
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
        return confirm(&viewer, &form, c).await;
    }
    match service::settings::update(&state, &actor(&viewer), &changes, now).await {
        Ok(_) => {
            viewer.flash("Session settings saved.").await;
            see_other("/console/settings")
        }
        Err(e) => {
            let message = message_of(&e);
            let errors = control_of(&message).map(|c| vec![(c, message.clone())]).unwrap_or_default();
            refused(format!("Nothing was saved: {message}"), errors).await
        }
    }
}

/// `POST /console/settings/reset`: drop the values set here, after showing
/// what that does to live sessions.
pub async fn settings_reset(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::SystemAdminister) {
        return forbidden(&viewer, Permission::SystemAdminister).await;
    }
    let now = state.now();
    if !form.confirmed() {
        let all_cleared: Map<String, Value> =
            POLICY_KEYS.iter().filter(|d| d.admin_settable).map(|d| (d.name.to_owned(), Value::Null)).collect();
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
        return confirm(&viewer, &form, c).await;
    }
    match service::settings::reset(&state, &actor(&viewer), now).await {
        Ok(_) => {
            viewer.flash("Session settings reset to the file and environment values.").await;
            see_other("/console/settings")
        }
        Err(e) => failed(&viewer, e, "/console/settings").await,
    }
}

// ---- users ----

#[derive(serde::Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    query: String,
    #[serde(default)]
    page: Option<String>,
}

async fn users_page(
    state: &ConsoleState,
    viewer: &Viewer,
    query: &str,
    page: usize,
    error: Option<String>,
    typed: Option<&Form>,
) -> Response {
    let listed = match service::users::list(state, Some(query), page).await {
        Ok(l) => l,
        Err(e) => return failed(viewer, e, "/console/users").await,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = UsersPage {
        chrome: chrome(viewer, "Users", "/console/users").await,
        query: query.to_owned(),
        users: listed.users,
        page: listed.page,
        next_page: listed.next_page,
        error,
        form_username: typed.map(|f| f.text("username")).unwrap_or_default(),
        form_email: typed.map(|f| f.text("email")).unwrap_or_default(),
        can_set_permissions: viewer.has(Permission::SystemAdminister),
    };
    render(status, page)
}

/// `GET /console/users?query=&page=` (`users:edit`).
pub async fn users(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<UsersQuery>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::UsersEdit) {
        return forbidden(&viewer, Permission::UsersEdit).await;
    }
    let page = q.page.as_deref().and_then(|p| p.parse().ok()).filter(|p| *p > 0).unwrap_or(1);
    users_page(&state, &viewer, q.query.trim(), page, None, None).await
}

/// `POST /console/users`: create a user.
pub async fn user_create(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::UsersEdit) {
        return forbidden(&viewer, Permission::UsersEdit).await;
    }
    let username = form.text("username");
    let email = Some(form.text("email")).filter(|e| !e.is_empty());
    let new = service::users::NewUser {
        username: username.clone(),
        password: form.get("password").map(str::to_owned).filter(|p| !p.is_empty()),
        password_hash: None,
        email,
        name: None,
        permissions: form.all("permissions"),
        disabled: false,
    };
    match service::users::create(&state, &actor(&viewer), new, state.now()).await {
        Ok(user) => {
            viewer.flash(format!("User {} created.", user.username)).await;
            see_other(&format!("/console/users/{}", enc(&user.username)))
        }
        Err(e) => users_page(&state, &viewer, "", 1, Some(message_of(&e)), Some(&form)).await,
    }
}

async fn user_page(state: &ConsoleState, viewer: &Viewer, username: &str, error: Option<ServiceError>) -> Response {
    let user = match service::users::show(state, username).await {
        Ok(u) => u,
        Err(e) => return failed(viewer, e, "/console/users").await,
    };
    let now = state.now();
    let sessions =
        match service::sessions::live_sessions(state, username, viewer.caller.claims.sid.as_deref(), now).await {
            Ok(s) => s,
            Err(e) => return failed(viewer, e, "/console/users").await,
        };
    let rows = sessions
        .into_iter()
        .map(|s| {
            let action = format!("/console/users/{}/sessions/{}/revoke", enc(username), enc(&s.sid));
            SessionRow::of(s, action, "Revoke")
        })
        .collect();
    let status = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let error = error.as_ref().map(message_of);
    let has = |p: Permission| user.permissions.iter().any(|q| q == p.as_str());
    let page = UserPage {
        chrome: chrome(viewer, &user.username, "/console/users").await,
        read_only: user.source == "config",
        error,
        can_set_permissions: viewer.has(Permission::SystemAdminister),
        has_administer: has(Permission::SystemAdminister),
        has_users_edit: has(Permission::UsersEdit),
        sessions: rows,
        sessions_caption: "Live sessions",
        user,
    };
    render(status, page)
}

/// `GET /console/users/{username}` (`users:edit`).
pub async fn user(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    Path(username): Path<String>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::UsersEdit) {
        return forbidden(&viewer, Permission::UsersEdit).await;
    }
    user_page(&state, &viewer, &username, None).await
}

/// `POST /console/users/{username}/{disable|enable|password|permissions}`.
pub async fn user_action(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path((username, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::UsersEdit) {
        return forbidden(&viewer, Permission::UsersEdit).await;
    }
    let back = format!("/console/users/{}", enc(&username));
    let mut patch = UserPatch::default();
    let done = match action.as_str() {
        "disable" => {
            if !form.confirmed() {
                let c = Confirm {
                    heading: "Disable this user?",
                    message: format!(
                        "{username} is signed out everywhere at once and cannot sign in until enabled again."
                    ),
                    details: Vec::new(),
                    action: format!("{back}/disable"),
                    confirm_label: "Disable user",
                    cancel_href: back.clone(),
                };
                return confirm(&viewer, &form, c).await;
            }
            patch.disabled = Some(true);
            format!("{username} is disabled and signed out everywhere.")
        }
        "enable" => {
            patch.disabled = Some(false);
            format!("{username} is enabled.")
        }
        "password" => {
            patch.password = Some(form.get("password").unwrap_or_default().to_owned());
            format!("The password of {username} was reset.")
        }
        "permissions" => {
            patch.permissions = Some(form.all("permissions").into_iter().map(Into::into).collect());
            format!("The permissions of {username} were saved; they apply from the user's next token.")
        }
        _ => return not_found().await,
    };
    let actor = actor(&viewer);
    let updated = match service::users::editable(&state, &actor, &username).await {
        Ok(user) => service::users::update(&state, &actor, user, patch, state.now()).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(_) => {
            viewer.flash(done).await;
            see_other(&back)
        }
        Err(ServiceError::NotFound(m)) => failed(&viewer, ServiceError::NotFound(m), "/console/users").await,
        Err(e) => user_page(&state, &viewer, &username, Some(e)).await,
    }
}

/// `POST /console/users/{username}/sessions/revoke-all`.
pub async fn user_revoke_all(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::UsersEdit) {
        return forbidden(&viewer, Permission::UsersEdit).await;
    }
    let back = format!("/console/users/{}", enc(&username));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Revoke all sessions?",
            message: format!("{username} is signed out of every app on every device at once."),
            details: Vec::new(),
            action: format!("{back}/sessions/revoke-all"),
            confirm_label: "Revoke all sessions",
            cancel_href: back.clone(),
        };
        return confirm(&viewer, &form, c).await;
    }
    match service::sessions::revoke_user(&state, &actor(&viewer), &username, state.now()).await {
        Ok(()) => {
            if username == viewer.username() {
                return signed_out_of_console(&state, &viewer).await;
            }
            viewer.flash(format!("Every session of {username} was revoked.")).await;
            see_other(&back)
        }
        Err(e) => failed(&viewer, e, &back).await,
    }
}

/// `POST /console/users/{username}/sessions/{sid}/revoke`.
pub async fn user_revoke_session(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path((username, sid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::UsersEdit) {
        return forbidden(&viewer, Permission::UsersEdit).await;
    }
    let back = format!("/console/users/{}", enc(&username));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Revoke this session?",
            message: format!("{username} is signed out of every app that signed in through this session."),
            details: Vec::new(),
            action: format!("{back}/sessions/{}/revoke", enc(&sid)),
            confirm_label: "Revoke",
            cancel_href: back.clone(),
        };
        return confirm(&viewer, &form, c).await;
    }
    match service::sessions::revoke_user_session(&state, &actor(&viewer), &username, &sid, state.now()).await {
        Ok(()) => {
            if viewer.caller.claims.sid.as_deref() == Some(sid.as_str()) {
                return signed_out_of_console(&state, &viewer).await;
            }
            viewer.flash("The session was revoked.").await;
            see_other(&back)
        }
        Err(e) => failed(&viewer, e, &back).await,
    }
}

// ---- clients ----

fn limits_text(spec: &crate::oauth::client_spec::ClientSpec) -> String {
    let Some(s) = &spec.session else { return "global".to_owned() };
    let mut parts = Vec::new();
    if let Some(d) = s.idle_timeout {
        parts.push(format!("idle {}", span(d.as_secs())));
    }
    if let Some(d) = s.max_lifetime {
        parts.push(format!("max {}", span(d.as_secs())));
    }
    if let Some(d) = s.access_token_ttl {
        parts.push(format!("access token {}", span(d.as_secs())));
    }
    if parts.is_empty() { "global".to_owned() } else { parts.join(", ") }
}

async fn require_admin(state: &ConsoleState, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
    let viewer = page_viewer(state, headers, uri).await?;
    if !viewer.has(Permission::SystemAdminister) {
        return Err(forbidden(&viewer, Permission::SystemAdminister).await);
    }
    Ok(viewer)
}

async fn require_admin_form(state: &ConsoleState, headers: &HeaderMap, form: &Form) -> Result<Viewer, Response> {
    let viewer = form_viewer(state, headers, form).await?;
    if !viewer.has(Permission::SystemAdminister) {
        return Err(forbidden(&viewer, Permission::SystemAdminister).await);
    }
    Ok(viewer)
}

/// `GET /console/clients` (`system:administer`).
pub async fn clients(State(state): State<ConsoleState>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match require_admin(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rows = service::clients::list(&state)
        .into_iter()
        .map(|c| ClientRow {
            name: c.spec.name.clone().unwrap_or_default(),
            public: c.spec.public,
            grant_types: c.spec.grant_types.join(", "),
            limits: limits_text(&c.spec),
            editable: c.source == "admin",
            source: c.source,
            id: c.spec.id,
        })
        .collect();
    render(StatusCode::OK, ClientsPage { chrome: chrome(&viewer, "Clients", "/console/clients").await, clients: rows })
}

fn grant_boxes(checked: &[String]) -> Vec<(&'static str, bool)> {
    GrantType::ALL.iter().map(|g| (g.as_str(), checked.iter().any(|c| c == g.as_str()))).collect()
}

fn client_form_of(spec: &crate::oauth::client_spec::ClientSpec) -> ClientForm {
    let session = spec.session.as_ref();
    let dur = |d: Option<crate::duration::Secs>| d.map(|d| d.to_string()).unwrap_or_default();
    ClientForm {
        id: spec.id.clone(),
        name: spec.name.clone().unwrap_or_default(),
        public: spec.public,
        redirect_uris: spec.redirect_uris.join("\n"),
        web_origins: spec.web_origins.join("\n"),
        grant_types: grant_boxes(&spec.grant_types),
        scopes: spec.scopes.as_ref().map(|s| s.join(" ")).unwrap_or_default(),
        idle: dur(session.and_then(|s| s.idle_timeout)),
        max: dur(session.and_then(|s| s.max_lifetime)),
        access: dur(session.and_then(|s| s.access_token_ttl)),
    }
}

fn client_form_typed(form: &Form) -> ClientForm {
    ClientForm {
        id: form.text("id"),
        name: form.text("name"),
        public: form.get("public") == Some("on"),
        redirect_uris: form.get("redirect_uris").unwrap_or_default().to_owned(),
        web_origins: form.get("web_origins").unwrap_or_default().to_owned(),
        grant_types: grant_boxes(&form.all("grant_types")),
        scopes: form.text("scopes"),
        idle: form.text("session_idle_timeout"),
        max: form.text("session_max_lifetime"),
        access: form.text("session_access_token_ttl"),
    }
}

/// The admin API's body for the client form.
fn client_body(form: &Form) -> Map<String, Value> {
    let lines = |name: &str| -> Value {
        form.get(name)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| Value::from(l.to_owned()))
            .collect::<Vec<_>>()
            .into()
    };
    let mut body = Map::new();
    body.insert("id".into(), form.text("id").into());
    let name = form.text("name");
    if !name.is_empty() {
        body.insert("name".into(), name.into());
    }
    body.insert("public".into(), (form.get("public") == Some("on")).into());
    body.insert("redirect_uris".into(), lines("redirect_uris"));
    body.insert("web_origins".into(), lines("web_origins"));
    body.insert("grant_types".into(), form.all("grant_types").into());
    let scopes: Vec<Value> = form.text("scopes").split_whitespace().map(|s| Value::from(s.to_owned())).collect();
    if !scopes.is_empty() {
        body.insert("scopes".into(), scopes.into());
    }
    let mut session = Map::new();
    for key in ["idle_timeout", "max_lifetime", "access_token_ttl"] {
        let v = form.text(&format!("session_{key}"));
        if !v.is_empty() {
            session.insert(key.into(), v.into());
        }
    }
    if !session.is_empty() {
        body.insert("session".into(), session.into());
    }
    body
}

/// `GET /console/clients/new`.
pub async fn client_new(State(state): State<ConsoleState>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match require_admin(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let f = ClientForm {
        grant_types: grant_boxes(&["authorization_code".to_owned(), "refresh_token".to_owned()]),
        scopes: "openid profile email".into(),
        ..ClientForm::default()
    };
    let page =
        ClientPage { chrome: chrome(&viewer, "New client", "/console/clients").await, creating: true, f, error: None };
    render(StatusCode::OK, page)
}

async fn secret_page(viewer: &Viewer, client_id: String, secret: String) -> Response {
    let page = SecretPage { chrome: chrome(viewer, "Client secret", "/console/clients").await, client_id, secret };
    render(StatusCode::OK, page)
}

/// `POST /console/clients`: create; a generated secret is shown once.
pub async fn client_create(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let viewer = match require_admin_form(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let created = match client_input(client_body(&form)) {
        Ok(input) => service::clients::create(&state, &actor(&viewer), input, state.now()).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(created) => match created.client_secret {
            Some(secret) => secret_page(&viewer, created.client.spec.id, secret).await,
            None => {
                viewer.flash(format!("Client {} created.", created.client.spec.id)).await;
                see_other(&format!("/console/clients/{}", enc(&created.client.spec.id)))
            }
        },
        Err(e) => {
            let status = status_of(&e);
            let page = ClientPage {
                chrome: chrome(&viewer, "New client", "/console/clients").await,
                creating: true,
                f: client_form_typed(&form),
                error: Some(format!("Nothing was saved: {}", message_of(&e))),
            };
            render(status, page)
        }
    }
}

/// `GET /console/clients/{id}`.
pub async fn client(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let viewer = match require_admin(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match service::clients::show(&state, &id) {
        Ok(c) => {
            let page = ClientPage {
                chrome: chrome(&viewer, &format!("Client {id}"), "/console/clients").await,
                creating: false,
                f: client_form_of(&c.spec),
                error: (c.source != "admin").then(|| {
                    format!("Client {id} is not managed here ({}); it cannot be changed in the console.", c.source)
                }),
            };
            render(StatusCode::OK, page)
        }
        Err(e) => failed(&viewer, e, "/console/clients").await,
    }
}

/// `POST /console/clients/{id}`: replace the client's settings.
pub async fn client_save(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match require_admin_form(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut body = client_body(&form);
    body.insert("id".into(), id.clone().into());
    let saved = match service::clients::editable(&state, &id).await {
        Ok(old) => match client_input(body) {
            Ok(input) => service::clients::replace(&state, &actor(&viewer), old, input, state.now()).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match saved {
        Ok(saved) => match saved.client_secret {
            Some(secret) => secret_page(&viewer, id, secret).await,
            None => {
                viewer.flash(format!("Client {id} saved.")).await;
                see_other(&format!("/console/clients/{}", enc(&id)))
            }
        },
        Err(e) => {
            let status = status_of(&e);
            let mut f = client_form_typed(&form);
            f.id = id.clone();
            let page = ClientPage {
                chrome: chrome(&viewer, &format!("Client {id}"), "/console/clients").await,
                creating: false,
                f,
                error: Some(format!("Nothing was saved: {}", message_of(&e))),
            };
            render(status, page)
        }
    }
}

/// `POST /console/clients/{id}/secret`: a new secret, shown once.
pub async fn client_secret(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match require_admin_form(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = format!("/console/clients/{}", enc(&id));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Rotate the secret?",
            message: format!("Client {id} gets a new secret; the current one stops working at once."),
            details: Vec::new(),
            action: format!("{back}/secret"),
            confirm_label: "Rotate secret",
            cancel_href: back.clone(),
        };
        return confirm(&viewer, &form, c).await;
    }
    match service::clients::rotate_secret(&state, &actor(&viewer), &id, state.now()).await {
        Ok(rotated) => match rotated.client_secret {
            Some(secret) => secret_page(&viewer, id, secret).await,
            None => see_other(&back),
        },
        Err(e) => failed(&viewer, e, &back).await,
    }
}

/// `POST /console/clients/{id}/delete`.
pub async fn client_delete(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match require_admin_form(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = format!("/console/clients/{}", enc(&id));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Delete this client?",
            message: format!("Client {id} is deleted and every session of it is revoked. This cannot be undone."),
            details: Vec::new(),
            action: format!("{back}/delete"),
            confirm_label: "Delete client",
            cancel_href: back.clone(),
        };
        return confirm(&viewer, &form, c).await;
    }
    match service::clients::delete(&state, &actor(&viewer), &id, state.now()).await {
        Ok(revoked) => {
            viewer.flash(format!("Client {id} deleted; {revoked} of its sessions were revoked.")).await;
            see_other("/console/clients")
        }
        Err(e) => failed(&viewer, e, &back).await,
    }
}

// ---- signing keys ----

/// `GET /console/keys` (`system:administer`).
pub async fn keys(State(state): State<ConsoleState>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match require_admin(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let keys = match service::keys::list(&state, state.now()).await {
        Ok(k) => k,
        Err(e) => return failed(&viewer, e, "/console").await,
    };
    let rows = keys
        .into_iter()
        .map(|k| KeyRow {
            age: span(k.age_seconds),
            created: Time::from_rfc3339(&k.created_at),
            published_until: k.published_until.as_deref().map(Time::from_rfc3339),
            kid: k.kid,
            alg: k.alg,
            role: k.role,
            state: k.state,
        })
        .collect();
    render(StatusCode::OK, KeysPage { chrome: chrome(&viewer, "Signing keys", "/console/keys").await, keys: rows })
}

/// `POST /console/keys/rotate`.
pub async fn keys_rotate(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let viewer = match require_admin_form(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !form.confirmed() {
        let c = Confirm {
            heading: "Rotate the signing keys?",
            message: "A new key is published and signs new tokens; the current one stays published until every token it signed has expired.".into(),
            details: Vec::new(),
            action: "/console/keys/rotate".into(),
            confirm_label: "Rotate keys",
            cancel_href: "/console/keys".into(),
        };
        return confirm(&viewer, &form, c).await;
    }
    match service::keys::rotate(&state, &actor(&viewer), state.now()).await {
        Ok(_) => {
            viewer.flash("A new signing key was published.").await;
            see_other("/console/keys")
        }
        Err(e) => failed(&viewer, e, "/console/keys").await,
    }
}

// ---- audit log ----

/// `GET /console/audit?user=&kind=&before=` (`users:edit`).
pub async fn audit(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !viewer.has(Permission::UsersEdit) {
        return forbidden(&viewer, Permission::UsersEdit).await;
    }
    let raw = raw.as_deref();
    let pairs: HashMap<String, String> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let (user, kind) = (pairs.get("user").cloned().unwrap_or_default(), pairs.get("kind").cloned().unwrap_or_default());
    let result = match service::audit::PageRequest::parse(raw)
        .and_then(|page| Ok((page, service::audit::Filter::parse(raw)?)))
    {
        Ok((page, filter)) => service::audit::page(&state, page, &filter).await,
        Err(e) => Err(e),
    };
    let (events, next, error, status) = match result {
        Ok(p) => (p.events, p.next, None, StatusCode::OK),
        Err(e) => (Vec::new(), None, Some(message_of(&e)), status_of(&e)),
    };
    let rows = events
        .into_iter()
        .map(|e| EventRow {
            at: Time::from_rfc3339(&e.at),
            kind: e.kind,
            actor: e.actor,
            target: e.target,
            reason: e.reason.unwrap_or_default(),
        })
        .collect();
    let page = AuditPage {
        chrome: chrome(&viewer, "Audit log", "/console/audit").await,
        user,
        kind,
        events: rows,
        next,
        error,
    };
    render(status, page)
}

// ---- my sessions ----

/// `GET /console/account`: the viewer's own sessions (everyone).
pub async fn account(State(state): State<ConsoleState>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let current = viewer.caller.claims.sid.clone();
    let sessions =
        match service::sessions::live_sessions(&state, viewer.username(), current.as_deref(), state.now()).await {
            Ok(s) => s,
            Err(e) => return failed(&viewer, e, "/console/account").await,
        };
    let rows = sessions
        .into_iter()
        .map(|s| {
            let label = if s.current { "Sign out this session" } else { "Sign out" };
            let action = format!("/console/account/sessions/{}/revoke", enc(&s.sid));
            SessionRow::of(s, action, label)
        })
        .collect();
    let page = AccountPage {
        chrome: chrome(&viewer, "My sessions", "/console/account").await,
        sessions: rows,
        sessions_caption: "Your sessions",
    };
    render(StatusCode::OK, page)
}

/// `POST /console/account/sessions/{sid}/revoke`: sign out one of the
/// viewer's sessions; the current one signs the console out too.
pub async fn account_revoke(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let username = viewer.username().to_owned();
    match service::sessions::revoke_own(&state, &username, &sid, state.now()).await {
        Ok(()) if viewer.caller.claims.sid.as_deref() == Some(sid.as_str()) => {
            signed_out_of_console(&state, &viewer).await
        }
        Ok(()) => {
            viewer.flash("That session was signed out.").await;
            see_other("/console/account")
        }
        Err(e) => failed(&viewer, e, "/console/account").await,
    }
}

/// `POST /console/account/sign-out-everywhere`.
pub async fn account_sign_out_everywhere(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let viewer = match form_viewer(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !form.confirmed() {
        let c = Confirm {
            heading: "Sign out everywhere?",
            message: "Every session of yours ends, this one included: every app on every device signs you out.".into(),
            details: Vec::new(),
            action: "/console/account/sign-out-everywhere".into(),
            confirm_label: "Sign out everywhere",
            cancel_href: "/console/account".into(),
        };
        return confirm(&viewer, &form, c).await;
    }
    let username = viewer.username().to_owned();
    match service::sessions::revoke_own_all(&state, &username, state.now()).await {
        Ok(()) => signed_out_of_console(&state, &viewer).await,
        Err(e) => failed(&viewer, e, "/console/account").await,
    }
}
