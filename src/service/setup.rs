//! The first run (SPEC 9 "First run"): while no user who can sign in holds
//! `system:administer` (none in `[[users]]`, none stored), the way in is a
//! one-time setup token, printed by `serve` at start-up inside a URL, that
//! lets one person create the first administrator; or the
//! `TENURE_BOOTSTRAP_ADMIN_*` variables, which create it at start-up. There
//! is never a fixed default password.
//!
//! The token is 256 random bits; only its SHA-256 is kept, for
//! [`SETUP_VALID_FOR`] or until it is used: in this process's memory and,
//! with PostgreSQL, in the store too, so the URL works on every replica. A
//! fresh one is drawn at each start while no administrator exists. Creating
//! the administrator runs under one lock that re-checks "no administrator
//! yet", and takes the tokens out of the store in one atomic step before
//! creating the user (putting them back if it could not), so two racing
//! posts, at one replica or two, create at most one administrator.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use super::actor::Actor;
use super::error::ServiceError;
use super::users::{self, NewUser, UserView};
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::oauth::client::Permission;
use crate::secret::Secret;
use crate::service::AppState;
use crate::store::Store;

/// How long a setup token is good for.
pub const SETUP_VALID_FOR: Secs = Secs::hours(1);
/// The path of the setup page; the token travels as `?token=`.
pub const SETUP_PATH: &str = "/console/setup";
/// Who the audit log names for the first administrator's creation: not a
/// username (usernames cannot contain ':'), not a client (`client:<id>`).
pub const SETUP_ACTOR: &str = "setup:first-run";
pub const BOOTSTRAP_ACTOR: &str = "setup:environment";

/// The hash of the live setup token and when it stops working.
#[derive(Clone, Copy)]
struct Issued {
    hash: [u8; 32],
    expires_at: UnixTime,
}

/// The first run's one-time token, and the lock that makes creating the
/// first administrator happen once.
#[derive(Default)]
pub struct FirstRun {
    issued: std::sync::Mutex<Option<Issued>>,
    create: tokio::sync::Mutex<()>,
    /// An administrator is known to exist: setup is done for the life of
    /// the process, answered without reading the store.
    settled: std::sync::atomic::AtomicBool,
}

