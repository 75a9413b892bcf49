//! Device authorization requests (RFC 8628, SPEC 15): the record a
//! `POST /device_authorization` starts, the codes that name it, and the
//! state machine of polling at `/token`, as pure functions the store runs
//! inside its transaction (like [`super::family::decide_refresh`]).
//!
//! | state | poll | result |
//! |---|---|---|
//! | any, once redeemed | any | `invalid_grant` (a code is used once) |
//! | any, at or after `expires_at` | any | `expired_token` (3.5) |
//! | denied | any | `access_denied` (3.5) |
//! | approved | any | the tokens, and the record is redeemed |
//! | pending | sooner than `interval` after the last poll | `slow_down`, the interval grows by 5 s for good (3.5) |
//! | pending | otherwise | `authorization_pending` (3.5) |
//!
//! The device code is 256 random bits, stored only as its SHA-256. The user
//! code is 8 letters from a 20-letter alphabet without vowels (so no word
//! is spelled) or look-alikes (RFC 8628 6.1), shown `XXXX-XXXX`; what a
//! person types is read ignoring case, dashes and spaces.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::duration::Secs;

/// SPEC 15: the letters of a user code.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// The letters of a user code (20^8: about 34.5 bits; RFC 8628 5.1 with the
/// sign-in throttle and the code's lifetime).
pub const USER_CODE_LEN: usize = 8;
/// RFC 8628 3.2: the polling interval a client starts with.
pub const DEFAULT_INTERVAL: Secs = Secs::new(5);
/// RFC 8628 3.5: what each `slow_down` adds to the interval.
pub const SLOW_DOWN_STEP: Secs = Secs::new(5);
/// How long a request's record is kept after it expires, so a late poll
/// still hears `expired_token` (or `invalid_grant` once used) rather than
/// "unknown"; the sweeper removes it afterwards.
pub const RECORD_KEPT_AFTER_EXPIRY: Secs = Secs::minutes(10);

/// A user code as typed by a person, normalised: 8 letters of the
/// alphabet, upper case, no dash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserCode(String);

impl UserCode {
    /// A fresh random code (uniform over the alphabet: bytes of 240 and
    /// above are drawn again, 240 being the largest multiple of 20 in a byte).
    pub fn generate() -> Result<UserCode, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let mut code = String::with_capacity(USER_CODE_LEN);
        let mut byte = [0u8; 1];
        while code.len() < USER_CODE_LEN {
            rng.fill(&mut byte)?;
            if byte[0] < 240 {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(byte[0] % 20)]));
            }
        }
        Ok(UserCode(code))
    }

    /// What a person typed: case, dashes and spaces are ignored; anything
    /// else than 8 letters of the alphabet is `None`.
    pub fn parse(typed: &str) -> Option<UserCode> {
        let code: String =
            typed.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
        let valid = code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
        valid.then_some(UserCode(code))
    }

    /// As shown to a person: `XXXX-XXXX`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    /// The key the store finds the request by (SHA-256 of the normalised
    /// code): the code itself is never stored.
    pub fn key(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }
}

/// The device code: 256 random bits, base64url. The store keeps only
/// [`device_code_key`] of it.
pub fn new_device_code() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(B64.encode(bytes))
}

/// The key the store finds a request by its device code (SHA-256).
pub fn device_code_key(device_code: &str) -> [u8; 32] {
    sha256(device_code.as_bytes())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Who approved a request: what the family it starts needs of the
/// person's session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub username: String,
    pub sid: String,
    /// The session's sign-in time (`auth_time`).
    pub auth_time: UnixTime,
    pub remember_me: bool,
    pub at: UnixTime,
}

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DeviceState {
    /// Waiting for a person at `/device`.
    Pending,
    Approved(Approval),
    Denied {
        at: UnixTime,
    },
    /// The tokens were handed out (once) and started family `family_id`.
    Redeemed {
        at: UnixTime,
        family_id: String,
    },
}

