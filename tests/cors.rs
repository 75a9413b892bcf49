//! CORS as a browser sees it (SPEC 1, "Single-page apps"; Fetch Standard,
//! CORS protocol): discovery and the JWKS are readable from any origin;
//! `/token`, `/revoke` and `/userinfo` (OIDC Core 5.3) answer the registered
//! web origins of public clients, preflights included; any other origin gets
//! no CORS header at all.

use std::collections::BTreeMap;

use reqwest::{Method, Response};

use crate::support::flow::{Browser, pkce_pair};
use crate::support::kit::spa_client;
use crate::support::{Server, config_with};

const SPA_ORIGIN: &str = "http://127.0.0.1:9001";
const SPA_REDIRECT: &str = "http://127.0.0.1:9001/callback";
const FOREIGN_ORIGIN: &str = "https://evil.example";

fn config() -> String {
    config_with(&format!(
        r#"{}
[[clients]]
id = "other-spa"
public = true
redirect_uris = ["http://localhost:9002/callback"]
web_origins = ["http://localhost:9002"]
grant_types = ["authorization_code"]

[[users]]
username = "alice"
password = "alice-password"
email = "alice@example.com"
"#,
        spa_client(SPA_REDIRECT, SPA_ORIGIN)
    ))
}

/// The `access-control-*` headers of `resp`, lower-cased names.
fn cors_headers(resp: &Response) -> BTreeMap<String, String> {
    resp.headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect()
}

