//! `POST /account/password` (SPEC 14): a signed-in user changes their own
//! password with their access token, as the other `/account/*` endpoints.
//! The body is JSON or a form (`current_password`, `new_password`); the use
//! case is `crate::service::account`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{Caller, JSON_BODY_LIMIT, parse_json};
use super::form::client_addr;
use crate::service::account::{self, PasswordChange};
use crate::service::{AppState, ServiceError};

/// The body of `POST /account/password`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /account/password`: 204 once the new password is stored and every
/// other session of the caller has ended; the caller's session stays.
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Response, ServiceError> {
    let (Some(username), Some(sid)) = (caller.user(), caller.claims.sid.as_deref()) else {
        return Err(ServiceError::Forbidden("the account API needs a user's token".to_owned()));
    };
    let remote = client_addr(&state.config.trusted_proxies, req.headers(), req.extensions());
    let body = read_body(req).await?;
    let change = PasswordChange {
        current_password: &body.current_password,
        new_password: &body.new_password,
        current_sid: sid,
        remote: &remote,
    };
    account::change_password(&state, username, change, state.now()).await?;
    Ok(([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], StatusCode::NO_CONTENT).into_response())
}

/// The body as JSON (`application/json`) or a form
/// (`application/x-www-form-urlencoded`), at most 64 KiB; unknown or
/// repeated fields are refused by name.
async fn read_body(req: Request) -> Result<PasswordBody, ServiceError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_json = media_type == "application/json";
    if !is_json && media_type != "application/x-www-form-urlencoded" {
        return Err(ServiceError::UnsupportedMediaType(format!(
            "the body must be application/json or application/x-www-form-urlencoded, not {content_type:?}"
        )));
    }
    let bytes = axum::body::to_bytes(req.into_body(), JSON_BODY_LIMIT)
        .await
        .map_err(|_| ServiceError::TooLarge(format!("the body exceeds {} KiB", JSON_BODY_LIMIT / 1024)))?;
    if is_json {
        return parse_json(&bytes);
    }
    let mut body = PasswordBody::default();
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in form_urlencoded::parse(&bytes) {
        let field = match name.as_ref() {
            "current_password" => &mut body.current_password,
            "new_password" => &mut body.new_password,
            other => {
                return Err(ServiceError::invalid(format!(
                    "unknown field {other:?}; known fields: current_password, new_password"
                )));
            }
        };
        if !seen.insert(name.clone().into_owned()) {
            return Err(ServiceError::invalid(format!("{name}: given twice; give each field once")));
        }
        if value.contains('\0') {
            return Err(ServiceError::invalid(format!("{name}: holds a NUL character, which no password may")));
        }
        *field = value.into_owned();
    }
    Ok(body)
}
