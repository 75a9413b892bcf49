//! Revocation that kills every descendant (SPEC 2, 5): a family, a session,
//! or every session of a user.
//!
//! Each is one store transition at its own level — the family record, the
//! session record, or the user's marker — checked whenever a token is used,
//! refreshed, introspected or exchanged; no token is ever scanned. What a
//! revocation sets off is its [`Fallout`]: OIDC Back-Channel Logout
//! deliveries for the clients of the killed sessions (the outbox), a CAEP
//! `session-revoked` event for every revocation-feed stream (SPEC 13,
//! [`crate::ssf`]) and the audit event. The store computes the fallout from
//! what it finds inside the transition and writes it in the same atomic,
//! durable step: after a crash either all of it is there or none.

use std::collections::BTreeMap;

use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::logout::{Delivery, DeliveryKind};
use crate::oauth::client_auth::ClientRegistry;
use crate::session::Revoked;
use crate::session::family::Family;
use crate::session::user_session::UserSession;
use crate::ssf::{self, QueuedSet, SetSubject, Stream};
use crate::store::{self, Effects, Result, Revoke, Store};

/// Why a session ended to make room under the session limit (SPEC 14).
pub const REASON_SESSION_LIMIT: &str = "session_limit";

/// What a revocation needs; `now` is read once by the caller.
pub struct Revocation<'a, S: Store> {
    pub store: &'a S,
    pub clients: &'a ClientRegistry,
    pub now: UnixTime,
}

impl<'a, S: Store> Revocation<'a, S> {
    /// A revocation at `now` for `reason` by `actor` (SPEC 14: who ended it).
    fn revoked(&self, reason: &str, actor: &str) -> Revoked {
        Revoked { at: self.now, reason: reason.to_owned(), by: Some(actor.to_owned()) }
    }

    /// The fallout of a revocation by `actor`.
    pub fn fallout(&self, actor: &str) -> Fallout<'a> {
        Fallout::new(self.clients, actor, self.now)
    }

    /// Revoke family `id`.
    pub async fn family(&self, id: &str, actor: &str, reason: &str) -> Result<Revoke<Family>> {
        let fallout = self.fallout(actor);
        let outcome = self.store.revoke_family(id, &self.revoked(reason, actor), &fallout).await?;
        fallout.log_committed();
        if let Revoke::Revoked(f) = &outcome {
            tracing::info!(family = %f.id, client_id = %f.client_id, sid = %f.sid, reason, "family revoked");
        }
        Ok(outcome)
    }

    /// Revoke session `sid` and with it every family in it.
    pub async fn session(&self, sid: &str, actor: &str, reason: &str) -> Result<Revoke<UserSession>> {
        let fallout = self.fallout(actor);
        let outcome = self.store.revoke_session(sid, &self.revoked(reason, actor), &fallout).await?;
        fallout.log_committed();
        Ok(outcome)
    }

    /// Store `session` under its user's session limit (SPEC 14): the
    /// sessions `admit` ends are revoked (reason `session_limit`, by
    /// `actor`) with their back-channel logouts, feed events and audit, in
    /// the same store step.
    pub async fn start_session<F>(
        &self,
        session: &UserSession,
        keep_until: UnixTime,
        admit: F,
        actor: &str,
    ) -> Result<store::Admission>
    where
        F: Fn(&[UserSession]) -> crate::session::limit::Admit + Send + Sync,
    {
        let fallout = self.fallout(actor);
        let outcome = self
            .store
            .start_session(session, keep_until, admit, &self.revoked(REASON_SESSION_LIMIT, actor), &fallout)
            .await?;
        fallout.log_committed();
        Ok(outcome)
    }

    /// Revoke every session `username` has: one marker, one fan-out entry
    /// for the back-channel logouts, the feed events and the audit event.
    pub async fn user(&self, username: &str, actor: &str, reason: &str) -> Result<u64> {
        let fallout = self.fallout(actor);
        let seq = self.store.revoke_user(username, &self.revoked(reason, actor), &fallout).await?;
        fallout.log_committed();
        Ok(seq)
    }
}

