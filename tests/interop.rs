//! Keys and signatures that real verifiers and relying parties accept
//! (SPEC 5): RS256 ID tokens on request beside the default ES256, a rotated
//! key published ahead of its first use, and `tenure keys revoke` killing
//! every token of a compromised key at once, cached or not. Tokens are
//! checked with the `jsonwebtoken` crate against the published JWKS.

use std::time::Duration;

use crate::support::flow::Browser;
use crate::support::{Server, config_with, eventually, verify};

const RP_REDIRECT: &str = "http://127.0.0.1:9000/callback";

fn config(extra: &str) -> String {
    config_with(&format!(
        r#"
[[clients]]
id = "rp-rs256"
secret = "rp-secret"
redirect_uris = ["{RP_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "email"]
id_token_signed_response_alg = "RS256"

[[clients]]
id = "rp-default"
secret = "rp-secret"
redirect_uris = ["{RP_REDIRECT}"]
grant_types = ["authorization_code"]
scopes = ["openid", "email"]

[[users]]
username = "alice"
password = "alice-password"

{extra}
"#
    ))
}

/// Sign alice in at `client_id` and redeem the code: the token response.
async fn tokens_for(server: &Server, client_id: &str) -> serde_json::Value {
    let code = Browser::new()
        .sign_in_for_code(
            server,
            &[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", RP_REDIRECT),
                ("scope", "openid email"),
                ("state", "st"),
                ("nonce", "n-42"),
            ],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let resp = server
        .post_form(
            "/token",
            Some((client_id, "rp-secret")),
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP_REDIRECT)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn jwks_kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn introspect_active(server: &Server, token: &str) -> bool {
    let resp = server.post_form("/introspect", Some(("orders-api", "orders-secret")), &[("token", token)]).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["active"] == true
}

async fn userinfo_status(server: &Server, token: &str) -> u16 {
    server.http.get(server.url("/userinfo")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_client_that_asks_for_rs256_gets_rs256_id_tokens_that_jsonwebtoken_validates() {
    let server = Server::start(&config(""), &[]);
    let discovery = server.get_json("/.well-known/openid-configuration").await;
    let algs = discovery["id_token_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.iter().any(|a| a == "RS256"), "OIDC Discovery 3: RS256 must be listed: {algs:?}");
    assert!(algs.iter().any(|a| a == "ES256"), "and the default: {algs:?}");
    assert_eq!(discovery["access_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));

    let body = tokens_for(&server, "rp-rs256").await;
    let id_token = body["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwks = server.jwks().await;
    // The RP's view: key by kid from the JWKS, RS256 pinned, iss and aud checked.
    let claims = verify(id_token, &jwks, &server.base, "rp-rs256").claims;
    assert_eq!(claims["nonce"], "n-42");
    // at_hash with the ID token's algorithm (OIDC Core 3.1.3.6).
    let access_token = body["access_token"].as_str().unwrap();
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
    assert_eq!(claims["at_hash"], expected.as_str());
    // Access tokens keep signing_alg.
    assert_eq!(jsonwebtoken::decode_header(access_token).unwrap().alg, jsonwebtoken::Algorithm::ES256);
    verify(access_token, &jwks, &server.base, &server.base);

    // A client that asked for nothing gets the default.
    let body = tokens_for(&server, "rp-default").await;
    let id_token = body["id_token"].as_str().unwrap();
    assert_eq!(jsonwebtoken::decode_header(id_token).unwrap().alg, jsonwebtoken::Algorithm::ES256);
    verify(id_token, &jwks, &server.base, "rp-default");
}

#[test]
fn an_id_token_algorithm_that_is_not_offered_stops_the_start_naming_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        config("").replace(r#"id_token_signed_response_alg = "RS256""#, r#"id_token_signed_response_alg = "HS256""#);
    std::fs::write(dir.path().join("tenure.toml"), text).unwrap();
    let out = crate::support::tenure()
        .arg("check-config")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("clients[rp-rs256].id_token_signed_response_alg: \"HS256\" is not offered for ID tokens; use ES256 (signing_alg) or RS256"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_rotated_key_is_published_ahead_of_its_first_use() {
    // Long enough that the server surely reloads (every 2 s) before the switch.
    let server = Server::start(&format!("key_publish_ahead = \"6s\"\n{}", config_with("")), &[]);
    let before = server.cc_token().await;
    let old_kid = kid_of(&before);

    let out = server.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("published now, signs from") && stdout.contains("key_publish_ahead = 6s"), "{stdout}");
    let new_kid = stdout.split_whitespace().nth(2).unwrap().to_owned();

    // Published at once (the server picks the manifest up within 2 s) ...
    let published = eventually(Duration::from_secs(4), || async {
        jwks_kids(&server.get_json("/jwks.json").await).contains(&new_kid)
    })
    .await;
    assert!(published, "the next key is in the JWKS before it signs");
    let kids = jwks_kids(&server.get_json("/jwks.json").await);
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "{kids:?}");
    assert_eq!(kids[0], old_kid, "the key that signs is listed first");
    // ... while new tokens still carry the old kid.
    assert_eq!(kid_of(&server.cc_token().await), old_kid, "no token signed with a key verifiers may not know");
    let list = String::from_utf8_lossy(&server.cli(&["keys", "list"]).stdout).into_owned();
    assert!(
        list.contains(&format!("{new_kid}  ES256  primary")) && list.contains("next: published, signs from"),
        "{list}"
    );

    // After the period: the new key signs, old tokens still verify.
    let switched = eventually(Duration::from_secs(10), || async { kid_of(&server.cc_token().await) == new_kid }).await;
    assert!(switched, "new tokens carry the new kid after key_publish_ahead");
    let jwks = server.jwks().await;
    verify(&server.cc_token().await, &jwks, &server.base, &server.base);
    verify(&before, &jwks, &server.base, &server.base);
    assert!(introspect_active(&server, &before).await, "the old key's tokens live on");
    let list = String::from_utf8_lossy(&server.cli(&["keys", "list"]).stdout).into_owned();
    assert!(list.contains(&format!("{new_kid}  ES256  primary")) && list.contains("  active"), "{list}");
    assert!(list.contains(&format!("{old_kid}  ES256  primary")) && list.contains("published until"), "{list}");
}

#[tokio::test]
async fn revoking_a_compromised_key_kills_its_tokens_at_once_even_cached() {
    let server = Server::start(&config(""), &[]);
    let body = tokens_for(&server, "rp-default").await;
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    // Verified once: introspection and userinfo now answer from the cache.
    assert!(introspect_active(&server, &access_token).await);
    assert_eq!(userinfo_status(&server, &access_token).await, 200);
    let kid = kid_of(&access_token);

    let out = server.cli(&["keys", "revoke", &kid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains(&format!("revoked key {kid}")), "{stdout}");
    assert!(stdout.contains("without waiting for key_publish_ahead"), "compromise beats publish-ahead: {stdout}");

    let dead = eventually(Duration::from_secs(5), || async { !introspect_active(&server, &access_token).await }).await;
    assert!(dead, "introspection says inactive within a few seconds");
    assert_eq!(userinfo_status(&server, &access_token).await, 401);
    assert!(!jwks_kids(&server.get_json("/jwks.json").await).contains(&kid), "gone from the JWKS");

    // A replacement signs at once and its tokens verify.
    let fresh = server.cc_token().await;
    assert_ne!(kid_of(&fresh), kid);
    verify(&fresh, &server.jwks().await, &server.base, &server.base);
    assert!(introspect_active(&server, &fresh).await);
    let list = String::from_utf8_lossy(&server.cli(&["keys", "list"]).stdout).into_owned();
    assert!(list.contains(&kid) && list.contains("revoked"), "{list}");
    let again = server.cli(&["keys", "revoke", &kid]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
}
