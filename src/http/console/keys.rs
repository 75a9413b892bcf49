//! `/console/keys` (`system:administer`): the signing keys and rotation.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::ConsoleState;
use super::extract::{AdminViewer, Administer, CsrfForm, PageViewer};
use super::page::{Confirm, actor, chrome, confirm, failed, render};
use super::session::see_other;
use super::view::{Chrome, Time, span};
use crate::http::pages::PageError;
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
pub async fn keys(
    State(state): State<ConsoleState>,
    PageViewer { viewer, .. }: AdminViewer,
) -> Result<Response, PageError> {
    let keys = match service::keys::list(&state, state.now()).await {
        Ok(k) => k,
        Err(e) => return Ok(failed(&viewer, e, "/console").await),
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
    Ok(render(StatusCode::OK, KeysPage { chrome: chrome(&viewer, "Signing keys", "/console/keys").await, keys: rows }))
}

/// `POST /console/keys/rotate`.
pub async fn keys_rotate(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    if !form.confirmed() {
        let c = Confirm {
            heading: "Rotate the signing keys?",
            message: "A new key is published and signs new tokens; the current one stays published until every token it signed has expired.".into(),
            details: Vec::new(),
            action: "/console/keys/rotate".into(),
            confirm_label: "Rotate keys",
            cancel_href: "/console/keys".into(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::keys::rotate(&state, &actor(&viewer), state.now()).await {
        Ok(_) => {
            viewer.flash("A new signing key was published.").await;
            see_other("/console/keys")
        }
        Err(e) => failed(&viewer, e, "/console/keys").await,
    })
}
