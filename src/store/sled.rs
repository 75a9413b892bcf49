//! The embedded store: sled under `data_dir` (SPEC 6).
//!
//! Durability: sled makes writes durable only on `flush`. Every
//! security-relevant write awaits [`GroupCommit::durable`] before its
//! response. One dedicated thread performs the flushes: each flush serves
//! every write that was queued before it began, so N concurrent requests cost
//! one fsync, not N — and no task ever awaits sled's `flush_async`, which
//! stops answering with about eight or more concurrent callers (sled #1308).
//!
//! Expiry: each expiring record has an entry in the `expiry` tree keyed by
//! `expires_at (u64 BE) || kind tag || record key`, so the sweeper reads a
//! prefix range in time order and never scans live records.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use tokio::sync::oneshot;

use super::{
    Admission, ConsoleSessionRecord, DeviceAnswer, DevicePoll, Effects, Fallout, PendingSignInRecord, Redemption,
    Result, RetiredName, Revoke, Store, StoreError,
};
use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::logout::Delivery;
use crate::oauth::client_spec::StoredClient;
use crate::policy::{PolicyHistory, PolicyLayer, SessionPolicy};
use crate::session::Revoked;
use crate::session::code::{AuthCode, CODE_RECORD_TTL};
use crate::session::device::{Approval, DeviceRequest, DeviceState, PollDecision, decide_poll};
use crate::session::family::{Family, RefreshDecision};
use crate::session::limit::Admit;
use crate::session::user_session::{MAX_FAMILIES_PER_CLIENT, UserSession};
use crate::ssf::{QueuedSet, SignedSet, Stream};
use crate::user::{StoredUser, User};

const ADMIN_POLICY_KEY: &[u8] = b"admin_session_policy";
/// The admin-set group policies (SPEC 14), one JSON object by name.
const ADMIN_GROUPS_KEY: &[u8] = b"admin_group_policies";
const POLICY_HISTORY_KEY: &[u8] = b"policy_history";
/// Create `path` as a directory if needed and set its mode to `mode`
/// (warning when an existing one was open to other users).
fn make_private(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let failed =
        |e: std::io::Error| StoreError::Io(format!("cannot make the store at {} private: {e}", path.display()));
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(path).map_err(failed)?;
    set_mode(path, mode).map_err(failed)?;
    Ok(())
}

/// Set the mode of `path` to `mode` unless it already is; warn when it was
/// readable or writable by others.
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let was = std::fs::symlink_metadata(path)?.permissions().mode() & 0o777;
    if was != mode {
        if was & 0o077 != 0 {
            tracing::warn!(path = %path.display(), was = format!("{was:o}"), now = format!("{mode:o}"), "tightened the mode of a store file that other local users could reach");
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Every directory under `dir` 0700, every file 0600 (symbolic links are
/// left alone: their own mode means nothing).
fn make_private_tree(dir: &Path) -> Result<()> {
    let failed = |path: &Path, e: std::io::Error| {
        StoreError::Io(format!("cannot make the store file {} private: {e}", path.display()))
    };
    let entries = std::fs::read_dir(dir).map_err(|e| failed(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| failed(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| failed(&path, e))?;
        if kind.is_dir() {
            set_mode(&path, 0o700).map_err(|e| failed(&path, e))?;
            make_private_tree(&path)?;
        } else if kind.is_file() {
            set_mode(&path, 0o600).map_err(|e| failed(&path, e))?;
        }
    }
    Ok(())
}

/// At most this many expired records are removed per sweep transaction.
const SWEEP_BATCH: usize = 512;

/// The kinds of record that expire, each in its own tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Expiring {
    AuthorizationCode,
    Family,
    UserSession,
    /// `sid || family id` -> (): the families of a session.
    SessionFamily,
    /// `username || 0 || sid` -> (): the sessions of a user.
    UserIndex,
    /// SHA-256 of a device code -> the device request (SPEC 15).
    DeviceRequest,
    /// SHA-256 of a user code -> SHA-256 of its device code.
    DeviceUserCode,
    /// SHA-256 of the cookie -> [`SledConsoleSession`] (SPEC 12).
    ConsoleSession,
    /// SHA-256 of the id -> [`PendingSignInRecord`] (SPEC 14 `ask`).
    PendingSignIn,
    /// 128-bit digest of (key thumbprint, jti) -> () (RFC 9449 11.1).
    DpopProof,
}

impl Expiring {
    const ALL: [Expiring; 10] = [
        Expiring::AuthorizationCode,
        Expiring::Family,
        Expiring::UserSession,
        Expiring::SessionFamily,
        Expiring::UserIndex,
        Expiring::DeviceRequest,
        Expiring::DeviceUserCode,
        Expiring::ConsoleSession,
        Expiring::PendingSignIn,
        Expiring::DpopProof,
    ];

    fn tag(self) -> u8 {
        match self {
            Expiring::AuthorizationCode => 1,
            Expiring::Family => 2,
            Expiring::UserSession => 3,
            Expiring::SessionFamily => 4,
            Expiring::UserIndex => 5,
            Expiring::DeviceRequest => 6,
            Expiring::DeviceUserCode => 7,
            Expiring::ConsoleSession => 8,
            Expiring::PendingSignIn => 9,
            Expiring::DpopProof => 10,
        }
    }

    fn tree_name(self) -> &'static str {
        match self {
            Expiring::AuthorizationCode => "codes",
            Expiring::Family => "families",
            Expiring::UserSession => "sessions",
            Expiring::SessionFamily => "session_families",
            Expiring::UserIndex => "user_sessions",
            Expiring::DeviceRequest => "device_requests",
            Expiring::DeviceUserCode => "device_user_codes",
            Expiring::ConsoleSession => "console_sessions",
            Expiring::PendingSignIn => "pending_sign_ins",
            Expiring::DpopProof => "dpop_proofs",
        }
    }

    fn from_tag(tag: u8) -> Option<Expiring> {
        Expiring::ALL.into_iter().find(|e| e.tag() == tag)
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

type Waiter = oneshot::Sender<Result<()>>;

/// How long a flush waits for more writers when the store is under load.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(250);

/// Batches flush requests onto one background thread.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    inner: Arc<CommitInner>,
}

#[derive(Debug)]
struct CommitInner {
    queue: Mutex<Option<mpsc::Sender<Waiter>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl GroupCommit {
    fn start(db: sled::Db) -> std::io::Result<GroupCommit> {
        let (queue, rx) = mpsc::channel::<Waiter>();
        let thread = thread::Builder::new().name("tenure-group-commit".into()).spawn(move || {
            // Ends when every sender is dropped (the store is gone).
            let mut last_batch = 0usize;
            while let Ok(first) = rx.recv() {
                // Commit delay (like PostgreSQL's commit_delay): when the last
                // flush served several writers, load is on; wait a moment so
                // this flush serves more of them. A lone writer never waits.
                if last_batch > 1 {
                    thread::sleep(COMMIT_DELAY);
                }
                let mut waiters = vec![first];
                waiters.extend(rx.try_iter());
                last_batch = waiters.len();
                let outcome = db.flush().map(|_| ()).map_err(io);
                for w in waiters {
                    let _ = w.send(outcome.as_ref().map(|_| ()).map_err(|e| StoreError::Io(e.to_string())));
                }
            }
            // Last act: the thread owns a handle on the database until here.
            let _ = db.flush();
        })?;
        Ok(GroupCommit {
            inner: Arc::new(CommitInner { queue: Mutex::new(Some(queue)), thread: Mutex::new(Some(thread)) }),
        })
    }

    /// Returns once everything written before the call is on disk.
    pub async fn durable(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let queue = self.inner.queue.lock().map_err(|_| StoreError::Closed)?;
            queue.as_ref().ok_or(StoreError::Closed)?.send(tx).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Flush one last time and stop the thread; later writes fail `Closed`.
    fn stop(&self) {
        if let Ok(mut q) = self.inner.queue.lock() {
            q.take();
        }
        let handle = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// sled-backed [`Store`].
#[derive(Clone, Debug)]
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    /// username -> [`UserMarker`]: every session before the marker is revoked.
    user_markers: sled::Tree,
    /// username -> the sids of the sessions started under a session limit
    /// (SPEC 14) and not known to have ended: the key every sign-in under
    /// the limit reads and writes in its transaction, so racing sign-ins
    /// of one user serialise on it (see [`Store::start_session`]).
    session_limits: sled::Tree,
    /// username -> [`StoredUser`].
    users: sled::Tree,
    /// Clients created through the admin API.
    clients: sled::Tree,
    /// name -> "user" | "client": names of deleted users and clients, never
    /// given again ([`RetiredName`]).
    retired_names: sled::Tree,
    /// id (u64 BE, increasing) -> [`AuditEvent`].
    audit: sled::Tree,
    /// next attempt (u64 BE) || id (u64 BE) -> [`Delivery`].
    outbox: sled::Tree,
    /// receiving client id -> [`Stream`] (SSF event streams).
    ssf_streams: sled::Tree,
    /// client id || 0 || id (u64 BE, increasing) -> [`QueuedSet`].
    ssf_queue: sled::Tree,
    expiry: sled::Tree,
    trees: [sled::Tree; 10],
    commit: GroupCommit,
    /// Serialises the writes that count a bounded kind before inserting
    /// (console sessions, pending sign-ins): one process, one lock; it
    /// holds an upper bound of each tree's size, so that a tree is counted
    /// (sled counts by iterating) only when it may be full.
    bounded: Arc<Mutex<Bounds>>,
}

impl SledStore {
    /// Open (or create) the store in `dir`.
    ///
    /// The store holds password hashes and session records: `dir` is made
    /// 0700 (created so, or tightened if it was looser) and every file and
    /// directory in it is made 0600 / 0700 once sled has opened it, as
    /// `keys/` is. Files sled writes later (snapshots) are created inside the
    /// private directory, so no other local user can reach them.
    pub fn open(dir: &Path) -> Result<SledStore> {
        make_private(dir, 0o700)?;
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| StoreError::Io(format!("cannot open the store at {}: {e}", dir.display())))?;
        make_private_tree(dir)?;
        Self::from_db(db)
    }

    /// A throw-away store for tests.
    pub fn temporary() -> Result<SledStore> {
        Self::from_db(sled::Config::new().temporary(true).open().map_err(io)?)
    }

    fn from_db(db: sled::Db) -> Result<SledStore> {
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let trees = [
            tree(Expiring::AuthorizationCode.tree_name())?,
            tree(Expiring::Family.tree_name())?,
            tree(Expiring::UserSession.tree_name())?,
            tree(Expiring::SessionFamily.tree_name())?,
            tree(Expiring::UserIndex.tree_name())?,
            tree(Expiring::DeviceRequest.tree_name())?,
            tree(Expiring::DeviceUserCode.tree_name())?,
            tree(Expiring::ConsoleSession.tree_name())?,
            tree(Expiring::PendingSignIn.tree_name())?,
            tree(Expiring::DpopProof.tree_name())?,
        ];
        Ok(SledStore {
            user_markers: tree("user_markers")?,
            session_limits: tree("session_limits")?,
            users: tree("users")?,
            clients: tree("clients")?,
            retired_names: tree("retired_names")?,
            audit: tree("audit")?,
            outbox: tree("outbox")?,
            ssf_streams: tree("ssf_streams")?,
            ssf_queue: tree("ssf_queue")?,
            meta: tree("meta")?,
            expiry: tree("expiry")?,
            trees,
            commit: GroupCommit::start(db.clone()).map_err(io)?,
            bounded: Arc::default(),
            db,
        })
    }

    fn tree(&self, kind: Expiring) -> &sled::Tree {
        &self.trees[usize::from(kind.tag() - 1)]
    }

    pub fn group_commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// Make everything durable and release the database (blocking). Every
    /// clone of this store is closed with it.
    pub fn close(self) {
        self.commit.stop();
    }

    fn expiry_key(kind: Expiring, key: &[u8], expires_at: UnixTime) -> Vec<u8> {
        let mut k = Vec::with_capacity(9 + key.len());
        k.extend_from_slice(&expires_at.as_secs().to_be_bytes());
        k.push(kind.tag());
        k.extend_from_slice(key);
        k
    }

    fn marker(&self, username: &str) -> Result<Option<UserMarker>> {
        match self.user_markers.get(username.as_bytes()).map_err(io)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { what: "user marker".into(), message: e.to_string() }),
        }
    }

    /// Set session `sid`'s `last_active` to `at` unless it is later already
    /// or the session is revoked: a compare-and-swap on the one record, so
    /// concurrent refreshes of several families never lose an update.
    fn record_session_activity(&self, sid: &str, at: UnixTime) -> Result<()> {
        let sessions = self.tree(Expiring::UserSession);
        loop {
            let Some(current) = sessions.get(sid.as_bytes()).map_err(io)? else { return Ok(()) };
            let exp = record_expiry(&current).unwrap_or(UnixTime::EPOCH);
            let mut session: UserSession = decode(Expiring::UserSession, &current)?;
            if !session.record_activity(at) {
                return Ok(());
            }
            let next = encode(exp, &session)?;
            if sessions.compare_and_swap(sid.as_bytes(), Some(current), Some(next)).map_err(io)?.is_ok() {
                return Ok(());
            }
        }
    }

    /// The revocation feed's streams, for a transition's fallout.
    fn streams(&self) -> Result<Vec<Stream>> {
        let mut out = Vec::new();
        for entry in self.ssf_streams.iter() {
            let (_, v) = entry.map_err(io)?;
            out.push(
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt { what: "SSF stream".into(), message: e.to_string() })?,
            );
        }
        Ok(out)
    }

    /// Session `sid` with its user's marker applied.
    fn read_session(&self, sid: &str) -> Result<Option<UserSession>> {
        let Some(mut session) = self.read::<UserSession>(Expiring::UserSession, sid.as_bytes())? else {
            return Ok(None);
        };
        let marker = self.marker(&session.username)?;
        overlay(&mut session, marker.as_ref());
        Ok(Some(session))
    }

    /// The ids of the families in session `sid` (its index entries).
    fn session_family_ids(&self, sid: &str) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for entry in self.tree(Expiring::SessionFamily).scan_prefix(sid.as_bytes()) {
            let (key, _) = entry.map_err(io)?;
            if let Some(fid) = key.get(sid.len()..) {
                out.push(fid.to_vec());
            }
        }
        Ok(out)
    }

    #[cfg(test)]
    async fn put_expiring(&self, kind: Expiring, key: &[u8], value: &[u8], expires_at: UnixTime) -> Result<()> {
        let mut record = expires_at.as_secs().to_be_bytes().to_vec();
        record.extend_from_slice(value);
        tx_result(
            (self.tree(kind), &self.expiry)
                .transaction(|(records, expiry)| tx_put(records, expiry, kind, key, &record)),
        )?;
        self.commit.durable().await
    }

    #[cfg(test)]
    fn get_expiring(&self, kind: Expiring, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(kind).get(key).map_err(io)?.and_then(|v| v.get(8..).map(<[u8]>::to_vec)))
    }

    /// Read and decode a typed expiring record.
    fn read<T: DeserializeOwned>(&self, kind: Expiring, key: &[u8]) -> Result<Option<T>> {
        match self.tree(kind).get(key).map_err(io)? {
            None => Ok(None),
            Some(bytes) => decode(kind, &bytes).map(Some),
        }
    }
}

