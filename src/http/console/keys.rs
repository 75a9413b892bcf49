//! `/console/keys` (`system:administer`): the signing keys and rotation.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::ConsoleState;
use super::page::{Confirm, Form, actor, chrome, confirm, failed, render, require_admin, require_admin_form};
use super::session::see_other;
use super::view::{Chrome, Time, span};
use crate::service;

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
