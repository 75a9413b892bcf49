//! The JSON admin and account API's plumbing (SPEC 4, 7): the caller's
//! verified token and permissions, and errors as `{"error", "message"}`.
//!
//! 401 without a valid token, 403 without the permission. `system:administer`
//! includes `users:edit`.

use std::collections::BTreeSet;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::bearer::{self, BearerError};
use crate::oauth::client::Permission;
use crate::service::{AppState, ServiceError};
use crate::token::claims::AccessClaims;

impl From<JsonRejection> for ServiceError {
    fn from(e: JsonRejection) -> Self {
        ServiceError::invalid(format!("the body must be a JSON object: {}", e.body_text()))
    }
}

impl From<PathRejection> for ServiceError {
    fn from(e: PathRejection) -> Self {
        ServiceError::invalid(e.body_text())
    }
}

/// The largest JSON body the admin API reads.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// A JSON body of the admin API: `application/json`, at most 64 KiB, and no
/// object with the same key twice (RFC 8259 4 leaves duplicates to the
/// parser; serde_json keeps the last, so `{"a":1,"a":2}` would silently
/// mean something else than it reads). A rejection is a 400
/// `{"error","message"}` naming what is wrong.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ServiceError;

    async fn from_request(req: axum::extract::Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        let media_type = media_type.to_ascii_lowercase();
        let is_json = media_type == "application/json"
            || (media_type.starts_with("application/") && media_type.ends_with("+json"));
        if !is_json {
            return Err(ServiceError::UnsupportedMediaType(format!(
                "the body must be application/json, not {content_type:?}"
            )));
        }
        let bytes = axum::body::to_bytes(req.into_body(), JSON_BODY_LIMIT)
            .await
            .map_err(|_| ServiceError::TooLarge(format!("the body exceeds {} KiB", JSON_BODY_LIMIT / 1024)))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parse a JSON document, refusing duplicate keys in any object and the NUL
/// character in any string (no name or value may hold it, and PostgreSQL
/// could not store it: both stores answer alike, SPEC 7).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let checked = serde::de::DeserializeSeed::deserialize(unique_keys::Checked, &mut de).and_then(|()| de.end());
    match checked {
        Ok(()) => {}
        Err(e) => {
            let message = match (unique_keys::duplicate(&e), unique_keys::has_nul(&e)) {
                (Some(key), _) => format!("the JSON body has the key {key:?} twice; give each key once"),
                (None, true) => "the JSON body has a NUL character (\\u0000) in a string; no name or value here \
                                 may hold one"
                    .to_owned(),
                (None, false) => format!("the body must be a JSON object: {e}"),
            };
            return Err(ServiceError::invalid(message));
        }
    }
    serde_json::from_slice(bytes).map_err(|e| ServiceError::invalid(format!("the body is not what was expected: {e}")))
}

/// A serde visitor that walks a JSON document and fails on the first object
/// with a repeated key.
mod unique_keys {
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    const MARK: &str = "duplicate key: ";
    const NUL: &str = "NUL in a string";

    /// Whether `e` is the error [`Checked`] raised for a string holding NUL.
    pub fn has_nul(e: &serde_json::Error) -> bool {
        e.to_string().starts_with(NUL)
    }

    fn check_text<E: de::Error>(s: &str) -> Result<(), E> {
        if s.contains('\0') { Err(E::custom(NUL)) } else { Ok(()) }
    }

    /// The repeated key, when `e` is the error [`Checked`] raised for one.
    pub fn duplicate(e: &serde_json::Error) -> Option<String> {
        let text = e.to_string();
        let rest = text.strip_prefix(MARK)?;
        // serde_json appends " at line L column C".
        let key = rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k);
        serde_json::from_str(key).ok()
    }

    pub struct Checked;

    impl<'de> DeserializeSeed<'de> for Checked {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Checked)
        }
    }

    impl<'de> Visitor<'de> for Checked {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
            check_text(s)
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Checked)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                check_text(&key)?;
                if !seen.insert(key.clone()) {
                    let quoted = serde_json::to_string(&key).unwrap_or_default();
                    return Err(de::Error::custom(format!("{MARK}{quoted}")));
                }
                map.next_value_seed(Checked)?;
            }
            Ok(())
        }
    }
}

/// The authenticated caller of the admin or account API.
#[derive(Debug)]
pub struct Caller {
    pub claims: AccessClaims,
    pub permissions: BTreeSet<Permission>,
}

impl Caller {
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&Permission::SystemAdminister) || self.permissions.contains(&p)
    }

    /// 403 unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ServiceError> {
        if self.has(p) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this needs the {} permission in the token's permissions claim",
                p.as_str()
            )))
        }
    }

    /// The signed-in user, for user tokens (they carry a session).
    pub fn user(&self) -> Option<&str> {
        self.claims.sid.as_ref().map(|_| self.claims.sub.as_str())
    }

    /// Who to name in the audit log.
    pub fn actor(&self) -> String {
        match self.user() {
            Some(u) => u.to_owned(),
            None => format!("client:{}", self.claims.client_id),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = &AppState::from_ref(state);
        let token =
            bearer::from_header(parts).and_then(|t| t.ok_or(BearerError::Missing)).map_err(ServiceError::api_bearer)?;
        let claims = bearer::authenticate(state, &token).await.map_err(ServiceError::api_bearer)?;
        let permissions =
            crate::service::bearer::current_permissions(state, &claims).await.map_err(ServiceError::api_bearer)?;
        Ok(Caller { claims, permissions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_by_name_at_any_depth() {
        let v: serde_json::Value = parse_json(br#"{"a": 1, "b": [{"c": 2}, {"c": 3}]}"#).expect("no duplicates");
        assert_eq!(v["b"][1]["c"], 3);
        let e = parse_json::<serde_json::Value>(br#"{"idle_timeout": 600, "idle_timeout": 2}"#).expect_err("dup");
        let ServiceError::Invalid(message) = e else { panic!("{e:?}") };
        assert_eq!(message, r#"the JSON body has the key "idle_timeout" twice; give each key once"#);
        let message = |e: ServiceError| match e {
            ServiceError::Invalid(m) => m,
            other => panic!("{other:?}"),
        };
        let e = message(parse_json::<serde_json::Value>(br#"{"x": {"k\"q": 1, "k\"q": 2}}"#).expect_err("nested dup"));
        assert!(e.contains(r#""k\"q""#), "{e}");
        let e = message(parse_json::<serde_json::Value>(b"{").expect_err("truncated"));
        assert!(e.starts_with("the body must be a JSON object"), "{e}");
        assert!(parse_json::<serde_json::Value>(br#"{"a": 1} trailing"#).is_err());
    }
}