/// "Every session of this user with a sequence up to `seq` is revoked."
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct UserMarker {
    seq: u64,
    revoked: Revoked,
    /// The earlier markers of the last 30 days (see `store::marker`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    earlier: Vec<super::marker::EarlierMarker>,
}

/// Apply the user's marker to a session read from the store.
fn overlay(session: &mut UserSession, marker: Option<&UserMarker>) {
    if let Some(m) = marker
        && session.revoked.is_none()
        && let Some(revoked) = super::marker::covering(session.seq, m.seq, &m.revoked, &m.earlier)
    {
        session.revoked = Some(revoked.clone());
    }
}

fn tx_marker(markers: &TransactionalTree, username: &str) -> std::result::Result<Option<UserMarker>, TxError> {
    match markers.get(username.as_bytes())? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| abort(io(e))),
    }
}

/// Write user `username`'s revocation marker (sequence `seq`: every session
/// stored so far has a sequence at or below it) inside a transaction, and
/// return its fallout.
fn tx_write_marker(
    markers: &TransactionalTree,
    username: &str,
    seq: u64,
    revoked: &Revoked,
    fallout: &dyn Fallout,
    streams: &[Stream],
) -> std::result::Result<Effects, TxError> {
    tx_put_marker(markers, username, seq, revoked)?;
    Ok(fallout.user_revoked(username, seq, revoked, streams))
}

/// Write user `username`'s revocation marker, keeping the earlier ones.
fn tx_put_marker(
    markers: &TransactionalTree,
    username: &str,
    seq: u64,
    revoked: &Revoked,
) -> std::result::Result<(), TxError> {
    let previous = tx_marker(markers, username)?;
    let earlier = super::marker::carry(previous.as_ref().map(|p| (p.seq, &p.revoked, &p.earlier[..])), revoked.at);
    let marker =
        serde_json::to_vec(&UserMarker { seq, revoked: revoked.clone(), earlier }).map_err(|e| abort(io(e)))?;
    markers.insert(username.as_bytes(), marker)?;
    Ok(())
}

fn tx_mark_user(
    markers: &TransactionalTree,
    username: &str,
    revoked: &Revoked,
    fallout: &dyn Fallout,
    streams: &[Stream],
) -> std::result::Result<Effects, TxError> {
    let seq = markers.generate_id()?;
    tx_write_marker(markers, username, seq, revoked, fallout, streams)
}

fn outbox_key(at: UnixTime, id: u64) -> Vec<u8> {
    [at.as_secs().to_be_bytes(), id.to_be_bytes()].concat()
}

fn set_prefix(client_id: &str) -> Vec<u8> {
    [client_id.as_bytes(), &[0u8]].concat()
}

fn set_key(client_id: &str, id: u64) -> Vec<u8> {
    [client_id.as_bytes(), &[0u8], &id.to_be_bytes()].concat()
}

fn decode_set(bytes: &[u8]) -> Result<QueuedSet> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { what: "queued SET".into(), message: e.to_string() })
}

fn user_index_key(username: &str, sid: &str) -> Vec<u8> {
    [username.as_bytes(), &[0u8], sid.as_bytes()].concat()
}

/// An expiring record: `expires_at (u64 BE) || JSON`.
fn encode<T: Serialize>(expires_at: UnixTime, value: &T) -> Result<Vec<u8>> {
    let mut out = expires_at.as_secs().to_be_bytes().to_vec();
    serde_json::to_writer(&mut out, value).map_err(io)?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(kind: Expiring, bytes: &[u8]) -> Result<T> {
    let body = bytes.get(8..).unwrap_or_default();
    serde_json::from_slice(body)
        .map_err(|e| StoreError::Corrupt { what: kind.tree_name().to_owned(), message: e.to_string() })
}

fn record_expiry(bytes: &[u8]) -> Option<UnixTime> {
    bytes.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(|b| UnixTime(u64::from_be_bytes(b)))
}

type TxError = ConflictableTransactionError<StoreError>;

fn abort(e: StoreError) -> TxError {
    ConflictableTransactionError::Abort(e)
}

fn tx_result<T>(r: std::result::Result<T, TransactionError<StoreError>>) -> Result<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => io(e),
    })
}

