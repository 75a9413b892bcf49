//! `/console/audit` (`users:edit`): the audit log, filtered and paged.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::ConsoleState;
use super::extract::{PageViewer, UsersViewer};
use super::page::{chrome, message_of, render, status_of};
use super::view::{Chrome, Time};
use crate::http::pages::PageError;
use crate::service;

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

/// `GET /console/audit?user=&kind=&before=` (`users:edit`).
pub async fn audit(
    State(state): State<ConsoleState>,
    RawQuery(raw): RawQuery,
    PageViewer { viewer, .. }: UsersViewer,
) -> Result<Response, PageError> {
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
    Ok(render(status, page))
}
