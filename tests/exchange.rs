//! RFC 8693 token exchange end to end (SPEC 5): delegation to a downstream
//! audience, every refusal, nested actors, and the exchanged token dying
//! with the subject's session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::support::flow::Browser;
use crate::support::kit::{OPS, WEB, WEB_REDIRECT, claims, sign_in_without_pkce, user, web_client};
use crate::support::{Server, config_with};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

fn config() -> String {
    config_with(&format!(
        r#"{}
[[clients]]
id = "orders-svc"
secret = "orders-svc-secret"
grant_types = ["client_credentials", "{EXCHANGE}"]
scopes = ["orders:read"]
token_exchange_audiences = ["billing-api"]

[[clients]]
id = "billing-api"
secret = "billing-secret"
grant_types = ["{EXCHANGE}"]
token_exchange_audiences = ["ledger-api"]
{OPS}{}"#,
        web_client(&["openid", "orders:read", "orders:write"]),
        user("alice", &[])
    ))
}

async fn user_tokens(server: &Server) -> serde_json::Value {
    sign_in_without_pkce(server, WEB, "alice", "alice-password", "openid orders:read orders:write", false).await.body
}

async fn exchange(server: &Server, client: (&str, &str), subject: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", EXCHANGE), ("subject_token", subject), ("subject_token_type", AT_TYPE)];
    form.extend_from_slice(extra);
    server.post_form("/token", Some(client), &form).await
}

async fn refused(resp: reqwest::Response, error: &str) -> String {
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

fn at(v: &serde_json::Value) -> &str {
    v["access_token"].as_str().expect("access_token")
}

async fn introspect(server: &Server, token: &str) -> bool {
    let body: serde_json::Value =
        server.post_form("/introspect", Some(("ops", "ops-secret")), &[("token", token)]).await.json().await.unwrap();
    body["active"].as_bool().unwrap()
}

#[tokio::test]
async fn a_service_trades_a_users_token_for_a_narrower_one_for_its_downstream() {
    let server = Server::start(&config(), &[]);
    let user = user_tokens(&server).await;
    let resp = exchange(
        &server,
        ("orders-svc", "orders-svc-secret"),
        at(&user),
        &[("audience", "billing-api"), ("scope", "orders:read")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["issued_token_type"], AT_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "no refresh token");
    assert_eq!(body["scope"], "orders:read");

    // Verified by an independent library, for the downstream audience.
    let jwks = server.jwks().await;
    let header = jsonwebtoken::decode_header(at(&body)).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let key = DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["billing-api"]);
    validation.set_issuer(&[server.base.as_str()]);
    let c = jsonwebtoken::decode::<serde_json::Value>(at(&body), &key, &validation).expect("verifies").claims;
    let subject = claims(at(&user));
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["sid"], subject["sid"], "keeps the session");
    assert_eq!(c["client_id"], "orders-svc");
    assert_eq!(c["act"], serde_json::json!({"sub": "orders-svc"}));
    assert!(c["exp"].as_u64().unwrap() <= subject["exp"].as_u64().unwrap(), "never outlives the subject's session");
    assert!(introspect(&server, at(&body)).await);
}

#[tokio::test]
async fn a_chained_exchange_nests_the_actors() {
    let server = Server::start(&config(), &[]);
    let user = user_tokens(&server).await;
    let first: serde_json::Value =
        exchange(&server, ("orders-svc", "orders-svc-secret"), at(&user), &[("audience", "billing-api")])
            .await
            .json()
            .await
            .unwrap();
    let second = exchange(&server, ("billing-api", "billing-secret"), at(&first), &[("resource", "ledger-api")]).await;
    assert_eq!(second.status(), 200);
    let second: serde_json::Value = second.json().await.unwrap();
    let c = claims(at(&second));
    assert_eq!(c["aud"], "ledger-api");
    assert_eq!(c["act"], serde_json::json!({"sub": "billing-api", "act": {"sub": "orders-svc"}}));
    assert_eq!(c["sub"], "alice");
}

