//! Guarded rotations written in batches (issue 21): the rotations that
//! arrive while one batch is at the database go together in the next, one
//! statement and one commit for all of them. On two shared cores a
//! rotation's own work in PostgreSQL is small beside the cost of a statement
//! and a commit (the protocol, waking the backend, the transaction's
//! bookkeeping), so under load this is where the rate comes from; a lone
//! rotation is a batch of one and waits for nothing.
//!
//! Each row keeps its own guard ([`BATCH_ROTATE`]): a batch is the same as
//! its rotations written one after another, and every waiter learns whether
//! its own was written. Nothing is acknowledged before the batch's commit;
//! a batch that fails fails for each of its rotations, none of which was
//! written (one statement, one transaction). Two rotations of one family
//! never share a batch: the later waits for the next.
//!
//! One batch is at the database at a time. The runner is a task of its own,
//! so a request that goes away (its client hung up) never strands the
//! rotations queued behind it.

use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::oneshot;

use super::{PgStore, TRANSACTION_TIMEOUT, is_retryable};
use crate::store::{Result, StoreError};

/// Rotations one statement carries at most.
const MAX_BATCH: usize = 64;

/// Each rotation as a row of the arrays: `$1` family id, `$2` new body,
/// `$3` new generation, `$4` the generation decided on, `$5` the
/// revocation epoch the view was read at, `$6` whether to record the
/// session's activity, `$7` the activity (JSON), `$8` the same as a number.
/// A family rotates only if it is still at `old`, not revoked, and the
/// revocation epoch is still `rev` (nothing ended since its view was read);
/// its session's `last_active` moves forward only, never on a revoked
/// session. Returns the families rotated, each with whether its session's
/// activity was written.
pub(super) const BATCH_ROTATE: &str = "WITH i AS ( \
       SELECT * FROM unnest($1::TEXT[], $2::JSONB[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], \
         $6::BOOLEAN[], $7::JSONB[], $8::BIGINT[]) AS i(id, body, generation, old, rev, touch, activity, at)), \
     f AS ( \
       UPDATE families SET body = i.body, generation = i.generation FROM i \
       WHERE families.id = i.id AND families.generation = i.old \
         AND COALESCE(families.body->'revoked', 'null'::JSONB) = 'null'::JSONB \
         AND (SELECT epoch FROM cache_epochs WHERE name = 'revocations') = i.rev \
       RETURNING families.id, families.sid, i.touch, i.activity, i.at), \
     s AS ( \
       UPDATE user_sessions SET body = jsonb_set(user_sessions.body, ARRAY['last_active'], f.activity) FROM f \
       WHERE f.touch AND user_sessions.sid = f.sid \
         AND (user_sessions.body->>'last_active')::BIGINT < f.at \
         AND COALESCE(user_sessions.body->'revoked', 'null'::JSONB) = 'null'::JSONB \
       RETURNING user_sessions.sid) \
     SELECT f.id, f.sid IN (SELECT sid FROM s) AS touched FROM f";

/// One guarded rotation ([`BATCH_ROTATE`]'s row).
pub(super) struct Rotation {
    pub id: String,
    pub body: Value,
    pub generation: i64,
    pub old: i64,
    pub revocations: i64,
    pub touch: bool,
    pub activity: Value,
    pub at: i64,
}

/// Whether the rotation was written, and its session's activity.
pub(super) type Outcome = Result<(bool, bool)>;

struct Waiting {
    rotation: Rotation,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// Whether a runner is taking batches (it stops when none is left).
    running: bool,
}

#[derive(Default)]
pub(super) struct Batches {
    queue: Mutex<Queue>,
}

impl Batches {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next batch: up to [`MAX_BATCH`] waiting rotations, in order, no
    /// two of one family; empty (and the runner stops) when none waits.
    fn next_batch(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        if queue.waiting.is_empty() {
            queue.running = false;
            return Vec::new();
        }
        let mut batch: Vec<Waiting> = Vec::new();
        let mut later = Vec::new();
        for w in std::mem::take(&mut queue.waiting) {
            if batch.len() < MAX_BATCH && !batch.iter().any(|b| b.rotation.id == w.rotation.id) {
                batch.push(w);
            } else {
                later.push(w);
            }
        }
        queue.waiting = later;
        batch
    }
}

/// A runner that ends other than by finding the queue empty (its task
/// dropped at shutdown, or a panic) fails the rotations still waiting and
/// lets the next one start a runner, rather than leaving them waiting.
struct Stopped<'a> {
    batches: &'a Batches,
    normally: bool,
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if self.normally {
            return;
        }
        let waiting = {
            let mut queue = self.batches.lock();
            queue.running = false;
            std::mem::take(&mut queue.waiting)
        };
        for w in waiting {
            let _ = w.reply.send(Err(StoreError::Unavailable("the rotations' writer stopped".into())));
        }
    }
}