/// The fallout of revocations by one actor at one time: implements
/// [`store::Fallout`], which the store calls inside the transition.
pub struct Fallout<'a> {
    pub clients: &'a ClientRegistry,
    /// Who revoked: a username, `client:<id>`, or `system`.
    pub actor: String,
    pub now: UnixTime,
    /// The audit events handed to the store, logged by
    /// [`Fallout::log_committed`] once the store accepted them: never from
    /// inside the transition, which may run again or fail.
    events: std::sync::Mutex<Vec<AuditEvent>>,
}

impl<'a> Fallout<'a> {
    pub fn new(clients: &'a ClientRegistry, actor: &str, now: UnixTime) -> Self {
        Fallout { clients, actor: actor.to_owned(), now, events: std::sync::Mutex::new(Vec::new()) }
    }
}

impl Fallout<'_> {
    /// Remember `event` for the log; a transition that ran again replaces
    /// what its earlier run produced for the same target.
    fn remember(&self, event: &AuditEvent) {
        let mut events = match self.events.lock() {
            Ok(events) => events,
            Err(poisoned) => poisoned.into_inner(),
        };
        match events.iter_mut().find(|e| e.kind == event.kind && e.target == event.target) {
            Some(earlier) => *earlier = event.clone(),
            None => events.push(event.clone()),
        }
    }

    /// Log the audit events of the transition: call after the store
    /// accepted it.
    pub fn log_committed(&self) {
        let events = match self.events.lock() {
            Ok(mut events) => std::mem::take(&mut *events),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for event in &events {
            event.log();
        }
    }

    /// Logout deliveries for session `sid` of `sub`: one per client with a
    /// `backchannel_logout_uri` among `families`.
    pub fn deliveries(&self, sid: &str, sub: &str, families: &[Family]) -> Vec<Delivery> {
        let mut by_client = BTreeMap::new();
        for f in families {
            if let Some(uri) = self.clients.get(&f.client_id).and_then(|c| c.backchannel_logout_uri.clone()) {
                by_client.insert(f.client_id.clone(), uri);
            }
        }
        by_client
            .into_iter()
            .map(|(client_id, uri)| Delivery {
                kind: DeliveryKind::Logout { client_id, uri, sid: sid.to_owned() },
                sub: sub.to_owned(),
                created_at: self.now,
                attempts: 0,
                next_attempt_at: self.now,
            })
            .collect()
    }

    fn sets(&self, streams: &[Stream], subject: SetSubject, reason: &str) -> Vec<QueuedSet> {
        ssf::session_revoked_sets(streams, self.clients, subject, &self.actor, reason, self.now)
    }
}

fn reason_of(revoked: Option<&Revoked>) -> &str {
    revoked.map_or("revoked", |r| r.reason.as_str())
}

