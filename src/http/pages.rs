//! The HTML pages of the issuer: the sign-in form (SPEC 4, "Sign-in page")
//! and the error pages of the authorization flow (RFC 6749 4.1.2.1: errors
//! about the client or its redirect URI are shown to the user, not
//! redirected).
//!
//! Pages are self-contained: inline CSS, no scripts, no external assets, so
//! the Content-Security-Policy can forbid everything else. Every interpolated
//! value goes through [`escape`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::form::BODY_LIMIT;

/// The policy of every page (no scripts, no framing, forms only to us).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// Escape `s` for HTML text and double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the sign-in form shows.
pub struct SignInForm<'a> {
    /// The application that asks: the client's name, else its id.
    pub app: &'a str,
    /// Filled in again after a failed attempt; never the password.
    pub username: &'a str,
    pub remember_me: bool,
    /// Shown in a `role="alert"` element.
    pub error: Option<&'a str>,
    pub csrf_token: &'a str,
    /// The original `/authorize` query string (at `/device`: the user
    /// code typed so far).
    pub return_to: &'a str,
    /// Where the form posts: `/login`, or `/device/login` (SPEC 15).
    pub action: &'a str,
}

/// The sign-in page.
pub fn sign_in(form: &SignInForm<'_>) -> String {
    let app = escape(form.app);
    let error = match form.error {
        Some(message) => format!(r#"<p class="alert" id="form-error" role="alert">{}</p>"#, escape(message)),
        None => String::new(),
    };
    let described_by = if form.error.is_some() { r#" aria-describedby="form-error""# } else { "" };
    let checked = if form.remember_me { " checked" } else { "" };
    let body = format!(
        r#"<h1>Sign in</h1>
<p class="lead">to continue to <strong>{app}</strong></p>
{error}<form method="post" action="{action}"{described_by}>
<input type="hidden" name="csrf_token" value="{csrf_token}">
<input type="hidden" name="return_to" value="{return_to}">
<div class="field">
<label for="username">Username</label>
<input id="username" name="username" type="text" value="{username}" autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="64" required>
</div>
<div class="field">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
</div>
<div class="check">
<input id="remember_me" name="remember_me" type="checkbox" value="on"{checked}>
<label for="remember_me">Remember me</label>
</div>
<button type="submit">Sign in</button>
</form>"#,
        csrf_token = escape(form.csrf_token),
        return_to = escape(form.return_to),
        username = escape(form.username),
        action = escape(form.action),
    );
    document(&format!("Sign in to {app}"), &body)
}

/// One live session on the "too many sessions" page (SPEC 14, `ask`).
pub struct SessionChoice {
    pub sid: String,
    /// The applications signed in through it, by name.
    pub clients: String,
    /// The browser and system, from its user agent.
    pub device: String,
    pub ip: String,
    /// "5 min ago (2026-12-06 15:40 UTC)".
    pub last_active: String,
}

/// What the "too many sessions" page shows.
pub struct SessionLimitForm<'a> {
    pub app: &'a str,
    pub max_sessions: u64,
    /// Least recently active first.
    pub sessions: &'a [SessionChoice],
    /// The pending sign-in's id.
    pub pending: &'a str,
    pub csrf_token: &'a str,
    pub error: Option<&'a str>,
}

/// The page a sign-in at the session limit shows when the policy says
/// `ask`: the user's live sessions, one to end (a radio list; the least
/// recently active is preselected), or cancel. No script.
pub fn session_limit(form: &SessionLimitForm<'_>) -> String {
    let app = escape(form.app);
    let error = match form.error {
        Some(message) => format!(r#"<p class="alert" id="form-error" role="alert">{}</p>"#, escape(message)),
        None => String::new(),
    };
    let rows: String = form
        .sessions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"<li><input type="radio" id="end-{i}" name="end" value="{sid}"{checked}>
<label for="end-{i}"><span class="what">{clients}</span><span class="meta">{device} · {ip}</span><span class="meta">Last active {last_active}</span></label></li>
"#,
                sid = escape(&s.sid),
                checked = if i == 0 { " checked" } else { "" },
                clients = escape(&s.clients),
                device = escape(&s.device),
                ip = escape(&s.ip),
                last_active = escape(&s.last_active),
            )
        })
        .collect();
    let limit = match form.max_sessions {
        1 => "1 session".to_owned(),
        n => format!("{n} sessions"),
    };
    let body = format!(
        r#"<h1>Too many sessions</h1>
<p class="lead">You may be signed in {limit} at a time. End one to continue to <strong>{app}</strong>.</p>
{error}<form method="post" action="/login/session-limit" aria-describedby="sessions-help">
<input type="hidden" name="csrf_token" value="{csrf_token}">
<input type="hidden" name="pending" value="{pending}">
<fieldset class="sessions"><legend id="sessions-help">Your sessions, least recently active first</legend>
<ul>
{rows}</ul>
</fieldset>
<button type="submit" name="action" value="end">Sign out of that session and continue</button>
<button type="submit" name="action" value="cancel" class="secondary">Cancel</button>
</form>"#,
        csrf_token = escape(form.csrf_token),
        pending = escape(form.pending),
    );
    document("Too many sessions", &body)
}

