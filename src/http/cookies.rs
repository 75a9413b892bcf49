//! tenure's browser cookies and the CSRF tokens bound to them, shared by the
//! sign-in page and the logout confirmation page.
//!
//! Cookies are HttpOnly, SameSite=Lax, Path=/, and, when the issuer is https,
//! Secure and named with the `__Host-` prefix (RFC 6265bis 4.1.3.2: the
//! browser keeps such a cookie only if it is Secure, has Path=/ and no
//! Domain, so a sibling subdomain or a plain-http page cannot plant or
//! overwrite it). On an http issuer (development) the plain names are used:
//! browsers refuse `__Host-` cookies without Secure. A CSRF token is the HMAC-SHA256 (keyed by the master key's CSRF
//! subkey) of the random `tenure_csrf` cookie, checked in constant time.

use axum::http::header::InvalidHeaderValue;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// 32 random bytes, base64url: a fresh `tenure_csrf` cookie value.
pub fn new_csrf_cookie() -> Result<String, ring::error::Unspecified> {
    let mut raw = [0u8; 32];
    SystemRandom::new().fill(&mut raw)?;
    Ok(B64.encode(raw))
}

/// Whether `value` has the shape of a cookie from [`new_csrf_cookie`].
pub fn is_csrf_cookie(value: &str) -> bool {
    value.len() == 43 && B64.decode(value).is_ok_and(|raw| raw.len() == 32)
}

/// The CSRF token a form carries for `cookie`.
pub fn csrf_token(key: &hmac::Key, cookie: &str) -> String {
    B64.encode(hmac::sign(key, cookie.as_bytes()))
}

/// Whether `token` is the HMAC of `cookie`, compared in constant time.
pub fn csrf_token_matches(key: &hmac::Key, cookie: &str, token: &str) -> bool {
    is_csrf_cookie(cookie) && B64.decode(token).is_ok_and(|tag| hmac::verify(key, cookie.as_bytes(), &tag).is_ok())
}

/// The name cookie `name` goes by: `__Host-name` on an https issuer
/// (`secure`), `name` otherwise.
pub fn cookie_name(name: &str, secure: bool) -> String {
    if secure { format!("__Host-{name}") } else { name.to_owned() }
}

/// The first value of cookie `name` (as named by [`cookie_name`]) in the
/// request's `Cookie` headers. On an https issuer a cookie without the
/// prefix is ignored: it may have been planted.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str, secure: bool) -> Option<&'a str> {
    let name = cookie_name(name, secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name.as_str()).then_some(v))
}

/// A `Set-Cookie` value with tenure's attributes, and `Max-Age` for a
/// persistent cookie (`Some(0)` removes it). `secure` (an https issuer)
/// adds `Secure` and the `__Host-` prefix.
pub fn set_cookie(
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<u64>,
) -> Result<HeaderValue, InvalidHeaderValue> {
    let name = cookie_name(name, secure);
    let mut cookie = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(secs) = max_age {
        cookie.push_str(&format!("; Max-Age={secs}"));
    }
    HeaderValue::from_str(&cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_cookie_and_the_key() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let cookie = new_csrf_cookie().expect("rng");
        assert!(is_csrf_cookie(&cookie));
        let token = csrf_token(&key, &cookie);
        assert!(csrf_token_matches(&key, &cookie, &token));
        assert!(!csrf_token_matches(&key, &new_csrf_cookie().expect("rng"), &token));
        assert!(!csrf_token_matches(&key, &cookie, "not-a-token"));
        assert!(!csrf_token_matches(&hmac::Key::new(hmac::HMAC_SHA256, b"other"), &cookie, &token));
        assert!(!is_csrf_cookie("short"));
    }

    #[test]
    fn reads_and_writes_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; tenure_csrf=x"));
        headers.append(header::COOKIE, HeaderValue::from_static("tenure_session=s.t"));
        assert_eq!(cookie(&headers, "tenure_csrf", false), Some("x"));
        assert_eq!(cookie(&headers, "tenure_session", false), Some("s.t"));
        assert_eq!(cookie(&headers, "tenure", false), None);
        assert_eq!(set_cookie("n", "v", false, None).expect("ascii"), "n=v; HttpOnly; SameSite=Lax; Path=/");
    }

    #[test]
    fn an_https_issuer_uses_host_prefixed_secure_cookies() {
        assert_eq!(
            set_cookie("n", "", true, Some(0)).expect("ascii"),
            "__Host-n=; HttpOnly; SameSite=Lax; Path=/; Secure; Max-Age=0"
        );
        let set = set_cookie("tenure_session", "s.t", true, None).expect("ascii");
        let set = set.to_str().expect("ascii");
        assert!(set.starts_with("__Host-tenure_session=s.t;"), "{set}");
        assert!(set.contains("; Secure") && set.contains("; Path=/") && !set.contains("Domain"), "{set}");

        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("tenure_session=planted; __Host-tenure_session=real"));
        assert_eq!(cookie(&headers, "tenure_session", true), Some("real"));
        let mut planted_only = HeaderMap::new();
        planted_only.append(header::COOKIE, HeaderValue::from_static("tenure_session=planted"));
        assert_eq!(cookie(&planted_only, "tenure_session", true), None, "no prefix: ignored on https");
        assert_eq!(cookie(&headers, "tenure_session", false), Some("planted"));
    }
}