impl PgStore {
    /// Write `rotation` with the next batch; whether it was written (and
    /// its session's activity). A batch that met a deadlock or a
    /// serialization failure wrote nothing: `(false, false)` for each.
    pub(super) async fn rotate_batched(&self, rotation: Rotation) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.batches.lock();
            queue.waiting.push(Waiting { rotation, reply });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.run_batches().await });
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::Unavailable("the rotation's batch was abandoned".into())))
    }

    async fn run_batches(&self) {
        let mut stopped = Stopped { batches: &self.batches, normally: false };
        loop {
            let batch = self.batches.next_batch();
            if batch.is_empty() {
                stopped.normally = true;
                return;
            }
            let rotations: Vec<&Rotation> = batch.iter().map(|w| &w.rotation).collect();
            match self.write_batch(&rotations).await {
                Ok(written) => {
                    for w in batch {
                        let outcome = written.iter().find(|(id, _)| *id == w.rotation.id).map(|(_, t)| *t);
                        let _ = w.reply.send(Ok((outcome.is_some(), outcome.unwrap_or(false))));
                    }
                }
                Err(e) => {
                    for w in batch {
                        let _ = w.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One statement for `rotations`: the ids written, each with whether its
    /// session's activity was.
    async fn write_batch(&self, rotations: &[&Rotation]) -> Result<Vec<(String, bool)>> {
        // Rows in one order, whatever the arrival order (fewer deadlocks
        // with another writer of several families).
        let mut rotations = rotations.to_vec();
        rotations.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = rotations.iter().map(|r| r.id.as_str()).collect();
        let bodies: Vec<&Value> = rotations.iter().map(|r| &r.body).collect();
        let generations: Vec<i64> = rotations.iter().map(|r| r.generation).collect();
        let olds: Vec<i64> = rotations.iter().map(|r| r.old).collect();
        let revs: Vec<i64> = rotations.iter().map(|r| r.revocations).collect();
        let touches: Vec<bool> = rotations.iter().map(|r| r.touch).collect();
        let activities: Vec<&Value> = rotations.iter().map(|r| &r.activity).collect();
        let ats: Vec<i64> = rotations.iter().map(|r| r.at).collect();
        let client = self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))?;
        let run = async {
            let statement = client.prepare_cached(BATCH_ROTATE).await?;
            client.query(&statement, &[&ids, &bodies, &generations, &olds, &revs, &touches, &activities, &ats]).await
        };
        match tokio::time::timeout(TRANSACTION_TIMEOUT, run).await {
            Ok(Ok(rows)) => rows
                .iter()
                .map(|row| {
                    Ok((row.try_get::<_, String>(0).map_err(super::ops::pg)?, row.try_get(1).map_err(super::ops::pg)?))
                })
                .collect(),
            Ok(Err(e)) if is_retryable(&e) => {
                tracing::debug!(error = %super::describe(&e), "a batch of guarded rotations met a concurrent transaction");
                Ok(Vec::new())
            }
            Ok(Err(e)) => Err(self.failed_on(client, e)),
            Err(_) => Err(self.timed_out(client, BATCH_ROTATE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(id: &str) -> (Waiting, oneshot::Receiver<Outcome>) {
        let (reply, answer) = oneshot::channel();
        let rotation = Rotation {
            id: id.into(),
            body: Value::Null,
            generation: 2,
            old: 1,
            revocations: 0,
            touch: false,
            activity: Value::Null,
            at: 0,
        };
        (Waiting { rotation, reply }, answer)
    }

    #[test]
    fn a_batch_holds_one_rotation_per_family_and_the_rest_wait() {
        let batches = Batches::default();
        let mut answers = Vec::new();
        {
            let mut queue = batches.lock();
            queue.running = true;
            for id in ["a", "b", "a", "c", "a"] {
                let (w, answer) = waiting(id);
                queue.waiting.push(w);
                answers.push(answer);
            }
        }
        let ids = |b: Vec<Waiting>| b.into_iter().map(|w| w.rotation.id).collect::<Vec<_>>();
        assert_eq!(ids(batches.next_batch()), ["a", "b", "c"]);
        assert_eq!(ids(batches.next_batch()), ["a"]);
        assert_eq!(ids(batches.next_batch()), ["a"]);
        assert!(batches.next_batch().is_empty());
        assert!(!batches.lock().running, "the runner stops when nothing waits");
    }

    #[test]
    fn a_runner_that_stops_early_fails_the_waiting_and_lets_another_start() {
        let batches = Batches::default();
        let (w, mut answer) = waiting("a");
        {
            let mut queue = batches.lock();
            queue.running = true;
            queue.waiting.push(w);
        }
        drop(Stopped { batches: &batches, normally: false });
        assert!(matches!(answer.try_recv(), Ok(Err(StoreError::Unavailable(_)))), "the waiter hears of it");
        assert!(!batches.lock().running, "the next rotation starts a runner");
    }

    #[test]
    fn a_batch_is_bounded() {
        let batches = Batches::default();
        {
            let mut queue = batches.lock();
            for i in 0..MAX_BATCH + 5 {
                queue.waiting.push(waiting(&format!("f{i}")).0);
            }
        }
        assert_eq!(batches.next_batch().len(), MAX_BATCH);
        assert_eq!(batches.next_batch().len(), 5);
    }
}
