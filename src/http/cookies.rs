//! tenure's browser cookies and the CSRF tokens bound to them, shared by the
//! sign-in page and the logout confirmation page.
//!
//! Cookies are HttpOnly, SameSite=Lax, Path=/, and Secure when the issuer is
//! https. A CSRF token is the HMAC-SHA256 (keyed by the master key's CSRF
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

/// The first value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// A `Set-Cookie` value with tenure's attributes, and `Max-Age` for a
/// persistent cookie (`Some(0)` removes it).
pub fn set_cookie(
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<u64>,
) -> Result<HeaderValue, InvalidHeaderValue> {
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
        assert_eq!(cookie(&headers, "tenure_csrf"), Some("x"));
        assert_eq!(cookie(&headers, "tenure_session"), Some("s.t"));
        assert_eq!(cookie(&headers, "tenure"), None);
        assert_eq!(set_cookie("n", "v", false, None).expect("ascii"), "n=v; HttpOnly; SameSite=Lax; Path=/");
        assert_eq!(
            set_cookie("n", "", true, Some(0)).expect("ascii"),
            "n=; HttpOnly; SameSite=Lax; Path=/; Secure; Max-Age=0"
        );
    }
}