#[tokio::test]
async fn the_exchanged_token_dies_with_the_users_session() {
    let server = Server::start(&config(), &[]);
    let user = user_tokens(&server).await;
    let exchanged: serde_json::Value =
        exchange(&server, ("orders-svc", "orders-svc-secret"), at(&user), &[("audience", "billing-api")])
            .await
            .json()
            .await
            .unwrap();
    assert!(introspect(&server, at(&exchanged)).await);
    // Revoke the user's session through the admin API.
    let admin: serde_json::Value = server
        .post_form("/token", Some(("ops", "ops-secret")), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let resp =
        server.http.delete(server.url("/admin/users/alice/sessions")).bearer_auth(at(&admin)).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(!introspect(&server, at(&exchanged)).await, "dead at once");
    let why = refused(
        exchange(&server, ("orders-svc", "orders-svc-secret"), at(&user), &[("audience", "billing-api")]).await,
        "invalid_grant",
    )
    .await;
    assert!(why.contains("revoked") || why.contains("ended"), "{why}");
}

#[tokio::test]
async fn every_bad_request_is_refused_with_its_rfc8693_code() {
    let server = Server::start(&config(), &[]);
    let user = user_tokens(&server).await;
    let svc = ("orders-svc", "orders-svc-secret");
    let aud = [("audience", "billing-api")];

    let missing = server
        .post_form(
            "/token",
            Some(svc),
            &[("grant_type", EXCHANGE), ("subject_token_type", AT_TYPE), ("audience", "billing-api")],
        )
        .await;
    refused(missing, "invalid_request").await;
    let wrong_type = server
        .post_form(
            "/token",
            Some(svc),
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", at(&user)),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
                ("audience", "billing-api"),
            ],
        )
        .await;
    refused(wrong_type, "invalid_request").await;
    refused(exchange(&server, svc, at(&user), &[("audience", "ledger-api")]).await, "invalid_target").await;
    refused(
        exchange(&server, svc, at(&user), &[("audience", "billing-api"), ("scope", "orders:read admin")]).await,
        "invalid_scope",
    )
    .await;
    refused(exchange(&server, ("web", "web-secret"), at(&user), &aud).await, "unauthorized_client").await;
    assert_eq!(exchange(&server, ("orders-svc", "wrong"), at(&user), &aud).await.status(), 401);

    // Forged subject tokens (RFC 8725).
    let parts: Vec<&str> = at(&user).split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap();
    let with_header = |h: serde_json::Value, sig: &str| format!("{}.{}.{sig}", B64.encode(h.to_string()), parts[1]);
    let none = with_header(serde_json::json!({"alg": "none", "kid": kid, "typ": "at+jwt"}), "");
    refused(exchange(&server, svc, &none, &aud).await, "invalid_grant").await;
    let other_kid = with_header(serde_json::json!({"alg": "ES256", "kid": "not-ours", "typ": "at+jwt"}), parts[2]);
    refused(exchange(&server, svc, &other_kid, &aud).await, "invalid_grant").await;
    let wrong_alg = with_header(serde_json::json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"}), parts[2]);
    refused(exchange(&server, svc, &wrong_alg, &aud).await, "invalid_grant").await;
    // HMAC with the public key as the secret (algorithm confusion).
    let jwks = server.get_json("/jwks.json").await;
    let secret = jwks["keys"][0].to_string();
    let hs_header = B64.encode(serde_json::json!({"alg": "HS256", "kid": kid, "typ": "at+jwt"}).to_string());
    let input = format!("{hs_header}.{}", parts[1]);
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()), input.as_bytes());
    let confused = format!("{input}.{}", B64.encode(mac.as_ref()));
    refused(exchange(&server, svc, &confused, &aud).await, "invalid_grant").await;
    let mut payload = claims(at(&user));
    payload["scope"] = "openid orders:read orders:write admin".into();
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(payload.to_string()), parts[2]);
    let why = refused(exchange(&server, svc, &tampered, &aud).await, "invalid_grant").await;
    assert!(why.contains("signature"), "{why}");
    // An ID token is not an access token.
    refused(exchange(&server, svc, user["id_token"].as_str().unwrap(), &aud).await, "invalid_grant").await;

    // Policy refusals are audited.
    let admin: serde_json::Value = server
        .post_form("/token", Some(("ops", "ops-secret")), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let audit: serde_json::Value =
        server.http.get(server.url("/admin/audit")).bearer_auth(at(&admin)).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.iter().filter(|k| **k == "token_exchange_refused").count() >= 2, "{kinds:?}");
}

/// In process on a manual clock.
#[tokio::test]
async fn an_expired_subject_is_refused() {
    let server =
        crate::support::manual::ManualServer::start(&config(), &[("TENURE_SESSION_ACCESS_TOKEN_TTL", "1")]).await;
    let user = user_tokens(&server).await;
    let subject = claims(at(&user));
    assert_eq!(subject["exp"].as_u64().unwrap(), subject["iat"].as_u64().unwrap() + 1);
    // At its exp.
    server.advance(1);
    let why = refused(
        exchange(&server, ("orders-svc", "orders-svc-secret"), at(&user), &[("audience", "billing-api")]).await,
        "invalid_grant",
    )
    .await;
    assert!(why.contains("expired"), "{why}");
}

