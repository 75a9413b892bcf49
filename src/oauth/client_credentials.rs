//! The client-credentials grant (RFC 6749 4.4): a token for the client itself,
//! with no session and no refresh token (SPEC 5).

use super::client::{Client, GrantType, ScopeSet};
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::token::claims::{AccessClaims, new_jti};

/// The scope that unlocks the `permissions` claim (SPEC 8).
pub const ADMIN_SCOPE: &str = "admin";

/// Decide the claims of a client-credentials access token.
///
/// `audience` is tenure's own API (the issuer); a `resource` (RFC 8707) other
/// than that is refused with `invalid_target`.
pub fn grant(
    client: &Client,
    params: &Params,
    issuer: &str,
    now: UnixTime,
    ttl: Secs,
) -> Result<AccessClaims, OAuthError> {
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("client {:?} is not allowed the client_credentials grant", client.id),
        ));
    }
    let scope = match params.get("scope") {
        None => client.scopes.clone(),
        Some(raw) => {
            let requested = ScopeSet::parse(raw).map_err(|bad| {
                OAuthError::invalid_scope(format!("{bad:?} is not a valid scope token (RFC 6749 3.3)"))
            })?;
            let refused: Vec<String> = requested.not_in(&client.scopes).map(ToString::to_string).collect();
            if !refused.is_empty() {
                return Err(OAuthError::invalid_scope(format!(
                    "client {:?} may not request scope {}; it may request: {}",
                    client.id,
                    refused.join(" "),
                    client.scopes
                )));
            }
            requested
        }
    };
    if let Some(resource) = params.get("resource")
        && resource != issuer
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("client {:?} may not request a token for resource {resource:?}", client.id),
        ));
    }
    let permissions = (scope.contains(ADMIN_SCOPE) && !client.permissions.is_empty())
        .then(|| client.permissions.iter().map(|p| p.as_str().to_owned()).collect());
    Ok(AccessClaims {
        iss: issuer.to_owned(),
        sub: client.id.clone(),
        aud: issuer.to_owned(),
        client_id: client.id.clone(),
        exp: now.plus(ttl).as_secs(),
        iat: now.as_secs(),
        jti: new_jti(),
        scope: scope.to_string(),
        sid: None,
        auth_time: None,
        fid: None,
        act: None,
        permissions,
        cnf: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "http://127.0.0.1:8080";
    const T0: UnixTime = UnixTime(1_700_000_000);

    fn client(extra: &str) -> Client {
        let text =
            format!("[[clients]]\nid = \"svc\"\nsecret = \"s\"\ngrant_types = [\"client_credentials\"]\n{extra}");
        crate::oauth::client_spec::clients_from_toml(&text).remove(0)
    }

    #[test]
    fn issues_a_token_for_the_client_itself() {
        let c = client("scopes = [\"orders:read\", \"orders:write\"]");
        let claims =
            grant(&c, &Params::from_pairs([("scope", "orders:read")]), ISS, T0, Secs::minutes(30)).expect("granted");
        assert_eq!((claims.sub.as_str(), claims.client_id.as_str()), ("svc", "svc"));
        assert_eq!(claims.scope, "orders:read");
        assert_eq!(claims.exp, T0.as_secs() + 1800);
        assert_eq!(claims.iat, T0.as_secs());
        assert_eq!(claims.sid, None, "no session");
        let all = grant(&c, &Params::default(), ISS, T0, Secs::minutes(30)).expect("granted");
        assert_eq!(all.scope, "orders:read orders:write", "default: every registered scope");
    }

    #[test]
    fn scopes_are_limited_to_the_clients() {
        let c = client("scopes = [\"orders:read\"]");
        let err = grant(&c, &Params::from_pairs([("scope", "orders:read admin")]), ISS, T0, Secs::minutes(1))
            .expect_err("wider");
        assert_eq!(err.code, ErrorCode::InvalidScope);
        assert!(err.description.contains("may not request scope admin"), "{}", err.description);
    }

    #[test]
    fn only_clients_allowed_the_grant_get_it() {
        let text = "[[clients]]\nid = \"web\"\nsecret = \"s\"\ngrant_types = [\"authorization_code\"]\nredirect_uris = [\"http://127.0.0.1/cb\"]";
        let c = crate::oauth::client_spec::clients_from_toml(text).remove(0);
        assert_eq!(
            grant(&c, &Params::default(), ISS, T0, Secs::minutes(1)).expect_err("not allowed").code,
            ErrorCode::UnauthorizedClient
        );
    }

    #[test]
    fn permissions_ride_only_with_the_admin_scope() {
        let c = client("scopes = [\"admin\", \"x\"]\npermissions = [\"users:edit\"]");
        let with = grant(&c, &Params::from_pairs([("scope", "admin")]), ISS, T0, Secs::minutes(1)).expect("granted");
        assert_eq!(with.permissions, Some(vec!["users:edit".to_owned()]));
        let without = grant(&c, &Params::from_pairs([("scope", "x")]), ISS, T0, Secs::minutes(1)).expect("granted");
        assert_eq!(without.permissions, None);
    }

    #[test]
    fn foreign_resources_are_refused() {
        let c = client("");
        let err = grant(&c, &Params::from_pairs([("resource", "https://billing.example")]), ISS, T0, Secs::minutes(1))
            .expect_err("target");
        assert_eq!(err.code, ErrorCode::InvalidTarget);
        assert!(grant(&c, &Params::from_pairs([("resource", ISS)]), ISS, T0, Secs::minutes(1)).is_ok());
    }
}