/// One device authorization request (RFC 8628 3.1-3.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    pub client_id: String,
    pub scope: String,
    pub created_at: UnixTime,
    /// `created_at` + `device_code_ttl`.
    pub expires_at: UnixTime,
    /// The interval the client must keep between polls; grows with each
    /// `slow_down`.
    pub interval: Secs,
    pub last_poll: Option<UnixTime>,
    pub state: DeviceState,
}

impl DeviceRequest {
    pub fn new(client_id: &str, scope: &str, now: UnixTime, ttl: Secs) -> DeviceRequest {
        DeviceRequest {
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            created_at: now,
            expires_at: now.plus(ttl),
            interval: DEFAULT_INTERVAL,
            last_poll: None,
            state: DeviceState::Pending,
        }
    }

    /// When the store may forget the record (both its keys).
    pub fn keep_until(&self) -> UnixTime {
        self.expires_at.plus(RECORD_KEPT_AFTER_EXPIRY)
    }

    /// Still waiting for a person and not expired: what `/device` may
    /// approve or deny.
    pub fn is_open(&self, now: UnixTime) -> bool {
        self.state == DeviceState::Pending && now < self.expires_at
    }

    /// The person's answer at `/device`: the new state, or `None` when the
    /// request is no longer open (answered, redeemed or expired).
    pub fn answer(&self, approval: Option<Approval>, now: UnixTime) -> Option<DeviceRequest> {
        if !self.is_open(now) {
            return None;
        }
        let mut next = self.clone();
        next.state = match approval {
            Some(a) => DeviceState::Approved(a),
            None => DeviceState::Denied { at: now },
        };
        Some(next)
    }
}

/// The outcome of one poll at `/token` (RFC 8628 3.4-3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollDecision {
    /// `authorization_pending`; the record to store (its `last_poll`).
    Pending(DeviceRequest),
    /// `slow_down`; the record to store, with the longer interval.
    SlowDown(DeviceRequest),
    /// `access_denied`.
    Denied,
    /// `expired_token`.
    Expired,
    /// `invalid_grant`: the tokens were handed out already.
    Used,
    /// Hand out the tokens for this approval; the caller stores the record
    /// as redeemed with the family it starts, in the same transaction.
    Issue(Approval),
}