/// A page with a heading, a message and an optional link (`href`, text).
pub fn message(heading: &str, message: &str, link: Option<(&str, &str)>) -> String {
    let link = match link {
        Some((href, text)) => format!(r#"<p><a href="{}">{}</a></p>"#, escape(href), escape(text)),
        None => String::new(),
    };
    let body = format!(
        r#"<h1>{heading}</h1>
<p class="alert" role="alert">{message}</p>
{link}"#,
        heading = escape(heading),
        message = escape(message),
    );
    document(&escape(heading), &body)
}

/// `html` with `status` and the headers every page carries. `form_target`,
/// when given, is a CSP source the page's form may end up at through
/// redirects (see [`form_action_source`]).
pub fn respond(status: StatusCode, html: String, form_target: Option<&str>) -> Response {
    let csp = match form_target {
        Some(source) => CONTENT_SECURITY_POLICY.replace("form-action 'self'", &format!("form-action 'self' {source}")),
        None => CONTENT_SECURITY_POLICY.to_owned(),
    };
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The CSP source of a redirect URI: its origin for http(s), its scheme for
/// a private-use scheme (RFC 8252 7.1). Browsers apply `form-action` to every
/// redirect after a form is posted, so the sign-in form must be allowed to
/// end at the client's redirect URI (`/login` -> `/authorize` -> client).
pub fn form_action_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let source = match url.scheme() {
        "http" | "https" => url.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    };
    source.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',' && b != b'\'').then_some(source)
}

/// The flow an HTML refusal belongs to: its words differ, its shape does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// `/authorize` and `/login`.
    SignIn,
    /// `/logout`.
    SignOut,
}

/// Why a request ends on an error page: every HTML page (sign-in, logout,
/// console) answers its refusals through this one type.
#[derive(Debug)]
pub enum PageError {
    /// 400: the request cannot be trusted or understood; the message says why.
    BadRequest(Flow, String),
    /// 400: the form's CSRF token is missing or does not match the cookie;
    /// `retry` is a link to start again, when one is known.
    FormExpired { flow: Flow, retry: Option<String> },
    /// 413: the form exceeds 64 KiB.
    TooLarge(Flow),
    /// 500: details are in the log only.
    Internal(Flow),
    /// 503 with `Retry-After`: the database does not answer (SPEC 12);
    /// nothing was changed, the same request may be tried again.
    Unavailable(Flow),
    /// A page rendered already: the console's refusals carry the viewer's
    /// page chrome (its lookup is async), or send the browser to sign in.
    Shown(Box<Response>),
}

impl PageError {
    /// A page rendered already (see [`PageError::Shown`]).
    pub fn shown(page: Response) -> PageError {
        PageError::Shown(Box::new(page))
    }
}

/// Log an internal failure (never a code, token, cookie or password) and
/// answer 500.
pub fn internal(flow: Flow, context: &'static str, err: impl std::fmt::Display) -> PageError {
    tracing::error!(%context, error = %err, "internal error");
    PageError::Internal(flow)
}

/// A use case's refusal on a sign-in or sign-out page, which fail only
/// internally (logged where it happened) or because the database does not
/// answer (a 503 page, SPEC 12).
pub fn failed(flow: Flow, e: &crate::service::ServiceError) -> PageError {
    match e {
        crate::service::ServiceError::Unavailable { retry_after_secs: Some(_), .. } => PageError::Unavailable(flow),
        _ => PageError::Internal(flow),
    }
}

const FORM_EXPIRED_SIGN_IN: &str = "This sign-in form has expired. Go back and try again.";
const FORM_EXPIRED_SIGN_OUT: &str = "This sign-out form has expired. Go back and try again.";

