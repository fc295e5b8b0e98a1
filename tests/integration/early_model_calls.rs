//! A prompt without an idempotency key calls its models while its own
//! write commits. When that write fails, the client gets the error and no
//! event, nothing is stored, and the request to the model is closed.

use std::sync::atomic::Ordering;

use crate::common;
use crate::conversation::{ME, chat_with, prompt};
use crate::limits::WriteLock;

use common::{Backend, authed, token};
use sqlx::Connection;
use tonic::Code;

/// SQLite: another connection's write lock holds the prompt's write back
/// until the model has the request, so the order is certain; the service
/// code is the same on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_prompt_write_closes_the_model_request_it_began() {
    // "hang" sends one word, then holds its request open until the
    // client closes it.
    let Some(chat) = chat_with(Backend::Sqlite, &[("m-hang", "hang")], "", &[]).await else {
        return;
    };
    let url = &chat.app.database_url;
    // Every new prompt's insert fails, as a database fault would.
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER refuse_prompts BEFORE INSERT ON prompts
         BEGIN SELECT RAISE(ABORT, 'prompts refused for the test'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before = chat.app.counts().await;
    let lock = WriteLock::take(url).await;
    let mut client = chat.app.client().await;
    let request = authed(prompt(chat.session.session_id, "hi"), &token(ME));
    let sent = tokio::spawn(async move { client.send_prompt_and_wait(request).await });
    chat.provider
        .wait_for("the model has the request", |s| s.count() == 1)
        .await;
    lock.release().await;
    let failed = sent.await.unwrap().unwrap_err();
    assert_eq!(failed.code(), Code::Internal, "{failed:?}");
    assert_eq!(
        chat.app.counts().await,
        before,
        "a failed prompt wrote rows"
    );
    chat.provider
        .wait_for("the model's request closed", |s| {
            s.closed_early.load(Ordering::SeqCst) == 1
        })
        .await;
}