/// Decide a poll at `now` (the module's table).
pub fn decide_poll(request: &DeviceRequest, now: UnixTime) -> PollDecision {
    if let DeviceState::Redeemed { .. } = request.state {
        return PollDecision::Used;
    }
    if now >= request.expires_at {
        return PollDecision::Expired;
    }
    match &request.state {
        DeviceState::Denied { .. } => PollDecision::Denied,
        DeviceState::Approved(a) => PollDecision::Issue(a.clone()),
        DeviceState::Redeemed { .. } => PollDecision::Used,
        DeviceState::Pending => {
            let mut next = request.clone();
            next.last_poll = Some(now);
            let too_soon = request.last_poll.is_some_and(|last| now < last.plus(request.interval));
            if too_soon {
                next.interval = Secs::new(request.interval.as_secs() + SLOW_DOWN_STEP.as_secs());
                PollDecision::SlowDown(next)
            } else {
                PollDecision::Pending(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);
    const TTL: Secs = Secs::minutes(10);

    fn approval() -> Approval {
        Approval { username: "alice".into(), sid: "sid".into(), auth_time: T0, remember_me: false, at: T0 }
    }

    #[test]
    fn user_codes_are_eight_letters_without_vowels_read_forgivingly() {
        for _ in 0..200 {
            let code = UserCode::generate().expect("rng");
            let shown = code.display();
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            assert!(shown.bytes().filter(|b| *b != b'-').all(|b| USER_CODE_ALPHABET.contains(&b)), "{shown}");
            assert_eq!(UserCode::parse(&shown), Some(code.clone()));
            assert_eq!(UserCode::parse(&shown.to_lowercase()), Some(code.clone()), "case ignored");
            assert_eq!(UserCode::parse(&shown.replace('-', " ")), Some(code.clone()), "dash or space");
        }
        assert_eq!(UserCode::parse("bcdf-ghjk").map(|c| c.display()), Some("BCDF-GHJK".to_owned()));
        assert_eq!(UserCode::parse("BCDFGHJ"), None, "seven letters");
        assert_eq!(UserCode::parse("BCDFGHJKL"), None, "nine letters");
        assert_eq!(UserCode::parse("ABCD-FGHJ"), None, "a vowel is never in a code");
        assert_eq!(UserCode::parse("BCDF-GHJ1"), None, "digits neither");
        assert_eq!(UserCode::parse("BCDF-GHJÉ"), None);
        assert_ne!(UserCode::parse("BCDFGHJK").map(|c| c.key()), UserCode::parse("BCDFGHJL").map(|c| c.key()));
    }

    #[test]
    fn device_codes_are_256_random_bits_stored_as_a_hash() {
        let a = new_device_code().expect("rng");
        let b = new_device_code().expect("rng");
        assert_ne!(a, b);
        assert_eq!(B64.decode(&a).expect("base64url").len(), 32);
        assert_eq!(device_code_key(&a), device_code_key(&a.clone()));
        assert_ne!(device_code_key(&a), device_code_key(&b));
    }

    #[test]
    fn polling_waits_slows_down_and_hands_out_the_tokens_once() {
        let r = DeviceRequest::new("kubectl", "openid", T0, TTL);
        let PollDecision::Pending(r) = decide_poll(&r, T0.plus(Secs::new(1))) else { panic!("pending") };
        // 4 s later: sooner than the 5 s interval.
        let PollDecision::SlowDown(r) = decide_poll(&r, T0.plus(Secs::new(5))) else { panic!("slow down") };
        assert_eq!(r.interval, Secs::new(10), "grown by 5 s, for good");
        let PollDecision::SlowDown(r) = decide_poll(&r, T0.plus(Secs::new(14))) else { panic!("9 s < 10 s") };
        assert_eq!(r.interval, Secs::new(15));
        let PollDecision::Pending(r) = decide_poll(&r, T0.plus(Secs::new(29))) else { panic!("15 s later") };
        assert_eq!(r.interval, Secs::new(15), "waiting long enough keeps the interval");
        let approved = r.answer(Some(approval()), T0.plus(Secs::new(30))).expect("open");
        assert_eq!(
            decide_poll(&approved, T0.plus(Secs::new(31))),
            PollDecision::Issue(approval()),
            "no slow_down once answered"
        );
        let mut redeemed = approved.clone();
        redeemed.state = DeviceState::Redeemed { at: T0.plus(Secs::new(31)), family_id: "f".into() };
        assert_eq!(decide_poll(&redeemed, T0.plus(Secs::new(40))), PollDecision::Used);
        assert_eq!(decide_poll(&redeemed, T0.plus(TTL)), PollDecision::Used, "used, whatever the time");
    }

    #[test]
    fn a_denied_or_expired_request_ends_the_polling() {
        let r = DeviceRequest::new("kubectl", "openid", T0, TTL);
        let denied = r.answer(None, T0.plus(Secs::new(20))).expect("open");
        assert_eq!(decide_poll(&denied, T0.plus(Secs::new(21))), PollDecision::Denied);
        assert!(denied.answer(Some(approval()), T0.plus(Secs::new(22))).is_none(), "answered once");
        assert!(
            matches!(decide_poll(&r, UnixTime(T0.0 + 599)), PollDecision::Pending(_)),
            "alive until the last second"
        );
        assert_eq!(decide_poll(&r, T0.plus(TTL)), PollDecision::Expired, "dead exactly at expires_at");
        assert!(r.answer(Some(approval()), T0.plus(TTL)).is_none(), "an expired code cannot be approved");
        let approved = r.answer(Some(approval()), T0.plus(Secs::new(1))).expect("open");
        assert_eq!(decide_poll(&approved, T0.plus(TTL)), PollDecision::Expired, "approved too late to collect");
    }
}