fn hash_of(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

impl FirstRun {
    fn issued(&self) -> std::sync::MutexGuard<'_, Option<Issued>> {
        match self.issued.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Draw a fresh token valid from `now` for [`SETUP_VALID_FOR`]; any
    /// earlier one of this process stops working. The caller shows it once;
    /// only its hash is kept.
    fn issue(&self, now: UnixTime) -> Result<(String, Issued), ServiceError> {
        use base64::Engine;
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| ServiceError::internal_in("drawing a setup token", "no randomness"))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let issued = Issued { hash: hash_of(&token), expires_at: now.plus(SETUP_VALID_FOR) };
        *self.issued() = Some(issued);
        Ok((token, issued))
    }

    /// Whether `token` is the live one at `now` (compared in constant time).
    pub fn is_valid(&self, token: &str, now: UnixTime) -> bool {
        match &*self.issued() {
            Some(issued) => now < issued.expires_at && bool::from(issued.hash.ct_eq(&hash_of(token))),
            None => false,
        }
    }

    /// The token has done its work, or an administrator exists: no token
    /// works any more.
    pub fn settle(&self) {
        *self.issued() = None;
        self.settled.store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_settled(&self) -> bool {
        self.settled.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Draw the setup token of this start (SPEC 9 "First run") and keep its
/// hash where every replica sees it; the token, to show once.
pub async fn open(state: &AppState, now: UnixTime) -> Result<String, ServiceError> {
    let (token, issued) = state.first_run.issue(now)?;
    state
        .store
        .put_setup_token(&issued.hash, issued.expires_at)
        .await
        .map_err(|e| ServiceError::internal_in("storing the setup token", e))?;
    Ok(token)
}

/// Whether `token` is a live setup token at `now`: this process's, or one
/// another replica stored.
async fn is_live(state: &AppState, token: &str, now: UnixTime) -> Result<bool, ServiceError> {
    if state.first_run.is_valid(token, now) {
        return Ok(true);
    }
    let stored = state.store.setup_token(&hash_of(token), now).await;
    Ok(stored.map_err(|e| ServiceError::internal_in("reading the setup token", e))? == Some(true))
}

/// Whether setup is over: an administrator exists (known to this process,
/// or found in the store, which is read only until one is found).
pub async fn is_done(state: &AppState) -> Result<bool, ServiceError> {
    if state.first_run.is_settled() {
        return Ok(true);
    }
    let exists = administrator_exists(state).await?;
    if exists {
        state.first_run.settle();
    }
    Ok(exists)
}

/// Whether a user who can sign in holds `system:administer`: a config user,
/// or an enabled stored one.
pub async fn administrator_exists(state: &AppState) -> Result<bool, ServiceError> {
    let admin = |u: &crate::user::User| !u.disabled && u.permissions.contains(&Permission::SystemAdminister);
    if state.users.values().any(admin) {
        return Ok(true);
    }
    let stored = state.store.users().await.map_err(|e| ServiceError::internal_in("reading users", e))?;
    Ok(stored.iter().any(admin))
}

/// What the setup URL shows for `token` at `now`.
#[derive(Debug, PartialEq, Eq)]
pub enum SetupStatus {
    /// An administrator exists: there is nothing to set up.
    Done,
    /// The token is live: the form may be shown.
    Open,
    /// Wrong, expired or already used.
    BadToken,
}

pub async fn status(state: &AppState, token: &str, now: UnixTime) -> Result<SetupStatus, ServiceError> {
    if is_done(state).await? {
        return Ok(SetupStatus::Done);
    }
    Ok(if is_live(state, token, now).await? { SetupStatus::Open } else { SetupStatus::BadToken })
}

/// The setup form, as posted.
pub struct FirstAdmin {
    pub username: String,
    pub password: Secret,
    pub confirm: Secret,
}

/// Why the first administrator was not created.
#[derive(Debug)]
pub enum SetupRefusal {
    /// An administrator exists already (this run's, or another one).
    Done,
    /// The token is wrong, expired or used.
    BadToken,
    /// The form is wrong (the message names the field) or the server failed.
    Admin(ServiceError),
}

/// Create the first administrator (`permissions = ["system:administer"]`)
/// from the setup form, with the setup token; the token is spent only when
/// the user was created. The same rules as every user (SPEC 10): the
/// username's shape, at least 8 characters of password, no clash with a
/// user or a client id.
pub async fn create_first_admin(
    state: &AppState,
    token: &str,
    form: FirstAdmin,
    now: UnixTime,
) -> Result<UserView, SetupRefusal> {
    let _once = state.first_run.create.lock().await;
    if is_done(state).await.map_err(SetupRefusal::Admin)? {
        return Err(SetupRefusal::Done);
    }
    if !is_live(state, token, now).await.map_err(SetupRefusal::Admin)? {
        return Err(SetupRefusal::BadToken);
    }
    if form.password.expose() != form.confirm.expose() {
        return Err(SetupRefusal::Admin(ServiceError::Invalid(
            "confirm_password: the two passwords differ; type the same password twice".into(),
        )));
    }
    // Replicas: whoever takes the stored tokens first creates the
    // administrator; the other finds none left.
    let taken = take_stored_tokens(state, now).await.map_err(SetupRefusal::Admin)?;
    if let Some(taken) = &taken
        && !taken.iter().any(|(hash, _)| *hash == hash_of(token))
    {
        put_back(state, taken).await;
        return Err(if is_done(state).await.map_err(SetupRefusal::Admin)? {
            SetupRefusal::Done
        } else {
            SetupRefusal::BadToken
        });
    }
    match create_administrator(state, SETUP_ACTOR, form.username, form.password, now).await {
        Ok(view) => {
            state.first_run.settle();
            Ok(view)
        }
        Err(e) => {
            if let Some(taken) = &taken {
                put_back(state, taken).await;
            }
            Err(SetupRefusal::Admin(e))
        }
    }
}

async fn take_stored_tokens(
    state: &AppState,
    now: UnixTime,
) -> Result<Option<Vec<crate::store::SetupToken>>, ServiceError> {
    state.store.take_setup_tokens(now).await.map_err(|e| ServiceError::internal_in("taking the setup tokens", e))
}

/// The setup tokens taken for an attempt that created nobody go back.
async fn put_back(state: &AppState, taken: &[crate::store::SetupToken]) {
    for (hash, until) in taken {
        if let Err(e) = state.store.put_setup_token(hash, *until).await {
            tracing::error!(error = %e, "putting a setup token back failed; restart tenure for a fresh one");
        }
    }
}

/// What the bootstrap variables came to.
#[derive(Debug)]
pub enum Bootstrap {
    Created(UserView),
    /// An administrator exists; the variables were ignored.
    AlreadyAdministered,
}

/// `TENURE_BOOTSTRAP_ADMIN_USERNAME` and `..._PASSWORD` (or `_FILE`), at
/// start-up: create that administrator when none exists, else nothing.
pub async fn bootstrap(
    state: &AppState,
    username: &str,
    password: &Secret,
    now: UnixTime,
) -> Result<Bootstrap, ServiceError> {
    let _once = state.first_run.create.lock().await;
    if is_done(state).await? {
        return Ok(Bootstrap::AlreadyAdministered);
    }
    let view = create_administrator(state, BOOTSTRAP_ACTOR, username.to_owned(), password.clone(), now).await?;
    state.first_run.settle();
    // Setup links printed by other replicas stop working.
    take_stored_tokens(state, now).await?;
    Ok(Bootstrap::Created(view))
}

async fn create_administrator(
    state: &AppState,
    actor: &str,
    username: String,
    password: Secret,
    now: UnixTime,
) -> Result<UserView, ServiceError> {
    let actor = Actor { name: actor.to_owned(), administer: true };
    let new = NewUser {
        username,
        password: Some(password.expose().to_owned()),
        password_hash: None,
        email: None,
        name: None,
        permissions: vec![Permission::SystemAdminister.as_str().to_owned()],
        disabled: false,
        groups: Vec::new(),
    };
    users::create(state, &actor, new, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn a_setup_token_works_for_an_hour_and_only_the_latest_one() {
        let first_run = FirstRun::default();
        assert!(!first_run.is_valid("", T0), "nothing issued, nothing valid");
        let (token, _) = first_run.issue(T0).expect("randomness");
        assert_eq!(token.len(), 43, "256 bits, base64url");
        assert!(first_run.is_valid(&token, T0));
        assert!(first_run.is_valid(&token, T0.plus(Secs::new(3599))));
        assert!(!first_run.is_valid(&token, T0.plus(SETUP_VALID_FOR)), "expired after one hour");
        assert!(!first_run.is_valid(&format!("{token}x"), T0));
        assert!(!first_run.is_valid("", T0));
        let (fresh, _) = first_run.issue(T0).expect("randomness");
        assert_ne!(fresh, token);
        assert!(!first_run.is_valid(&token, T0), "a fresh token replaces the old one");
        assert!(first_run.is_valid(&fresh, T0));
        first_run.settle();
        assert!(!first_run.is_valid(&fresh, T0), "used once");
        assert!(first_run.is_settled());
    }
}
