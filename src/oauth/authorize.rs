//! The authorization request of the code flow, free of HTTP: who asks, where
//! the answer goes, what is asked for, and what happens next.
//!
//! - RFC 6749 4.1.1 (the request), 4.1.2 (the code response), 4.1.2.1 (error
//!   responses), 3.1.2.3 and RFC 9700 2.1 (exact redirect URI match).
//! - RFC 8252 7.3: a native app's registered loopback redirect URI matches any
//!   port; every other redirect URI matches exactly (RFC 9700 2.1).
//! - RFC 7636 4.3 and RFC 9700 2.1.1: PKCE, `S256` only, mandatory for public
//!   clients.
//! - OIDC Core 3.1.2.1 (`nonce`, `prompt`, `max_age`), 3.1.2.6 (errors such as
//!   `login_required`), 6.1 and 6.2 (`request` / `request_uri` not supported).
//! - RFC 9207 2: every response to the client carries `iss`.
//!
//! Validation has two stages (RFC 6749 4.1.2.1). Until the client and its
//! redirect URI are established ([`Target::identify`]), nothing can be sent to
//! the client: such errors are shown to the user ([`AuthorizeError::ShowPage`])
//! and never redirected, so tenure is no open redirector. After that, errors go
//! back to the client at its redirect URI ([`AuthorizeError::Redirect`]).

use std::borrow::Cow;
use std::sync::Arc;

use super::client::{ApplicationType, Client, GrantType, ScopeSet};
use super::client_auth::ClientRegistry;
use super::error::OAuthError;
use super::params::Params;
use crate::clock::UnixTime;
use crate::session::code::valid_challenge;

/// The error codes an authorization error response may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizeErrorCode {
    /// RFC 6749 4.1.2.1.
    InvalidRequest,
    /// RFC 6749 4.1.2.1.
    UnsupportedResponseType,
    /// RFC 6749 4.1.2.1.
    InvalidScope,
    /// OIDC Core 3.1.2.6: `prompt=none` and the user would have to sign in.
    LoginRequired,
    /// OIDC Core 3.1.2.6 / 6.1: request objects are not supported.
    RequestNotSupported,
    /// OIDC Core 3.1.2.6 / 6.2.
    RequestUriNotSupported,
}

impl AuthorizeErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizeErrorCode::InvalidRequest => "invalid_request",
            AuthorizeErrorCode::UnsupportedResponseType => "unsupported_response_type",
            AuthorizeErrorCode::InvalidScope => "invalid_scope",
            AuthorizeErrorCode::LoginRequired => "login_required",
            AuthorizeErrorCode::RequestNotSupported => "request_not_supported",
            AuthorizeErrorCode::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

/// An error the client learns about at its redirect URI (RFC 6749 4.1.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRedirect {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code: AuthorizeErrorCode,
    pub description: String,
}

impl ErrorRedirect {
    /// The redirect URI with `error`, `error_description`, `state` and `iss`.
    pub fn location(&self, issuer: &str) -> String {
        let mut pairs = vec![("error", self.code.as_str()), ("error_description", self.description.as_str())];
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", issuer));
        redirect_location(&self.redirect_uri, &pairs)
    }
}

/// Why an authorization request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or redirect URI is missing, unknown or not registered: tell
    /// the user and MUST NOT redirect (RFC 6749 4.1.2.1).
    #[error("{0}")]
    ShowPage(String),
    /// Anything else: the client is told at its redirect URI.
    #[error("{}: {}", .0.code.as_str(), .0.description)]
    Redirect(ErrorRedirect),
}

