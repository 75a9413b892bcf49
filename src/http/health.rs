//! `/healthz` (the process answers), `/readyz` (the store answers) and
//! `/metrics` (Prometheus text format).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::service::AppState;
use crate::store::{AnyStore, Store};

pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Whether the store answers: `200 {"status":"ready","store":...}`, or
/// `503` with `Retry-After` and a message naming the database (never its
/// password) while it does not (SPEC 12). With PostgreSQL the check is a
/// `SELECT 1` on a pooled connection, bounded by the pool's wait; with sled
/// a probe record written and read.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let backend = state.store.backend();
    let database = match &state.store {
        AnyStore::Postgres(pg) => Some(pg.target().to_owned()),
        AnyStore::Sled(_) => None,
    };
    let mut response = match state.store.check().await {
        Ok(()) => {
            let mut body = serde_json::json!({ "status": "ready", "store": backend });
            if let Some(database) = database {
                body["database"] = serde_json::Value::from(database);
            }
            Json(body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            let message = match database {
                Some(database) => format!("the database {database} does not answer"),
                None => "the store does not answer".to_owned(),
            };
            let body = serde_json::json!({ "status": "unavailable", "store": backend, "message": message });
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(crate::service::error::DATABASE_RETRY_AFTER_SECS));
            response
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
