//! The test kit (after kanidm's `testkit`): the clients and users that most
//! modules configure, and the sign-in and token flows, written once. A
//! module composes its config from these snippets (in `config_with`) and
//! declares only what is its own.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::Server;
use super::flow::{Browser, pkce_pair};

/// The redirect URI of the confidential `web` client.
pub const WEB_REDIRECT: &str = "http://127.0.0.1:9000/callback";

/// The `web` client's credentials (HTTP Basic).
pub const WEB: (&str, &str) = ("web", "web-secret");

/// A `[[clients]]` service account `$id` (secret `$id-secret`) holding
/// `system:administer` through the `admin` scope.
macro_rules! administrator_account {
    ($id:literal) => {
        concat!(
            "\n[[clients]]\nid = \"",
            $id,
            "\"\nsecret = \"",
            $id,
            "-secret\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"admin\"]\n",
            "permissions = [\"system:administer\"]\n"
        )
    };
}

/// The service account `root-automation`, holding `system:administer`.
pub const ROOT_AUTOMATION: &str = administrator_account!("root-automation");

/// The service account `ops`, holding `system:administer`.
pub const OPS: &str = administrator_account!("ops");

/// The confidential `web` client (code and refresh grants) at
/// [`WEB_REDIRECT`] with these scopes (no `scopes` line when empty).
pub fn web_client(scopes: &[&str]) -> String {
    let mut client = format!(
        r#"
[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["{WEB_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
"#
    );
    if !scopes.is_empty() {
        let list: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        client.push_str(&format!("scopes = [{}]\n", list.join(", ")));
    }
    client
}

/// The public client `spa` (code and refresh grants, PKCE) at
/// `redirect_uri`, readable from `web_origin`; lines that follow the
/// snippet belong to the client.
pub fn spa_client(redirect_uri: &str, web_origin: &str) -> String {
    format!(
        r#"
[[clients]]
id = "spa"
public = true
redirect_uris = ["{redirect_uri}"]
web_origins = ["{web_origin}"]
grant_types = ["authorization_code", "refresh_token"]
"#
    )
}

/// A configured user `name` whose password is `{name}-password`, with these
/// permissions (no `permissions` line when empty).
pub fn user(name: &str, permissions: &[&str]) -> String {
    let mut user = format!("\n[[users]]\nusername = \"{name}\"\npassword = \"{name}-password\"\n");
    if !permissions.is_empty() {
        let list: Vec<String> = permissions.iter().map(|p| format!("\"{p}\"")).collect();
        user.push_str(&format!("permissions = [{}]\n", list.join(", ")));
    }
    user
}

/// A token response of the code flow.
pub struct Tokens {
    pub body: Value,
}

impl Tokens {
    pub fn access(&self) -> String {
        self.body["access_token"].as_str().unwrap_or_else(|| panic!("access_token in {}", self.body)).to_owned()
    }

    pub fn refresh(&self) -> String {
        self.body["refresh_token"].as_str().unwrap_or_else(|| panic!("refresh_token in {}", self.body)).to_owned()
    }

    /// The `sid` claim of the access token.
    pub fn sid(&self) -> String {
        claims(&self.access())["sid"].as_str().expect("a user token carries sid").to_owned()
    }
}

/// The (unverified) claims of a JWT; the tests that verify them use
/// `support::verify`.
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Redeem `code` at `/token` for the confidential `client`, with the PKCE
/// verifier when the flow had one; the response, unchecked.
pub async fn code_exchange(
    server: &Server,
    client: (&str, &str),
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    server.post_form("/token", Some(client), &form).await
}

/// [`code_exchange`] that must succeed: the token response.
pub async fn redeem(
    server: &Server,
    client: (&str, &str),
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Tokens {
    let resp = code_exchange(server, client, code, redirect_uri, verifier).await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("a JSON token response");
    assert_eq!(status, 200, "{body}");
    Tokens { body }
}

/// Sign `user` in at `web` with PKCE from a fresh browser (a new session)
/// and redeem the code.
pub async fn sign_in(server: &Server, user: &str, password: &str, scope: &str) -> Tokens {
    sign_in_in(server, &Browser::new(), user, password, scope, false).await
}

/// [`sign_in`] in `browser`, which must not be signed in yet.
pub async fn sign_in_in(
    server: &Server,
    browser: &Browser,
    user: &str,
    password: &str,
    scope: &str,
    remember_me: bool,
) -> Tokens {
    let (verifier, challenge) = pkce_pair();
    let query = [
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", WEB_REDIRECT),
        ("scope", scope),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = browser.sign_in_for_code(server, &query, user, password, remember_me).await;
    redeem(server, WEB, &code, WEB_REDIRECT, Some(&verifier)).await
}

/// A code for `client_id` (redirecting to [`WEB_REDIRECT`]) without PKCE:
/// `user` signs in from a fresh browser.
pub async fn code_without_pkce(
    server: &Server,
    client_id: &str,
    user: &str,
    password: &str,
    scope: &str,
    remember_me: bool,
) -> String {
    let query = [("response_type", "code"), ("client_id", client_id), ("redirect_uri", WEB_REDIRECT), ("scope", scope)];
    Browser::new().sign_in_for_code(server, &query, user, password, remember_me).await
}

/// Sign `user` in at the confidential `client` (redirecting to
/// [`WEB_REDIRECT`]) without PKCE from a fresh browser, and redeem the code.
pub async fn sign_in_without_pkce(
    server: &Server,
    client: (&str, &str),
    user: &str,
    password: &str,
    scope: &str,
    remember_me: bool,
) -> Tokens {
    let code = code_without_pkce(server, client.0, user, password, scope, remember_me).await;
    redeem(server, client, &code, WEB_REDIRECT, None).await
}

/// `grant_type=refresh_token` for `client`; the response, unchecked.
pub async fn refresh(server: &Server, client: (&str, &str), token: &str) -> reqwest::Response {
    server.post_form("/token", Some(client), &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
}

/// Whether `/introspect` (asked by `orders-api`) calls `token` active.
pub async fn introspect_active(server: &Server, token: &str) -> bool {
    let resp = server.post_form("/introspect", Some(("orders-api", "orders-secret")), &[("token", token)]).await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.expect("JSON")["active"].as_bool().expect("active")
}

/// A client-credentials token of `id` with the scope `scope` (none when
/// empty).
pub async fn cc_token_scoped(server: &Server, id: &str, secret: &str, scope: &str) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        form.push(("scope", scope));
    }
    let resp = server.post_form("/token", Some((id, secret)), &form).await;
    assert_eq!(resp.status(), 200, "client credentials for {id}");
    resp.json::<Value>().await.expect("JSON")["access_token"].as_str().expect("access_token").to_owned()
}

/// A client-credentials token of `id` without a scope.
pub async fn cc_token(server: &Server, id: &str, secret: &str) -> String {
    cc_token_scoped(server, id, secret, "").await
}

/// A client-credentials token of the service account `id` with the `admin`
/// scope (so with its permissions), for the admin API.
pub async fn cc_admin_token(server: &Server, id: &str, secret: &str) -> String {
    cc_token_scoped(server, id, secret, "admin").await
}

/// A `system:administer` token of `root-automation` ([`ROOT_AUTOMATION`]).
pub async fn root_token(server: &Server) -> String {
    cc_admin_token(server, "root-automation", "root-automation-secret").await
}

/// An admin-API call: the status and the JSON body (`Null` when empty, the
/// text as a string when not JSON).
pub async fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = server.http.request(method.parse().expect("an HTTP method"), server.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// A relying party's back-channel logout endpoint on 127.0.0.1: the `sid`
/// of every logout token POSTed to it, in order. Stopped when dropped.
pub struct LogoutReceiver {
    pub uri: String,
    sids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LogoutReceiver {
    pub async fn start() -> LogoutReceiver {
        use base64::Engine;
        let sids: Arc<Mutex<Vec<String>>> = Default::default();
        let seen = sids.clone();
        let app = axum::Router::new().route(
            "/bc",
            axum::routing::post(move |body: String| {
                let seen = seen.clone();
                async move {
                    let token = form_urlencoded::parse(body.as_bytes())
                        .find(|(k, _)| k == "logout_token")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let payload = token.split('.').nth(1).unwrap_or_default();
                    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(payload)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or(Value::Null);
                    seen.lock().unwrap().push(claims["sid"].as_str().unwrap_or_default().to_owned());
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let uri = format!("http://{}/bc", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        LogoutReceiver { uri, sids, task }
    }

    pub fn received(&self) -> Vec<String> {
        self.sids.lock().unwrap().clone()
    }
}

impl Drop for LogoutReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
