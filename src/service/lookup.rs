//! Recognise a token presented to `/revoke` or `/introspect`: one of our
//! access tokens (a JWT we signed) or one of our refresh tokens (a MAC we
//! computed). Anything else is unknown — and never an error the caller sees
//! (RFC 7009 2.2, RFC 7662 2.2).

use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::policy::PolicyHistory;
use crate::session::family::{self, Family};
use crate::session::refresh_token::{self, RefreshKey};
use crate::store::{Store, StoreError};
use crate::token::claims::AccessClaims;
use crate::token::keys::KeySet;

#[derive(Debug)]
pub enum Found {
    /// A valid (signed, unexpired) access token.
    Access(AccessClaims),
    /// A genuine refresh token of `family`; `current` when it is the live
    /// generation (a spent one is not active).
    Refresh {
        family: Family,
        current: bool,
        /// Its session as read with it (one read, `Store::family_view`).
        session: Option<crate::session::user_session::UserSession>,
    },
    Unknown,
}

pub struct Lookup<'a> {
    pub keys: &'a KeySet,
    pub verified: &'a crate::token::verified::VerifiedTokens,
    pub retain: Secs,
    /// The longest lifetime a token may claim.
    pub max_lifetime: Secs,
    pub issuer: &'a str,
    pub refresh_key: &'a RefreshKey,
    pub now: UnixTime,
}

impl Lookup<'_> {
    /// Find `token`, trying the kind named by `hint` first (RFC 7009 2.1).
    pub async fn find<S: Store>(&self, store: &S, token: &str, hint: Option<&str>) -> Result<Found, StoreError> {
        let refresh_first = hint == Some("refresh_token");
        if refresh_first {
            let found = self.refresh(store, token).await?;
            if !matches!(found, Found::Unknown) {
                return Ok(found);
            }
        }
        if let Ok(claims) =
            self.verified.verify(token, self.keys, self.retain, self.max_lifetime, self.issuer, self.now)
        {
            return Ok(Found::Access(claims));
        }
        if refresh_first { Ok(Found::Unknown) } else { self.refresh(store, token).await }
    }

    async fn refresh<S: Store>(&self, store: &S, token: &str) -> Result<Found, StoreError> {
        let Some(presented) = refresh_token::parse(token) else { return Ok(Found::Unknown) };
        let Some(seen) = store.family_view(&presented.family_id).await? else { return Ok(Found::Unknown) };
        if !self.refresh_key.verify(&presented, &seen.family.salt) {
            return Ok(Found::Unknown);
        }
        let current = presented.generation == seen.family.generation;
        Ok(Found::Refresh { family: seen.family, current, session: seen.session })
    }
}

/// RFC 7662 2.2: the introspection answer.
pub async fn introspect<S: Store>(
    store: &S,
    found: Found,
    issuer: &str,
    history: &PolicyHistory,
    client_override: impl Fn(&str) -> Option<crate::policy::ClientSessionOverride>,
    now: UnixTime,
) -> Result<serde_json::Value, StoreError> {
    let inactive = serde_json::json!({ "active": false });
    match found {
        Found::Unknown => Ok(inactive),
        Found::Access(claims) => {
            if !descends_from_live_family(store, history, &client_override, &claims, now).await? {
                return Ok(inactive);
            }
            let mut body = serde_json::json!({
                "active": true,
                "iss": claims.iss,
                "sub": claims.sub,
                "aud": claims.aud,
                "client_id": claims.client_id,
                "scope": claims.scope,
                "exp": claims.exp,
                "iat": claims.iat,
                "jti": claims.jti,
                "token_type": if claims.cnf.is_some() { "DPoP" } else { "Bearer" },
            });
            // RFC 9449 6.2: the key a bound token is confirmed by.
            if let Some(cnf) = claims.cnf {
                body["cnf"] = serde_json::json!({ "jkt": cnf.jkt });
            }
            if let Some(sid) = claims.sid {
                body["sid"] = sid.into();
                body["username"] = claims.sub.clone().into();
            }
            if let Some(t) = claims.auth_time {
                body["auth_time"] = t.into();
            }
            Ok(body)
        }
        Found::Refresh { family, current, session } => {
            let client = client_override(&family.client_id);
            if !current || !family::is_alive(history, &family, session.as_ref(), client.as_ref(), now) {
                return Ok(inactive);
            }
            let d = family::deadlines(history.current(), &family, client.as_ref());
            let mut body = serde_json::json!({
                "active": true,
                // A refresh token is addressed to the authorization server itself.
                "iss": issuer,
                "aud": issuer,
                "sub": family.username,
                "username": family.username,
                "client_id": family.client_id,
                "scope": family.scope,
                "exp": d.idle.min(d.absolute).as_secs(),
                "iat": family.rotated_at.as_secs(),
                "sid": family.sid,
                "auth_time": family.auth_time.as_secs(),
                "token_type": "refresh_token",
            });
            if let Some(jkt) = family.jkt {
                body["cnf"] = serde_json::json!({ "jkt": jkt });
            }
            Ok(body)
        }
    }
}

/// Whether an access token still descends from a live family (SPEC 5: after
/// a revocation, every descendant is dead at once; SPEC 3: a policy change
/// applies at the next check). Tokens without a family (client credentials)
/// live until their `exp`.
pub async fn descends_from_live_family<S: Store>(
    store: &S,
    history: &PolicyHistory,
    overrides: impl Fn(&str) -> Option<crate::policy::ClientSessionOverride>,
    claims: &AccessClaims,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let Some(fid) = &claims.fid else { return Ok(true) };
    // The family, its session and the user's marker: one read, or a view
    // the store kept while nothing was revoked (`Store::live_family_view`).
    let Some(view) = store.live_family_view(fid).await? else { return Ok(false) };
    // The family's own client's limits apply (an exchanged token is held by
    // another client, but lives and dies with the family).
    let over = overrides(&view.family.client_id);
    if family::is_alive(history, &view.family, view.session.as_ref(), over.as_ref(), now) {
        return Ok(true);
    }
    if !view.cached {
        return Ok(false);
    }
    // A kept view may lag behind the family's activity: only a fresh read
    // may say it has ended.
    let Some(view) = store.family_view(fid).await? else { return Ok(false) };
    Ok(family::is_alive(history, &view.family, view.session.as_ref(), over.as_ref(), now))
}
