//! The answers this replica is streaming right now, so that something other
//! than the client can end them: a deleted session cancels its answers, and
//! a shutdown first lets them finish, then interrupts the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

/// Why an answer was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Its session was deleted.
    Deleted,
    /// The replica is shutting down and the grace period is over.
    Interrupted,
}

/// The answers in flight on this replica, under the replica's lease id.
pub struct Answers {
    replica_id: String,
    state: Mutex<State>,
    idle: Notify,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Each answer's session and the sender that stops it.
    running: HashMap<u64, (i64, watch::Sender<Option<Stop>>)>,
    /// No new answers once the replica is stopping.
    closed: bool,
}

/// One registered answer; dropping it unregisters the answer.
pub struct Registration {
    answers: Arc<Answers>,
    id: u64,
    stop: watch::Receiver<Option<Stop>>,
}

impl Registration {
    /// Resolves when the answer is stopped from outside, with the reason.
    pub async fn stopped(&mut self) -> Stop {
        loop {
            if let Some(stop) = *self.stop.borrow_and_update() {
                return stop;
            }
            if self.stop.changed().await.is_err() {
                // The registry holds the sender for as long as this
                // registration lives, so this is never reached.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.answers.state.lock().expect("answers lock");
        state.running.remove(&self.id);
        if state.running.is_empty() {
            self.answers.idle.notify_waiters();
        }
    }
}

impl Answers {
    pub fn new(replica_id: String) -> Arc<Self> {
        Arc::new(Self {
            replica_id,
            state: Mutex::new(State::default()),
            idle: Notify::new(),
        })
    }

    /// The id this replica's lease and answers carry.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Is the replica still taking prompts?
    pub fn is_open(&self) -> bool {
        !self.state.lock().expect("answers lock").closed
    }

    /// Registers an answer of the session; `None` once the replica stops.
    pub fn register(self: &Arc<Self>, session_id: i64) -> Option<Registration> {
        let mut state = self.state.lock().expect("answers lock");
        if state.closed {
            return None;
        }
        state.next += 1;
        let id = state.next;
        let (sender, stop) = watch::channel(None);
        state.running.insert(id, (session_id, sender));
        Some(Registration {
            answers: self.clone(),
            id,
            stop,
        })
    }

    /// Stops the session's answers (it was deleted); how many there were.
    pub fn cancel_session(&self, session_id: i64) -> usize {
        let state = self.state.lock().expect("answers lock");
        let mut n = 0;
        for (_, (session, stop)) in state.running.iter() {
            if *session == session_id {
                stop.send_replace(Some(Stop::Deleted));
                n += 1;
            }
        }
        n
    }

    /// Takes no new answers from now on.
    pub fn close(&self) {
        self.state.lock().expect("answers lock").closed = true;
    }

    /// Interrupts every answer still running; how many.
    pub fn interrupt_all(&self) -> usize {
        let state = self.state.lock().expect("answers lock");
        for (_, stop) in state.running.values() {
            stop.send_replace(Some(Stop::Interrupted));
        }
        state.running.len()
    }

    /// How many answers are running.
    pub fn running(&self) -> usize {
        self.state.lock().expect("answers lock").running.len()
    }

    /// Resolves once no answer is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn stops_reach_the_right_answers_and_idle_follows_the_last() {
        let answers = Answers::new("r1".into());
        let mut a = answers.register(1).unwrap();
        let mut b = answers.register(2).unwrap();
        assert_eq!(answers.cancel_session(1), 1);
        assert_eq!(a.stopped().await, Stop::Deleted);
        let pending = tokio::time::timeout(Duration::from_millis(20), b.stopped()).await;
        assert!(pending.is_err(), "answer of another session stopped");

        answers.close();
        assert!(answers.register(3).is_none());
        assert_eq!(answers.interrupt_all(), 2);
        assert_eq!(b.stopped().await, Stop::Interrupted);

        let idle = tokio::spawn({
            let answers = answers.clone();
            async move { answers.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!idle.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), idle)
            .await
            .unwrap()
            .unwrap();
    }
}
