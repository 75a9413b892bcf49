//! Sessions of a user (SPEC 4, 9, 14): what a listing shows of each live
//! session and of those that ended in the last 30 days (why and when), and
//! revocation of one session, all of a user's, or the caller's own. The account and admin API (`http/sessions.rs`) and the console call
//! these; the caller checks permissions, and the revocations here apply the
//! helpdesk rule of `users.rs` (a user who holds permissions is signed out
//! only by `system:administer`). [`Revocation`] kills every
//! descendant of what is revoked and audits it. Someone else's session
//! answers exactly like an unknown one, so the account API reveals nothing
//! about other users.

use std::collections::BTreeSet;

use serde::Serialize;

use super::actor::Actor;
use super::error::{Result, ServiceError};
use crate::clock::UnixTime;
use crate::policy::{ClientSessionOverride, PolicyHistory};
use crate::service::AppState;
use crate::session::end::{ENDED_LISTED, EndReason, Ended};
use crate::session::family::{self, Family};
use crate::session::user_session::UserSession;
use crate::store::{Revoke, Store};

/// Audit reasons of the revocations started here.
const REASON_SIGNED_OUT_EVERYWHERE: &str = "user_signed_out_everywhere";
const REASON_USER_REVOKED: &str = "user_revoked";
const REASON_ADMIN_REVOKED: &str = "admin_revoked";

/// One session as a listing shows it (SPEC 4). Timestamps are RFC 3339, UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub sid: String,
    /// The clients with a live family in the session, sorted; for an ended
    /// session, the clients it had.
    pub client_ids: Vec<String>,
    /// Sign-in: the start of the absolute clock.
    pub created_at: String,
    /// The latest of the session's own activity and its families' refreshes.
    pub last_active_at: String,
    /// When the idle clock runs out without further activity (never after
    /// `expires_at`).
    pub idle_expires_at: String,
    /// When the absolute clock runs out, however active the user is.
    pub expires_at: String,
    pub remember_me: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the caller's token.
    pub current: bool,
    /// SPEC 14: whether the session has ended. Ended sessions are listed for
    /// 30 days after their end, after the live ones, the latest end first.
    pub ended: bool,
    /// When it ended (RFC 3339); for a timeout, the deadline that passed,
    /// not the moment it was noticed. Only on ended sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Why it ended: `idle_timeout`, `max_lifetime`, `signed_out`,
    /// `revoked`, `reuse_detected`, `user_disabled`, `credentials_changed`,
    /// `session_limit` or `client_deleted`. Only on ended sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "idle_timeout")]
    pub end_reason: Option<EndReason>,
    /// Who ended it, when someone did: a username, `client:<id>` or
    /// `system`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// What a person reads after "Ended: " ("idle for 30 min", "revoked by
    /// helpdesk"). Only on ended sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "idle for 30 min")]
    pub end_summary: Option<String>,
}

/// What `session` looks like at `now`, or `None` when it is no longer alive
/// (revoked, or expired under a policy in force since its last activity).
///
/// `families` are the session's families; `client_override` gives a client's
/// session override by client id; `current_sid` is the `sid` of the caller's
/// token. Deadlines are those of the current policy (SPEC 3: changes apply to
/// live sessions).
pub fn session_view<'c>(
    session: &UserSession,
    families: &[Family],
    history: &PolicyHistory,
    client_override: impl Fn(&str) -> Option<&'c ClientSessionOverride>,
    current_sid: Option<&str>,
    now: UnixTime,
) -> Option<SessionView> {
    // SPEC 3: a refresh of any family counts as activity of its session.
    if !session.is_live(history, families, now) {
        return None;
    }
    Some(view(session, families, history, client_override, current_sid, now, None))
}

/// What the ended `session` looks like at `now` (SPEC 14), or `None` while
/// it is alive, or when it ended [`ENDED_LISTED`] or longer ago.
pub fn ended_session_view<'c>(
    session: &UserSession,
    families: &[Family],
    history: &PolicyHistory,
    client_override: impl Fn(&str) -> Option<&'c ClientSessionOverride>,
    current_sid: Option<&str>,
    now: UnixTime,
) -> Option<SessionView> {
    let ended = session.ended(history, families, now)?;
    (now < ended.at.plus(ENDED_LISTED))
        .then(|| view(session, families, history, client_override, current_sid, now, Some(&ended)))
}

