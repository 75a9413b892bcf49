//! The audit log as administrators read it (SPEC 4, 9; `system:administer`
//! or `users:edit`, checked by the caller): newest first, paged by event id.
//! The JSON handler (`http/audit.rs`) and the console call [`page`].
//!
//! `?limit=` takes 1 to 500 events (50 by default); `?before=<id>` continues
//! after a page, with the `next` the previous page answered (`null` on the
//! last page). `?kind=` keeps events of one kind; `?user=` those a user did
//! or that were done to them or their sessions. A filtered page examines at
//! most [`SCAN_LIMIT`] events; when it stops there, `next` continues the
//! search (the page may then hold fewer events than `limit`).

use serde::Serialize;

use super::error::{Result, ServiceError};
use crate::audit::{AuditEvent, EventKind};
use crate::service::AppState;
use crate::store::Store;

/// Which page of the audit log to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// Only events strictly older than this id.
    pub before: Option<u64>,
}

/// Which events to show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub kind: Option<String>,
    pub user: Option<String>,
}

impl Filter {
    pub fn parse(query: Option<&str>) -> Result<Filter> {
        let mut filter = Filter::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "kind" => &mut filter.kind,
                "user" => &mut filter.user,
                _ => continue,
            };
            if value.is_empty() {
                continue;
            }
            if key == "kind" && EventKind::parse(&value).is_none() {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(ServiceError::Invalid(format!(
                    "kind: there is no event kind {:?}; the kinds are {}",
                    value.chars().take(40).collect::<String>(),
                    known.join(", ")
                )));
            }
            if slot.replace(value.into_owned()).is_some() {
                return Err(ServiceError::Invalid(format!("the {key} parameter is given more than once")));
            }
        }
        Ok(filter)
    }

    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.user.is_none()
    }

    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.kind.as_ref().is_none_or(|k| e.kind.as_str() == k)
            && self.user.as_ref().is_none_or(|u| {
                e.actor == *u
                    || e.target == format!("user:{u}")
                    || e.details.get("sub").and_then(|s| s.as_str()) == Some(u.as_str())
                    || e.details.get("username").and_then(|s| s.as_str()) == Some(u.as_str())
            })
    }
}

/// The most events one filtered page examines.
pub const SCAN_LIMIT: usize = 20_000;

impl PageRequest {
    pub const DEFAULT_LIMIT: usize = 50;
    pub const MAX_LIMIT: usize = 500;

    /// Parse the query string (`None` when there is none). Other parameters
    /// are ignored; a bad or repeated `limit` or `before` is refused with a
    /// message naming it.
    pub fn parse(query: Option<&str>) -> Result<PageRequest> {
        let mut limit = None;
        let mut before = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "limit" => &mut limit,
                "before" => &mut before,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(ServiceError::Invalid(format!("the {key} parameter is given more than once")));
            }
        }
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => raw.parse().ok().filter(|n| (1..=Self::MAX_LIMIT).contains(n)).ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "limit must be an integer from 1 to {} (got {:?})",
                    Self::MAX_LIMIT,
                    truncated(&raw)
                ))
            })?,
        };
        let before = match before {
            None => None,
            Some(raw) => Some(raw.parse().map_err(|_| {
                ServiceError::Invalid(format!(
                    "before must be the id of an audit event, as in `next` (got {:?})",
                    truncated(&raw)
                ))
            })?),
        };
        Ok(PageRequest { limit, before })
    }
}

/// At most 40 characters of a bad value, for an error message.
fn truncated(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// One event as the audit page shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// A string: ids may exceed what a JSON number holds exactly.
    pub id: String,
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SPEC 14: for an event that ended sessions, why (`idle_timeout`,
    /// `max_lifetime`, `signed_out`, `revoked`, `reuse_detected`,
    /// `user_disabled`, `credentials_changed`, `session_limit`,
    /// `client_deleted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl EventView {
    fn new(id: u64, event: AuditEvent) -> Self {
        EventView {
            id: id.to_string(),
            at: event.at.to_rfc3339(),
            kind: event.kind.as_str().to_owned(),
            actor: event.actor,
            target: event.target,
            reason: event.reason,
            end_reason: event.end_reason.map(|r| r.as_str().to_owned()),
            details: event.details,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<EventView>,
    /// Pass as `before` for the next page; `None` on the last one.
    pub next: Option<String>,
}

/// The page `page` asks for, of the events `filter` keeps.
pub async fn page(state: &AppState, page: PageRequest, filter: &Filter) -> Result<AuditPage> {
    let read = |before, n| async move {
        state.store.events_page(before, n).await.map_err(|e| ServiceError::store("reading the audit log", e))
    };
    let (events, next) = if filter.is_empty() {
        // One more than asked tells whether another page follows.
        let mut events = read(page.before, page.limit + 1).await?;
        let more = events.len() > page.limit;
        events.truncate(page.limit);
        let next = events.last().filter(|_| more).map(|(id, _)| id.to_string());
        (events, next)
    } else {
        let mut found = Vec::new();
        let mut cursor = page.before;
        let mut scanned = 0;
        let mut next = None;
        loop {
            let batch = read(cursor, PageRequest::MAX_LIMIT).await?;
            let exhausted = batch.len() < PageRequest::MAX_LIMIT;
            for (id, e) in batch {
                scanned += 1;
                cursor = Some(id);
                if filter.matches(&e) {
                    if found.len() == page.limit {
                        next = found.last().map(|(id, _): &(u64, AuditEvent)| id.to_string());
                        break;
                    }
                    found.push((id, e));
                }
            }
            if next.is_some() || exhausted {
                break;
            }
            if scanned >= SCAN_LIMIT {
                next = cursor.map(|id| id.to_string());
                break;
            }
        }
        (found, next)
    };
    Ok(AuditPage { events: events.into_iter().map(|(id, e)| EventView::new(id, e)).collect(), next })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ServiceError) -> String {
        match e {
            ServiceError::Invalid(m) => m,
            other => format!("{other:?}"),
        }
    }

    fn parse(q: &str) -> std::result::Result<PageRequest, String> {
        PageRequest::parse(Some(q)).map_err(message)
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(PageRequest::parse(None).map_err(message), Ok(PageRequest { limit: 50, before: None }));
        assert_eq!(parse("limit=1&before=42&other=x"), Ok(PageRequest { limit: 1, before: Some(42) }));
        assert_eq!(parse("limit=500"), Ok(PageRequest { limit: 500, before: None }));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for q in ["limit=0", "limit=501", "limit=-1", "limit=ten", "limit="] {
            assert!(parse(q).is_err_and(|m| m.starts_with("limit must be")), "{q}");
        }
        for q in ["before=x", "before=-3", "before="] {
            assert!(parse(q).is_err_and(|m| m.starts_with("before must be")), "{q}");
        }
        assert_eq!(parse("limit=5&limit=6"), Err("the limit parameter is given more than once".to_owned()));
    }
}
