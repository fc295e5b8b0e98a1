//! A model's concurrency slots, shared fairly: when every slot is taken,
//! the waiting requests are served round-robin across users, one request
//! of each user in turn, so one user's flood waits behind itself and
//! never in front of another user's single prompt.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

pub struct FairSlots {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_use: usize,
    /// Users with requests waiting, in the order they are served next.
    turn: VecDeque<i64>,
    /// Each waiting user's requests, oldest first.
    waiting: HashMap<i64, VecDeque<oneshot::Sender<Slot>>>,
}

/// One slot; dropping it hands it to the next waiter, or frees it.
pub struct Slot {
    /// `None` once the slot has been taken back unused (see `release`).
    slots: Option<Arc<FairSlots>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

impl FairSlots {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// Waits for a slot for `user`'s request. Dropping the future gives up
    /// its place (a slot handed to it meanwhile passes on).
    pub async fn acquire(self: &Arc<Self>, user: i64) -> Slot {
        let receiver = {
            let mut state = self.state.lock().expect("slots lock");
            if state.in_use < self.capacity && state.turn.is_empty() {
                state.in_use += 1;
                return Slot {
                    slots: Some(self.clone()),
                };
            }
            let (sender, receiver) = oneshot::channel();
            let queue = state.waiting.entry(user).or_default();
            queue.push_back(sender);
            if queue.len() == 1 {
                state.turn.push_back(user);
            }
            receiver
        };
        receiver
            .await
            .expect("a waiting sender is only dropped by handing over a slot")
    }

    /// A slot came free: the next user in turn gets it for their oldest
    /// request still waiting; with nobody waiting it is free.
    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock().expect("slots lock");
        while let Some(user) = state.turn.pop_front() {
            let queue = state.waiting.get_mut(&user).expect("a user in turn waits");
            let sender = queue.pop_front().expect("a user in turn has a request");
            if queue.is_empty() {
                state.waiting.remove(&user);
            } else {
                state.turn.push_back(user);
            }
            let slot = Slot {
                slots: Some(self.clone()),
            };
            match sender.send(slot) {
                Ok(()) => return,
                // That request gave up; the slot goes to the next one
                // (taken back so that its drop doesn't release it again).
                Err(mut slot) => drop(slot.slots.take()),
            }
        }
        state.in_use -= 1;
    }

    /// Slots taken and requests waiting, for tests and reports.
    pub fn load(&self) -> (usize, usize) {
        let state = self.state.lock().expect("slots lock");
        (
            state.in_use,
            state.waiting.values().map(VecDeque::len).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_flood_waits_behind_itself_and_others_take_turns() {
        let slots = FairSlots::new(1);
        let first = slots.acquire(1).await;
        // User 1 queues five requests, then user 2 queues one.
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut waiting = Vec::new();
        for (i, user) in [1, 1, 1, 1, 1, 2].into_iter().enumerate() {
            let (slots, order_tx) = (slots.clone(), order_tx.clone());
            waiting.push(tokio::spawn(async move {
                let slot = slots.acquire(user).await;
                order_tx.send((user, i)).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(slots.load(), (1, 6));
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        let served: Vec<(i64, usize)> = std::iter::from_fn(|| order.try_recv().ok()).collect();
        // User 2's one request goes second, not after user 1's five.
        assert_eq!(served[0], (1, 0));
        assert_eq!(served[1], (2, 5));
        assert_eq!(slots.load(), (0, 0));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_the_slot_on() {
        let slots = FairSlots::new(1);
        let held = slots.acquire(1).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), slots.acquire(2)).await;
        assert!(gave_up.is_err());
        let next = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(3).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(held);
        let slot = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the slot passes over the waiter that left")
            .unwrap();
        assert_eq!(slots.load(), (1, 0));
        drop(slot);
        assert_eq!(slots.load(), (0, 0));
    }
}
