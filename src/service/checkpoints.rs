//! The text of answers in progress, saved for all of them together. An
//! answer offers its text at most once a period and goes on streaming; one
//! writer per replica saves every offer of the period in a few write
//! transactions. So ten thousand answers cost a handful of commits a
//! second, not ten thousand, and no delta waits for the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::store::Store;

/// How often the text of an answer in progress is saved: a crash loses at
/// most about this much of it.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How many answers one write transaction saves: bounds how long it holds
/// the writer.
const PER_TRANSACTION: usize = 256;

/// An answer's latest text, waiting for the writer.
struct Offer {
    prompt_chars: i64,
    text: String,
    /// Set when the row is no longer in progress (swept, or its session
    /// deleted): the answer stops.
    gone: Arc<AtomicBool>,
}

pub struct Checkpoints {
    offers: Mutex<HashMap<i64, Offer>>,
}

impl Checkpoints {
    /// Starts the replica's writer, saving each `period`; it ends when the
    /// last holder of the checkpoints drops them.
    pub fn start(store: Arc<dyn Store>, period: Duration) -> Arc<Self> {
        let checkpoints = Arc::new(Self {
            offers: Mutex::new(HashMap::new()),
        });
        tokio::spawn(write_each(Arc::downgrade(&checkpoints), store, period));
        checkpoints
    }

    /// Offers the text of response `response_id` so far, replacing an
    /// offer not yet saved; `gone` is set if the row turns out to be no
    /// longer in progress.
    pub fn offer(&self, response_id: i64, prompt_chars: i64, text: &str, gone: &Arc<AtomicBool>) {
        let offer = Offer {
            prompt_chars,
            text: text.to_owned(),
            gone: gone.clone(),
        };
        self.offers
            .lock()
            .expect("checkpoints lock")
            .insert(response_id, offer);
    }

    fn take(&self) -> Vec<(i64, Offer)> {
        std::mem::take(&mut *self.offers.lock().expect("checkpoints lock"))
            .into_iter()
            .collect()
    }
}

async fn write_each(checkpoints: Weak<Checkpoints>, store: Arc<dyn Store>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(offers) = checkpoints.upgrade().map(|c| c.take()) else {
            return;
        };
        for batch in offers.chunks(PER_TRANSACTION) {
            if let Err(e) = save(&*store, batch).await {
                // The answers go on; their final writes store the text.
                tracing::warn!(error = ?e, answers = batch.len(), "could not save answers' text");
            }
        }
    }
}

/// Saves one batch in one write transaction (it may share a group's
/// commit with other writes).
async fn save(store: &dyn Store, batch: &[(i64, Offer)]) -> Result<(), super::tx::TxError> {
    let gone = super::tx::run(|attempt| async move {
        let mut tx = store.begin_answer_write(attempt).await?;
        let mut gone = Vec::new();
        for (id, offer) in batch {
            if !tx
                .save_partial(*id, offer.prompt_chars, &offer.text)
                .await?
            {
                gone.push(offer.gone.clone());
            }
        }
        tx.commit().await?;
        Ok(gone)
    })
    .await?;
    for flag in gone {
        flag.store(true, Ordering::Relaxed);
    }
    Ok(())
}
