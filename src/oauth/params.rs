//! Form parameters of the OAuth endpoints (RFC 6749 3.1, 3.2).
//!
//! "Parameters sent without a value MUST be treated as if they were omitted
//! from the request" and "Request and response parameters MUST NOT be included
//! more than once".

use std::collections::BTreeMap;

use super::error::OAuthError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(body: &[u8]) -> Result<Params, OAuthError> {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            // No name or value here may hold NUL, and PostgreSQL could not
            // store it: refused alike with either store (SPEC 7).
            if k.contains('\0') {
                return Err(OAuthError::invalid_request("a parameter name contains a NUL character (%00)"));
            }
            if v.contains('\0') {
                let name: String = k.chars().take(40).collect();
                return Err(OAuthError::invalid_request(format!("parameter {name:?} contains a NUL character (%00)")));
            }
            if v.is_empty() {
                continue;
            }
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                let name: String = k.chars().take(40).collect();
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is included more than once (RFC 6749 3.2)"
                )));
            }
        }
        Ok(Params(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("missing required parameter {name:?}")))
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params(pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_omitted_and_duplicates_are_refused() {
        let p = Params::parse(b"grant_type=client_credentials&scope=&x=%20y").expect("valid");
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("x"), Some(" y"));
        let err = Params::parse(b"scope=a&scope=b").expect_err("duplicate");
        assert!(err.description.contains("\"scope\" is included more than once"));
        assert_eq!(p.require("nope").expect_err("missing").description, "missing required parameter \"nope\"");
    }
}