#[tokio::test]
async fn a_service_identity_can_be_exchanged_too() {
    let server = Server::start(&config(), &[]);
    let cc: serde_json::Value = server
        .post_form("/token", Some(("orders-svc", "orders-svc-secret")), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let resp = exchange(&server, ("orders-svc", "orders-svc-secret"), at(&cc), &[("audience", "billing-api")]).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let c = claims(at(&body));
    assert_eq!((c["sub"].as_str(), c["aud"].as_str()), (Some("orders-svc"), Some("billing-api")));
    assert!(c.get("sid").is_none());
    assert!(c["exp"].as_u64().unwrap() <= claims(at(&cc))["exp"].as_u64().unwrap(), "never outlives the subject");
    refused(
        exchange(&server, ("orders-svc", "orders-svc-secret"), at(&cc), &[("audience", "ledger-api")]).await,
        "invalid_target",
    )
    .await;
}

#[tokio::test]
async fn an_exchanged_token_cannot_be_revoked_on_its_own() {
    let server = Server::start(&config(), &[]);
    let user = user_tokens(&server).await;
    let exchanged: serde_json::Value =
        exchange(&server, ("orders-svc", "orders-svc-secret"), at(&user), &[("audience", "billing-api")])
            .await
            .json()
            .await
            .unwrap();
    let resp =
        server.post_form("/revoke", Some(("orders-svc", "orders-svc-secret")), &[("token", at(&exchanged))]).await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_token_type");
    // The user's own session is untouched.
    assert!(introspect(&server, at(&user)).await);
    assert!(introspect(&server, at(&exchanged)).await);
}

/// The form exchanging `subject` for a token for `billing-api`.
fn exchange_form(subject: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", AT_TYPE),
        ("audience", "billing-api"),
    ]
}

/// POST /token as `client` with `form` and an optional `DPoP` proof.
async fn token_with_proof(
    server: &Server,
    client: (&str, &str),
    form: &[(&str, &str)],
    proof: Option<String>,
) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req = server
        .http
        .post(server.url("/token"))
        .basic_auth(client.0, Some(client.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_dpop_bound_subject_is_exchanged_only_with_a_proof_of_its_key_and_stays_bound() {
    let server = Server::start(&config(), &[("TENURE_DPOP_NONCE", "off")]);
    let htu = server.url("/token");
    let key = crate::dpop::DpopKey::new();
    let proof = |key: &crate::dpop::DpopKey| Some(key.proof("POST", &htu, None, None));
    let svc = ("orders-svc", "orders-svc-secret");

    // The user's token, bound to the front client's key at the code exchange.
    let code = Browser::new()
        .sign_in_for_code(
            &server,
            &[
                ("response_type", "code"),
                ("client_id", "web"),
                ("redirect_uri", WEB_REDIRECT),
                ("scope", "openid orders:read"),
            ],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", WEB_REDIRECT)];
    let user: serde_json::Value =
        token_with_proof(&server, ("web", "web-secret"), &form, proof(&key)).await.json().await.unwrap();
    assert_eq!(user["token_type"], "DPoP");
    let subject = at(&user);
    assert_eq!(claims(subject)["cnf"]["jkt"], key.jkt());

    // Without a proof it would become a bearer token: refused, and audited.
    let description =
        refused(token_with_proof(&server, svc, &exchange_form(subject), None).await, "invalid_grant").await;
    assert!(description.contains("DPoP-bound") && description.contains("proof"), "{description}");
    // Another key would rebind it: refused.
    let other = crate::dpop::DpopKey::new();
    let description =
        refused(token_with_proof(&server, svc, &exchange_form(subject), proof(&other)).await, "invalid_grant").await;
    assert!(description.contains("another DPoP key"), "{description}");
    let admin: serde_json::Value = server
        .post_form("/token", Some(("ops", "ops-secret")), &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let audit: serde_json::Value =
        server.http.get(server.url("/admin/audit")).bearer_auth(at(&admin)).send().await.unwrap().json().await.unwrap();
    assert!(audit.to_string().contains("DPoP-bound"), "{audit}");

    // With a proof of its key: exchanged, and the new token keeps the key.
    let resp = token_with_proof(&server, svc, &exchange_form(subject), proof(&key)).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let c = claims(at(&body));
    assert_eq!(c["cnf"]["jkt"], key.jkt());
    assert_eq!((c["sub"].as_str(), c["aud"].as_str()), (Some("alice"), Some("billing-api")));

    // A service's own bound token likewise; an unbound one stays as it was.
    let cc: serde_json::Value = token_with_proof(&server, svc, &[("grant_type", "client_credentials")], proof(&key))
        .await
        .json()
        .await
        .unwrap();
    let cc_subject = at(&cc);
    refused(token_with_proof(&server, svc, &exchange_form(cc_subject), None).await, "invalid_grant").await;
    let resp = token_with_proof(&server, svc, &exchange_form(cc_subject), proof(&key)).await;
    assert_eq!(claims(at(&resp.json().await.unwrap()))["cnf"]["jkt"], key.jkt());
    let plain: serde_json::Value =
        server.post_form("/token", Some(svc), &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    let plain_subject = at(&plain);
    let resp = token_with_proof(&server, svc, &exchange_form(plain_subject), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["token_type"], "Bearer");
}