/// The comma-separated values of header `name`, lower-cased and trimmed.
fn list(resp: &Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// A browser's preflight for `method` on `path` from `origin`.
async fn preflight(server: &Server, path: &str, origin: &str, method: &str, headers: Option<&str>) -> Response {
    let mut req = server
        .http
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(headers) = headers {
        req = req.header("access-control-request-headers", headers);
    }
    req.send().await.unwrap()
}

/// Sign alice in at the SPA (code + PKCE, public client) from its origin.
async fn spa_tokens(server: &Server) -> serde_json::Value {
    let (verifier, challenge) = pkce_pair();
    let code = Browser::new()
        .sign_in_for_code(
            server,
            &[
                ("response_type", "code"),
                ("client_id", "spa"),
                ("redirect_uri", SPA_REDIRECT),
                ("scope", "openid email"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let resp = server
        .http
        .post(server.url("/token"))
        .header("origin", SPA_ORIGIN)
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", &code),
            ("redirect_uri", SPA_REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(cors_headers(&resp)["access-control-allow-origin"], SPA_ORIGIN, "the SPA reads its tokens");
    resp.json().await.unwrap()
}

fn access_token(tokens: &serde_json::Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn discovery_and_jwks_are_readable_from_any_origin() {
    let server = Server::start(&config(), &[]);
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"] {
        for origin in [SPA_ORIGIN, FOREIGN_ORIGIN, "null"] {
            let resp = server.http.get(server.url(path)).header("origin", origin).send().await.unwrap();
            assert_eq!(resp.status(), 200, "GET {path}");
            let cors = cors_headers(&resp);
            assert_eq!(
                cors.get("access-control-allow-origin").map(String::as_str),
                Some("*"),
                "GET {path} from {origin}"
            );
            assert!(!cors.contains_key("access-control-allow-credentials"), "public metadata never with credentials");
            assert!(resp.json::<serde_json::Value>().await.is_ok());

            let resp = preflight(&server, path, origin, "GET", Some("content-type")).await;
            assert!(resp.status().is_success(), "preflight of {path}: {}", resp.status());
            let cors = cors_headers(&resp);
            assert_eq!(cors["access-control-allow-origin"], "*");
            assert!(list(&resp, "access-control-allow-methods").contains(&"get".to_owned()), "{cors:?}");
            assert!(!cors.contains_key("access-control-allow-credentials"));
        }
    }
    // A plain GET (curl, a server) is unchanged.
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(metadata["userinfo_endpoint"], server.url("/userinfo"));
}

#[tokio::test]
async fn userinfo_answers_the_web_origins_of_clients_get_post_and_preflight() {
    let server = Server::start(&config(), &[]);
    let tokens = spa_tokens(&server).await;
    let token = access_token(&tokens);

    // The preflight oidc-client-ts triggers with its Authorization header.
    for method in ["GET", "POST"] {
        let resp = preflight(&server, "/userinfo", SPA_ORIGIN, method, Some("authorization")).await;
        assert_eq!(resp.status(), 204, "preflight of {method} /userinfo");
        let cors = cors_headers(&resp);
        assert_eq!(cors["access-control-allow-origin"], SPA_ORIGIN);
        let methods = list(&resp, "access-control-allow-methods");
        assert!(methods.contains(&"get".to_owned()) && methods.contains(&"post".to_owned()), "{cors:?}");
        assert!(list(&resp, "access-control-allow-headers").contains(&"authorization".to_owned()), "{cors:?}");
        assert_eq!(cors["access-control-max-age"], "600");
        assert!(!cors.contains_key("access-control-allow-credentials"), "bearer tokens, not cookies");
        assert!(list(&resp, "vary").contains(&"origin".to_owned()));
    }

    // Another client's web origin is served too.
    let resp = preflight(&server, "/userinfo", "http://localhost:9002", "GET", Some("authorization")).await;
    assert_eq!(cors_headers(&resp)["access-control-allow-origin"], "http://localhost:9002");

    let resp =
        server.http.get(server.url("/userinfo")).header("origin", SPA_ORIGIN).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(cors_headers(&resp)["access-control-allow-origin"], SPA_ORIGIN);
    assert!(list(&resp, "vary").contains(&"origin".to_owned()), "the answer depends on the origin");
    let claims: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(claims["email"], "alice@example.com");

    let resp =
        server.http.post(server.url("/userinfo")).header("origin", SPA_ORIGIN).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(cors_headers(&resp)["access-control-allow-origin"], SPA_ORIGIN);

    // A refused token: the page may read the status and why (RFC 6750 3).
    let resp = server
        .http
        .get(server.url("/userinfo"))
        .header("origin", SPA_ORIGIN)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let cors = cors_headers(&resp);
    assert_eq!(cors["access-control-allow-origin"], SPA_ORIGIN);
    assert_eq!(list(&resp, "access-control-expose-headers"), ["www-authenticate", "dpop-nonce"]);
    assert!(resp.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_foreign_origin_gets_no_cors_headers() {
    let server = Server::start(&config(), &[]);
    let tokens = spa_tokens(&server).await;
    let token = access_token(&tokens);

    for (path, method, headers) in [
        ("/userinfo", "GET", "authorization"),
        ("/userinfo", "POST", "authorization"),
        ("/token", "POST", "content-type"),
        ("/revoke", "POST", "content-type"),
    ] {
        // Neither an unknown site, nor a near miss of a registered origin.
        for origin in [FOREIGN_ORIGIN, "http://127.0.0.1:9009", "https://127.0.0.1:9001", "null"] {
            let resp = preflight(&server, path, origin, method, Some(headers)).await;
            assert_eq!(cors_headers(&resp), BTreeMap::new(), "preflight of {method} {path} from {origin}");
            assert!(list(&resp, "vary").contains(&"origin".to_owned()));
        }
    }

    // The request itself is answered (a browser would not let the page read
    // it), without CORS headers.
    let resp = server
        .http
        .get(server.url("/userinfo"))
        .header("origin", FOREIGN_ORIGIN)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(cors_headers(&resp), BTreeMap::new());
    assert!(list(&resp, "vary").contains(&"origin".to_owned()));
    let resp = server
        .http
        .post(server.url("/token"))
        .header("origin", FOREIGN_ORIGIN)
        .form(&[("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(cors_headers(&resp), BTreeMap::new());
}

#[tokio::test]
async fn token_and_revoke_answer_the_web_origins_of_clients() {
    let server = Server::start(&config(), &[]);
    let tokens = spa_tokens(&server).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    for path in ["/token", "/revoke"] {
        let resp = preflight(&server, path, SPA_ORIGIN, "POST", Some("content-type")).await;
        assert_eq!(resp.status(), 204, "preflight of {path}");
        let cors = cors_headers(&resp);
        assert_eq!(cors["access-control-allow-origin"], SPA_ORIGIN);
        assert!(list(&resp, "access-control-allow-methods").contains(&"post".to_owned()), "{cors:?}");
        assert!(list(&resp, "access-control-allow-headers").contains(&"content-type".to_owned()), "{cors:?}");
    }

    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        server.http.post(server.url(path)).header("origin", SPA_ORIGIN).form(&form).send()
    };
    let resp = post(
        "/token",
        vec![
            ("grant_type", "refresh_token".into()),
            ("client_id", "spa".into()),
            ("refresh_token", refresh_token.into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(cors_headers(&resp)["access-control-allow-origin"], SPA_ORIGIN);
    assert!(list(&resp, "vary").contains(&"origin".to_owned()));
    let rotated: serde_json::Value = resp.json().await.unwrap();

    // An error answer is readable too, so the app learns why.
    let resp = post(
        "/token",
        vec![
            ("grant_type", "refresh_token".into()),
            ("client_id", "spa".into()),
            ("refresh_token", "rt1.forged".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(cors_headers(&resp)["access-control-allow-origin"], SPA_ORIGIN);

    let resp = post(
        "/revoke",
        vec![("client_id", "spa".into()), ("token", rotated["refresh_token"].as_str().unwrap().to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(cors_headers(&resp)["access-control-allow-origin"], SPA_ORIGIN);
}

#[tokio::test]
async fn other_endpoints_send_no_cors_headers() {
    let server = Server::start(&config(), &[]);
    for path in ["/introspect", "/logout", "/login", "/healthz", "/admin/audit"] {
        let resp = server.http.get(server.url(path)).header("origin", SPA_ORIGIN).send().await.unwrap();
        assert_eq!(cors_headers(&resp), BTreeMap::new(), "GET {path}");
        let resp = preflight(&server, path, SPA_ORIGIN, "POST", Some("content-type")).await;
        assert_eq!(cors_headers(&resp), BTreeMap::new(), "preflight of {path}");
        assert_eq!(resp.status(), 405, "no preflight answer at {path}");
    }
}
