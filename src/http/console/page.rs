//! What every console handler shares: rendering, the page chrome and
//! navigation, the acting user, and the pages that answer a refusal or ask
//! to confirm. The viewer checks are the extractors of [`super::extract`].

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::ConsoleState;
use super::session::{self, Viewer, see_other};
use super::view::{Chrome, ConfirmPage, MessagePage, NavItem, PlainPage};
use super::{CSS, JS};
use crate::http::form::Form;
use crate::oauth::client::Permission;
use crate::service::{Actor, ServiceError};

pub(super) fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

pub(super) fn nav(viewer: &Viewer, current: &str) -> Vec<NavItem> {
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

pub(super) async fn chrome(viewer: &Viewer, title: &str, current: &str) -> Chrome {
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

pub(super) fn actor(viewer: &Viewer) -> Actor {
    Actor::new(viewer.username(), &viewer.caller.permissions)
}

pub(super) async fn forbidden(viewer: &Viewer, what: Permission) -> Response {
    let page = MessagePage {
        chrome: chrome(viewer, "Not allowed", "").await,
        heading: "You cannot open this page".into(),
        message: format!("This page needs the {} permission, which your account does not have.", what.as_str()),
        back_href: "/console/account".into(),
        back_label: "Go to My sessions".into(),
    };
    render(StatusCode::FORBIDDEN, page)
}

pub(super) fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::Invalid(_) | ServiceError::InvalidGrant(_) | ServiceError::InvalidSetting { .. } => {
            StatusCode::BAD_REQUEST
        }
        ServiceError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(super) fn message_of(e: &ServiceError) -> String {
    match e {
        ServiceError::Invalid(m)
        | ServiceError::InvalidGrant(m)
        | ServiceError::InvalidSetting { message: m, .. }
        | ServiceError::NotFound(m)
        | ServiceError::Conflict(m)
        | ServiceError::Forbidden(m)
        | ServiceError::TooManyRequests { message: m, .. } => m.clone(),
        ServiceError::Unavailable { retry_after_secs: Some(_), .. } => {
            "The database does not answer right now, so nothing was changed; try again in a few seconds.".to_owned()
        }
        ServiceError::Unavailable { .. } => "The server is busy; try again in a moment.".to_owned(),
        ServiceError::Internal(Some(context)) => format!("The server could not complete the request ({context})."),
        _ => "The server could not complete the request.".to_owned(),
    }
}

pub(super) async fn failed(viewer: &Viewer, e: ServiceError, back: &str) -> Response {
    let page = MessagePage {
        chrome: chrome(viewer, "Not done", "").await,
        heading: "That did not work".into(),
        message: message_of(&e),
        back_href: back.to_owned(),
        back_label: "Back".into(),
    };
    let mut response = render(status_of(&e), page);
    // SPEC 12: the database does not answer; the same request may be
    // tried again shortly.
    if let ServiceError::Unavailable { retry_after_secs: Some(secs), .. } = e {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    response
}

pub(super) struct Confirm<'a> {
    pub(super) heading: &'a str,
    pub(super) message: String,
    pub(super) details: Vec<String>,
    pub(super) action: String,
    pub(super) confirm_label: &'a str,
    pub(super) cancel_href: String,
}

pub(super) async fn confirm(viewer: &Viewer, form: &Form, c: Confirm<'_>) -> Response {
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

pub(super) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
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

pub(super) async fn signed_out_of_console(state: &ConsoleState, viewer: &Viewer) -> Response {
    viewer.end(state).await;
    session::clear_cookie(state, see_other("/console/signed-out"))
}
