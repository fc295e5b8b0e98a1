//! A prompt's events as the client reads them. Deltas of one model that
//! wait in the queue together (the client, or its connection, behind the
//! models) are joined into one: a reader that falls behind gets fewer,
//! longer deltas instead of an encoded message, a frame and a wake-up for
//! each. Each model's events keep their order; models' events may pass
//! each other, which no reader can tell from arrival order anyway.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::Stream;
use tokio::sync::mpsc;

use super::conversation::{EVENT_BUFFER, PromptEvent};

pub struct JoinedDeltas {
    receiver: mpsc::Receiver<PromptEvent>,
    /// Taken off the queue, joined, not yet handed on.
    ready: VecDeque<PromptEvent>,
}

impl JoinedDeltas {
    pub fn new(receiver: mpsc::Receiver<PromptEvent>) -> Self {
        Self {
            receiver,
            ready: VecDeque::new(),
        }
    }

    /// Queues `event`, joining a delta to its model's last event if that
    /// is a delta too.
    fn queue(&mut self, event: PromptEvent) {
        if let PromptEvent::Delta {
            session_model_id: id,
            text,
        } = &event
        {
            let last = self.ready.iter_mut().rev().find(|e| model_of(e) == *id);
            if let Some(PromptEvent::Delta { text: before, .. }) = last {
                before.push_str(text);
                return;
            }
        }
        self.ready.push_back(event);
    }
}

fn model_of(event: &PromptEvent) -> i64 {
    match event {
        PromptEvent::Started {
            session_model_id, ..
        }
        | PromptEvent::Delta {
            session_model_id, ..
        } => *session_model_id,
        PromptEvent::Finished(r) | PromptEvent::Failed(r) => r.session_model_id,
    }
}

impl Stream for JoinedDeltas {
    type Item = PromptEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PromptEvent>> {
        let this = self.get_mut();
        if let Some(event) = this.ready.pop_front() {
            return Poll::Ready(Some(event));
        }
        let Some(first) = ready!(this.receiver.poll_recv(cx)) else {
            return Poll::Ready(None);
        };
        this.queue(first);
        // What is queued already, at most a queue's worth: bounded work
        // before the first of them is handed on.
        for _ in 1..EVENT_BUFFER {
            match this.receiver.try_recv() {
                Ok(event) => this.queue(event),
                Err(_) => break,
            }
        }
        Poll::Ready(this.ready.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn delta(id: i64, text: &str) -> PromptEvent {
        PromptEvent::Delta {
            session_model_id: id,
            text: text.into(),
        }
    }

    fn started(id: i64) -> PromptEvent {
        PromptEvent::Started {
            session_model_id: id,
            response_id: id * 10,
            model_name: format!("m{id}"),
        }
    }

    #[tokio::test]
    async fn queued_deltas_of_a_model_are_joined_in_order() {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let sent = [
            started(1),
            delta(1, "a"),
            started(2),
            delta(2, "x"),
            delta(1, "b"),
            delta(2, "y"),
            delta(1, "c"),
        ];
        for event in sent {
            tx.send(event).await.unwrap();
        }
        let mut events = JoinedDeltas::new(rx);
        let read: Vec<PromptEvent> = (&mut events).take(4).collect().await;
        let expected = [started(1), delta(1, "abc"), started(2), delta(2, "xy")];
        assert_eq!(read, expected);
        // A delta after the queue was read starts a new one.
        tx.send(delta(1, "d")).await.unwrap();
        drop(tx);
        let rest: Vec<PromptEvent> = events.collect().await;
        assert_eq!(rest, [delta(1, "d")]);
    }

    #[tokio::test]
    async fn a_delta_is_never_joined_across_another_event_of_its_model() {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        for event in [delta(1, "a"), started(1), delta(2, "x"), delta(1, "b")] {
            tx.send(event).await.unwrap();
        }
        drop(tx);
        let read: Vec<PromptEvent> = JoinedDeltas::new(rx).collect().await;
        assert_eq!(
            read,
            [delta(1, "a"), started(1), delta(2, "x"), delta(1, "b")]
        );
    }
}
