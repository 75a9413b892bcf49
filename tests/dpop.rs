//! DPoP (RFC 9449, SPEC 13) end to end: a single-page app binds its token
//! family to a key at code exchange; every refresh needs a fresh proof from
//! that key (a stolen refresh token is useless, inside the grace window too);
//! access tokens carry `cnf.jkt` and work at `/userinfo` only with a proof;
//! introspection shows the binding; nonces and CORS as a browser needs them.
//! Proofs are signed here with ring (ES256), independently of tenure.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::{Method, Response};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::support::flow::{Browser, pkce_pair};
use crate::support::kit::{spa_client, user};
use crate::support::{Server, config_with};

const SPA_ORIGIN: &str = "http://127.0.0.1:9011";
const SPA_REDIRECT: &str = "http://127.0.0.1:9011/callback";

fn config() -> String {
    config_with(&format!(
        r#"
[session]
refresh_reuse_grace = "60s"
{}scopes = ["openid", "profile"]

[[clients]]
id = "resource-server"
secret = "rs-secret"
grant_types = ["client_credentials"]

[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["{SPA_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]

[[users]]
username = "alice"
password = "alice-password"
"#,
        spa_client(SPA_REDIRECT, SPA_ORIGIN)
    ))
}

fn now() -> u64 {
    use tenure::clock::Clock;
    tenure::clock::SystemClock.now().as_secs()
}

fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An ES256 key of the app (a WebCrypto key in a browser).
pub(crate) struct DpopKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl DpopKey {
    pub(crate) fn new() -> DpopKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        DpopKey { pair, rng }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({ "kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]) })
    }

    /// RFC 7638 thumbprint, computed here from the members in order.
    pub(crate) fn jkt(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        B64.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
    }

    /// A proof with exactly these claims.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() });
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = self.pair.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(signature.as_ref()))
    }

    /// A fresh proof for `htm` `htu`, with the server's `nonce` and the
    /// hash of `access_token` if given.
    pub(crate) fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, access_token: Option<&str>) -> String {
        let mut claims = json!({ "jti": new_jti(), "htm": htm, "htu": htu, "iat": now() });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        if let Some(t) = access_token {
            claims["ath"] = B64.encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes())).into();
        }
        self.sign(&claims)
    }
}

/// The SPA's token requests: the token endpoint and the last nonce seen.
struct Spa<'a> {
    server: &'a Server,
    token_endpoint: String,
    nonce: Option<String>,
}

impl<'a> Spa<'a> {
    async fn new(server: &'a Server) -> Spa<'a> {
        let discovery = server.get_json("/.well-known/openid-configuration").await;
        Spa { server, token_endpoint: discovery["token_endpoint"].as_str().unwrap().to_owned(), nonce: None }
    }

    /// POST /token with `form` and an optional `DPoP` header; remembers
    /// the `DPoP-Nonce` of the answer.
    async fn post(&mut self, form: &[(&str, &str)], proof: Option<&str>) -> Response {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut req = self
            .server
            .http
            .post(self.server.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        let resp = req.send().await.unwrap();
        if let Some(n) = resp.headers().get("dpop-nonce") {
            self.nonce = Some(n.to_str().unwrap().to_owned());
        }
        resp
    }

    /// POST /token with a fresh proof by `key`, fetching the nonce first
    /// when the server asks for it (`use_dpop_nonce`).
    async fn post_with(&mut self, key: &DpopKey, form: &[(&str, &str)]) -> Response {
        let proof = key.proof("POST", &self.token_endpoint.clone(), self.nonce.as_deref(), None);
        let resp = self.post(form, Some(&proof)).await;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.bytes().await.unwrap();
        let asks_for_nonce = serde_json::from_slice::<Value>(&bytes).is_ok_and(|b| b["error"] == "use_dpop_nonce");
        if !asks_for_nonce {
            let mut same = axum::http::Response::new(bytes);
            *same.status_mut() = status;
            *same.headers_mut() = headers;
            return Response::from(same);
        }
        let proof = key.proof("POST", &self.token_endpoint.clone(), self.nonce.as_deref(), None);
        self.post(form, Some(&proof)).await
    }

    /// Sign alice in and redeem the code with a proof by `key`.
    async fn sign_in(&mut self, key: &DpopKey, extra: &[(&str, &str)]) -> Value {
        let code = code(self.server, extra).await;
        let resp = self.post_with(key, &code.form()).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("dpop-nonce").is_some(), "every DPoP token response carries a fresh nonce");
        resp.json().await.unwrap()
    }
}

struct Code {
    code: String,
    verifier: String,
}

impl Code {
    fn form(&self) -> Vec<(&str, &str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", &self.code),
            ("redirect_uri", SPA_REDIRECT),
            ("code_verifier", &self.verifier),
        ]
    }
}