impl Flow {
    /// The heading of a request that cannot go on.
    fn cannot(self) -> &'static str {
        match self {
            Flow::SignIn => "This sign-in request cannot be completed",
            Flow::SignOut => "This sign-out request cannot be completed",
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, html) = match self {
            PageError::Shown(response) => return *response,
            PageError::BadRequest(flow, message) => {
                (StatusCode::BAD_REQUEST, self::message(flow.cannot(), &message, None))
            }
            PageError::FormExpired { flow: Flow::SignIn, retry } => (
                StatusCode::BAD_REQUEST,
                self::message("Sign in", FORM_EXPIRED_SIGN_IN, retry.as_deref().map(|href| (href, "Try again"))),
            ),
            PageError::FormExpired { flow: Flow::SignOut, retry } => (
                StatusCode::BAD_REQUEST,
                self::message("Sign out", FORM_EXPIRED_SIGN_OUT, retry.as_deref().map(|href| (href, "Try again"))),
            ),
            PageError::TooLarge(flow) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                self::message(flow.cannot(), &format!("The form is larger than {} KiB.", BODY_LIMIT / 1024), None),
            ),
            PageError::Unavailable(flow) => {
                let html = self::message(
                    "Please try again in a moment",
                    match flow {
                        Flow::SignIn => {
                            "The sign-in service cannot reach its database right now, so nothing was changed. \
                             Please try again in a few seconds."
                        }
                        Flow::SignOut => {
                            "The sign-in service cannot reach its database right now, so you are not signed out \
                             yet. Please try again in a few seconds."
                        }
                    },
                    None,
                );
                let mut response = respond(StatusCode::SERVICE_UNAVAILABLE, html, None);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(crate::service::error::DATABASE_RETRY_AFTER_SECS));
                return response;
            }
            PageError::Internal(flow) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                self::message(
                    "Something went wrong",
                    match flow {
                        Flow::SignIn => "The server could not complete your sign-in. Please try again in a moment.",
                        Flow::SignOut => "The server could not sign you out. Please try again in a moment.",
                    },
                    None,
                ),
            ),
        };
        respond(status, html, None)
    }
}

/// A whole page: `title` (already escaped) and `body` (HTML) in the pages'
/// chrome and style.
pub fn document(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#
    )
}

