//! The process as operators see it: defaults, discovery, health, metrics,
//! configuration errors, graceful shutdown.

use crate::support::{Server, config_with};

#[tokio::test]
async fn discovery_advertises_what_is_implemented_at_the_bound_address() {
    let server = Server::start(&config_with(""), &[]);
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let d = server.get_json(path).await;
        assert_eq!(d["issuer"], server.base.as_str(), "without `issuer`, the issuer is the bound address");
        assert_eq!(d["token_endpoint"], server.url("/token"));
        assert_eq!(d["jwks_uri"], server.url("/jwks.json"));
        assert_eq!(
            d["grant_types_supported"],
            serde_json::json!([
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:device_code"
            ])
        );
        assert_eq!(d["device_authorization_endpoint"], server.url("/device_authorization"));
        assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]), "S256 only");
        assert_eq!(d["authorization_endpoint"], server.url("/authorize"));
        assert_eq!(d["userinfo_endpoint"], server.url("/userinfo"));
        assert_eq!(d["revocation_endpoint"], server.url("/revoke"));
        assert_eq!(d["introspection_endpoint"], server.url("/introspect"));
        assert_eq!(d["end_session_endpoint"], server.url("/logout"));
        assert_eq!(d["backchannel_logout_supported"], true);
        assert_eq!(
            d["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
        );
        let scopes = d["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&"orders:read".into()) && scopes.contains(&"admin".into()));
    }
    // Every advertised endpoint answers.
    let jwks = server.http.get(server.url("/jwks.json")).send().await.unwrap();
    assert_eq!(jwks.headers()["content-type"], "application/jwk-set+json");
}

#[tokio::test]
async fn an_explicit_issuer_is_used_verbatim() {
    let server = Server::start(&config_with(""), &[("TENURE_ISSUER", "https://login.example.com/")]);
    let d = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["issuer"], "https://login.example.com");
    assert_eq!(d["token_endpoint"], "https://login.example.com/token");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = Server::start(&config_with(""), &[]);
    assert_eq!(server.get_json("/healthz").await["status"], "ok");
    assert_eq!(server.get_json("/readyz").await["status"], "ready");
    server.cc_token().await;
    server.cc_token().await;
    let _ = server.post_form("/token", Some(("orders-api", "nope")), &[("grant_type", "client_credentials")]).await;
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("tenure_tokens_issued_total{grant_type=\"client_credentials\"} 2"), "{text}");
    assert!(text.contains("tenure_oauth_errors_total{error=\"invalid_client\"} 1"), "{text}");
    assert!(text.contains("tenure_http_requests_total{method=\"POST\",route=\"/token\",status=\"200\"} 2"), "{text}");
    assert!(text.contains("tenure_http_request_duration_seconds_bucket{le="), "{text}");
    assert!(text.contains("route=\"/token\""), "{text}");
}

#[test]
fn a_bad_policy_exits_non_zero_naming_the_key_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::tenure()
        .current_dir(dir.path())
        .env("TENURE_SESSION_IDLE_TIMEOUT", "2h")
        .env("TENURE_SESSION_MAX_LIFETIME", "1h")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("session.idle_timeout (2h) must not exceed session.max_lifetime (1h)"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was started");

    std::fs::write(dir.path().join("tenure.toml"), "[[clients]]\nid = \"spa\"\npublic = true\ngrant_types = [\"refresh_token\"]\nsession = { max_lifetime = \"13h\" }\n").unwrap();
    let out = crate::support::tenure().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("clients[spa].session.max_lifetime (13h) must not exceed session.max_lifetime (12h)"),
        "{stderr}"
    );
}

#[test]
fn check_config_prints_the_effective_policy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tenure.toml"),
        "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[session]\nidle_timeout = \"off\"\nmax_lifetime = \"8h\"\n",
    )
    .unwrap();
    let out = crate::support::tenure().arg("check-config").current_dir(dir.path()).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("session.idle_timeout = off"), "{stdout}");
    assert!(stdout.contains("session.access_token_ttl = 8h"), "{stdout}");
    assert!(stdout.contains("trusted_proxies = [10.0.0.0/8, ::1/128]"), "{stdout}");
    assert!(stdout.contains("hashing_wait = 2s"), "{stdout}");
}

#[test]
fn hash_secret_prints_an_argon2id_hash_usable_in_the_config() {
    use std::io::Write;
    let mut child = crate::support::tenure()
        .arg("hash-secret")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let parsed = tenure::secret::PasswordHashString::parse(&hash).unwrap();
    assert!(parsed.verify("s3cret"));
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let server = Server::start(&config_with(""), &[]);
    server.cc_token().await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}
