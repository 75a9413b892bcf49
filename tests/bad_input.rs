//! Bad input on /token always gets a 4xx JSON error in the RFC 6749 5.2
//! shape, never a 5xx (SPEC 4, 7).

use crate::support::{Server, config_with};

async fn expect_error(resp: reqwest::Response, status: u16, error: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "a JSON body");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"].as_str().expect("a description").to_owned();
    assert!(!description.is_empty());
    description
}

fn raw(server: &Server, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    let mut req = server.http.post(server.url("/token")).basic_auth("orders-api", Some("orders-secret")).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn malformed_requests_get_clear_4xx_errors() {
    let server = Server::start(&config_with(""), &[]);

    let d = expect_error(
        raw(&server, Some("application/json"), "{\"grant_type\":\"client_credentials\"}").send().await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("application/x-www-form-urlencoded"), "{d}");
    let d =
        expect_error(raw(&server, None, "grant_type=client_credentials").send().await.unwrap(), 400, "invalid_request")
            .await;
    assert!(d.contains("no Content-Type"), "{d}");

    // Garbage bytes, invalid UTF-8 and a body that is not a form at all.
    let garbage: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let d = expect_error(raw(&server, Some(FORM), garbage).send().await.unwrap(), 400, "invalid_request").await;
    assert!(d.len() < 200, "the description does not echo the whole body: {d}");
    expect_error(raw(&server, Some(FORM), "%%%&&&===").send().await.unwrap(), 400, "invalid_request").await;

    let d = expect_error(raw(&server, Some(FORM), "").send().await.unwrap(), 400, "invalid_request").await;
    assert_eq!(d, "missing required parameter \"grant_type\"");

    let d = expect_error(
        raw(&server, Some(FORM), "grant_type=password&username=a&password=b").send().await.unwrap(),
        400,
        "unsupported_grant_type",
    )
    .await;
    assert!(d.contains("\"password\" is not supported"), "{d}");

    let d = expect_error(
        raw(&server, Some(FORM), "grant_type=client_credentials&grant_type=client_credentials").send().await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("more than once"), "{d}");

    let d = expect_error(
        raw(&server, Some(FORM), "grant_type=client_credentials&scope=orders:delete").send().await.unwrap(),
        400,
        "invalid_scope",
    )
    .await;
    assert!(d.contains("orders:delete"), "{d}");

    expect_error(
        raw(&server, Some(FORM), "grant_type=client_credentials&resource=https://elsewhere.example")
            .send()
            .await
            .unwrap(),
        400,
        "invalid_target",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let server = Server::start(&config_with(""), &[]);
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(70 * 1024));
    let d = expect_error(raw(&server, Some(FORM), big.clone()).send().await.unwrap(), 413, "invalid_request").await;
    assert!(d.contains("64 KiB"), "{d}");
    // Also when the length is not announced up front (chunked).
    let stream = futures_stream(big.into_bytes());
    expect_error(
        raw(&server, Some(FORM), reqwest::Body::wrap_stream(stream)).send().await.unwrap(),
        413,
        "invalid_request",
    )
    .await;
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Chunks(std::vec::IntoIter<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next().map(Ok))
        }
    }
    Chunks(bytes.chunks(8192).map(<[u8]>::to_vec).collect::<Vec<_>>().into_iter())
}

#[tokio::test]
async fn wrong_or_missing_client_authentication_is_401_invalid_client() {
    let server = Server::start(&config_with(""), &[]);
    let cc = [("grant_type", "client_credentials")];

    let resp = server.post_form("/token", Some(("orders-api", "wrong")), &cc).await;
    assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"tenure\"");
    expect_error(resp, 401, "invalid_client").await;
    expect_error(server.post_form("/token", Some(("nobody", "x")), &cc).await, 401, "invalid_client").await;
    expect_error(server.post_form("/token", None, &cc).await, 401, "invalid_client").await;
    let d = expect_error(
        server.post_form("/token", None, &[("grant_type", "client_credentials"), ("client_id", "orders-api")]).await,
        401,
        "invalid_client",
    )
    .await;
    assert!(d.contains("confidential"), "{d}");
    let bad_header = server
        .http
        .post(server.url("/token"))
        .header("content-type", FORM)
        .header("authorization", "Basic %%%not-base64")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect_error(bad_header, 401, "invalid_client").await;
    let d = expect_error(
        server
            .post_form(
                "/token",
                Some(("orders-api", "orders-secret")),
                &[("grant_type", "client_credentials"), ("client_secret", "x")],
            )
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("one client authentication method"), "{d}");
}

#[tokio::test]
async fn repeated_failures_are_throttled_but_other_clients_are_not() {
    let server = Server::start(&config_with(""), &[]);
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..10 {
        expect_error(server.post_form("/token", Some(("orders-api", "guess")), &cc).await, 401, "invalid_client").await;
    }
    // Even the right secret is refused now, with a time to wait.
    let resp = server.post_form("/token", Some(("orders-api", "orders-secret")), &cc).await;
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    let d = expect_error(resp, 429, "temporarily_unavailable").await;
    assert!(d.contains("orders-api") && d.contains("retry in"), "{d}");
    // Another client from the same address is unaffected.
    let ok = server.post_form("/token", Some(("automation", "automation-secret")), &cc).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_4xx() {
    let server = Server::start(&config_with(""), &[]);
    let resp = server.http.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let resp = server.http.get(server.url("/token")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}
