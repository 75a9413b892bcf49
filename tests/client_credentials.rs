//! The client-credentials grant end to end (SPEC 5; RFC 6749 4.4; RFC 9068).

use crate::support::{Server, config_with, verify};

#[tokio::test]
async fn a_service_gets_an_rfc9068_token_that_verifies_against_the_jwks() {
    let server = Server::start(&config_with(""), &[]);
    let resp = server
        .post_form(
            "/token",
            Some(("orders-api", "orders-secret")),
            &[("grant_type", "client_credentials"), ("scope", "orders:read")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1800, "the default access_token_ttl is the 30 min idle timeout");
    assert_eq!(body["scope"], "orders:read");
    assert!(body.get("refresh_token").is_none(), "no refresh token for client credentials");

    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 2.1");
    let data = verify(token, &server.jwks().await, &server.base, &server.base);
    let c = &data.claims;
    assert_eq!(c["sub"], "orders-api");
    assert_eq!(c["client_id"], "orders-api");
    assert_eq!(c["scope"], "orders:read");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 1800);
    assert_eq!(c["jti"].as_str().unwrap().len(), 32);
    assert!(c.get("sid").is_none(), "no session");
}

#[tokio::test]
async fn client_secret_post_works_and_each_token_is_unique() {
    let server = Server::start(&config_with(""), &[]);
    let mut jtis = std::collections::HashSet::new();
    for _ in 0..3 {
        let resp = server
            .post_form(
                "/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "orders-api"),
                    ("client_secret", "orders-secret"),
                ],
            )
            .await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        let data = verify(body["access_token"].as_str().unwrap(), &server.jwks().await, &server.base, &server.base);
        assert!(jtis.insert(data.claims["jti"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn the_access_token_ttl_follows_the_policy() {
    let server = Server::start(
        &config_with("[session]\naccess_token_ttl = \"5m\""),
        &[("TENURE_SESSION_ACCESS_TOKEN_TTL", "90")],
    );
    let resp = server
        .post_form("/token", Some(("orders-api", "orders-secret")), &[("grant_type", "client_credentials")])
        .await;
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 90, "the environment wins over the file");
}

#[tokio::test]
async fn service_accounts_carry_permissions_only_with_the_admin_scope() {
    let server = Server::start(&config_with(""), &[]);
    let resp = server
        .post_form("/token", Some(("automation", "automation-secret")), &[("grant_type", "client_credentials")])
        .await;
    let body: serde_json::Value = resp.json().await.unwrap();
    let data = verify(body["access_token"].as_str().unwrap(), &server.jwks().await, &server.base, &server.base);
    assert_eq!(data.claims["permissions"], serde_json::json!(["users:edit"]));
    let token = server.cc_token().await;
    let plain = verify(&token, &server.jwks().await, &server.base, &server.base);
    assert!(plain.claims.get("permissions").is_none());
}

#[tokio::test]
async fn eddsa_and_rs256_are_selectable() {
    for alg in ["EdDSA", "RS256"] {
        let server = Server::start(&config_with(""), &[("TENURE_SIGNING_ALG", alg)]);
        let token = server.cc_token().await;
        assert_eq!(format!("{:?}", jsonwebtoken::decode_header(&token).unwrap().alg), alg);
        let data = verify(&token, &server.jwks().await, &server.base, &server.base);
        assert_eq!(data.claims["client_id"], "orders-api");
        let discovery = server.get_json("/.well-known/openid-configuration").await;
        assert_eq!(discovery["access_token_signing_alg_values_supported"], serde_json::json!([alg]));
    }
}
