//! A browser for the authorization code flow (RFC 6749 4.1; RFC 7636): it
//! keeps cookies, does not follow redirects (so tests read `Location`), and
//! fills in the sign-in form the way a user would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};

use super::Server;

pub struct Browser {
    pub http: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A fresh browser: no cookies yet.
    pub fn new() -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Browser { http }
    }

    /// `GET /authorize?query`, redirects not followed.
    pub async fn authorize(&self, server: &Server, query: &[(&str, &str)]) -> reqwest::Response {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        self.get(server, &format!("/authorize?{query}")).await
    }

    /// `GET` a path of `server`, redirects not followed.
    pub async fn get(&self, server: &Server, path: &str) -> reqwest::Response {
        self.http.get(server.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Post the sign-in form of `page` (the HTML of the sign-in page) with
    /// these credentials; the response is not followed.
    pub async fn submit_sign_in(
        &self,
        server: &Server,
        page: &str,
        username: &str,
        password: &str,
        remember_me: bool,
    ) -> reqwest::Response {
        let csrf_token = input_value(page, "csrf_token").expect("the sign-in form has a csrf_token input");
        let return_to = input_value(page, "return_to").expect("the sign-in form has a return_to input");
        let mut form = vec![
            ("username", username),
            ("password", password),
            ("csrf_token", csrf_token.as_str()),
            ("return_to", return_to.as_str()),
        ];
        if remember_me {
            form.push(("remember_me", "on"));
        }
        self.post_form(server, "/login", &form).await
    }

    /// POST a form to `path` with this browser's cookies.
    pub async fn post_form(&self, server: &Server, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        self.http
            .post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Run the whole front channel: `/authorize` shows the sign-in page, the
    /// form is posted, `/login` sends the browser back to `/authorize`, which
    /// redirects to the client with a code. Returns the code; panics with the
    /// step that went wrong otherwise. The browser keeps its session cookie.
    pub async fn sign_in_for_code(
        &self,
        server: &Server,
        query: &[(&str, &str)],
        username: &str,
        password: &str,
        remember_me: bool,
    ) -> String {
        let first = self.authorize(server, query).await;
        let status = first.status();
        let redirected_to = location(&first);
        let page = first.text().await.expect("body");
        assert_eq!(
            status, 200,
            "GET /authorize should show the sign-in page; got {status} (Location: {redirected_to:?}) — \
             already signed in? use code_for or a new Browser\n{page}"
        );
        let posted = self.submit_sign_in(server, &page, username, password, remember_me).await;
        let status = posted.status();
        let next = location(&posted);
        assert_eq!(
            status,
            303,
            "POST /login should redirect; got {status}:\n{}",
            posted.text().await.unwrap_or_default()
        );
        let next = next.expect("Location after sign-in");
        assert!(next.starts_with("/authorize?"), "sign-in continues at /authorize, not {next}");
        let last = self.get(server, &next).await;
        code_from(last).await
    }

    /// `/authorize` for a browser that is already signed in (single sign-on):
    /// the code it redirects with.
    pub async fn code_for(&self, server: &Server, query: &[(&str, &str)]) -> String {
        code_from(self.authorize(server, query).await).await
    }
}

/// The `code` of a 302 to the client; panics naming what came instead.
pub async fn code_from(resp: reqwest::Response) -> String {
    let status = resp.status();
    let location = location(&resp);
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 302, "expected a redirect to the client with a code; got {status}:\n{body}");
    let location = location.expect("Location");
    match query_param(&location, "code") {
        Some(code) => code,
        None => panic!(
            "the redirect carries no code: {location} (error {:?}: {:?})",
            query_param(&location, "error"),
            query_param(&location, "error_description")
        ),
    }
}

/// The `Location` header, if any.
pub fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get("location").map(|v| v.to_str().expect("ASCII Location").to_owned())
}

/// The whole `Set-Cookie` header that sets cookie `name`, if any.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// Parameter `name` of the query of `url` (absolute or a path).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The `value` of the input named `name` in `html`, unescaped.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = tag.split_once("value=\"")?.1;
    let value = &value[..value.find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A PKCE pair (RFC 7636 4.1, 4.2): a random 43-character verifier and its
/// S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let mut raw = [0u8; 32];
    SystemRandom::new().fill(&mut raw).expect("rng");
    let verifier = B64.encode(raw);
    let challenge = B64.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}