fn view<'c>(
    session: &UserSession,
    families: &[Family],
    history: &PolicyHistory,
    client_override: impl Fn(&str) -> Option<&'c ClientSessionOverride>,
    current_sid: Option<&str>,
    now: UnixTime,
    ended: Option<&Ended>,
) -> SessionView {
    let last_active = session.last_activity(families);
    let limits = history.current().limits(session.remember_me, None);
    let expires_at = limits.absolute_deadline(session.signed_in);
    let idle_expires_at = limits.idle_deadline(last_active).min(expires_at);
    // An ended session names the clients it had (every family is dead).
    let client_ids: BTreeSet<&str> = families
        .iter()
        .filter(|f| ended.is_some() || family::is_alive(history, f, Some(session), client_override(&f.client_id), now))
        .map(|f| f.client_id.as_str())
        .collect();
    SessionView {
        sid: session.sid.clone(),
        client_ids: client_ids.into_iter().map(str::to_owned).collect(),
        created_at: session.signed_in.to_rfc3339(),
        last_active_at: last_active.to_rfc3339(),
        idle_expires_at: idle_expires_at.to_rfc3339(),
        expires_at: expires_at.to_rfc3339(),
        remember_me: session.remember_me,
        user_agent: session.user_agent.clone(),
        ip: session.ip.clone(),
        current: current_sid == Some(session.sid.as_str()),
        ended: ended.is_some(),
        ended_at: ended.map(|e| e.at.to_rfc3339()),
        end_reason: ended.map(|e| e.reason),
        ended_by: ended.and_then(|e| e.by.clone()),
        end_summary: ended.map(Ended::summary),
    }
}

/// The live sessions of `username` at `now`, newest sign-in first;
/// `current_sid` marks the caller's own.
pub async fn live_sessions(
    state: &AppState,
    username: &str,
    current_sid: Option<&str>,
    now: UnixTime,
) -> Result<Vec<SessionView>> {
    // SPEC 14: the user's groups tighten the policy the sessions live by.
    let history = state.user_history(username).await.map_err(|e| ServiceError::store("reading a user's groups", e))?;
    let mut sessions =
        state.store.user_sessions(username).await.map_err(|e| ServiceError::store("listing a user's sessions", e))?;
    sessions.retain(|s| s.revoked.is_none());
    // The store's sequence orders sign-ins within the same second.
    sessions.sort_by_key(|s| std::cmp::Reverse((s.signed_in, s.seq)));
    let clients = state.clients.snapshot();
    let client_override = |id: &str| clients.get(id).and_then(|c| c.session.as_ref());
    let mut views = Vec::with_capacity(sessions.len());
    for session in &sessions {
        let families = state
            .store
            .session_families(&session.sid)
            .await
            .map_err(|e| ServiceError::store("reading a session's families", e))?;
        views.extend(session_view(session, &families, &history, client_override, current_sid, now));
    }
    Ok(views)
}

/// The sessions of `username` a listing shows (SPEC 14): the live ones,
/// newest sign-in first, then those that ended in the last
/// [`ENDED_LISTED`], the latest end first.
pub async fn listed_sessions(
    state: &AppState,
    username: &str,
    current_sid: Option<&str>,
    now: UnixTime,
) -> Result<Vec<SessionView>> {
    // SPEC 14: the user's groups tighten the policy the sessions live by,
    // and so decide when (and why) a timed-out one ended.
    let history = state.user_history(username).await.map_err(|e| ServiceError::store("reading a user's groups", e))?;
    let mut sessions =
        state.store.user_sessions(username).await.map_err(|e| ServiceError::store("listing a user's sessions", e))?;
    sessions.sort_by_key(|s| std::cmp::Reverse((s.signed_in, s.seq)));
    let clients = state.clients.snapshot();
    let client_override = |id: &str| clients.get(id).and_then(|c| c.session.as_ref());
    let (mut live, mut ended) = (Vec::new(), Vec::new());
    for session in &sessions {
        // A session revoked longer ago than the listing shows needs no read.
        if session.revoked.as_ref().is_some_and(|r| r.at.plus(ENDED_LISTED) <= now) {
            continue;
        }
        let families = state
            .store
            .session_families(&session.sid)
            .await
            .map_err(|e| ServiceError::store("reading a session's families", e))?;
        match session_view(session, &families, &history, client_override, current_sid, now) {
            Some(view) => live.push(view),
            None => ended.extend(
                ended_session_view(session, &families, &history, client_override, current_sid, now)
                    .map(|view| (session.seq, view)),
            ),
        }
    }
    // RFC 3339 in UTC with whole seconds: the text sorts as the time.
    ended.sort_by(|(a_seq, a), (b_seq, b)| (&b.ended_at, b_seq).cmp(&(&a.ended_at, a_seq)));
    live.extend(ended.into_iter().map(|(_, view)| view));
    Ok(live)
}