/// The client and the redirect URI a request has established: from here on,
/// errors may be redirected.
#[derive(Clone, Debug)]
pub struct Target {
    pub client: Arc<Client>,
    /// The effective redirect URI: the one requested (with its own port for a
    /// loopback URI), or the only registered one when none was given.
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri`. RFC 6749 4.1.3: if it did,
    /// the token request must repeat it.
    pub redirect_uri_given: bool,
    pub state: Option<String>,
}

impl Target {
    /// Establish the client (known, allowed the code flow) and its redirect
    /// URI. `Err` is the message for the error page.
    pub fn identify(params: &Params, clients: &ClientRegistry) -> Result<Target, String> {
        let client_id = params
            .get("client_id")
            .ok_or("client_id is missing: the application must say who it is (RFC 6749 4.1.1)")?;
        let client = clients.get(client_id).ok_or_else(|| format!("unknown client {}", quoted(client_id)))?;
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(format!("client {:?} is not allowed the authorization_code grant", client.id));
        }
        let (redirect_uri, redirect_uri_given) = match params.get("redirect_uri") {
            Some(requested) => {
                let native = client.application_type == ApplicationType::Native;
                if !client.redirect_uris.iter().any(|r| redirect_uri_matches(r.as_str(), requested, native)) {
                    return Err(format!(
                        "redirect_uri {} is not registered for client {:?}",
                        quoted(requested),
                        client.id
                    ));
                }
                (requested.to_owned(), true)
            }
            None => match client.redirect_uris.as_slice() {
                [only] => (only.as_str().to_owned(), false),
                [] => return Err(format!("client {:?} has no registered redirect_uri", client.id)),
                many => {
                    return Err(format!(
                        "redirect_uri is missing: client {:?} has {} registered redirect URIs, so the request must name one",
                        client.id,
                        many.len()
                    ));
                }
            },
        };
        Ok(Target {
            client: client.clone(),
            redirect_uri,
            redirect_uri_given,
            state: params.get("state").map(str::to_owned),
        })
    }

    /// An error response to send to this target.
    pub fn error(&self, code: AuthorizeErrorCode, description: impl Into<String>) -> ErrorRedirect {
        ErrorRedirect {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            code,
            description: description.into(),
        }
    }

    /// The name to show the user: the client's name, else its id.
    pub fn display_name(&self) -> &str {
        self.client.name.as_deref().unwrap_or(&self.client.id)
    }
}

/// The `prompt` parameter (OIDC Core 3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Never show a page; fail with `login_required` instead.
    pub none: bool,
    /// Ask the user to sign in again, even with a live session.
    pub login: bool,
}

impl Prompt {
    /// Space-separated values among `none`, `login`, `consent` and
    /// `select_account`; `none` stands alone. `consent` and `select_account`
    /// are accepted and need nothing: there is no consent screen (first-party
    /// clients) and one session per browser.
    pub fn parse(raw: &str) -> Result<Prompt, String> {
        let mut prompt = Prompt::default();
        let mut others = 0;
        for value in raw.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" | "select_account" => {}
                other => {
                    return Err(format!(
                        "prompt value {} is unknown; use none, login, consent or select_account",
                        quoted(other)
                    ));
                }
            }
            if value != "none" {
                others += 1;
            }
        }
        if prompt.none && others > 0 {
            return Err(format!(
                "prompt=none cannot be combined with other values (got {}) (OIDC Core 3.1.2.1)",
                quoted(raw)
            ));
        }
        Ok(prompt)
    }
}

/// A validated authorization request.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    pub target: Target,
    /// The scopes granted: those requested, or the client's registered ones.
    pub scope: ScopeSet,
    pub nonce: Option<String>,
    /// The S256 challenge (RFC 7636 4.2).
    pub code_challenge: Option<String>,
    /// RFC 9449 10: the thumbprint of the DPoP key the code must be redeemed with.
    pub dpop_jkt: Option<String>,
    pub prompt: Prompt,
    /// Seconds since sign-in beyond which the user must sign in again.
    pub max_age: Option<u64>,
}

/// What to do with a valid request, given the user's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Issue a code to the session's user.
    IssueCode,
    /// Show the sign-in page.
    SignIn,
    /// Tell the client the request cannot be served (`login_required`).
    Refuse(ErrorRedirect),
}

impl AuthorizationRequest {
    /// Validate the query of `GET /authorize`.
    pub fn parse(params: &Params, clients: &ClientRegistry) -> Result<AuthorizationRequest, AuthorizeError> {
        use AuthorizeErrorCode::*;
        let target = Target::identify(params, clients).map_err(AuthorizeError::ShowPage)?;
        let refuse = |code, description: String| AuthorizeError::Redirect(target.error(code, description));

        // RFC 6749 4.1.1 / 3.1.1: only the code flow (RFC 9700 2.1.2: no implicit).
        match params.get("response_type") {
            None => return Err(refuse(InvalidRequest, "response_type is missing; use response_type=code".into())),
            Some("code") => {}
            Some(other) => {
                return Err(refuse(
                    UnsupportedResponseType,
                    format!("response_type {} is not supported; use response_type=code", quoted(other)),
                ));
            }
        }
        if params.get("request").is_some() {
            return Err(refuse(RequestNotSupported, "request objects are not supported (OIDC Core 6.1)".into()));
        }
        if params.get("request_uri").is_some() {
            return Err(refuse(RequestUriNotSupported, "request_uri is not supported (OIDC Core 6.2)".into()));
        }
        if let Some(mode) = params.get("response_mode")
            && mode != "query"
        {
            return Err(refuse(
                InvalidRequest,
                format!("response_mode {} is not supported; the code is returned in the query", quoted(mode)),
            ));
        }

        // RFC 6749 3.3: the client's registered scopes when none are requested.
        let client = &target.client;
        let requested = match params.get("scope") {
            None => ScopeSet::default(),
            Some(raw) => ScopeSet::parse(raw).map_err(|bad| {
                refuse(InvalidScope, format!("{} is not a valid scope token (RFC 6749 3.3)", quoted(&bad)))
            })?,
        };
        let scope = if requested.is_empty() { client.scopes.clone() } else { requested };
        let refused: Vec<String> = scope.not_in(&client.scopes).map(ToString::to_string).collect();
        if !refused.is_empty() {
            return Err(refuse(
                InvalidScope,
                format!(
                    "client {:?} may not request scope {}; it may request: {}",
                    client.id,
                    refused.join(" "),
                    client.scopes
                ),
            ));
        }

        // RFC 7636 4.3; RFC 9700 2.1.1: S256 only.
        let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
            (_, Some(method)) if method != "S256" => {
                return Err(refuse(
                    InvalidRequest,
                    format!("code_challenge_method {} is not supported; use S256 (RFC 9700 2.1.1)", quoted(method)),
                ));
            }
            (None, Some(_)) => {
                return Err(refuse(InvalidRequest, "code_challenge_method is given without code_challenge".into()));
            }
            (Some(_), None) => {
                return Err(refuse(
                    InvalidRequest,
                    "code_challenge_method is missing: without it the method is plain (RFC 7636 4.3), \
                     which is not supported; send code_challenge_method=S256"
                        .into(),
                ));
            }
            (Some(challenge), Some(_)) if !valid_challenge(challenge) => {
                return Err(refuse(
                    InvalidRequest,
                    "code_challenge is not an S256 challenge: it must be 43 base64url characters, \
                     BASE64URL(SHA256(code_verifier)) (RFC 7636 4.2)"
                        .into(),
                ));
            }
            (Some(challenge), Some(_)) => Some(challenge.to_owned()),
            (None, None) if client.is_public() => {
                return Err(refuse(
                    InvalidRequest,
                    "PKCE (S256) is required for public clients: send code_challenge and code_challenge_method=S256"
                        .into(),
                ));
            }
            (None, None) => None,
        };

        let dpop_jkt = match params.get("dpop_jkt") {
            None => None,
            // A SHA-256 thumbprint: 43 base64url characters, like an S256 challenge.
            Some(jkt) if valid_challenge(jkt) => Some(jkt.to_owned()),
            Some(_) => {
                return Err(refuse(
                    InvalidRequest,
                    "dpop_jkt must be the base64url SHA-256 JWK thumbprint (43 characters) of the DPoP key (RFC 9449 10)"
                        .into(),
                ));
            }
        };

        let prompt = match params.get("prompt") {
            None => Prompt::default(),
            Some(raw) => Prompt::parse(raw).map_err(|m| refuse(InvalidRequest, m))?,
        };
        let max_age = match params.get("max_age") {
            None => None,
            Some(raw) => {
                Some(raw.bytes().all(|b| b.is_ascii_digit()).then(|| raw.parse::<u64>().ok()).flatten().ok_or_else(
                    || {
                        refuse(
                            InvalidRequest,
                            format!("max_age {} is not a non-negative integer number of seconds", quoted(raw)),
                        )
                    },
                )?)
            }
        };

        Ok(AuthorizationRequest {
            scope,
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge,
            dpop_jkt,
            prompt,
            max_age,
            target,
        })
    }

    /// What to do, given the sign-in time of the user's live session (`None`
    /// without one) at `now`. OIDC Core 3.1.2.1: `max_age` counts from the
    /// last sign-in; `prompt=login` always asks; `prompt=none` never does.
    pub fn step(&self, signed_in: Option<UnixTime>, now: UnixTime) -> Step {
        let fresh = signed_in.filter(|t| self.max_age.is_none_or(|max| t.until(now) <= max));
        if self.prompt.none {
            return match (fresh, signed_in) {
                (Some(_), _) => Step::IssueCode,
                (None, Some(_)) => Step::Refuse(self.target.error(
                    AuthorizeErrorCode::LoginRequired,
                    "the user signed in longer ago than max_age allows, and prompt=none forbids asking again",
                )),
                (None, None) => Step::Refuse(self.target.error(
                    AuthorizeErrorCode::LoginRequired,
                    "the user is not signed in, and prompt=none forbids showing the sign-in page",
                )),
            };
        }
        if self.prompt.login || fresh.is_none() { Step::SignIn } else { Step::IssueCode }
    }

    /// The successful response (RFC 6749 4.1.2; RFC 9207 2).
    pub fn code_location(&self, code: &str, issuer: &str) -> String {
        let mut pairs = vec![("code", code)];
        if let Some(state) = &self.target.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", issuer));
        redirect_location(&self.target.redirect_uri, &pairs)
    }
}

/// Append `pairs` to `base`'s query, keeping any query it already has
/// (RFC 6749 3.1.2: "MUST retain the query component").
pub fn redirect_location(base: &str, pairs: &[(&str, &str)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let separator = match base.split_once('?') {
        None => "?",
        Some((_, "")) => "",
        Some((_, q)) if q.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{separator}{encoded}")
}

/// Whether `requested` is `registered`: the exact string (RFC 9700 2.1), or,
/// for a native app's registered loopback URI, the same URI on any port
/// (RFC 8252 7.3; a web client never gets the wildcard).
pub fn redirect_uri_matches(registered: &str, requested: &str, native: bool) -> bool {
    if registered == requested {
        return true;
    }
    if !native {
        return false;
    }
    match (split_loopback(registered), split_loopback(requested)) {
        (Some((host_a, rest_a)), Some((host_b, rest_b))) => host_a == host_b && rest_a == rest_b,
        _ => false,
    }
}

/// `http://127.0.0.1[:port]rest` or `http://[::1][:port]rest` as
/// `(host, rest)`, where `rest` is empty or starts the path or the query.
fn split_loopback(uri: &str) -> Option<(&'static str, &str)> {
    let after_scheme = uri.strip_prefix("http://")?;
    let (host, after_host) = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find_map(|host| after_scheme.strip_prefix(host).map(|after| (host, after)))?;
    let rest = match after_host.strip_prefix(':') {
        None => after_host,
        Some(port_and_rest) => {
            let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
            port_and_rest.get(..digits)?.parse::<u16>().ok()?;
            port_and_rest.get(digits..)?
        }
    };
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some((host, rest))
}

/// The query to continue with after a successful sign-in: the original
/// authorization request without `prompt=login` and `max_age`, which the
/// sign-in has just satisfied (otherwise the next `GET /authorize` would ask
/// again, and with `max_age=0` forever). `Err` when `query` is not a
/// well-formed request query.
pub fn query_after_sign_in(query: &str) -> Result<String, OAuthError> {
    Params::parse(query.as_bytes())?;
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if value.is_empty() {
            continue;
        }
        match name.as_ref() {
            "prompt" => {
                let kept: Vec<&str> = value.split(' ').filter(|v| !v.is_empty() && *v != "login").collect();
                if !kept.is_empty() {
                    out.append_pair("prompt", &kept.join(" "));
                }
            }
            "max_age" => {}
            _ => {
                out.append_pair(&name, &value);
            }
        }
    }
    Ok(out.finish())
}