const STYLE: &str = r#"
*,*::before,*::after{box-sizing:border-box}
html{color-scheme:light dark}
body{margin:0;min-height:100vh;display:flex;align-items:flex-start;justify-content:center;padding:3rem 1rem;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#111827}
main{width:100%;max-width:24rem;background:#fff;border:1px solid #d1d5db;border-radius:.75rem;padding:2rem 1.5rem;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h1{margin:0 0 .25rem;font-size:1.5rem;line-height:1.25}
.lead{margin:0 0 1.5rem;color:#4b5563}
.field{margin-bottom:1rem}
label{display:block;font-weight:600;margin-bottom:.25rem}
input[type=text],input[type=password]{width:100%;font:inherit;padding:.6rem .75rem;border:1px solid #6b7280;
border-radius:.5rem;background:#fff;color:inherit}
.check{display:flex;align-items:center;gap:.5rem;margin:0 0 1.5rem}
.check label{margin:0;font-weight:400}
.check input{width:1.15rem;height:1.15rem;margin:0}
button{width:100%;font:inherit;font-weight:600;padding:.7rem 1rem;border:0;border-radius:.5rem;background:#1d4ed8;
color:#fff;cursor:pointer}
button:hover{background:#1e40af}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.alert{margin:0 0 1.25rem;padding:.75rem 1rem;border-radius:.5rem;background:#fef2f2;border:1px solid #fca5a5;
color:#991b1b}
.sessions{border:0;margin:0 0 1.25rem;padding:0}
.sessions legend{font-weight:600;margin-bottom:.5rem;padding:0}
.sessions ul{list-style:none;margin:0;padding:0}
.sessions li{display:flex;gap:.75rem;align-items:flex-start;padding:.75rem;border:1px solid #d1d5db;border-radius:.5rem;
margin-bottom:.5rem}
.sessions li input{width:1.15rem;height:1.15rem;margin:.2rem 0 0;flex:none}
.sessions label{margin:0;font-weight:400}
.sessions .what{display:block;font-weight:600}
.meta{display:block;color:#4b5563;font-size:.9rem}
button.secondary{margin-top:.5rem;background:transparent;color:#1d4ed8;border:1px solid #1d4ed8}
button.secondary:hover{background:#eff6ff}
a{color:#1d4ed8}
.code{font:600 1.6rem/1.2 ui-monospace,SFMono-Regular,Menlo,monospace;letter-spacing:.15em;margin:0 0 1.25rem;
padding:.6rem .75rem;border:1px dashed #6b7280;border-radius:.5rem;text-align:center}
input.code-input{text-transform:uppercase;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;letter-spacing:.1em}
.scopes{margin:0 0 1.25rem;padding-left:1.25rem}
.note{color:#4b5563;font-size:.9rem;margin:0 0 1.25rem}
form+.note{margin:1.25rem 0 0}
.done{margin:0 0 1.25rem;padding:.75rem 1rem;border-radius:.5rem;background:#f0fdf4;border:1px solid #86efac;color:#166534}
@media (prefers-color-scheme:dark){
body{background:#111827;color:#f9fafb}
main{background:#1f2937;border-color:#374151}
.lead{color:#d1d5db}
input[type=text],input[type=password]{background:#111827;border-color:#9ca3af}
.alert{background:#450a0a;border-color:#b91c1c;color:#fecaca}
.sessions li{border-color:#4b5563}
.meta{color:#d1d5db}
button.secondary{color:#93c5fd;border-color:#93c5fd}
button.secondary:hover{background:#1e3a8a}
a{color:#93c5fd}
.note{color:#d1d5db}
.done{background:#052e16;border-color:#15803d;color:#bbf7d0}
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_html_and_attribute_metacharacters() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[tokio::test]
    async fn a_database_outage_is_a_503_page_that_says_to_try_again() {
        for flow in [Flow::SignIn, Flow::SignOut] {
            let response = PageError::Unavailable(flow).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "2");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.expect("body");
            let html = String::from_utf8(body.to_vec()).expect("utf-8");
            assert!(html.contains("Please try again in a moment") && html.contains("try again in a few seconds"));
        }
    }

    #[test]
    fn the_sign_in_form_escapes_what_it_shows() {
        let html = sign_in(&SignInForm {
            app: "<script>x</script>",
            username: "\"><img>",
            remember_me: true,
            error: Some("Wrong username or password."),
            csrf_token: "tok",
            return_to: "client_id=web&state=\"x\"",
            action: "/login",
        });
        assert!(!html.contains("<script>x"));
        assert!(!html.contains("\"><img>"));
        assert!(html.contains(r#"name="return_to" value="client_id=web&amp;state=&quot;x&quot;""#));
        assert!(html.contains(r#"role="alert">Wrong username or password.</p>"#));
        assert!(html.contains(r#"value="on" checked>"#));
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    }

    #[test]
    fn the_session_limit_page_escapes_what_it_shows_and_preselects_the_oldest() {
        let sessions = [
            SessionChoice {
                sid: "s1".into(),
                clients: "<b>Web</b>".into(),
                device: "Chrome on Linux".into(),
                ip: "127.0.0.1".into(),
                last_active: "5 min ago".into(),
            },
            SessionChoice {
                sid: "s2".into(),
                clients: "CLI".into(),
                device: "Unknown device".into(),
                ip: "10.0.0.1".into(),
                last_active: "now".into(),
            },
        ];
        let html = session_limit(&SessionLimitForm {
            app: "Web",
            max_sessions: 2,
            sessions: &sessions,
            pending: "p\"x",
            csrf_token: "tok",
            error: None,
        });
        assert!(!html.contains("<b>Web</b>"));
        assert!(html.contains(r#"value="s1" checked>"#), "the least recently active is preselected");
        assert!(html.contains(r#"value="s2">"#));
        assert!(html.contains("Chrome on Linux"));
        assert!(html.contains(r#"name="pending" value="p&quot;x""#));
        assert!(html.contains("signed in 2 sessions at a time"));
    }

    #[test]
    fn form_action_sources_are_origins_or_schemes() {
        assert_eq!(form_action_source("http://127.0.0.1:9000/cb?x=1").as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(form_action_source("https://app.example/cb").as_deref(), Some("https://app.example"));
        assert_eq!(form_action_source("com.example.app:/cb").as_deref(), Some("com.example.app:"));
        assert_eq!(form_action_source("not a uri"), None);
    }
}