/// The sessions of a known user a listing shows, ended ones included (404
/// for an unknown user).
pub async fn user_sessions(
    state: &AppState,
    username: &str,
    current_sid: Option<&str>,
    now: UnixTime,
) -> Result<Vec<SessionView>> {
    known_user(state, username).await?;
    listed_sessions(state, username, current_sid, now).await
}

/// Sign `username` out everywhere, this session included.
pub async fn revoke_own_all(state: &AppState, username: &str, now: UnixTime) -> Result<()> {
    let revocation = state.revocation(now);
    for session in live_sessions(state, username, None, now).await? {
        revocation
            .session(&session.sid, username, REASON_SIGNED_OUT_EVERYWHERE)
            .await
            .map_err(|e| ServiceError::store("revoking a user's sessions", e))?;
    }
    Ok(())
}

/// Revoke one of `username`'s own sessions (idempotent); not found for an
/// unknown sid or someone else's.
pub async fn revoke_own(state: &AppState, username: &str, sid: &str, now: UnixTime) -> Result<()> {
    let owned = well_formed_sid(sid)
        && state
            .store
            .session(sid)
            .await
            .map_err(|e| ServiceError::store("reading a user session", e))?
            .is_some_and(|s| s.username == username);
    if !owned {
        return Err(no_such_session());
    }
    let revocation = state.revocation(now);
    revocation
        .session(sid, username, REASON_USER_REVOKED)
        .await
        .map_err(|e| ServiceError::store("revoking a user session", e))?;
    Ok(())
}

/// Every session of `username`, in one write whatever their number. A user
/// who holds permissions is signed out only by `system:administer` (or
/// themselves).
pub async fn revoke_user(state: &AppState, actor: &Actor, username: &str, now: UnixTime) -> Result<()> {
    let user = known_user(state, username).await?;
    super::users::may_revoke_sessions_of(actor, &user)?;
    let revocation = state.revocation(now);
    revocation
        .user(username, &actor.name, REASON_ADMIN_REVOKED)
        .await
        .map_err(|e| ServiceError::store("revoking a user's sessions", e))?;
    Ok(())
}

/// Revoke any session by sid (idempotent); not found when unknown. The
/// session of a user who holds permissions needs `system:administer`.
pub async fn revoke_session(state: &AppState, actor: &Actor, sid: &str, now: UnixTime) -> Result<()> {
    let owner = session_owner(state, sid).await?.ok_or_else(no_such_session)?;
    revoke_checked(state, actor, &owner, sid, now).await
}

/// Revoke the session `sid` of `username` (the console's user page): not
/// found when the session is unknown or belongs to someone else, so a page
/// that names one user never ends another's session.
pub async fn revoke_user_session(
    state: &AppState,
    actor: &Actor,
    username: &str,
    sid: &str,
    now: UnixTime,
) -> Result<()> {
    let owner = session_owner(state, sid).await?.filter(|owner| owner == username).ok_or_else(no_such_session)?;
    revoke_checked(state, actor, &owner, sid, now).await
}

/// The user whose session `sid` is, or `None` for an unknown sid.
async fn session_owner(state: &AppState, sid: &str) -> Result<Option<String>> {
    if !well_formed_sid(sid) {
        return Ok(None);
    }
    let session = state.store.session(sid).await.map_err(|e| ServiceError::internal_in("reading a user session", e))?;
    Ok(session.map(|s| s.username))
}

/// Revoke `sid` of `owner` after the helpdesk rule: a user who holds
/// permissions (still known) is signed out only by `system:administer`.
async fn revoke_checked(state: &AppState, actor: &Actor, owner: &str, sid: &str, now: UnixTime) -> Result<()> {
    if let Some(user) = state.any_user(owner).await.map_err(|e| ServiceError::internal_in("reading a user", e))? {
        super::users::may_revoke_sessions_of(actor, &user)?;
    }
    let revocation = state.revocation(now);
    let revoked = revocation
        .session(sid, &actor.name, REASON_ADMIN_REVOKED)
        .await
        .map_err(|e| ServiceError::store("revoking a user session", e))?;
    match revoked {
        Revoke::Revoked(_) | Revoke::AlreadyRevoked(_) => Ok(()),
        Revoke::NotFound => Err(no_such_session()),
    }
}