/// A user-supplied value for a message, quoted and cut to a readable length.
fn quoted(value: &str) -> String {
    const SHOWN: usize = 100;
    let shown: Cow<'_, str> = match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &value[..cut])),
        None => Cow::Borrowed(value),
    };
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Secs;

    const ISS: &str = "http://127.0.0.1:8080";
    const T0: UnixTime = UnixTime(1_700_000_000);
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn registry() -> ClientRegistry {
        let text = r#"
[[clients]]
id = "web"
name = "Web App"
secret = "web-secret"
redirect_uris = ["https://app.example/cb", "https://app.example/cb2?tenant=1"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email"]

[[clients]]
id = "spa"
public = true
redirect_uris = ["http://127.0.0.1:9001/"]
grant_types = ["authorization_code"]

[[clients]]
id = "cli"
public = true
application_type = "native"
redirect_uris = ["http://[::1]/callback"]
grant_types = ["authorization_code"]

[[clients]]
id = "svc"
secret = "s"
grant_types = ["client_credentials"]
"#;
        ClientRegistry::new(crate::oauth::client_spec::clients_from_toml(text)).expect("rng")
    }

    fn web(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", "https://app.example/cb"),
            ("state", "xyz"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in extra {
            pairs.retain(|(name, _)| name != k);
            if !v.is_empty() {
                pairs.push(((*k).to_owned(), (*v).to_owned()));
            }
        }
        pairs
    }

    fn parse(pairs: &[(String, String)]) -> Result<AuthorizationRequest, AuthorizeError> {
        let params = Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        AuthorizationRequest::parse(&params, &registry())
    }

    fn page(pairs: &[(String, String)]) -> String {
        match parse(pairs) {
            Err(AuthorizeError::ShowPage(m)) => m,
            other => panic!("expected an error page, got {other:?}"),
        }
    }

    fn redirected(pairs: &[(String, String)]) -> ErrorRedirect {
        match parse(pairs) {
            Err(AuthorizeError::Redirect(e)) => e,
            other => panic!("expected an error redirect, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_is_parsed() {
        let r = parse(&web(&[("scope", "openid email"), ("nonce", "n-1"), ("max_age", "60")])).expect("valid");
        assert_eq!(r.target.client.id, "web");
        assert_eq!(r.target.redirect_uri, "https://app.example/cb");
        assert!(r.target.redirect_uri_given);
        assert_eq!(r.target.state.as_deref(), Some("xyz"));
        assert_eq!(r.scope.to_string(), "email openid");
        assert_eq!(r.nonce.as_deref(), Some("n-1"));
        assert_eq!(r.max_age, Some(60));
        assert_eq!(r.code_challenge, None, "PKCE is optional for confidential clients");
        assert_eq!(r.target.display_name(), "Web App");
    }

    #[test]
    fn unknown_clients_and_unregistered_redirect_uris_are_never_redirected() {
        assert_eq!(page(&web(&[("client_id", "x")])), "unknown client \"x\"");
        assert!(page(&web(&[("client_id", "")])).starts_with("client_id is missing"));
        assert_eq!(
            page(&web(&[("redirect_uri", "https://evil.example/cb")])),
            "redirect_uri \"https://evil.example/cb\" is not registered for client \"web\""
        );
        // Exact string match: no prefix, no added query, no case folding.
        for near in
            ["https://app.example/cb/", "https://app.example/cb?x=1", "https://APP.example/cb", "https://app.example/c"]
        {
            assert!(page(&web(&[("redirect_uri", near)])).contains("is not registered"), "{near}");
        }
        assert_eq!(page(&web(&[("client_id", "svc")])), "client \"svc\" is not allowed the authorization_code grant");
        // Two registered URIs: the request must name one.
        assert!(page(&web(&[("redirect_uri", "")])).contains("has 2 registered redirect URIs"));
        // Later errors are not checked before the target is known.
        assert_eq!(page(&web(&[("client_id", "x"), ("response_type", "token")])), "unknown client \"x\"");
        let long = "x".repeat(500);
        assert!(page(&web(&[("client_id", &long)])).len() < 150, "user input is cut in messages");
    }

    #[test]
    fn the_only_registered_uri_is_used_when_omitted() {
        let pairs = [
            ("response_type", "code"),
            ("client_id", "spa"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let r = parse(&pairs).expect("valid");
        assert_eq!(r.target.redirect_uri, "http://127.0.0.1:9001/");
        assert!(!r.target.redirect_uri_given);
    }

    #[test]
    fn loopback_redirect_uris_match_any_port() {
        assert!(redirect_uri_matches("http://127.0.0.1:9001/", "http://127.0.0.1:51234/", true));
        assert!(redirect_uri_matches("http://127.0.0.1:9001/", "http://127.0.0.1/", true));
        assert!(redirect_uri_matches("http://[::1]/callback", "http://[::1]:8765/callback", true));
        assert!(redirect_uri_matches("http://127.0.0.1/cb?a=1", "http://127.0.0.1:1/cb?a=1", true));
        assert!(
            !redirect_uri_matches("http://127.0.0.1:9001/", "http://127.0.0.1:9001/x", true),
            "the path must match"
        );
        assert!(!redirect_uri_matches("http://127.0.0.1:9001/", "http://[::1]:9001/", true), "the host must match");
        assert!(!redirect_uri_matches("http://127.0.0.1:9001/", "https://127.0.0.1:9001/", true));
        assert!(!redirect_uri_matches("http://127.0.0.1:9001/", "http://127.0.0.1:9001@evil.example/", true));
        assert!(!redirect_uri_matches("http://127.0.0.1:9001/", "http://127.0.0.1.evil.example/", true));
        assert!(!redirect_uri_matches("http://127.0.0.1:9001/", "http://127.0.0.1:99999/", true), "not a port");
        assert!(
            !redirect_uri_matches("https://app.example:443/cb", "https://app.example:8443/cb", true),
            "not loopback"
        );
        assert!(
            !redirect_uri_matches("http://localhost:9001/", "http://localhost:9002/", true),
            "RFC 8252 8.3: not localhost"
        );
        assert!(
            !redirect_uri_matches("http://127.0.0.1:9000/callback", "http://127.0.0.1:9999/callback", false),
            "RFC 9700 2.1: a web client's loopback URI matches exactly"
        );
        assert!(redirect_uri_matches("http://127.0.0.1:9000/callback", "http://127.0.0.1:9000/callback", false));
        let pairs = [
            ("response_type", "code"),
            ("client_id", "cli"),
            ("redirect_uri", "http://[::1]:40123/callback"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(parse(&pairs).expect("valid").target.redirect_uri, "http://[::1]:40123/callback");
    }

    #[test]
    fn response_type_must_be_code() {
        let e = redirected(&web(&[("response_type", "")]));
        assert_eq!((e.code, e.state.as_deref()), (AuthorizeErrorCode::InvalidRequest, Some("xyz")));
        assert!(e.description.contains("response_type is missing"));
        for other in ["token", "code id_token", "id_token"] {
            let e = redirected(&web(&[("response_type", other)]));
            assert_eq!(e.code, AuthorizeErrorCode::UnsupportedResponseType, "{other}");
        }
        assert_eq!(redirected(&web(&[("request", "eyJ...")])).code, AuthorizeErrorCode::RequestNotSupported);
        assert_eq!(redirected(&web(&[("request_uri", "https://x")])).code, AuthorizeErrorCode::RequestUriNotSupported);
        assert_eq!(redirected(&web(&[("response_mode", "fragment")])).code, AuthorizeErrorCode::InvalidRequest);
        assert!(parse(&web(&[("response_mode", "query")])).is_ok());
    }

    #[test]
    fn scopes_are_limited_to_the_clients() {
        let e = redirected(&web(&[("scope", "openid admin")]));
        assert_eq!(e.code, AuthorizeErrorCode::InvalidScope);
        assert!(e.description.contains("may not request scope admin"), "{}", e.description);
        assert_eq!(redirected(&web(&[("scope", "open\"id")])).code, AuthorizeErrorCode::InvalidScope);
        let all = parse(&web(&[])).expect("valid");
        assert_eq!(all.scope.to_string(), "email openid profile", "default: the registered scopes");
    }

    #[test]
    fn pkce_is_s256_only_and_required_for_public_clients() {
        let ok = parse(&web(&[("code_challenge", CHALLENGE), ("code_challenge_method", "S256")])).expect("valid");
        assert_eq!(ok.code_challenge.as_deref(), Some(CHALLENGE));
        let plain = redirected(&web(&[("code_challenge", CHALLENGE), ("code_challenge_method", "plain")]));
        assert_eq!(plain.code, AuthorizeErrorCode::InvalidRequest);
        assert!(plain.description.contains("\"plain\" is not supported; use S256"));
        let implicit_plain = redirected(&web(&[("code_challenge", CHALLENGE)]));
        assert!(implicit_plain.description.contains("code_challenge_method is missing"));
        let short = redirected(&web(&[("code_challenge", "abc"), ("code_challenge_method", "S256")]));
        assert!(short.description.contains("43 base64url characters"));
        let bad_chars = format!("{}+", &CHALLENGE[..42]);
        assert_eq!(
            redirected(&web(&[("code_challenge", &bad_chars), ("code_challenge_method", "S256")])).code,
            AuthorizeErrorCode::InvalidRequest
        );
        assert!(redirected(&web(&[("code_challenge_method", "S256")])).description.contains("without code_challenge"));
        let spa = [("response_type", "code"), ("client_id", "spa"), ("state", "s")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let e = redirected(&spa);
        assert_eq!(e.code, AuthorizeErrorCode::InvalidRequest);
        assert!(e.description.starts_with("PKCE (S256) is required for public clients"));
        assert_eq!(e.redirect_uri, "http://127.0.0.1:9001/");
    }

    #[test]
    fn prompt_values_are_checked() {
        assert_eq!(parse(&web(&[("prompt", "login")])).expect("valid").prompt, Prompt { none: false, login: true });
        assert_eq!(parse(&web(&[("prompt", "none")])).expect("valid").prompt, Prompt { none: true, login: false });
        assert!(parse(&web(&[("prompt", "login consent select_account")])).is_ok());
        let mixed = redirected(&web(&[("prompt", "none login")]));
        assert_eq!(mixed.code, AuthorizeErrorCode::InvalidRequest);
        assert!(mixed.description.contains("prompt=none cannot be combined"));
        let unknown = redirected(&web(&[("prompt", "create")]));
        assert!(unknown.description.contains("prompt value \"create\" is unknown"));
    }

    #[test]
    fn max_age_is_a_non_negative_integer() {
        assert_eq!(parse(&web(&[("max_age", "0")])).expect("valid").max_age, Some(0));
        for bad in ["-1", "1.5", "+5", "soon", "99999999999999999999999"] {
            let e = redirected(&web(&[("max_age", bad)]));
            assert_eq!(e.code, AuthorizeErrorCode::InvalidRequest, "{bad}");
            assert!(e.description.contains("not a non-negative integer"), "{bad}");
        }
    }

    #[test]
    fn the_session_decides_between_code_sign_in_and_login_required() {
        let plain = parse(&web(&[])).expect("valid");
        assert_eq!(plain.step(None, T0), Step::SignIn);
        assert_eq!(plain.step(Some(T0), T0.plus(Secs::hours(5))), Step::IssueCode, "single sign-on");

        let login = parse(&web(&[("prompt", "login")])).expect("valid");
        assert_eq!(login.step(Some(T0), T0), Step::SignIn, "prompt=login asks despite a session");

        let none = parse(&web(&[("prompt", "none")])).expect("valid");
        assert_eq!(none.step(Some(T0), T0.plus(Secs::new(5))), Step::IssueCode);
        match none.step(None, T0) {
            Step::Refuse(e) => {
                assert_eq!((e.code, e.state.as_deref()), (AuthorizeErrorCode::LoginRequired, Some("xyz")));
            }
            other => panic!("expected login_required, got {other:?}"),
        }

        let max_age = parse(&web(&[("max_age", "60")])).expect("valid");
        assert_eq!(max_age.step(Some(T0), T0.plus(Secs::new(60))), Step::IssueCode, "exactly max_age is fine");
        assert_eq!(max_age.step(Some(T0), T0.plus(Secs::new(61))), Step::SignIn);
        let zero = parse(&web(&[("max_age", "0")])).expect("valid");
        assert_eq!(zero.step(Some(T0), T0.plus(Secs::new(1))), Step::SignIn, "max_age=0 forces a sign-in");

        let none_max_age = parse(&web(&[("prompt", "none"), ("max_age", "10")])).expect("valid");
        assert!(matches!(
            none_max_age.step(Some(T0), T0.plus(Secs::new(11))),
            Step::Refuse(ErrorRedirect { code: AuthorizeErrorCode::LoginRequired, .. })
        ));
    }

    #[test]
    fn responses_keep_the_registered_query_and_carry_iss() {
        let r =
            parse(&web(&[("redirect_uri", "https://app.example/cb2?tenant=1"), ("state", "a b&c")])).expect("valid");
        assert_eq!(
            r.code_location("C0DE", ISS),
            "https://app.example/cb2?tenant=1&code=C0DE&state=a+b%26c&iss=http%3A%2F%2F127.0.0.1%3A8080"
        );
        let e = redirected(&web(&[("response_type", "token")]));
        assert_eq!(
            e.location(ISS),
            "https://app.example/cb?error=unsupported_response_type&error_description=response_type+%22token%22+is+not+supported%3B+use+response_type%3Dcode&state=xyz&iss=http%3A%2F%2F127.0.0.1%3A8080"
        );
        assert_eq!(redirect_location("https://a/cb?", &[("code", "c")]), "https://a/cb?code=c");
        assert_eq!(redirect_location("https://a/cb?x=1&", &[("code", "c")]), "https://a/cb?x=1&code=c");
        assert_eq!(redirect_location("com.example.app:/cb", &[("code", "c")]), "com.example.app:/cb?code=c");
    }

    #[test]
    fn after_sign_in_the_request_continues_without_prompt_login_and_max_age() {
        let q = "response_type=code&client_id=web&prompt=login+consent&max_age=0&state=a%26b&nonce=";
        assert_eq!(
            query_after_sign_in(q).expect("valid"),
            "response_type=code&client_id=web&prompt=consent&state=a%26b"
        );
        assert_eq!(query_after_sign_in("client_id=web&prompt=login").expect("valid"), "client_id=web");
        assert!(query_after_sign_in("client_id=web&client_id=evil").is_err(), "duplicates are refused");
    }
}