/// The device-request index entry's device key (base64url of the SHA-256).
fn device_key_of(text: &str) -> Result<[u8; 32]> {
    B64.decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| StoreError::Corrupt { what: "device_user_codes".into(), message: "not a device key".into() })
}

/// Create `family` (kept until `keep_until`) inside a transaction, the way
/// [`Store::redeem_code`] does: it joins its session's families of its
/// client (keys read one by one, no scan), the session records the
/// activity, and the families it pushes out are revoked (`superseded`).
/// Returns those, as stored afterwards.
fn tx_start_family(
    (families, index, expiry, sessions): (
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
    ),
    family: &Family,
    keep_until: UnixTime,
    now: UnixTime,
) -> std::result::Result<Vec<Family>, TxError> {
    let sid = family.sid.as_bytes();
    tx_put(families, expiry, Expiring::Family, family.id.as_bytes(), &encode(keep_until, family).map_err(abort)?)?;
    let index_key = [sid, family.id.as_bytes()].concat();
    tx_put(index, expiry, Expiring::SessionFamily, &index_key, &encode(keep_until, &()).map_err(abort)?)?;
    let mut superseded = Vec::new();
    if let Some((mut session, session_exp)) = tx_read::<UserSession>(sessions, Expiring::UserSession, sid)? {
        let old = session.admit_family(&family.client_id, &family.id, MAX_FAMILIES_PER_CLIENT);
        session.record_activity(now);
        sessions.insert(sid, encode(session_exp, &session).map_err(abort)?)?;
        for id in old {
            index.remove([sid, id.as_bytes()].concat())?;
            let Some((mut f, f_exp)) = tx_read::<Family>(families, Expiring::Family, id.as_bytes())? else {
                continue;
            };
            if f.revoked.is_none() {
                f.revoked = Some(Revoked { at: now, reason: "superseded".into(), by: None });
                families.insert(id.as_bytes(), encode(f_exp, &f).map_err(abort)?)?;
                superseded.push(f);
            }
        }
    }
    Ok(superseded)
}

/// Insert a typed record and its expiry-index entry inside a transaction.
fn tx_put(
    tree: &TransactionalTree,
    expiry: &TransactionalTree,
    kind: Expiring,
    key: &[u8],
    bytes: &[u8],
) -> std::result::Result<(), TxError> {
    let exp = record_expiry(bytes).unwrap_or(UnixTime::EPOCH);
    tree.insert(key, bytes)?;
    expiry.insert(SledStore::expiry_key(kind, key, exp), &[][..])?;
    Ok(())
}

fn tx_read<T: DeserializeOwned>(
    tree: &TransactionalTree,
    kind: Expiring,
    key: &[u8],
) -> std::result::Result<Option<(T, UnixTime)>, TxError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => {
            let exp = record_expiry(&bytes).unwrap_or(UnixTime::EPOCH);
            decode(kind, &bytes).map(|v| Some((v, exp))).map_err(abort)
        }
    }
}

/// Write a transition's effects inside its transaction: events (the
/// sequence is the key), outbox deliveries, feed events.
fn tx_effects(
    audit: &TransactionalTree,
    outbox: &TransactionalTree,
    ssf_queue: &TransactionalTree,
    effects: &Effects,
) -> std::result::Result<(), TxError> {
    for event in &effects.events {
        let seq = audit.generate_id()?;
        audit.insert(&seq.to_be_bytes(), serde_json::to_vec(event).map_err(|e| abort(io(e)))?)?;
    }
    for d in &effects.deliveries {
        let id = outbox.generate_id()?;
        outbox.insert(outbox_key(d.next_attempt_at, id), serde_json::to_vec(d).map_err(|e| abort(io(e)))?)?;
    }
    for set in &effects.sets {
        let id = ssf_queue.generate_id()?;
        ssf_queue.insert(set_key(&set.client_id, id), serde_json::to_vec(set).map_err(|e| abort(io(e)))?)?;
    }
    Ok(())
}

/// Revoke the family under `key` inside a transaction; `Some` (the family
/// as stored afterwards, and whether this call revoked it) when it exists.
fn tx_revoke_family(
    families: &TransactionalTree,
    key: &[u8],
    revoked: &Revoked,
) -> std::result::Result<Option<(Family, bool)>, TxError> {
    let Some((mut family, exp)) = tx_read::<Family>(families, Expiring::Family, key)? else { return Ok(None) };
    if family.revoked.is_some() {
        return Ok(Some((family, false)));
    }
    family.revoked = Some(revoked.clone());
    families.insert(key, encode(exp, &family).map_err(abort)?)?;
    Ok(Some((family, true)))
}

impl Store for SledStore {
    async fn check(&self) -> Result<()> {
        self.meta.insert(b"readyz", &[1u8][..]).map_err(io)?;
        self.meta
            .get(b"readyz")
            .map_err(io)?
            .ok_or_else(|| StoreError::Io("a written probe record is missing".into()))?;
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        self.commit.durable().await
    }

    async fn admin_policy(&self) -> Result<PolicyLayer> {
        match self.meta.get(ADMIN_POLICY_KEY).map_err(io)? {
            None => Ok(PolicyLayer::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt { what: "admin session policy".into(), message: e.to_string() }),
        }
    }

    async fn set_policy(
        &self,
        admin: Option<&PolicyLayer>,
        history: &PolicyHistory,
        event: Option<&AuditEvent>,
    ) -> Result<()> {
        let admin = admin
            .map(|l| if l.is_empty() { Ok(None) } else { serde_json::to_vec(l).map(Some) })
            .transpose()
            .map_err(io)?;
        let history = serde_json::to_vec(history.entries()).map_err(io)?;
        let effects = Effects { events: event.into_iter().cloned().collect(), ..Effects::default() };
        tx_result((&self.meta, &self.audit, &self.outbox, &self.ssf_queue).transaction(
            |(meta, audit, outbox, ssf_queue)| {
                match &admin {
                    Some(Some(bytes)) => {
                        meta.insert(ADMIN_POLICY_KEY, bytes.as_slice())?;
                    }
                    Some(None) => {
                        meta.remove(ADMIN_POLICY_KEY)?;
                    }
                    None => {}
                }
                meta.insert(POLICY_HISTORY_KEY, history.as_slice())?;
                tx_effects(audit, outbox, ssf_queue, &effects)
            },
        ))?;
        self.commit.durable().await
    }

    async fn admin_groups(&self) -> Result<std::collections::BTreeMap<String, crate::policy::GroupPolicy>> {
        match self.meta.get(ADMIN_GROUPS_KEY).map_err(io)? {
            None => Ok(Default::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt { what: "admin group policies".into(), message: e.to_string() }),
        }
    }

    async fn set_admin_groups(
        &self,
        groups: &std::collections::BTreeMap<String, crate::policy::GroupPolicy>,
        event: &AuditEvent,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(groups).map_err(io)?;
        let effects = Effects { events: vec![event.clone()], ..Effects::default() };
        tx_result((&self.meta, &self.audit, &self.outbox, &self.ssf_queue).transaction(
            |(meta, audit, outbox, ssf_queue)| {
                meta.insert(ADMIN_GROUPS_KEY, bytes.as_slice())?;
                tx_effects(audit, outbox, ssf_queue, &effects)
            },
        ))?;
        self.commit.durable().await
    }

    async fn sweep_expired(&self, now: UnixTime) -> Result<usize> {
        let end = (now.as_secs().saturating_add(1)).to_be_bytes();
        let mut removed = 0;
        loop {
            let batch: Vec<sled::IVec> = self
                .expiry
                .range(..end.as_slice())
                .keys()
                .take(SWEEP_BATCH)
                .collect::<std::result::Result<_, _>>()
                .map_err(io)?;
            if batch.is_empty() {
                break;
            }
            for index_key in &batch {
                let (Some(&tag), Some(key)) = (index_key.get(8), index_key.get(9..)) else {
                    self.expiry.remove(index_key).map_err(io)?;
                    continue;
                };
                if let Some(kind) = Expiring::from_tag(tag) {
                    let tree = self.tree(kind);
                    if let Some(current) = tree.get(key).map_err(io)? {
                        let record_exp =
                            current.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
                        // Remove only if the record still expires by now, and
                        // only the very version read (a concurrent rewrite wins).
                        if record_exp.is_none_or(|exp| exp <= now.as_secs())
                            && tree.compare_and_swap(key, Some(current), None::<&[u8]>).map_err(io)?.is_ok()
                        {
                            removed += 1;
                        }
                    }
                }
                self.expiry.remove(index_key).map_err(io)?;
            }
        }
        if removed > 0 {
            self.commit.durable().await?;
        }
        Ok(removed)
    }

