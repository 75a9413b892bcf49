//! Revocation that kills every descendant (SPEC 2, 5): a family, a session,
//! or every session of a user.
//!
//! Each is one durable write at its own level — the family record, the
//! session record, or the user's marker — checked whenever a token is used,
//! refreshed, introspected or exchanged; no token is ever scanned. Killed
//! sessions get OIDC Back-Channel Logout deliveries queued in the durable
//! outbox, every revocation is audited, and a CAEP `session-revoked` event is
//! queued for every revocation-feed stream (SPEC 13, [`crate::ssf`]) right
//! after the revocation's write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::logout::{Delivery, DeliveryKind};
use crate::oauth::client_auth::ClientRegistry;
use crate::session::Revoked;
use crate::session::family::Family;
use crate::session::user_session::UserSession;
use crate::ssf::{self, SetSubject};
use crate::store::{Result, Store};

/// What a revocation needs; `now` is read once by the caller.
pub struct Revocation<'a, S: Store> {
    pub store: &'a S,
    pub clients: &'a ClientRegistry,
    pub now: UnixTime,
}

impl<S: Store> Revocation<'_, S> {
    fn revoked(&self, reason: &str) -> Revoked {
        Revoked { at: self.now, reason: reason.to_owned() }
    }

    async fn audit(&self, event: AuditEvent) -> Result<()> {
        event.log();
        self.store.append_audit(&event).await
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

    /// Revoke family `id`. Returns it (as stored afterwards) or `None` when
    /// unknown.
    pub async fn family(&self, id: &str, actor: &str, reason: &str) -> Result<Option<Family>> {
        let before = self.store.family(id)?;
        let Some(family) = self.store.revoke_family(id, self.revoked(reason)).await? else { return Ok(None) };
        if before.is_some_and(|b| b.revoked.is_none()) {
            self.family_killed(&family, actor, reason).await?;
        }
        Ok(Some(family))
    }

    /// After a family died (revocation, reuse detection, code replay): tell
    /// its client and audit it.
    pub async fn family_killed(&self, family: &Family, actor: &str, reason: &str) -> Result<()> {
        let deliveries = self.deliveries(&family.sid, &family.username, std::slice::from_ref(family));
        self.store.enqueue_deliveries(&deliveries).await?;
        let subject = SetSubject::Session {
            user: family.username.clone(),
            sid: family.sid.clone(),
            client_id: Some(family.client_id.clone()),
        };
        ssf::session_revoked(self.store, self.clients, subject, actor, reason, self.now).await?;
        let kind = match reason {
            "refresh_token_reuse" | "authorization_code_replay" => reason,
            _ => "family_revoked",
        };
        self.audit(
            AuditEvent::new(self.now, kind, actor, format!("family:{}", family.id)).reason(reason).details(
                serde_json::json!({ "sid": family.sid, "client_id": family.client_id, "sub": family.username }),
            ),
        )
        .await
    }

    /// Audit families the store revoked because a newer family of the same
    /// client in the same session (`by`) pushed them past
    /// [`MAX_FAMILIES_PER_CLIENT`](crate::session::user_session::MAX_FAMILIES_PER_CLIENT).
    /// No back-channel logout: the session and the client's newer families
    /// live on.
    pub async fn superseded(&self, families: &[Family], by: &str) -> Result<()> {
        for family in families {
            tracing::info!(family = %family.id, client_id = %family.client_id, sid = %family.sid, "family superseded");
            self.audit(
                AuditEvent::new(self.now, "family_revoked", "system", format!("family:{}", family.id))
                    .reason("superseded")
                    .details(serde_json::json!({
                        "sid": family.sid,
                        "client_id": family.client_id,
                        "sub": family.username,
                        "superseded_by": by,
                    })),
            )
            .await?;
        }
        Ok(())
    }

    /// Revoke session `sid` and with it every family in it. Returns the
    /// session (as stored afterwards), `None` when unknown.
    pub async fn session(&self, sid: &str, actor: &str, reason: &str) -> Result<Option<UserSession>> {
        let changed = AtomicBool::new(false);
        let revoked = self.revoked(reason);
        let session = self
            .store
            .update_session(sid, |s| {
                let now_revoked = s.revoked.is_none();
                if now_revoked {
                    s.revoked = Some(revoked.clone());
                }
                changed.store(now_revoked, Ordering::SeqCst);
                now_revoked
            })
            .await?;
        let Some(session) = session else { return Ok(None) };
        if changed.load(Ordering::SeqCst) {
            // Families revoked before already told their clients.
            let families: Vec<Family> =
                self.store.session_families(sid)?.into_iter().filter(|f| f.revoked.is_none()).collect();
            self.store.enqueue_deliveries(&self.deliveries(sid, &session.username, &families)).await?;
            let subject = SetSubject::Session { user: session.username.clone(), sid: sid.to_owned(), client_id: None };
            ssf::session_revoked(self.store, self.clients, subject, actor, reason, self.now).await?;
            self.audit(
                AuditEvent::new(self.now, "session_revoked", actor, format!("session:{sid}"))
                    .reason(reason)
                    .details(serde_json::json!({ "sub": session.username })),
            )
            .await?;
        }
        Ok(Some(session))
    }

    /// Revoke every session `username` has: one marker, then one fan-out
    /// entry for the back-channel logouts.
    pub async fn user(&self, username: &str, actor: &str, reason: &str) -> Result<()> {
        let seq = self.store.revoke_user_sessions(username, self.revoked(reason)).await?;
        let fanout = Delivery {
            kind: DeliveryKind::UserFanout { seq },
            sub: username.to_owned(),
            created_at: self.now,
            attempts: 0,
            next_attempt_at: self.now,
        };
        self.store.enqueue_deliveries(std::slice::from_ref(&fanout)).await?;
        ssf::session_revoked(
            self.store,
            self.clients,
            SetSubject::User { user: username.to_owned() },
            actor,
            reason,
            self.now,
        )
        .await?;
        self.audit(AuditEvent::new(self.now, "user_sessions_revoked", actor, format!("user:{username}")).reason(reason))
            .await
    }
}
