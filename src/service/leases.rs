//! Replica leases: every replica keeps a lease in the database while it
//! lives and renews it well before it runs out. Answers in progress carry
//! their replica's id; any replica that finds an answer whose replica's
//! lease has run out (a crash, `kill -9`, a lost machine) stores it as
//! failed "interrupted", keeping the text saved so far. A live replica's
//! answers are never touched, however many replicas share the database,
//! as long as their clocks agree to well within a lease.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use crate::domain::now_micros;
use crate::store::Store;

/// A random id for this run of the process: a restarted replica is a new
/// one, so its predecessor's answers are swept once their lease runs out.
pub fn new_replica_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Takes the lease, then sweeps what dead replicas left: run once before
/// the replica takes prompts.
pub async fn take(store: &dyn Store, replica_id: &str, lease: Duration) -> anyhow::Result<()> {
    renew_and_sweep(store, replica_id, lease).await
}

async fn renew_and_sweep(
    store: &dyn Store,
    replica_id: &str,
    lease: Duration,
) -> anyhow::Result<()> {
    let now = now_micros();
    let ttl = TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(15));
    store.renew_lease(replica_id, now + ttl).await?;
    let failed = store.fail_orphaned(now).await?;
    if failed > 0 {
        tracing::warn!(
            answers = failed,
            "answers of replicas that stopped without finishing them are stored as interrupted"
        );
    }
    Ok(())
}

/// Renews the lease and sweeps three times per lease period, until aborted.
pub fn spawn(
    store: Arc<dyn Store>,
    replica_id: String,
    lease: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(lease / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = renew_and_sweep(&*store, &replica_id, lease).await {
                tracing::warn!(error = %e, "could not renew this replica's lease");
            }
        }
    })
}