async fn known_user(state: &AppState, username: &str) -> Result<crate::user::User> {
    state
        .any_user(username)
        .await
        .map_err(|e| ServiceError::store("reading a user", e))?
        .ok_or_else(|| ServiceError::NotFound(format!("no user named {username:?}")))
}

/// A sid as tenure mints them (32 hex characters); anything else is unknown.
fn well_formed_sid(sid: &str) -> bool {
    sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit())
}

fn no_such_session() -> ServiceError {
    ServiceError::NotFound("no such session".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Secs;
    use crate::policy::SessionPolicy;
    use crate::session::Revoked;

    const T0: UnixTime = UnixTime(1_700_000_000); // 2023-11-14T22:13:20Z
    const SID: &str = "0123456789abcdef0123456789abcdef";

    fn session(remember_me: bool) -> UserSession {
        UserSession {
            sid: SID.into(),
            username: "alice".into(),
            cookie_hash: String::new(),
            signed_in: T0,
            last_active: T0,
            remember_me,
            user_agent: Some("Firefox".into()),
            ip: Some("192.0.2.7".into()),
            revoked: None,
            seq: 1,
            families: Default::default(),
        }
    }

    fn family(client_id: &str, rotated_at: UnixTime) -> Family {
        Family {
            id: format!("fam-{client_id}"),
            salt: "s".into(),
            sid: SID.into(),
            username: "alice".into(),
            client_id: client_id.into(),
            scope: "openid".into(),
            auth_time: T0,
            remember_me: false,
            created_at: T0,
            generation: 1,
            rotated_at,
            active_at: None,
            issues_refresh_tokens: true,
            revoked: None,
            jkt: None,
        }
    }

    fn history() -> PolicyHistory {
        PolicyHistory::new(T0, SessionPolicy::default())
    }

    fn no_override(_: &str) -> Option<&'static ClientSessionOverride> {
        None
    }

    #[test]
    fn a_fresh_session_shows_both_clocks_and_who_is_asking() {
        let now = T0.plus(Secs::minutes(5));
        let view = session_view(&session(false), &[], &history(), no_override, Some(SID), now).expect("alive");
        assert_eq!(
            view,
            SessionView {
                sid: SID.into(),
                client_ids: vec![],
                created_at: "2023-11-14T22:13:20Z".into(),
                last_active_at: "2023-11-14T22:13:20Z".into(),
                idle_expires_at: "2023-11-14T22:43:20Z".into(),
                expires_at: "2023-11-15T10:13:20Z".into(),
                remember_me: false,
                user_agent: Some("Firefox".into()),
                ip: Some("192.0.2.7".into()),
                current: true,
                ended: false,
                ended_at: None,
                end_reason: None,
                ended_by: None,
                end_summary: None,
            }
        );
        let other = session_view(&session(false), &[], &history(), no_override, Some("x"), now).expect("alive");
        assert!(!other.current);
        assert!(!session_view(&session(false), &[], &history(), no_override, None, now).expect("alive").current);
    }

    #[test]
    fn a_refresh_is_activity_and_only_live_families_name_their_client() {
        let refreshed = T0.plus(Secs::minutes(20));
        let mut dead = family("old-app", T0);
        dead.revoked = Some(Revoked { at: T0, reason: "logout".into(), by: None });
        let families = [family("web", refreshed), dead, family("spa", T0.plus(Secs::minutes(1))), family("web", T0)];
        let now = T0.plus(Secs::minutes(40)); // the session's own activity is 40 min old
        let view = session_view(&session(false), &families, &history(), no_override, None, now).expect("alive");
        assert_eq!(view.last_active_at, refreshed.to_rfc3339());
        assert_eq!(view.idle_expires_at, refreshed.plus(Secs::minutes(30)).to_rfc3339());
        // spa's family went idle at T0+31min; web's second family at T0+30min.
        assert_eq!(view.client_ids, vec!["web".to_owned()]);
    }

    #[test]
    fn a_client_override_ends_its_family_but_not_the_session() {
        let kubectl: ClientSessionOverride = toml::from_str("max_lifetime = \"10m\"").expect("valid");
        let refreshed = T0.plus(Secs::minutes(9));
        let families = [family("kubectl", refreshed), family("web", refreshed)];
        let lookup = |id: &str| (id == "kubectl").then_some(&kubectl);
        let now = T0.plus(Secs::minutes(15));
        let view = session_view(&session(false), &families, &history(), lookup, None, now).expect("alive");
        assert_eq!(view.client_ids, vec!["web".to_owned()]);
    }

    #[test]
    fn the_idle_deadline_never_passes_the_absolute_one() {
        let late = T0.plus(Secs::hours(11)).plus(Secs::minutes(50));
        let view =
            session_view(&session(false), &[family("web", late)], &history(), no_override, None, late).expect("alive");
        assert_eq!(view.idle_expires_at, T0.plus(Secs::hours(12)).to_rfc3339());
        assert_eq!(view.expires_at, view.idle_expires_at);
    }

    #[test]
    fn remember_me_uses_the_longer_pair() {
        let now = T0.plus(Secs::days(3));
        let view = session_view(&session(true), &[], &history(), no_override, None, now).expect("alive");
        assert!(view.remember_me);
        assert_eq!(view.idle_expires_at, T0.plus(Secs::days(7)).to_rfc3339());
        assert_eq!(view.expires_at, T0.plus(Secs::days(20)).to_rfc3339());
    }

    #[test]
    fn dead_sessions_are_not_listed() {
        let h = history();
        let s = session(false);
        assert!(session_view(&s, &[], &h, no_override, None, T0.plus(Secs::minutes(30))).is_none(), "idle");
        let active = [family("web", T0.plus(Secs::hours(11)).plus(Secs::minutes(59)))];
        assert!(session_view(&s, &active, &h, no_override, None, T0.plus(Secs::hours(12))).is_none(), "absolute");
        let mut revoked = session(false);
        revoked.revoked = Some(Revoked { at: T0, reason: "admin_revoked".into(), by: None });
        assert!(session_view(&revoked, &[], &h, no_override, None, T0).is_none(), "revoked");
    }

    #[test]
    fn ended_sessions_are_listed_for_30_days_with_why_and_when() {
        let h = history();
        let s = session(false);
        assert!(ended_session_view(&s, &[], &h, no_override, None, T0).is_none(), "alive");
        let later = T0.plus(Secs::days(2));
        let idle = ended_session_view(&s, &[], &h, no_override, None, later).expect("ended");
        assert!(idle.ended);
        assert_eq!(idle.ended_at.as_deref(), Some("2023-11-14T22:43:20Z"), "the deadline, not when it was noticed");
        assert_eq!(
            (idle.end_reason, idle.end_summary.as_deref()),
            (Some(EndReason::IdleTimeout), Some("idle for 30 min"))
        );
        let json = serde_json::to_value(&idle).expect("json");
        assert_eq!((json["ended"].clone(), json["end_reason"].clone()), (true.into(), "idle_timeout".into()));
        let mut revoked = session(false);
        revoked.revoked = Some(Revoked {
            at: T0.plus(Secs::minutes(5)),
            reason: "admin_revoked".into(),
            by: Some("helpdesk".into()),
        });
        let view = ended_session_view(&revoked, &[], &h, no_override, None, later).expect("ended");
        assert_eq!(view.end_summary.as_deref(), Some("revoked by helpdesk"));
        assert_eq!(view.ended_by.as_deref(), Some("helpdesk"));
        let gone = T0.plus(Secs::minutes(5)).plus(ENDED_LISTED);
        assert!(ended_session_view(&revoked, &[], &h, no_override, None, gone).is_none(), "after 30 days");
        let live =
            serde_json::to_value(session_view(&s, &[], &h, no_override, None, T0).expect("alive")).expect("json");
        assert_eq!(live["ended"], false);
        assert!(live.get("end_reason").is_none());
    }

    #[test]
    fn a_shortened_policy_applies_to_listed_sessions() {
        let mut h = history();
        let changed_at = T0.plus(Secs::hours(1));
        let short = SessionPolicy { max_lifetime: Secs::hours(2), ..SessionPolicy::default() };
        h.change(changed_at, short);
        let families = [family("web", T0.plus(Secs::minutes(70)))];
        let view =
            session_view(&session(false), &families, &h, no_override, None, T0.plus(Secs::minutes(80))).expect("alive");
        assert_eq!(view.expires_at, T0.plus(Secs::hours(2)).to_rfc3339());
        let later = T0.plus(Secs::hours(2));
        assert!(session_view(&session(false), &families, &h, no_override, None, later).is_none());
    }

    #[test]
    fn only_minted_sids_are_well_formed() {
        assert!(well_formed_sid(SID));
        assert!(!well_formed_sid("0123"));
        assert!(!well_formed_sid("0123456789abcdef0123456789abcdeg"));
        assert!(!well_formed_sid("../../../../../../../../../../aa"));
    }
}
