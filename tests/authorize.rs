//! The front channel end to end (SPEC 4 `GET /authorize` and the sign-in
//! page; RFC 6749 4.1; OIDC Core 3.1.2; RFC 7636; RFC 8252 7.3; RFC 9207):
//! sign-in, single sign-on, `prompt`, `max_age`, throttling, CSRF, cookies, and
//! the errors that must never become redirects.

use crate::support::flow::{Browser, code_from, input_value, location, pkce_pair, query_param, set_cookie};
use crate::support::kit::{WEB_REDIRECT, user, web_client};
use crate::support::manual::ManualServer;
use crate::support::{Server, config_with};

const SPA_REDIRECT: &str = "http://127.0.0.1:9001/";

fn config() -> String {
    config_with(&format!(
        r#"{}name = "Web <Shop> & Co"

[[clients]]
id = "spa"
public = true
redirect_uris = ["{SPA_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
{}{}"#,
        web_client(&["openid", "profile", "email"]),
        user("alice", &[]),
        user("bob", &[])
    ))
}

/// A request of the confidential `web` client, with `extra` parameters.
fn web<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut query =
        vec![("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT), ("state", "st-1")];
    query.extend_from_slice(extra);
    query
}

/// Follow a 302 error redirect to `redirect_uri` and return (error, description).
fn error_redirect(resp: &reqwest::Response, redirect_uri: &str, base: &str) -> (String, String) {
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let loc = location(resp).unwrap();
    assert!(loc.starts_with(&format!("{redirect_uri}?")), "{loc}");
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(base), "RFC 9207: iss on errors too");
    assert!(query_param(&loc, "code").is_none());
    (query_param(&loc, "error").unwrap(), query_param(&loc, "error_description").unwrap_or_default())
}

/// Sign-in page headers: no caching, no framing, no scripts.
fn assert_page_headers(resp: &reqwest::Response) {
    let h = resp.headers();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"), "{csp}");
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn signing_in_returns_a_code_with_state_and_iss() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let page = browser.authorize(&server, &web(&[("nonce", "n-1"), ("scope", "openid email")])).await;
    assert_eq!(page.status(), 200);
    assert_page_headers(&page);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:9000;"), "the form may end at the client: {csp}");
    let csrf = set_cookie(&page, "tenure_csrf").expect("a CSRF cookie");
    assert!(csrf.contains("; HttpOnly") && csrf.contains("; SameSite=Lax") && csrf.contains("; Path=/"), "{csrf}");
    assert!(!csrf.contains("Secure"), "no Secure over http: {csrf}");
    let html = page.text().await.unwrap();

    // The form: accessible, named inputs, posting to /login.
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains(r#"<meta name="viewport""#));
    assert!(html.contains("<title>") && html.contains("<main>") && html.contains("<h1>Sign in</h1>"));
    assert!(html.contains(r#"<form method="post" action="/login""#), "{html}");
    for (id, label) in [("username", "Username"), ("password", "Password"), ("remember_me", "Remember me")] {
        assert!(html.contains(&format!(r#"<label for="{id}">{label}</label>"#)), "label for {id}");
        assert!(html.contains(&format!(r#"id="{id}" name="{id}""#)), "input {id}");
    }
    assert!(html.contains(r#"autocomplete="username""#) && html.contains(r#"autocomplete="current-password""#));
    assert!(html.contains(r#"type="checkbox" value="on""#));
    assert!(html.contains(r#"type="hidden" name="csrf_token""#));
    assert!(input_value(&html, "csrf_token").unwrap().len() >= 43);
    assert!(html.contains("Web &lt;Shop&gt; &amp; Co"), "the application is named, escaped");
    assert!(!html.contains("<script") && !html.contains("role=\"alert\""));
    let return_to = input_value(&html, "return_to").unwrap();
    assert_eq!(query_param(&format!("?{return_to}"), "nonce").as_deref(), Some("n-1"), "{return_to}");

    let posted = browser.submit_sign_in(&server, &html, "alice", "alice-password", false).await;
    assert_eq!(posted.status(), 303);
    let session = set_cookie(&posted, "tenure_session").expect("a session cookie");
    assert!(session.contains("; HttpOnly") && session.contains("; SameSite=Lax") && session.contains("; Path=/"));
    assert!(!session.contains("Secure"), "{session}");
    assert!(!session.contains("Max-Age"), "a browser-session cookie without Remember me: {session}");
    let next = location(&posted).unwrap();
    assert!(next.starts_with("/authorize?"), "{next}");

    let last = browser.get(&server, &next).await;
    assert_eq!(last.status(), 302);
    assert_eq!(last.headers()["cache-control"], "no-store");
    let loc = location(&last).unwrap();
    assert!(loc.starts_with(&format!("{WEB_REDIRECT}?code=")), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(server.base.as_str()));
    assert_eq!(query_param(&loc, "code").unwrap().len(), 43, "256 random bits");
}

#[tokio::test]
async fn a_live_session_gets_codes_without_the_form() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let first = browser.sign_in_for_code(&server, &web(&[]), "alice", "alice-password", false).await;
    let second = browser.code_for(&server, &web(&[])).await;
    assert_ne!(first, second, "each authorization gets its own code");
    // Single sign-on across clients (the loopback port wildcard of native
    // apps is in harden.rs).
    let (_, challenge) = pkce_pair();
    let spa = [
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", SPA_REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let resp = browser.authorize(&server, &spa).await;
    assert!(location(&resp).unwrap().starts_with("http://127.0.0.1:9001/?code="));
    assert_eq!(code_from(resp).await.len(), 43);
    // Another browser has no session.
    assert_eq!(Browser::new().authorize(&server, &web(&[])).await.status(), 200);
}

/// In process on a manual clock (`max_age` counts whole seconds).
#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let server = ManualServer::start(&config(), &[]).await;
    let browser = Browser::new();
    let resp = browser.authorize(&server, &web(&[("prompt", "none")])).await;
    let (error, _) = error_redirect(&resp, WEB_REDIRECT, &server.base);
    assert_eq!(error, "login_required");
    assert_eq!(query_param(&location(&resp).unwrap(), "state").as_deref(), Some("st-1"));
    // With a session, prompt=none answers with a code at once.
    browser.sign_in_for_code(&server, &web(&[]), "alice", "alice-password", false).await;
    browser.code_for(&server, &web(&[("prompt", "none")])).await;
    // ... unless the sign-in is older than max_age: not yet in its second,
    browser.code_for(&server, &web(&[("prompt", "none"), ("max_age", "0")])).await;
    // but one second later.
    server.advance(1);
    let resp = browser.authorize(&server, &web(&[("prompt", "none"), ("max_age", "0")])).await;
    assert_eq!(error_redirect(&resp, WEB_REDIRECT, &server.base).0, "login_required");
}

/// In process on a manual clock (`max_age` counts whole seconds).
#[tokio::test]
async fn prompt_login_and_max_age_ask_again_despite_a_session() {
    let server = ManualServer::start(&config(), &[]).await;
    let browser = Browser::new();
    browser.sign_in_for_code(&server, &web(&[]), "alice", "alice-password", false).await;

    let code = browser.sign_in_for_code(&server, &web(&[("prompt", "login")]), "alice", "alice-password", false).await;
    assert_eq!(code.len(), 43, "after signing in again the request continues without looping");

    server.advance(1);
    let code = browser.sign_in_for_code(&server, &web(&[("max_age", "0")]), "alice", "alice-password", false).await;
    assert_eq!(code.len(), 43, "max_age=0 forces a sign-in, then continues");
    browser.code_for(&server, &web(&[("max_age", "3600")])).await;
}

#[tokio::test]
async fn remember_me_makes_a_persistent_cookie() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let html = browser.authorize(&server, &web(&[])).await.text().await.unwrap();
    let posted = browser.submit_sign_in(&server, &html, "alice", "alice-password", true).await;
    assert_eq!(posted.status(), 303);
    let cookie = set_cookie(&posted, "tenure_session").unwrap();
    assert!(cookie.contains("; Max-Age=1728000"), "remember_me_max_lifetime, 20 d by default: {cookie}");
    assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Lax"));
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_throttled() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let html = browser.authorize(&server, &web(&[])).await.text().await.unwrap();
    // An unknown username is refused the same way as a wrong password.
    let unknown = browser.submit_sign_in(&server, &html, "nobody", "wrong-password", false).await;
    assert_eq!(unknown.status(), 401);
    assert!(unknown.text().await.unwrap().contains("Wrong username or password."));
    for attempt in 1..=5 {
        let username = "alice";
        let resp = browser.submit_sign_in(&server, &html, username, "wrong-password", true).await;
        assert_eq!(resp.status(), 401, "attempt {attempt}");
        assert!(set_cookie(&resp, "tenure_session").is_none());
        assert_page_headers(&resp);
        let again = resp.text().await.unwrap();
        assert!(again.contains(r#"role="alert">Wrong username or password.</p>"#), "{again}");
        assert_eq!(input_value(&again, "username").as_deref(), Some(username), "the username is kept");
        assert!(!again.contains("wrong-password"), "never the password");
        assert!(again.contains(r#"value="on" checked"#), "Remember me is kept");
    }
    let blocked = browser.submit_sign_in(&server, &html, "alice", "wrong-password", false).await;
    assert_eq!(blocked.status(), 429, "the 6th failure within 5 minutes");
    let wait: u64 = blocked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    let text = blocked.text().await.unwrap();
    assert!(
        text.contains("Too many failed sign-in attempts for this account from your address. Try again in"),
        "{text}"
    );
    // The block holds for the right password too (no guessing through it),
    // and only for this username and address.
    let right = browser.submit_sign_in(&server, &html, "alice", "alice-password", false).await;
    assert_eq!(right.status(), 429);
    let other = browser.submit_sign_in(&server, &html, "bob", "bob-password", false).await;
    assert_eq!(other.status(), 303);
}

#[tokio::test]
async fn successful_sign_ins_are_not_throttled() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    for i in 0..8 {
        // Each sign-in renews the CSRF cookie: the next one needs a fresh page.
        let html = browser.authorize(&server, &web(&[("prompt", "login")])).await.text().await.unwrap();
        let resp = browser.submit_sign_in(&server, &html, "bob", "bob-password", false).await;
        assert_eq!(resp.status(), 303, "sign-in {i}");
    }
}

#[tokio::test]
async fn the_form_needs_its_csrf_token() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let html = browser.authorize(&server, &web(&[])).await.text().await.unwrap();
    let return_to = input_value(&html, "return_to").unwrap();
    let token = input_value(&html, "csrf_token").unwrap();
    let expired = "This sign-in form has expired. Go back and try again.";

    let missing = browser
        .post_form(
            &server,
            "/login",
            &[("username", "alice"), ("password", "alice-password"), ("return_to", &return_to)],
        )
        .await;
    assert_eq!(missing.status(), 400);
    assert!(set_cookie(&missing, "tenure_session").is_none());
    assert_page_headers(&missing);
    let text = missing.text().await.unwrap();
    assert!(text.contains(expired), "{text}");
    assert!(text.contains(r#"<a href="/authorize?"#), "a way back to the form: {text}");

    let wrong = browser
        .post_form(
            &server,
            "/login",
            &[
                ("username", "alice"),
                ("password", "alice-password"),
                ("return_to", &return_to),
                ("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 400);

    // The right token from another browser (without the cookie) is refused.
    let stranger = Browser::new()
        .post_form(
            &server,
            "/login",
            &[("username", "alice"), ("password", "alice-password"), ("return_to", &return_to), ("csrf_token", &token)],
        )
        .await;
    assert_eq!(stranger.status(), 400);
    assert!(stranger.text().await.unwrap().contains(expired));

    // A second page in the same browser reuses the cookie: both forms work.
    let second = browser.authorize(&server, &web(&[])).await;
    assert!(set_cookie(&second, "tenure_csrf").is_none(), "a valid CSRF cookie is kept");
    let second = second.text().await.unwrap();
    assert_eq!(input_value(&second, "csrf_token").unwrap(), token);
    assert_eq!(browser.submit_sign_in(&server, &html, "alice", "alice-password", false).await.status(), 303);
}

#[tokio::test]
async fn unknown_clients_and_redirect_uris_get_a_page_never_a_redirect() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let cases: [(Vec<(&str, &str)>, &str); 4] = [
        (
            web(&[]).into_iter().map(|(k, v)| if k == "client_id" { (k, "x") } else { (k, v) }).collect(),
            "unknown client &quot;x&quot;",
        ),
        (
            web(&[])
                .into_iter()
                .map(|(k, v)| if k == "redirect_uri" { (k, "https://evil.example/cb") } else { (k, v) })
                .collect(),
            "redirect_uri &quot;https://evil.example/cb&quot; is not registered for client &quot;web&quot;",
        ),
        (
            web(&[])
                .into_iter()
                .map(|(k, v)| if k == "redirect_uri" { (k, "http://127.0.0.1:9000/callback/../x") } else { (k, v) })
                .collect(),
            "is not registered for client",
        ),
        (vec![("response_type", "code"), ("client_id", "web"), ("client_id", "spa")], "is included more than once"),
    ];
    for (query, message) in cases {
        let resp = browser.authorize(&server, &query).await;
        assert_eq!(resp.status(), 400, "{query:?}");
        assert!(location(&resp).is_none(), "no redirect: {query:?}");
        assert_page_headers(&resp);
        let text = resp.text().await.unwrap();
        assert!(text.contains(message), "{message} in {text}");
        assert!(text.contains(r#"role="alert""#));
    }
}

#[tokio::test]
async fn invalid_requests_are_sent_back_to_the_client() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let spa_no_pkce = [("response_type", "code"), ("client_id", "spa"), ("redirect_uri", SPA_REDIRECT), ("state", "s")];
    let (error, description) =
        error_redirect(&browser.authorize(&server, &spa_no_pkce).await, SPA_REDIRECT, &server.base);
    assert_eq!(error, "invalid_request");
    assert!(description.contains("PKCE (S256) is required for public clients"), "{description}");

    let (_, challenge) = pkce_pair();
    let plain = web(&[("code_challenge", &challenge), ("code_challenge_method", "plain")]);
    let (error, description) = error_redirect(&browser.authorize(&server, &plain).await, WEB_REDIRECT, &server.base);
    assert_eq!(error, "invalid_request");
    assert!(description.contains("use S256"), "{description}");

    let scope = web(&[("scope", "openid admin")]);
    let (error, description) = error_redirect(&browser.authorize(&server, &scope).await, WEB_REDIRECT, &server.base);
    assert_eq!(error, "invalid_scope");
    assert!(description.contains("may not request scope admin"), "{description}");

    let token = vec![("response_type", "token"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT)];
    let (error, _) = error_redirect(&browser.authorize(&server, &token).await, WEB_REDIRECT, &server.base);
    assert_eq!(error, "unsupported_response_type");

    for extra in [("prompt", "none login"), ("prompt", "sometimes"), ("max_age", "-1")] {
        let resp = browser.authorize(&server, &web(&[extra])).await;
        assert_eq!(error_redirect(&resp, WEB_REDIRECT, &server.base).0, "invalid_request", "{extra:?}");
    }
}

#[tokio::test]
async fn sign_in_only_continues_at_our_own_authorize_endpoint() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let html = browser.authorize(&server, &web(&[])).await.text().await.unwrap();
    let token = input_value(&html, "csrf_token").unwrap();
    for return_to in ["client_id=web&redirect_uri=https%3A%2F%2Fevil.example%2F", "https://evil.example/", ""] {
        let resp = browser
            .post_form(
                &server,
                "/login",
                &[
                    ("username", "alice"),
                    ("password", "alice-password"),
                    ("csrf_token", &token),
                    ("return_to", return_to),
                ],
            )
            .await;
        assert_eq!(resp.status(), 400, "{return_to}");
        assert!(location(&resp).is_none());
        assert!(set_cookie(&resp, "tenure_session").is_none(), "no session for a request that cannot continue");
    }
    let not_a_form = browser
        .http
        .post(server.url("/login"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_form.status(), 400);
}
