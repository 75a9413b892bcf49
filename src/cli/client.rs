//! The admin API over HTTP: one reqwest client with short timeouts, a token
//! by client credentials (RFC 6749 4.4) fetched on the first call, and every
//! answer that is not a success turned into a [`CliError`] carrying the
//! server's `error` and `message`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use super::CliError;
use crate::secret::Secret;

/// A connection may take this long to open...
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// ...and a whole request this long (creating a user hashes a password).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The scope that puts the client's `permissions` into its token (SPEC 4).
const ADMIN_SCOPE: &str = "admin";

/// Who the command line signs in as.
pub struct Credentials {
    pub client_id: String,
    pub secret: Secret,
}

pub struct AdminClient {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    token: OnceCell<String>,
}

impl AdminClient {
    /// No I/O yet: the token is fetched by the first request, so a command
    /// whose arguments are wrong never reaches the server.
    pub fn new(base: &str, credentials: Credentials) -> Result<Self, CliError> {
        let base = Url::parse(base.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .filter(|u| u.query().is_none() && u.fragment().is_none())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "TENURE_URL (or --url) must be the issuer's http(s) URL, like https://id.example.com; got {base:?}"
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tenure-admin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Transport { during: "starting the HTTP client".into(), reason: describe(&e) })?;
        Ok(AdminClient { http, base, credentials, token: OnceCell::new() })
    }

    /// Whether the secret and tokens would cross a network in clear: `http`
    /// to a host other than loopback (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn is_cleartext_remote(&self) -> bool {
        let loopback = match self.base.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        self.base.scheme() == "http" && !loopback
    }

    /// The URL of `segments` under the base URL, each segment escaped (a
    /// username with a `/` stays one segment).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `GET url`, expecting a JSON body.
    pub async fn get(&self, url: Url) -> Result<Value, CliError> {
        self.call(Method::GET, url, None).await?.ok_or_else(|| CliError::Transport {
            during: "reading the answer".into(),
            reason: "the server answered without a body".into(),
        })
    }

    /// `method url` with an optional JSON body; `None` for 204 No Content.
    pub async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Option<Value>, CliError> {
        let token = self.token.get_or_try_init(|| self.fetch_token()).await?;
        let during = format!("{method} {}", url.path());
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.map_err(|e| CliError::Transport { during: during.clone(), reason: describe(&e) })?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let text =
            response.text().await.map_err(|e| CliError::Transport { during: during.clone(), reason: describe(&e) })?;
        let json = serde_json::from_str::<Value>(&text).ok();
        match json {
            Some(value) if status.is_success() => Ok(Some(value)),
            json => Err(refusal(during, status, json.as_ref())),
        }
    }

    /// Client credentials at the token endpoint discovery names.
    async fn fetch_token(&self) -> Result<String, CliError> {
        let endpoint = self.token_endpoint().await?;
        let id = &self.credentials.client_id;
        let during = format!("getting a token for client {id:?} at {endpoint}");
        // RFC 6749 2.3.1: id and secret are form-encoded inside Basic.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(endpoint.clone())
            .basic_auth(encode(id), Some(encode(self.credentials.secret.expose())))
            .form(&[("grant_type", "client_credentials"), ("scope", ADMIN_SCOPE)])
            .send()
            .await
            .map_err(|e| CliError::Transport { during: during.clone(), reason: describe(&e) })?;
        let status = response.status();
        let json = response.json::<Value>().await.ok();
        match json.as_ref().and_then(|v| v["access_token"].as_str()) {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => Err(refusal(during, status, json.as_ref())),
        }
    }

    /// The discovery document's `token_endpoint` when it is on the host the
    /// operator named (a secret only ever goes there), else `<url>/token`.
    async fn token_endpoint(&self) -> Result<Url, CliError> {
        let fallback = self.url(&["token"]);
        let discovery = self.url(&[".well-known", "openid-configuration"]);
        let during = format!("reading discovery at {discovery}");
        let response = self
            .http
            .get(discovery)
            .send()
            .await
            .map_err(|e| CliError::Transport { during: during.clone(), reason: describe(&e) })?;
        if !response.status().is_success() {
            return Ok(fallback);
        }
        let advertised = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["token_endpoint"].as_str().and_then(|s| Url::parse(s).ok()));
        Ok(advertised.filter(|u| u.origin() == self.base.origin()).unwrap_or(fallback))
    }
}

/// A refusal in the server's words: `message` on the admin API,
/// `error_description` on the token endpoint (RFC 6749 5.2).
fn refusal(during: String, status: StatusCode, body: Option<&Value>) -> CliError {
    let field = |name: &str| body.and_then(|b| b[name].as_str()).map(str::to_owned);
    let message = field("message").or_else(|| field("error_description")).unwrap_or_else(|| {
        format!("the server answered {status} without an error message; is TENURE_URL the issuer's URL?")
    });
    let error = field("error").unwrap_or_default();
    CliError::Server { during, status: status.as_u16(), error, message }
}

/// A transport failure in a line: what kind, and its root cause (`cannot
/// connect: Connection refused (os error 111)`).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let kind = if e.is_connect() { "cannot connect" } else { "the request failed" };
    let mut root: &dyn std::error::Error = e;
    while let Some(cause) = root.source() {
        root = cause;
    }
    format!("{kind}: {root}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> AdminClient {
        let credentials = Credentials { client_id: "cli".into(), secret: Secret::new("s") };
        AdminClient::new(url, credentials).map_err(|e| e.to_string()).expect("a valid URL")
    }

    #[test]
    fn only_http_beyond_loopback_is_cleartext() {
        assert!(client("http://id.example.com").is_cleartext_remote());
        assert!(client("http://10.0.0.5:8080").is_cleartext_remote());
        assert!(!client("https://id.example.com").is_cleartext_remote());
        assert!(!client("http://127.0.0.1:8080").is_cleartext_remote());
        assert!(!client("http://[::1]:8080").is_cleartext_remote());
        assert!(!client("http://[::ffff:127.0.0.1]:8080").is_cleartext_remote());
        assert!(!client("http://127.8.9.10:8080").is_cleartext_remote());
        assert!(client("http://[2001:db8::1]:8080").is_cleartext_remote());
        assert!(client("http://localhost.example.com:8080").is_cleartext_remote());
        assert!(!client("http://localhost:8080").is_cleartext_remote());
    }

    #[test]
    fn paths_are_escaped_segment_by_segment_under_the_base() {
        let c = client("https://example.com/auth/");
        assert_eq!(c.url(&["admin", "users", "a/b c"]).as_str(), "https://example.com/auth/admin/users/a%2Fb%20c");
        assert_eq!(client("https://example.com").url(&["token"]).as_str(), "https://example.com/token");
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        let credentials = || Credentials { client_id: "cli".into(), secret: Secret::new("s") };
        for bad in ["example.com", "ftp://example.com", "https://example.com/?x=1", ""] {
            let err = AdminClient::new(bad, credentials()).err().map(|e| e.exit_code());
            assert_eq!(err, Some(2), "{bad}");
        }
    }
}