    async fn policy_history(&self) -> Result<Option<PolicyHistory>> {
        match self.meta.get(POLICY_HISTORY_KEY).map_err(io)? {
            None => Ok(None),
            Some(bytes) => {
                let entries: Vec<(UnixTime, SessionPolicy)> = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt { what: "policy history".into(), message: e.to_string() })?;
                Ok(PolicyHistory::from_entries(entries))
            }
        }
    }

    async fn put_session(&self, session: &UserSession, keep_until: UnixTime) -> Result<()> {
        // A new session's sequence is strictly after every marker written so
        // far; a stored session keeps its own, so re-storing a copy can never
        // lift it past a user's revocation marker.
        let fresh_seq = self.db.generate_id().map_err(io)? + 1;
        let index_bytes = encode(keep_until, &())?;
        let key = session.sid.as_bytes();
        let index_key = user_index_key(&session.username, &session.sid);
        tx_result((self.tree(Expiring::UserSession), self.tree(Expiring::UserIndex), &self.expiry).transaction(
            |(sessions, index, expiry)| {
                let mut record = session.clone();
                record.seq = match tx_read::<UserSession>(sessions, Expiring::UserSession, key)? {
                    Some((existing, _)) => existing.seq,
                    None => fresh_seq,
                };
                let bytes = encode(keep_until, &record).map_err(abort)?;
                tx_put(sessions, expiry, Expiring::UserSession, key, &bytes)?;
                tx_put(index, expiry, Expiring::UserIndex, &index_key, &index_bytes)
            },
        ))?;
        self.commit.durable().await
    }

    async fn start_session<F>(
        &self,
        session: &UserSession,
        keep_until: UnixTime,
        admit: F,
        revoked: &Revoked,
        fallout: &dyn Fallout,
    ) -> Result<Admission>
    where
        F: Fn(&[UserSession]) -> Admit + Send + Sync,
    {
        let streams = self.streams()?;
        let fresh_seq = self.db.generate_id().map_err(io)? + 1;
        let index_bytes = encode(keep_until, &())?;
        let user = session.username.as_bytes();
        let key = session.sid.as_bytes();
        let index_key = user_index_key(&session.username, &session.sid);
        // The user's sessions from before a limit applied are in the user
        // index (a prefix of one tree: this user's ids only); those started
        // under the limit are also in `session_limits`, read in the
        // transaction, so a racing sign-in is always seen.
        let prefix = [user, &[0u8]].concat();
        let mut earlier: Vec<Vec<u8>> = Vec::new();
        for entry in self.tree(Expiring::UserIndex).scan_prefix(&prefix) {
            let (k, _) = entry.map_err(io)?;
            if let Some(sid) = k.get(prefix.len()..) {
                earlier.push(sid.to_vec());
            }
        }
        let trees = (
            self.tree(Expiring::UserSession),
            self.tree(Expiring::UserIndex),
            &self.expiry,
            &self.user_markers,
            &self.session_limits,
            self.tree(Expiring::Family),
            &self.audit,
            &self.outbox,
            &self.ssf_queue,
        );
        let outcome = tx_result(trees.transaction(
            |(sessions, index, expiry, markers, limits, families, audit, outbox, ssf_queue)| {
                let listed: Vec<String> = match limits.get(user)? {
                    None => Vec::new(),
                    Some(b) => serde_json::from_slice(&b).map_err(|e| abort(io(e)))?,
                };
                let mut sids: Vec<Vec<u8>> = earlier.clone();
                for sid in &listed {
                    if !sids.iter().any(|s| s == sid.as_bytes()) {
                        sids.push(sid.as_bytes().to_vec());
                    }
                }
                let marker = tx_marker(markers, &session.username)?;
                let mut on_record = Vec::with_capacity(sids.len());
                for sid in &sids {
                    if let Some((mut s, exp)) = tx_read::<UserSession>(sessions, Expiring::UserSession, sid)? {
                        overlay(&mut s, marker.as_ref());
                        on_record.push((s, exp));
                    }
                }
                let all: Vec<UserSession> = on_record.iter().map(|(s, _)| s.clone()).collect();
                let end = match admit(&all) {
                    Admit::AtLimit { live } => return Ok(Admission::AtLimit { live }),
                    Admit::Start { end } => end,
                };
                let mut ended = Vec::with_capacity(end.len());
                let mut effects = Effects::default();
                for (s, exp) in on_record.iter_mut() {
                    if s.revoked.is_some() || !end.contains(&s.sid) {
                        continue;
                    }
                    s.revoked = Some(revoked.clone());
                    sessions.insert(s.sid.as_bytes(), encode(*exp, &*s).map_err(abort)?)?;
                    let mut live = Vec::new();
                    for id in s.families.values().flatten() {
                        if let Some((f, _)) = tx_read::<Family>(families, Expiring::Family, id.as_bytes())?
                            && f.revoked.is_none()
                        {
                            live.push(f);
                        }
                    }
                    effects.extend(fallout.session_revoked(s, &live, &streams));
                    ended.push(s.clone());
                }
                tx_effects(audit, outbox, ssf_queue, &effects)?;
                let mut record = session.clone();
                record.seq = match tx_read::<UserSession>(sessions, Expiring::UserSession, key)? {
                    Some((existing, _)) => existing.seq,
                    None => fresh_seq,
                };
                let bytes = encode(keep_until, &record).map_err(abort)?;
                tx_put(sessions, expiry, Expiring::UserSession, key, &bytes)?;
                tx_put(index, expiry, Expiring::UserIndex, &index_key, &index_bytes)?;
                // Keep listing what has not ended (a session that timed out
                // stays until it is swept: the decision skips it).
                let mut still: Vec<&str> =
                    on_record.iter().filter(|(s, _)| s.revoked.is_none()).map(|(s, _)| s.sid.as_str()).collect();
                still.retain(|sid| listed.iter().any(|l| l.as_str() == *sid));
                still.push(&session.sid);
                limits.insert(user, serde_json::to_vec(&still).map_err(|e| abort(io(e)))?)?;
                Ok(Admission::Started { ended })
            },
        ))?;
        if matches!(outcome, Admission::Started { .. }) {
            self.commit.durable().await?;
        }
        Ok(outcome)
    }

    async fn session(&self, sid: &str) -> Result<Option<UserSession>> {
        self.read_session(sid)
    }

    async fn touch_session(&self, sid: &str, at: UnixTime) -> Result<Option<UserSession>> {
        let key = sid.as_bytes();
        let outcome =
            tx_result((self.tree(Expiring::UserSession), &self.user_markers).transaction(|(sessions, markers)| {
                let Some((mut session, exp)) = tx_read::<UserSession>(sessions, Expiring::UserSession, key)? else {
                    return Ok(None);
                };
                let marker = tx_marker(markers, &session.username)?;
                overlay(&mut session, marker.as_ref());
                let changed = session.record_activity(at);
                if changed {
                    sessions.insert(key, encode(exp, &session).map_err(abort)?)?;
                }
                Ok(Some((session, changed)))
            }))?;
        match outcome {
            Some((session, changed)) => {
                if changed {
                    self.commit.durable().await?;
                }
                Ok(Some(session))
            }
            None => Ok(None),
        }
    }

    async fn revoke_session(&self, sid: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<Revoke<UserSession>> {
        let streams = self.streams()?;
        // The index of the session's families is read first (a transaction
        // cannot scan); each family is then read inside the transaction.
        let family_ids = self.session_family_ids(sid)?;
        let key = sid.as_bytes();
        let trees = (
            self.tree(Expiring::UserSession),
            &self.user_markers,
            self.tree(Expiring::Family),
            &self.audit,
            &self.outbox,
            &self.ssf_queue,
        );
        let outcome = tx_result(trees.transaction(|(sessions, markers, families, audit, outbox, ssf_queue)| {
            let Some((mut session, exp)) = tx_read::<UserSession>(sessions, Expiring::UserSession, key)? else {
                return Ok(Revoke::NotFound);
            };
            let marker = tx_marker(markers, &session.username)?;
            overlay(&mut session, marker.as_ref());
            if session.revoked.is_some() {
                return Ok(Revoke::AlreadyRevoked(session));
            }
            session.revoked = Some(revoked.clone());
            sessions.insert(key, encode(exp, &session).map_err(abort)?)?;
            let mut live = Vec::new();
            for id in &family_ids {
                if let Some((f, _)) = tx_read::<Family>(families, Expiring::Family, id)?
                    && f.revoked.is_none()
                {
                    live.push(f);
                }
            }
            tx_effects(audit, outbox, ssf_queue, &fallout.session_revoked(&session, &live, &streams))?;
            Ok(Revoke::Revoked(session))
        }))?;
        if outcome.changed() {
            self.commit.durable().await?;
        }
        Ok(outcome)
    }

    async fn session_families(&self, sid: &str) -> Result<Vec<Family>> {
        let mut out = Vec::new();
        for fid in self.session_family_ids(sid)? {
            if let Some(f) = self.read::<Family>(Expiring::Family, &fid)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    async fn put_code(&self, key: &[u8], code: &AuthCode) -> Result<()> {
        let bytes = encode(code.issued_at.plus(CODE_RECORD_TTL), code)?;
        tx_result(
            (self.tree(Expiring::AuthorizationCode), &self.expiry)
                .transaction(|(codes, expiry)| tx_put(codes, expiry, Expiring::AuthorizationCode, key, &bytes)),
        )?;
        self.commit.durable().await
    }

    async fn code(&self, key: &[u8]) -> Result<Option<AuthCode>> {
        self.read(Expiring::AuthorizationCode, key)
    }

    async fn redeem_code(
        &self,
        key: &[u8],
        family: &Family,
        keep_until: UnixTime,
        now: UnixTime,
        fallout: &dyn Fallout,
    ) -> Result<Redemption> {
        let streams = self.streams()?;
        let family_bytes = encode(keep_until, family)?;
        let index_key = [family.sid.as_bytes(), family.id.as_bytes()].concat();
        let index_bytes = encode(keep_until, &())?;
        let sid = family.sid.as_bytes();
        let trees = (
            self.tree(Expiring::AuthorizationCode),
            self.tree(Expiring::Family),
            self.tree(Expiring::SessionFamily),
            &self.expiry,
            self.tree(Expiring::UserSession),
            &self.audit,
            &self.outbox,
            &self.ssf_queue,
        );
        let outcome =
            tx_result(trees.transaction(|(codes, families, index, expiry, sessions, audit, outbox, ssf_queue)| {
                let Some((mut code, code_exp)) = tx_read::<AuthCode>(codes, Expiring::AuthorizationCode, key)? else {
                    return Ok(Redemption::NotFound);
                };
                if let Some(first) = code.redeemed_family.clone() {
                    // RFC 6749 4.1.2: revoke what the first redemption created.
                    let revoked = Revoked { at: now, reason: "authorization_code_replay".into(), by: None };
                    return match tx_revoke_family(families, first.as_bytes(), &revoked)? {
                        Some((f, true)) => {
                            tx_effects(audit, outbox, ssf_queue, &fallout.family_revoked(&f, &streams))?;
                            Ok(Redemption::Replayed { revoked_family: Some(first) })
                        }
                        _ => Ok(Redemption::Replayed { revoked_family: None }),
                    };
                }
                code.redeemed_family = Some(family.id.clone());
                codes.insert(key, encode(code_exp, &code).map_err(abort)?)?;
                tx_put(families, expiry, Expiring::Family, family.id.as_bytes(), &family_bytes)?;
                tx_put(index, expiry, Expiring::SessionFamily, &index_key, &index_bytes)?;
                // Bound the session's families of this client, and record the
                // activity: keys read one by one, no scan.
                let mut superseded = Vec::new();
                if let Some((mut session, session_exp)) = tx_read::<UserSession>(sessions, Expiring::UserSession, sid)?
                {
                    let old = session.admit_family(&family.client_id, &family.id, MAX_FAMILIES_PER_CLIENT);
                    session.record_activity(now);
                    sessions.insert(sid, encode(session_exp, &session).map_err(abort)?)?;
                    for id in old {
                        index.remove([sid, id.as_bytes()].concat())?;
                        let Some((mut f, f_exp)) = tx_read::<Family>(families, Expiring::Family, id.as_bytes())? else {
                            continue;
                        };
                        if f.revoked.is_none() {
                            f.revoked = Some(Revoked { at: now, reason: "superseded".into(), by: None });
                            families.insert(id.as_bytes(), encode(f_exp, &f).map_err(abort)?)?;
                            superseded.push(f);
                        }
                    }
                }
                if !superseded.is_empty() {
                    tx_effects(audit, outbox, ssf_queue, &fallout.families_superseded(&superseded, family))?;
                }
                Ok(Redemption::Redeemed { superseded })
            }))?;
        if outcome != Redemption::NotFound {
            self.commit.durable().await?;
        }
        Ok(outcome)
    }

    async fn family(&self, id: &str) -> Result<Option<Family>> {
        self.read(Expiring::Family, id.as_bytes())
    }

    // --- Device authorization requests (SPEC 15) ---

    async fn put_device_request(
        &self,
        device_key: &[u8; 32],
        user_key: &[u8; 32],
        request: &DeviceRequest,
    ) -> Result<bool> {
        let keep_until = request.keep_until();
        let request_bytes = encode(keep_until, request)?;
        let index_bytes = encode(keep_until, &B64.encode(device_key))?;
        let trees = (self.tree(Expiring::DeviceRequest), self.tree(Expiring::DeviceUserCode), &self.expiry);
        let stored = tx_result(trees.transaction(|(requests, user_codes, expiry)| {
            if user_codes.get(user_key)?.is_some() || requests.get(device_key)?.is_some() {
                return Ok(false);
            }
            tx_put(requests, expiry, Expiring::DeviceRequest, device_key, &request_bytes)?;
            tx_put(user_codes, expiry, Expiring::DeviceUserCode, user_key, &index_bytes)?;
            Ok(true)
        }))?;
        if stored {
            self.commit.durable().await?;
        }
        Ok(stored)
    }

    async fn device_request(&self, device_key: &[u8; 32]) -> Result<Option<DeviceRequest>> {
        self.read(Expiring::DeviceRequest, device_key)
    }

    async fn device_request_by_user_code(&self, user_key: &[u8; 32]) -> Result<Option<DeviceRequest>> {
        let Some(device_key) = self.read::<String>(Expiring::DeviceUserCode, user_key)? else { return Ok(None) };
        let device_key = device_key_of(&device_key)?;
        self.read(Expiring::DeviceRequest, &device_key)
    }

    async fn answer_device_request(
        &self,
        user_key: &[u8; 32],
        approval: Option<&Approval>,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<DeviceAnswer> {
        let event_bytes = serde_json::to_vec(event).map_err(io)?;
        let trees = (self.tree(Expiring::DeviceRequest), self.tree(Expiring::DeviceUserCode), &self.audit);
        let outcome = tx_result(trees.transaction(|(requests, user_codes, audit)| {
            let Some((device_key, _)) = tx_read::<String>(user_codes, Expiring::DeviceUserCode, user_key)? else {
                return Ok(DeviceAnswer::NotFound);
            };
            let device_key = device_key_of(&device_key).map_err(abort)?;
            let Some((request, exp)) = tx_read::<DeviceRequest>(requests, Expiring::DeviceRequest, &device_key)? else {
                return Ok(DeviceAnswer::NotFound);
            };
            match request.answer(approval.cloned(), now) {
                None => Ok(DeviceAnswer::Closed(request)),
                Some(next) => {
                    requests.insert(&device_key[..], encode(exp, &next).map_err(abort)?)?;
                    let seq = audit.generate_id()?;
                    audit.insert(&seq.to_be_bytes(), event_bytes.as_slice())?;
                    Ok(DeviceAnswer::Answered(next))
                }
            }
        }))?;
        if matches!(outcome, DeviceAnswer::Answered(_)) {
            self.commit.durable().await?;
        }
        Ok(outcome)
    }

    async fn poll_device<F>(
        &self,
        device_key: &[u8; 32],
        client_id: &str,
        now: UnixTime,
        family: F,
        fallout: &dyn Fallout,
    ) -> Result<DevicePoll>
    where
        F: Fn(&Approval) -> (Family, UnixTime) + Send + Sync,
    {
        let trees = (
            self.tree(Expiring::DeviceRequest),
            self.tree(Expiring::Family),
            self.tree(Expiring::SessionFamily),
            &self.expiry,
            self.tree(Expiring::UserSession),
            &self.audit,
            &self.outbox,
            &self.ssf_queue,
        );
        let (outcome, wrote) =
            tx_result(trees.transaction(|(requests, families, index, expiry, sessions, audit, outbox, ssf_queue)| {
                let Some((mut request, exp)) = tx_read::<DeviceRequest>(requests, Expiring::DeviceRequest, device_key)?
                else {
                    return Ok((DevicePoll::NotFound, false));
                };
                if request.client_id != client_id {
                    return Ok((DevicePoll::NotFound, false));
                }
                let (outcome, next) = match decide_poll(&request, now) {
                    PollDecision::Pending(next) => (DevicePoll::Pending, next),
                    PollDecision::SlowDown(next) => (DevicePoll::SlowDown { interval: next.interval }, next),
                    PollDecision::Denied => return Ok((DevicePoll::Denied, false)),
                    PollDecision::Expired => return Ok((DevicePoll::Expired, false)),
                    PollDecision::Used => return Ok((DevicePoll::Used, false)),
                    PollDecision::Issue(approval) => {
                        let (new_family, keep_until) = family(&approval);
                        let superseded =
                            tx_start_family((families, index, expiry, sessions), &new_family, keep_until, now)?;
                        if !superseded.is_empty() {
                            tx_effects(
                                audit,
                                outbox,
                                ssf_queue,
                                &fallout.families_superseded(&superseded, &new_family),
                            )?;
                        }
                        request.state = DeviceState::Redeemed { at: now, family_id: new_family.id.clone() };
                        request.last_poll = Some(now);
                        (DevicePoll::Issued { family: Box::new(new_family), superseded }, request)
                    }
                };
                requests.insert(&device_key[..], encode(exp, &next).map_err(abort)?)?;
                Ok((outcome, true))
            }))?;
        if wrote {
            self.commit.durable().await?;
        }
        Ok(outcome)
    }

    async fn user(&self, username: &str) -> Result<Option<User>> {
        let Some(bytes) = self.users.get(username.as_bytes()).map_err(io)? else { return Ok(None) };
        let stored: StoredUser = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { what: format!("user {username}"), message: e.to_string() })?;
        stored
            .into_user()
            .map(Some)
            .map_err(|message| StoreError::Corrupt { what: format!("user {username}"), message })
    }

    async fn retired_name(&self, name: &str) -> Result<Option<RetiredName>> {
        let Some(bytes) = self.retired_names.get(name.as_bytes()).map_err(io)? else { return Ok(None) };
        let kind = std::str::from_utf8(&bytes).ok().and_then(RetiredName::parse);
        kind.map(Some).ok_or_else(|| StoreError::Corrupt {
            what: format!("retired name {name}"),
            message: format!("unknown kind {:?}", String::from_utf8_lossy(&bytes)),
        })
    }

    async fn users(&self) -> Result<Vec<User>> {
        let mut out = Vec::new();
        for entry in self.users.iter() {
            let (k, bytes) = entry.map_err(io)?;
            let what = || format!("user {}", String::from_utf8_lossy(&k));
            let stored: StoredUser = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt { what: what(), message: e.to_string() })?;
            out.push(stored.into_user().map_err(|message| StoreError::Corrupt { what: what(), message })?);
        }
        Ok(out)
    }

    async fn write_user(
        &self,
        username: &str,
        user: Option<&User>,
        revoke: Option<&Revoked>,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> Result<bool> {
        let streams = if revoke.is_some() { self.streams()? } else { Vec::new() };
        let user_bytes = user.map(|u| serde_json::to_vec(&StoredUser::from(u))).transpose().map_err(io)?;
        let key = username.as_bytes();
        let trees = (&self.users, &self.user_markers, &self.outbox, &self.audit, &self.ssf_queue, &self.retired_names);
        let existed = tx_result(trees.transaction(|(users, markers, outbox, audit, ssf_queue, retired)| {
            let existed = match &user_bytes {
                Some(b) => users.insert(key, b.as_slice())?.is_some(),
                None => users.remove(key)?.is_some(),
            };
            if user_bytes.is_none() && existed {
                retired.insert(key, RetiredName::User.as_str().as_bytes())?;
            }
            let mut effects = Effects::default();
            if let Some(revoked) = revoke {
                effects = tx_mark_user(markers, username, revoked, fallout, &streams)?;
            }
            effects.events.push(event.clone());
            tx_effects(audit, outbox, ssf_queue, &effects)?;
            Ok(existed)
        }))?;
        self.commit.durable().await?;
        Ok(existed)
    }

    async fn write_user_keeping(
        &self,
        user: &User,
        revoke: &Revoked,
        keep: &str,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> Result<bool> {
        let streams = self.streams()?;
        let user_bytes = serde_json::to_vec(&StoredUser::from(user)).map_err(io)?;
        let username = user.username.as_str();
        let trees = (
            &self.users,
            &self.user_markers,
            self.tree(Expiring::UserSession),
            &self.outbox,
            &self.audit,
            &self.ssf_queue,
        );
        // The user's session ids: one prefix of the user index (read before
        // the transaction: sled's transactions exclude plain reads). A
        // session stored after this read is covered by the marker like any
        // other; only the feed does not name it.
        let prefix = [username.as_bytes(), &[0u8]].concat();
        let mut sids: Vec<Vec<u8>> = Vec::new();
        for entry in self.tree(Expiring::UserIndex).scan_prefix(&prefix) {
            let (k, _) = entry.map_err(io)?;
            if let Some(sid) = k.get(prefix.len()..)
                && sid != keep.as_bytes()
            {
                sids.push(sid.to_vec());
            }
        }
        let kept = tx_result(trees.transaction(|(users, markers, sessions, outbox, audit, ssf_queue)| {
            // The user's sessions, read (with the marker so far) before the
            // new marker covers them: the one to keep, and the live others,
            // which the feed names one by one.
            let before = tx_marker(markers, username)?;
            let mut others = Vec::new();
            for sid in &sids {
                if let Some((mut session, _)) = tx_read::<UserSession>(sessions, Expiring::UserSession, sid)? {
                    overlay(&mut session, before.as_ref());
                    if session.revoked.is_none() && session.username == username {
                        others.push(session);
                    }
                }
            }
            let live = match tx_read::<UserSession>(sessions, Expiring::UserSession, keep.as_bytes())? {
                Some((mut session, exp)) if session.username == username => {
                    overlay(&mut session, before.as_ref());
                    session.revoked.is_none().then_some((session, exp))
                }
                _ => None,
            };
            users.insert(username.as_bytes(), user_bytes.as_slice())?;
            let seq = markers.generate_id()?;
            tx_put_marker(markers, username, seq, revoke)?;
            others.retain(|s| s.seq <= seq);
            let mut effects = fallout.user_revoked_keeping(username, seq, revoke, &others, &streams);
            let kept = match live {
                Some((mut session, exp)) => {
                    // Ids only grow: the kept session is now after the marker.
                    session.seq = sessions.generate_id()?;
                    sessions.insert(keep.as_bytes(), encode(exp, &session).map_err(abort)?)?;
                    true
                }
                None => false,
            };
            effects.events.push(event.clone());
            tx_effects(audit, outbox, ssf_queue, &effects)?;
            Ok(kept)
        }))?;
        self.commit.durable().await?;
        Ok(kept)
    }

    async fn clients(&self) -> Result<Vec<StoredClient>> {
        let mut out = Vec::new();
        for entry in self.clients.iter() {
            let (k, bytes) = entry.map_err(io)?;
            out.push(serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: format!("client {}", String::from_utf8_lossy(&k)),
                message: e.to_string(),
            })?);
        }
        Ok(out)
    }

    async fn write_client(&self, id: &str, client: Option<&StoredClient>, event: &AuditEvent) -> Result<bool> {
        let client_bytes = client.map(serde_json::to_vec).transpose().map_err(io)?;
        let event_bytes = serde_json::to_vec(event).map_err(io)?;
        let key = id.as_bytes();
        let trees = (&self.clients, &self.audit, &self.retired_names);
        let existed = tx_result(trees.transaction(|(clients, audit, retired)| {
            let existed = match &client_bytes {
                Some(b) => clients.insert(key, b.as_slice())?.is_some(),
                None => clients.remove(key)?.is_some(),
            };
            if client_bytes.is_none() && existed {
                retired.insert(key, RetiredName::Client.as_str().as_bytes())?;
            }
            let id = audit.generate_id()?;
            audit.insert(&id.to_be_bytes(), event_bytes.as_slice())?;
            Ok(existed)
        }))?;
        self.commit.durable().await?;
        Ok(existed)
    }

    async fn all_sessions(&self) -> Result<Vec<UserSession>> {
        let mut out = Vec::new();
        for entry in self.tree(Expiring::UserSession).iter() {
            let (_, bytes) = entry.map_err(io)?;
            let mut session: UserSession = decode(Expiring::UserSession, &bytes)?;
            let marker = self.marker(&session.username)?;
            overlay(&mut session, marker.as_ref());
            out.push(session);
        }
        Ok(out)
    }

    async fn client_families(&self, client_id: &str) -> Result<Vec<Family>> {
        let mut out = Vec::new();
        for entry in self.tree(Expiring::Family).iter() {
            let (_, bytes) = entry.map_err(io)?;
            let family: Family = decode(Expiring::Family, &bytes)?;
            if family.client_id == client_id {
                out.push(family);
            }
        }
        Ok(out)
    }

    async fn user_sessions(&self, username: &str) -> Result<Vec<UserSession>> {
        let prefix = [username.as_bytes(), &[0u8]].concat();
        let marker = self.marker(username)?;
        let mut out = Vec::new();
        for entry in self.tree(Expiring::UserIndex).scan_prefix(&prefix) {
            let (key, _) = entry.map_err(io)?;
            let Some(sid) = key.get(prefix.len()..) else { continue };
            if let Some(mut s) = self.read::<UserSession>(Expiring::UserSession, sid)? {
                overlay(&mut s, marker.as_ref());
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn revoke_user(&self, username: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<u64> {
        let streams = self.streams()?;
        let seq = tx_result((&self.user_markers, &self.outbox, &self.audit, &self.ssf_queue).transaction(
            |(markers, outbox, audit, ssf_queue)| {
                let seq = markers.generate_id()?;
                let effects = tx_write_marker(markers, username, seq, revoked, fallout, &streams)?;
                tx_effects(audit, outbox, ssf_queue, &effects)?;
                Ok(seq)
            },
        ))?;
        self.commit.durable().await?;
        Ok(seq)
    }

    async fn revoke_family(&self, id: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<Revoke<Family>> {
        let streams = self.streams()?;
        let key = id.as_bytes();
        let trees = (self.tree(Expiring::Family), &self.audit, &self.outbox, &self.ssf_queue);
        let outcome = tx_result(trees.transaction(|(families, audit, outbox, ssf_queue)| {
            Ok(match tx_revoke_family(families, key, revoked)? {
                None => Revoke::NotFound,
                Some((family, false)) => Revoke::AlreadyRevoked(family),
                Some((family, true)) => {
                    tx_effects(audit, outbox, ssf_queue, &fallout.family_revoked(&family, &streams))?;
                    Revoke::Revoked(family)
                }
            })
        }))?;
        if outcome.changed() {
            self.commit.durable().await?;
        }
        Ok(outcome)
    }

    async fn append_event(&self, event: &AuditEvent) -> Result<u64> {
        let id = self.db.generate_id().map_err(io)?;
        self.audit.insert(id.to_be_bytes(), serde_json::to_vec(event).map_err(io)?).map_err(io)?;
        self.commit.durable().await?;
        Ok(id)
    }

    async fn replace_event(&self, id: u64, event: &AuditEvent) -> Result<bool> {
        let value = serde_json::to_vec(event).map_err(io)?;
        let key = id.to_be_bytes();
        let mut replaced = false;
        self.audit
            .fetch_and_update(key, |old| {
                replaced = old.is_some();
                old.map(|_| value.clone())
            })
            .map_err(io)?;
        Ok(replaced)
    }

    async fn prune_history(&self, before: UnixTime, markers_before: UnixTime) -> Result<usize> {
        let mut removed = 0;
        // Audit ids grow with time: walk from the oldest until one is recent.
        for entry in self.audit.iter() {
            let (k, v) = entry.map_err(io)?;
            let event: AuditEvent = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt { what: "audit event".into(), message: e.to_string() })?;
            if event.at >= before {
                break;
            }
            self.audit.remove(k).map_err(io)?;
            removed += 1;
        }
        for entry in self.user_markers.iter() {
            let (k, v) = entry.map_err(io)?;
            let marker: UserMarker = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt { what: "user marker".into(), message: e.to_string() })?;
            if marker.revoked.at < markers_before
                && self.user_markers.compare_and_swap(&k, Some(v), None::<&[u8]>).map_err(io)?.is_ok()
            {
                removed += 1;
            }
        }
        if removed > 0 {
            self.commit.durable().await?;
        }
        Ok(removed)
    }

    async fn events_page(&self, before: Option<u64>, limit: usize) -> Result<Vec<(u64, AuditEvent)>> {
        let end = before.unwrap_or(u64::MAX).to_be_bytes();
        let mut out = Vec::with_capacity(limit.min(1000));
        for entry in self.audit.range(..end.as_slice()).rev().take(limit) {
            let (k, v) = entry.map_err(io)?;
            let id = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
            let event = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt { what: "audit event".into(), message: e.to_string() })?;
            out.push((id, event));
        }
        Ok(out)
    }

    async fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        for d in deliveries {
            let id = self.db.generate_id().map_err(io)?;
            self.outbox.insert(outbox_key(d.next_attempt_at, id), serde_json::to_vec(d).map_err(io)?).map_err(io)?;
        }
        if !deliveries.is_empty() {
            self.commit.durable().await?;
        }
        Ok(())
    }

    async fn due_deliveries(&self, now: UnixTime, limit: usize) -> Result<Vec<(u64, Delivery)>> {
        let end = now.as_secs().saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for entry in self.outbox.range(..end.as_slice()).take(limit) {
            let (k, v) = entry.map_err(io)?;
            let id = k.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes).unwrap_or(0);
            let d = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt { what: "logout delivery".into(), message: e.to_string() })?;
            out.push((id, d));
        }
        Ok(out)
    }

    async fn finish_attempt(&self, id: u64, old: &Delivery, next: Option<&Delivery>) -> Result<()> {
        let old_key = outbox_key(old.next_attempt_at, id);
        let next = next
            .map(|d| serde_json::to_vec(d).map(|b| (outbox_key(d.next_attempt_at, id), b)))
            .transpose()
            .map_err(io)?;
        tx_result(self.outbox.transaction(|outbox| {
            outbox.remove(old_key.as_slice())?;
            if let Some((k, v)) = &next {
                outbox.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<_, TxError>(())
        }))?;
        self.commit.durable().await
    }

    async fn ssf_streams(&self) -> Result<Vec<Stream>> {
        self.streams()
    }

    async fn ssf_stream(&self, client_id: &str) -> Result<Option<Stream>> {
        match self.ssf_streams.get(client_id.as_bytes()).map_err(io)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { what: "SSF stream".into(), message: e.to_string() }),
        }
    }

    async fn put_ssf_stream(&self, stream: &Stream) -> Result<()> {
        let bytes = serde_json::to_vec(stream).map_err(io)?;
        self.ssf_streams.insert(stream.client_id.as_bytes(), bytes).map_err(io)?;
        self.commit.durable().await
    }

    async fn delete_ssf_stream(&self, client_id: &str) -> Result<bool> {
        let mut queued = Vec::new();
        for entry in self.ssf_queue.scan_prefix(set_prefix(client_id)) {
            queued.push(entry.map_err(io)?.0);
        }
        let existed = tx_result((&self.ssf_streams, &self.ssf_queue).transaction(|(streams, queue)| {
            for k in &queued {
                queue.remove(k)?;
            }
            Ok::<_, TxError>(streams.remove(client_id.as_bytes())?.is_some())
        }))?;
        self.commit.durable().await?;
        Ok(existed)
    }

    async fn enqueue_sets(&self, sets: &[QueuedSet]) -> Result<()> {
        if sets.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for set in sets {
            let id = self.db.generate_id().map_err(io)?;
            batch.insert(set_key(&set.client_id, id), serde_json::to_vec(set).map_err(io)?);
        }
        self.ssf_queue.apply_batch(batch).map_err(io)?;
        self.commit.durable().await
    }

    async fn queued_sets(&self, client_id: &str, limit: usize) -> Result<Vec<(u64, QueuedSet)>> {
        let prefix = set_prefix(client_id);
        let mut out = Vec::new();
        for entry in self.ssf_queue.scan_prefix(&prefix).take(limit) {
            let (k, v) = entry.map_err(io)?;
            let id = k.get(prefix.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
            out.push((id, decode_set(&v)?));
        }
        Ok(out)
    }

    async fn remove_sets(&self, client_id: &str, jtis: &[String]) -> Result<usize> {
        if jtis.is_empty() {
            return Ok(0);
        }
        let mut wanted: HashSet<&str> = jtis.iter().map(String::as_str).collect();
        let mut removed = 0;
        for entry in self.ssf_queue.scan_prefix(set_prefix(client_id)) {
            if wanted.is_empty() {
                break; // acknowledgements name the oldest events: stop once all are found
            }
            let (k, v) = entry.map_err(io)?;
            let set = decode_set(&v)?;
            if wanted.remove(set.jti.as_str()) && self.ssf_queue.remove(&k).map_err(io)?.is_some() {
                removed += 1;
            }
        }
        if removed > 0 {
            self.commit.durable().await?;
        }
        Ok(removed)
    }

    async fn keep_signed_sets(&self, client_id: &str, signed: &[(u64, SignedSet)]) -> Result<()> {
        for (id, set) in signed {
            // Only while it is still queued (an acknowledgement may have
            // won), and only the signed form changes (a push may have
            // rescheduled it meanwhile).
            self.ssf_queue
                .fetch_and_update(set_key(client_id, *id), |old| {
                    let old = old?;
                    let mut record = decode_set(old).ok()?;
                    record.signed = Some(set.clone());
                    serde_json::to_vec(&record).ok().or_else(|| Some(old.to_vec()))
                })
                .map_err(io)?;
        }
        Ok(())
    }

    async fn reschedule_set(&self, id: u64, next: &QueuedSet) -> Result<()> {
        let key = set_key(&next.client_id, id);
        let bytes = serde_json::to_vec(next).map_err(io)?;
        // Only while it is still queued (an acknowledgement may have won).
        let _ = self.ssf_queue.fetch_and_update(&key, |old| old.map(|_| bytes.clone())).map_err(io)?;
        self.commit.durable().await
    }

    async fn clear_sets(&self, client_id: &str) -> Result<usize> {
        let mut removed = 0;
        for entry in self.ssf_queue.scan_prefix(set_prefix(client_id)) {
            let (k, _) = entry.map_err(io)?;
            if self.ssf_queue.remove(&k).map_err(io)?.is_some() {
                removed += 1;
            }
        }
        if removed > 0 {
            self.commit.durable().await?;
        }
        Ok(removed)
    }

    async fn prune_sets(&self, before: UnixTime) -> Result<usize> {
        let mut removed = 0;
        for entry in self.ssf_queue.iter() {
            let (k, v) = entry.map_err(io)?;
            if decode_set(&v)?.iat < before
                && self.ssf_queue.compare_and_swap(&k, Some(v), None::<&[u8]>).map_err(io)?.is_ok()
            {
                removed += 1;
            }
        }
        if removed > 0 {
            self.commit.durable().await?;
        }
        Ok(removed)
    }

    async fn refresh<F>(&self, id: &str, decide: F, fallout: &dyn Fallout) -> Result<Option<RefreshDecision>>
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        // A rotation changes one key: the family record. A compare-and-swap
        // on it is atomic (of N concurrent uses of one token, one CAS wins
        // and the others re-decide against the new generation) and avoids
        // sled transactions, which serialise against every other write. The
        // session (with its user's marker) is read just before; a revocation
        // racing with this refresh still kills the new tokens at their first
        // check, since every use re-reads session and family. A reuse kill
        // (rare) is a transaction: the family, compared against the version
        // decided on, and its fallout.
        let key = id.as_bytes();
        let families = self.tree(Expiring::Family);
        let decision = loop {
            let Some(current) = families.get(key).map_err(io)? else { break None };
            let exp = record_expiry(&current).unwrap_or(UnixTime::EPOCH);
            let family: Family = decode(Expiring::Family, &current)?;
            let session = self.read_session(&family.sid)?;
            let decision = decide(&family, session.as_ref());
            match &decision {
                RefreshDecision::Grace(_) | RefreshDecision::Ended(_) | RefreshDecision::Refused(_) => {
                    break Some(decision);
                }
                RefreshDecision::Rotate(next) => {
                    let next = encode(exp, next)?;
                    if families.compare_and_swap(key, Some(current), Some(next)).map_err(io)?.is_ok() {
                        // A background refresh is no activity of the session either.
                        if let RefreshDecision::Rotate(rotated) = &decision
                            && rotated.active_at.is_none()
                        {
                            self.record_session_activity(&rotated.sid, rotated.rotated_at)?;
                        }
                        break Some(decision);
                    }
                }
                RefreshDecision::Reuse(killed) => {
                    let next = encode(exp, killed)?;
                    let effects = fallout.family_revoked(killed, &self.streams()?);
                    let trees = (families, &self.audit, &self.outbox, &self.ssf_queue);
                    let won = tx_result(trees.transaction(|(families, audit, outbox, ssf_queue)| {
                        if families.get(key)?.as_deref() != Some(&current[..]) {
                            return Ok(false);
                        }
                        families.insert(key, next.as_slice())?;
                        tx_effects(audit, outbox, ssf_queue, &effects)?;
                        Ok(true)
                    }))?;
                    if won {
                        break Some(decision);
                    }
                }
            }
        };
        if matches!(decision, Some(RefreshDecision::Rotate(_) | RefreshDecision::Reuse(_))) {
            self.commit.durable().await?;
        }
        Ok(decision)
    }

    // --- Nothing per process (SPEC 12): expiring records like the others
    // (`expires_at || JSON`, swept through the expiry index). One process
    // counts a bounded tree under `bounded` before inserting.

    async fn put_console_session(
        &self,
        key: &[u8; 32],
        record: &ConsoleSessionRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<()> {
        let bytes = encode(record.expires_at, &SledConsoleSession { version: 0, record: record.clone() })?;
        {
            let mut bounds = self.bounded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let tree = self.tree(Expiring::ConsoleSession);
            if may_be_full(tree, &mut bounds.console_sessions, max) {
                // The expired go, then the oldest pending, then the oldest.
                let mut kept = Vec::new();
                for entry in tree.iter() {
                    let (k, v) = entry.map_err(io)?;
                    let session: SledConsoleSession = decode(Expiring::ConsoleSession, &v)?;
                    if session.record.expires_at <= now {
                        tree.remove(&k).map_err(io)?;
                    } else {
                        kept.push((!session.record.pending, session.record.created, k));
                    }
                }
                kept.sort();
                let excess = (kept.len() + 1).saturating_sub(max);
                for (_, _, k) in kept.into_iter().take(excess) {
                    tree.remove(&k).map_err(io)?;
                }
                bounds.console_sessions = Some(tree.len());
            }
            bounds.console_sessions = bounds.console_sessions.map(|n| n.saturating_add(1));
            tx_result(
                (tree, &self.expiry)
                    .transaction(|(t, expiry)| tx_put(t, expiry, Expiring::ConsoleSession, key, &bytes)),
            )?;
        }
        // A sign-in in progress lost in a crash only asks to sign in again:
        // an anonymous visit does not wait for the disk (sled writes it
        // within its flush interval). A signed-in session does.
        if record.pending { Ok(()) } else { self.commit.durable().await }
    }

    async fn console_session(&self, key: &[u8; 32], now: UnixTime) -> Result<Option<(u64, ConsoleSessionRecord)>> {
        Ok(self
            .read::<SledConsoleSession>(Expiring::ConsoleSession, key)?
            .filter(|s| s.record.expires_at > now)
            .map(|s| (s.version, s.record)))
    }

    async fn replace_console_session(
        &self,
        key: &[u8; 32],
        version: u64,
        record: &ConsoleSessionRecord,
    ) -> Result<bool> {
        let next = SledConsoleSession { version: version.saturating_add(1), record: record.clone() };
        let bytes = encode(record.expires_at, &next)?;
        let replaced =
            tx_result((self.tree(Expiring::ConsoleSession), &self.expiry).transaction(
                |(tree, expiry)| match tx_read::<SledConsoleSession>(tree, Expiring::ConsoleSession, key)? {
                    Some((current, _)) if current.version == version => {
                        tx_put(tree, expiry, Expiring::ConsoleSession, key, &bytes)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                },
            ))?;
        if replaced {
            self.commit.durable().await?;
        }
        Ok(replaced)
    }

    async fn remove_console_session(
        &self,
        key: &[u8; 32],
        version: Option<u64>,
    ) -> Result<Option<ConsoleSessionRecord>> {
        let removed = tx_result(self.tree(Expiring::ConsoleSession).transaction(|tree| {
            match tx_read::<SledConsoleSession>(tree, Expiring::ConsoleSession, key)? {
                Some((current, _)) if version.is_none_or(|v| v == current.version) => {
                    tree.remove(&key[..])?;
                    Ok(Some(current.record))
                }
                _ => Ok(None),
            }
        }))?;
        if removed.is_some() {
            self.commit.durable().await?;
        }
        Ok(removed)
    }

    async fn put_pending_sign_in(
        &self,
        key: &[u8; 32],
        record: &PendingSignInRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<bool> {
        let bytes = encode(record.expires_at, record)?;
        {
            let mut bounds = self.bounded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let tree = self.tree(Expiring::PendingSignIn);
            if may_be_full(tree, &mut bounds.pending_sign_ins, max) {
                for entry in tree.iter() {
                    let (k, v) = entry.map_err(io)?;
                    if record_expiry(&v).is_none_or(|exp| exp <= now) {
                        tree.remove(&k).map_err(io)?;
                    }
                }
                let n = tree.len();
                bounds.pending_sign_ins = Some(n);
                if n >= max {
                    return Ok(false);
                }
            }
            bounds.pending_sign_ins = bounds.pending_sign_ins.map(|n| n.saturating_add(1));
            tx_result(
                (tree, &self.expiry).transaction(|(t, expiry)| tx_put(t, expiry, Expiring::PendingSignIn, key, &bytes)),
            )?;
        }
        self.commit.durable().await?;
        Ok(true)
    }

    async fn take_pending_sign_in(
        &self,
        key: &[u8; 32],
        browser: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<PendingSignInRecord>> {
        let taken = tx_result(self.tree(Expiring::PendingSignIn).transaction(|tree| {
            match tx_read::<PendingSignInRecord>(tree, Expiring::PendingSignIn, key)? {
                Some((pending, _)) if bool::from(subtle::ConstantTimeEq::ct_eq(&pending.browser[..], &browser[..])) => {
                    tree.remove(&key[..])?;
                    Ok(Some(pending))
                }
                _ => Ok(None),
            }
        }))?;
        if taken.is_some() {
            self.commit.durable().await?;
        }
        Ok(taken.filter(|p| p.expires_at > now))
    }

    async fn remember_proof(&self, key: &[u8; 16], until: UnixTime, now: UnixTime) -> Result<bool> {
        let tree = self.tree(Expiring::DpopProof);
        let bytes = until.as_secs().to_be_bytes();
        // The sweeper's index entry first: a stray one (a replay, a lost
        // race) is harmless, since the sweeper removes only records that
        // have expired. Then one compare-and-swap on this tree alone: no
        // transaction, which would contend with every rotation's on the
        // shared expiry index (a DPoP refresh ran at 40% of its rate so).
        self.expiry.insert(SledStore::expiry_key(Expiring::DpopProof, key, until), &[][..]).map_err(io)?;
        // The common case first: a proof never seen.
        let mut current: Option<sled::IVec> = None;
        loop {
            let Err(found) = tree.compare_and_swap(&key[..], current.clone(), Some(&bytes[..])).map_err(io)? else {
                // Not waited for on disk (the hot path of a DPoP refresh
                // would pay a second fsync): sled writes it within its
                // flush interval. Until then a crash forgets it, as the
                // per-process set forgot every proof; the proof's 60 s
                // `iat` window still bounds a replay, and a refresh proof
                // is useless once its refresh token is spent.
                return Ok(true);
            };
            if found.current.as_deref().and_then(record_expiry).is_some_and(|exp| exp >= now) {
                return Ok(false);
            }
            // Absent or expired: replace exactly what is there now.
            current = found.current;
        }
    }
}

/// Upper bounds of the bounded trees' sizes (`None`: not counted yet).
/// Inserts add one; removals (takes, sweeps) are not subtracted, so the
/// bound only overestimates, and a tree is counted again when its bound
/// reaches the maximum.
#[derive(Debug, Default)]
struct Bounds {
    console_sessions: Option<usize>,
    pending_sign_ins: Option<usize>,
}

/// Whether `tree` may hold `max` records: counts it when its `bound` says
/// so, and keeps the count.
fn may_be_full(tree: &sled::Tree, bound: &mut Option<usize>, max: usize) -> bool {
    if bound.is_some_and(|n| n < max) {
        return false;
    }
    let n = tree.len();
    *bound = Some(n);
    n >= max
}

/// A console session in sled: its record and the version that
/// [`Store::replace_console_session`] compares.
#[derive(Serialize, Deserialize)]
struct SledConsoleSession {
    version: u64,
    record: ConsoleSessionRecord,
}

#[cfg(test)]
mod tests {
    //! The sled-internal tests: the expiry index, batched sweeping, the
    //! group commit. What every backend must do is tested once for all of
    //! them in the integration suite's store contract (tests/store_contract.rs).

    use super::*;
    use crate::duration::Secs;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[tokio::test]
    async fn the_sweeper_removes_exactly_what_expired() {
        let store = SledStore::temporary().expect("store");
        store.put_expiring(Expiring::AuthorizationCode, b"c1", b"code", T0.plus(Secs::minutes(10))).await.expect("put");
        store.put_expiring(Expiring::Family, b"f1", b"family", T0.plus(Secs::hours(12))).await.expect("put");
        store.put_expiring(Expiring::UserSession, b"s1", b"session", T0.plus(Secs::hours(12))).await.expect("put");

        assert_eq!(store.sweep_expired(T0).await.expect("sweep"), 0);
        let just_before = UnixTime(T0.plus(Secs::minutes(10)).as_secs() - 1);
        assert_eq!(store.sweep_expired(just_before).await.expect("sweep"), 0);
        assert!(store.get_expiring(Expiring::AuthorizationCode, b"c1").expect("get").is_some());

        assert_eq!(store.sweep_expired(T0.plus(Secs::minutes(10))).await.expect("sweep"), 1);
        assert!(store.get_expiring(Expiring::AuthorizationCode, b"c1").expect("get").is_none());
        assert_eq!(store.get_expiring(Expiring::Family, b"f1").expect("get").as_deref(), Some(&b"family"[..]));

        assert_eq!(store.sweep_expired(T0.plus(Secs::days(1))).await.expect("sweep"), 2);
        assert_eq!(store.expiry.len(), 0, "the index shrinks with the records");
        assert!(store.get_expiring(Expiring::UserSession, b"s1").expect("get").is_none());
    }

    #[tokio::test]
    async fn a_rewritten_record_outlives_its_old_index_entry() {
        let store = SledStore::temporary().expect("store");
        store.put_expiring(Expiring::Family, b"f", b"v1", T0).await.expect("put");
        store.put_expiring(Expiring::Family, b"f", b"v2", T0.plus(Secs::hours(1))).await.expect("rewrite");
        assert_eq!(store.sweep_expired(T0).await.expect("sweep"), 0, "the old entry removes nothing");
        assert_eq!(store.get_expiring(Expiring::Family, b"f").expect("get").as_deref(), Some(&b"v2"[..]));
        assert_eq!(store.sweep_expired(T0.plus(Secs::hours(1))).await.expect("sweep"), 1);
    }

    #[tokio::test]
    async fn sweeping_handles_more_than_one_batch() {
        let store = SledStore::temporary().expect("store");
        for i in 0..(SWEEP_BATCH as u32 * 2 + 7) {
            store.put_expiring(Expiring::AuthorizationCode, &i.to_be_bytes(), b"x", T0).await.expect("put");
        }
        assert_eq!(store.sweep_expired(T0).await.expect("sweep"), SWEEP_BATCH * 2 + 7);
        assert_eq!(store.tree(Expiring::AuthorizationCode).len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_serves_many_concurrent_writers() {
        // sled's own flush_async hangs with ~8 concurrent callers (#1308);
        // the group commit must answer hundreds.
        let store = SledStore::temporary().expect("store");
        let mut tasks = Vec::new();
        for i in 0..256u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(
                async move { store.put_expiring(Expiring::Family, &i.to_be_bytes(), b"v", T0).await },
            ));
        }
        let all = async {
            for t in tasks {
                t.await.expect("join").expect("durable");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), all).await.expect("every writer answered");
        assert_eq!(store.tree(Expiring::Family).len(), 256);
    }
}
