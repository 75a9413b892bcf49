//! User sessions and refresh-token families: the records, the refresh state
//! machine, and the deadline checks that combine them with the policy
//! (SPEC 2, 3, 5).
//!
//! Everything here is pure: the store runs [`family::decide_refresh`] inside
//! its transaction, and callers pass `now`.

pub mod code;
pub mod device;
pub mod end;
pub mod family;
pub mod limit;
pub mod refresh_token;
pub mod user_session;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// Why and when something was revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub at: UnixTime,
    pub reason: String,
    /// Who ended it: a username, `client:<id>`, `system` (SPEC 14); `None`
    /// in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A fresh random identifier (sid, family id): 122 random bits, 32 hex chars.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