impl store::Fallout for Fallout<'_> {
    fn family_revoked(&self, family: &Family, streams: &[Stream]) -> Effects {
        let reason = reason_of(family.revoked.as_ref());
        let kind = match reason {
            "refresh_token_reuse" => EventKind::RefreshTokenReuse,
            "authorization_code_replay" => EventKind::AuthorizationCodeReplay,
            _ => EventKind::FamilyRevoked,
        };
        let subject = SetSubject::Session {
            user: family.username.clone(),
            sid: family.sid.clone(),
            client_id: Some(family.client_id.clone()),
        };
        let event = AuditEvent::new(self.now, kind, self.actor.clone(), format!("family:{}", family.id))
            .ending(reason)
            .details(serde_json::json!({ "sid": family.sid, "client_id": family.client_id, "sub": family.username }));
        self.remember(&event);
        Effects {
            events: vec![event],
            deliveries: self.deliveries(&family.sid, &family.username, std::slice::from_ref(family)),
            sets: self.sets(streams, subject, reason),
        }
    }

    /// No back-channel logout and no feed event: the session and the
    /// client's newer families live on.
    fn families_superseded(&self, families: &[Family], by: &Family) -> Effects {
        let events = families
            .iter()
            .map(|family| {
                tracing::info!(family = %family.id, client_id = %family.client_id, sid = %family.sid, "family superseded");
                AuditEvent::new(self.now, EventKind::FamilyRevoked, "system", format!("family:{}", family.id))
                    .reason("superseded")
                    .details(serde_json::json!({
                        "sid": family.sid,
                        "client_id": family.client_id,
                        "sub": family.username,
                        "superseded_by": by.id,
                    }))
            })
            .collect();
        Effects { events, ..Effects::default() }
    }

    fn session_revoked(&self, session: &UserSession, live: &[Family], streams: &[Stream]) -> Effects {
        let reason = reason_of(session.revoked.as_ref());
        let subject = SetSubject::Session { user: session.username.clone(), sid: session.sid.clone(), client_id: None };
        let event = AuditEvent::new(
            self.now,
            EventKind::SessionRevoked,
            self.actor.clone(),
            format!("session:{}", session.sid),
        )
        .ending(reason)
        .details(serde_json::json!({ "sub": session.username }));
        self.remember(&event);
        Effects {
            events: vec![event],
            // Families revoked before already told their clients.
            deliveries: self.deliveries(&session.sid, &session.username, live),
            sets: self.sets(streams, subject, reason),
        }
    }

    fn user_revoked(&self, username: &str, seq: u64, revoked: &Revoked, streams: &[Stream]) -> Effects {
        let fanout = Delivery {
            kind: DeliveryKind::UserFanout { seq },
            sub: username.to_owned(),
            created_at: self.now,
            attempts: 0,
            next_attempt_at: self.now,
        };
        let event =
            AuditEvent::new(self.now, EventKind::UserSessionsRevoked, self.actor.clone(), format!("user:{username}"))
                .ending(revoked.reason.clone());
        self.remember(&event);
        Effects {
            events: vec![event],
            deliveries: vec![fanout],
            sets: self.sets(streams, SetSubject::User { user: username.to_owned() }, &revoked.reason),
        }
    }

    fn user_revoked_keeping(
        &self,
        username: &str,
        seq: u64,
        revoked: &Revoked,
        ended: &[UserSession],
        streams: &[Stream],
    ) -> Effects {
        // The audit event and the back-channel fan-out are the marker's (the
        // fan-out stops at its sequence, so the kept session is not told);
        // the feed names each ended session, so a receiver that acts on a
        // whole-user event does not end the one that stays.
        let mut effects = self.user_revoked(username, seq, revoked, &[]);
        for session in ended {
            let subject =
                SetSubject::Session { user: session.username.clone(), sid: session.sid.clone(), client_id: None };
            effects.sets.extend(self.sets(streams, subject, &revoked.reason));
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::captured_log;
    use crate::store::Fallout as _;

    #[test]
    fn the_audit_line_waits_for_the_store_to_accept_the_change() {
        let (captured, subscriber) = captured_log();
        let clients = ClientRegistry::new(Vec::new()).expect("registry");
        let fallout = Fallout::new(&clients, "root", UnixTime(1_000));
        let revoked = Revoked { at: UnixTime(1_000), reason: "user_disabled".into(), by: None };
        let text = || captured.text();
        tracing::subscriber::with_default(subscriber, || {
            // Inside the transition, which runs twice (a retried conflict).
            let effects = fallout.user_revoked("alice", 7, &revoked, &[]);
            assert_eq!(effects.events.len(), 1, "the event goes to the store");
            fallout.user_revoked("alice", 7, &revoked, &[]);
            assert_eq!(text(), "", "nothing is logged before the store accepted it");
            fallout.log_committed();
            fallout.log_committed();
        });
        let logged = text();
        assert_eq!(logged.lines().count(), 1, "one change, one line: {logged}");
        assert!(logged.contains("target=user:alice"), "{logged}");
    }
}