async fn code(server: &Server, extra: &[(&str, &str)]) -> Code {
    let (verifier, challenge) = pkce_pair();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", SPA_REDIRECT),
        ("scope", "openid profile"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    query.extend_from_slice(extra);
    let code = Browser::new().sign_in_for_code(server, &query, "alice", "alice-password", false).await;
    Code { code, verifier }
}

fn refresh_form(token: &str) -> Vec<(&str, &str)> {
    vec![("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", token)]
}

/// The payload of a JWT, unverified (tenure's signature is checked elsewhere).
fn payload(jwt: &str) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn error(resp: Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned(), body["error_description"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_bound_spa_family_refreshes_only_with_a_fresh_proof_of_its_key() {
    let server = Server::start(&config(), &[]);
    let key = DpopKey::new();
    let mut spa = Spa::new(&server).await;
    let htu = spa.token_endpoint.clone();

    // The first proof has no nonce: the server asks for one, then binds.
    let code = code(&server, &[]).await;
    let resp = spa.post(&code.form(), Some(&key.proof("POST", &htu, None, None))).await;
    assert!(resp.headers().get("dpop-nonce").is_some());
    assert_eq!(error(resp).await.1, "use_dpop_nonce");
    let resp = spa.post(&code.form(), Some(&key.proof("POST", &htu, spa.nonce.as_deref(), None))).await;
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let access = payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["cnf"]["jkt"], key.jkt());
    let jwks = server.jwks().await;
    crate::support::verify(tokens["access_token"].as_str().unwrap(), &jwks, &server.base, &server.base);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = refresh_form(&refresh);
    let nonce = spa.nonce.clone();
    let n = nonce.as_deref();

    // Refused, each naming the problem; nothing rotates.
    let (status, code, description) = error(spa.post(&form, None).await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_dpop_proof"), "{description}");
    assert!(description.contains("bound to a DPoP key"), "{description}");
    let (_, code, description) = error(spa.post(&form, Some(&DpopKey::new().proof("POST", &htu, n, None))).await).await;
    assert_eq!(code, "invalid_grant");
    assert!(description.contains("another key"), "{description}");
    let wrong_htu = htu.replace("/token", "/userinfo");
    let (_, code, description) = error(spa.post(&form, Some(&key.proof("POST", &wrong_htu, n, None))).await).await;
    assert_eq!(code, "invalid_dpop_proof");
    assert!(description.contains("htu"), "{description}");
    let (_, code, description) = error(spa.post(&form, Some(&key.proof("GET", &htu, n, None))).await).await;
    assert_eq!(code, "invalid_dpop_proof");
    assert!(description.contains("htm \"GET\""), "{description}");
    let stale = key.sign(&json!({ "jti": new_jti(), "htm": "POST", "htu": htu, "iat": now() - 120, "nonce": n }));
    let (_, code, description) = error(spa.post(&form, Some(&stale)).await).await;
    assert_eq!(code, "invalid_dpop_proof");
    assert!(description.contains("stale"), "{description}");
    let resp = spa.post(&form, Some(&key.proof("POST", &htu, None, None))).await;
    assert_eq!(error(resp).await.1, "use_dpop_nonce", "no nonce");

    // The right proof: rotates, bound again; a replay of that proof is refused.
    let proof = key.proof("POST", &htu, spa.nonce.as_deref(), None);
    let resp = spa.post(&form, Some(&proof)).await;
    assert_eq!(resp.status(), 200, "the refresh token survived the refusals");
    let next: Value = resp.json().await.unwrap();
    assert_eq!(next["token_type"], "DPoP");
    assert_eq!(payload(next["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
    let next_refresh = next["refresh_token"].as_str().unwrap();
    let (_, code, description) = error(spa.post(&refresh_form(next_refresh), Some(&proof)).await).await;
    assert_eq!(code, "invalid_dpop_proof");
    assert!(description.contains("already used"), "{description}");
    let resp = spa.post_with(&key, &refresh_form(next_refresh)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_stolen_bound_refresh_token_is_useless_inside_the_grace_window() {
    let server = Server::start(&config(), &[]);
    let key = DpopKey::new();
    let mut spa = Spa::new(&server).await;
    let tokens = spa.sign_in(&key, &[]).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let resp = spa.post_with(&key, &refresh_form(&first)).await;
    assert_eq!(resp.status(), 200);
    let second = resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();

    // The thief replays the spent token within the 60 s grace window.
    let (_, code, _) = error(spa.post(&refresh_form(&first), None).await).await;
    assert_eq!(code, "invalid_dpop_proof", "no proof");
    let thief = DpopKey::new();
    let (_, code, _) = error(spa.post_with(&thief, &refresh_form(&first)).await).await;
    assert_eq!(code, "invalid_grant", "the thief's own key");
    let (_, code, _) = error(spa.post_with(&thief, &refresh_form(&second)).await).await;
    assert_eq!(code, "invalid_grant", "the current token, the thief's own key");

    // The app is unaffected and its family still alive.
    let resp = spa.post_with(&key, &refresh_form(&second)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn userinfo_takes_the_bound_token_with_a_proof_and_ath_only() {
    let server = Server::start(&config(), &[]);
    let key = DpopKey::new();
    let mut spa = Spa::new(&server).await;
    let tokens = spa.sign_in(&key, &[]).await;
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo =
        server.get_json("/.well-known/openid-configuration").await["userinfo_endpoint"].as_str().unwrap().to_owned();
    let get = |auth: String, proof: Option<String>| {
        let mut req = server.http.get(server.url("/userinfo")).header("authorization", auth);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };

    let resp = get(format!("DPoP {access}"), Some(key.proof("GET", &userinfo, None, Some(access)))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["sub"], "alice");
    // POST with the proof's htm POST works too.
    let resp = server
        .http
        .post(server.url("/userinfo"))
        .header("authorization", format!("DPoP {access}"))
        .header("dpop", key.proof("POST", &userinfo, None, Some(access)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let challenge = |resp: &Response| resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let resp = get(format!("DPoP {access}"), Some(key.proof("GET", &userinfo, None, Some("another token")))).await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(challenge(&resp).starts_with("DPoP "), "{}", challenge(&resp));
    assert!(challenge(&resp).contains("error=\"invalid_dpop_proof\""));
    assert!(error(resp).await.2.contains("ath"));
    let resp = get(format!("DPoP {access}"), Some(DpopKey::new().proof("GET", &userinfo, None, Some(access)))).await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(error(resp).await.2.contains("another key"));
    let resp = get(format!("DPoP {access}"), None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(error(resp).await.1, "invalid_dpop_proof");

    // RFC 9449 7.1: the bound token as a bearer token is refused.
    let resp = get(format!("Bearer {access}"), None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(challenge(&resp).starts_with("DPoP "), "{}", challenge(&resp));
    assert!(challenge(&resp).contains("error=\"invalid_token\""));
    // So is it at the account API.
    let resp = server
        .http
        .get(server.url("/account/sessions"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn introspection_returns_the_confirmation_of_bound_tokens() {
    let server = Server::start(&config(), &[]);
    let key = DpopKey::new();
    let mut spa = Spa::new(&server).await;
    let tokens = spa.sign_in(&key, &[]).await;
    for (token, kind) in [(&tokens["access_token"], "DPoP"), (&tokens["refresh_token"], "refresh_token")] {
        let resp = server
            .post_form("/introspect", Some(("resource-server", "rs-secret")), &[("token", token.as_str().unwrap())])
            .await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["active"], true);
        assert_eq!(body["token_type"], kind);
        assert_eq!(body["cnf"]["jkt"], key.jkt(), "{body}");
    }
    // An unbound token has no cnf.
    let plain = server.cc_token().await;
    let resp = server.post_form("/introspect", Some(("resource-server", "rs-secret")), &[("token", &plain)]).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("cnf").is_none());
}

#[tokio::test]
async fn an_authorization_request_with_dpop_jkt_is_redeemed_only_with_that_key() {
    let server = Server::start(&config(), &[]);
    let key = DpopKey::new();
    let mut spa = Spa::new(&server).await;
    let jkt = key.jkt();
    let code = code(&server, &[("dpop_jkt", jkt.as_str())]).await;
    let (_, err, description) = error(spa.post(&code.form(), None).await).await;
    assert_eq!(err, "invalid_dpop_proof");
    assert!(description.contains("dpop_jkt"), "{description}");
    let (_, err, _) = error(spa.post_with(&DpopKey::new(), &code.form()).await).await;
    assert_eq!(err, "invalid_dpop_proof", "another key");
    let resp = spa.post_with(&key, &code.form()).await;
    assert_eq!(resp.status(), 200);
    let (_, challenge) = pkce_pair();
    let query = [
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", SPA_REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", "short"),
    ];
    let bad = Browser::new().authorize(&server, &query).await;
    let location = crate::support::flow::location(&bad).unwrap_or_default();
    assert!(location.starts_with(SPA_REDIRECT), "{location}");
    assert_eq!(crate::support::flow::query_param(&location, "error").as_deref(), Some("invalid_request"));
    let description = crate::support::flow::query_param(&location, "error_description").unwrap();
    assert!(description.contains("dpop_jkt"), "{description}");
}

#[tokio::test]
async fn a_confidential_client_binds_access_tokens_per_request_but_not_its_family() {
    let server = Server::start(&config(), &[("TENURE_DPOP_NONCE", "off")]);
    let key = DpopKey::new();
    let htu = server.get_json("/.well-known/openid-configuration").await["token_endpoint"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce_pair();
    let query = [
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", SPA_REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = Browser::new().sign_in_for_code(&server, &query, "alice", "alice-password", false).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", SPA_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let post = |form: Vec<(&'static str, String)>, proof: Option<String>| {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut req = server
            .http
            .post(server.url("/token"))
            .basic_auth("web", Some("web-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };
    let owned = |f: &[(&'static str, &str)]| f.iter().map(|(k, v)| (*k, (*v).to_owned())).collect::<Vec<_>>();
    let resp = post(owned(&form), Some(key.proof("POST", &htu, None, None))).await.unwrap();
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(payload(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
    // Its refresh tokens stay bound to its credentials only.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let resp = post(owned(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]), None).await.unwrap();
    assert_eq!(resp.status(), 200);
    let plain: Value = resp.json().await.unwrap();
    assert_eq!(plain["token_type"], "Bearer");
    assert!(payload(plain["access_token"].as_str().unwrap()).get("cnf").is_none());
}

#[tokio::test]
async fn with_nonces_off_a_first_proof_binds_at_once() {
    let server = Server::start(&config(), &[("TENURE_DPOP_NONCE", "off")]);
    let key = DpopKey::new();
    let mut spa = Spa::new(&server).await;
    let htu = spa.token_endpoint.clone();
    let code = code(&server, &[]).await;
    let resp = spa.post(&code.form(), Some(&key.proof("POST", &htu, None, None))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["token_type"], "DPoP");
}

#[tokio::test]
async fn browsers_may_send_dpop_and_read_the_nonce_and_discovery_lists_the_algorithms() {
    let server = Server::start(&config(), &[]);
    let discovery = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["dpop_signing_alg_values_supported"], json!(["ES256", "EdDSA", "RS256", "PS256"]));
    for (path, method) in [("/token", "POST"), ("/userinfo", "GET")] {
        let resp = server
            .http
            .request(Method::OPTIONS, server.url(path))
            .header("origin", SPA_ORIGIN)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "dpop, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let allowed = resp.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
        assert!(allowed.split(',').any(|h| h.trim().eq_ignore_ascii_case("dpop")), "{path}: {allowed}");
    }
    // The nonce of a token answer is readable by the page.
    let key = DpopKey::new();
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    let resp = server
        .http
        .post(server.url("/token"))
        .header("origin", SPA_ORIGIN)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", key.proof("POST", token_endpoint, None, None))
        .body("grant_type=refresh_token&client_id=spa&refresh_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], SPA_ORIGIN);
    let exposed = resp.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(exposed.contains("dpop-nonce"), "{exposed}");
    assert!(resp.headers().get("dpop-nonce").is_some());
}

/// oidc-client-ts's `dpop` option in Chromium: a WebCrypto key in IndexedDB
/// binds the family at the code exchange (with `dpop_jkt` and the nonce
/// round trip, cross-origin), a refresh signs a fresh proof, and userinfo
/// works with `Authorization: DPoP` while the same token as Bearer fails.
/// Skipped with one line when Chromium is not installed.
#[tokio::test]
async fn oidc_client_ts_binds_an_spa_to_a_browser_key_in_chromium() {
    use crate::spa::{Site, spa_with};
    use crate::support::browser::Chromium;

    let Some(browser) = Chromium::start().await else { return };
    let (listener, spa_origin) = Site::bind().await;
    let config =
        config_with(&format!("{}{}", spa_client(&format!("{spa_origin}/callback"), &spa_origin), user("alice", &[])));
    let server = Server::start(&config, &[]);
    let site = Site::serve(listener, spa_origin.clone(), spa_with(&spa_origin, &server.base, true));

    browser.goto(&site.url("/")).await;
    browser.wait_for_text("#status", "anonymous").await;
    let mut errors = browser.console_errors().await;
    browser.click("#sign-in").await;
    browser.wait_for("input[name=username]").await;
    let at_tenure = browser.url().await;
    assert!(at_tenure.query_pairs().any(|(k, _)| k == "dpop_jkt"), "bind_authorization_code: {at_tenure}");
    browser.fill("input[name=username]", "alice").await;
    browser.fill("input[name=password]", "alice-password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("#status", "signed in").await;
    errors.extend(browser.console_errors().await);

    let tokens = browser.execute("return window.currentTokens();", vec![]).await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let jkt = payload(&access)["cnf"]["jkt"].as_str().unwrap().to_owned();
    let refresh_1 = tokens["refresh_token"].as_str().unwrap().to_owned();

    // userinfo from the page, with a proof the library signs.
    let answer = browser.execute("return window.userinfoWithDpop();", vec![]).await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["sub"], "alice");
    // The same token as a bearer token, or the refresh token without the key: refused.
    let resp = server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let stolen = server
        .post_form(
            "/token",
            None,
            &[("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", &refresh_1)],
        )
        .await;
    assert_eq!(error(stolen).await.1, "invalid_dpop_proof");

    // A refresh in the page: a fresh proof from the same key, still bound.
    browser.click("#refresh").await;
    browser.wait_for_text("#status", "refreshed").await;
    errors.extend(browser.console_errors().await);
    let tokens = browser.execute("return window.currentTokens();", vec![]).await;
    assert_ne!(tokens["refresh_token"].as_str().unwrap(), refresh_1, "rotated");
    assert_eq!(payload(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"], jkt.as_str());
    let answer = browser.execute("return window.userinfoWithDpop();", vec![]).await;
    assert_eq!(answer["status"], 200, "{answer}");

    // The use_dpop_nonce round trip logs a failed request in the console;
    // anything else (a CORS refusal, a script error) is a failure.
    errors.retain(|e| !e.message.contains("/token") || !e.message.contains("400"));
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}

/// A public RSA jwk built by hand: `n` of `bytes` random octets and the
/// exponent `e` (a key the server must refuse before any arithmetic, so no
/// private key is needed).
fn rsa_shaped_jwk(bytes: usize, e: &str) -> Value {
    let mut n = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut n).unwrap();
    n[0] |= 0x80;
    json!({ "kty": "RSA", "e": e, "n": B64.encode(n) })
}

/// A proof naming `jwk` in its header whose signature is random bytes.
fn unverifiable_proof(alg: &str, jwk: &Value, claims: &Value) -> String {
    let header = json!({ "typ": "dpop+jwt", "alg": alg, "jwk": jwk });
    format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), B64.encode([7u8; 512]))
}

#[tokio::test]
async fn rsa_proofs_need_e_65537_and_a_2048_to_4096_bit_modulus_and_cheap_checks_come_first() {
    let server = Server::start(&config(), &[]);
    let mut spa = Spa::new(&server).await;
    let htu = spa.token_endpoint.clone();
    let claims = || json!({ "jti": new_jti(), "htm": "POST", "htu": htu, "iat": now() });
    let form = refresh_form("any");

    // A client may not choose the server's cost: e = 3, 8192 and 16384 bits.
    let (status, code, description) =
        error(spa.post(&form, Some(&unverifiable_proof("RS256", &rsa_shaped_jwk(256, "Aw"), &claims()))).await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_dpop_proof"), "{description}");
    assert!(description.contains("exponent 65537"), "{description}");
    for (bytes, alg) in [(1024, "RS256"), (2048, "PS256")] {
        let proof = unverifiable_proof(alg, &rsa_shaped_jwk(bytes, "AQAB"), &claims());
        let (status, code, description) = error(spa.post(&form, Some(&proof)).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_dpop_proof"), "{description}");
        assert!(description.contains("2048- to 4096-bit modulus"), "{description}");
        assert!(description.contains(&format!("{} bits", bytes * 8)), "{description}");
    }

    // A 4096-bit key whose proof names another URI: refused for its htu,
    // before its (unverifiable) signature; a request of another method too.
    let big = rsa_shaped_jwk(512, "AQAB");
    let mut wrong_htu = claims();
    wrong_htu["htu"] = htu.replace("/token", "/userinfo").into();
    let (_, code, description) =
        error(spa.post(&form, Some(&unverifiable_proof("RS256", &big, &wrong_htu))).await).await;
    assert_eq!(code, "invalid_dpop_proof");
    assert!(description.contains("htu") && !description.contains("signature"), "{description}");
    let mut wrong_htm = claims();
    wrong_htm["htm"] = "GET".into();
    let (_, code, description) =
        error(spa.post(&form, Some(&unverifiable_proof("RS256", &big, &wrong_htm))).await).await;
    assert_eq!(code, "invalid_dpop_proof");
    assert!(description.contains("htm \"GET\""), "{description}");
    // Without the server's nonce it is asked for first, still unverified.
    let (_, code, _) = error(spa.post(&form, Some(&unverifiable_proof("RS256", &big, &claims()))).await).await;
    assert_eq!(code, "use_dpop_nonce");
    let mut with_nonce = claims();
    with_nonce["nonce"] = spa.nonce.clone().unwrap().into();
    let (_, code, description) =
        error(spa.post(&form, Some(&unverifiable_proof("RS256", &big, &with_nonce))).await).await;
    assert_eq!(code, "invalid_dpop_proof");
    assert!(description.contains("signature does not verify"), "{description}");

    // A 2048-bit key with e = 65537 binds the family as before.
    let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap().to_jwk_key_pair();
    let public = Value::Object(pair.to_public_key().unwrap().as_ref().clone());
    let signer = josekit::jws::RS256.signer_from_jwk(&pair).unwrap();
    let sign = |claims: &Value| {
        let header = json!({ "typ": "dpop+jwt", "alg": "RS256", "jwk": public });
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = josekit::jws::JwsSigner::sign(&signer, input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(signature))
    };
    let signed_in = self::code(&server, &[]).await;
    let mut c = claims();
    c["nonce"] = spa.nonce.clone().unwrap().into();
    let resp = spa.post(&signed_in.form(), Some(&sign(&c))).await;
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{}"}}"#, public["n"].as_str().unwrap());
    let jkt = B64.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()));
    assert_eq!(payload(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"], jkt);
}
