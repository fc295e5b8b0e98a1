//! Two service processes' worth of servers on one PostgreSQL database:
//! concurrent creates through both, sharing idempotency keys, make exactly
//! one session per key, with unique ids.

use crate::common;

use std::collections::{HashMap, HashSet};

use common::{authed, token};
use practice_service::proto::practice::v1::CreateSessionRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_idempotency_keys() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::database_url(common::Backend::Postgres, &dir).await else {
        return;
    };
    let a = common::spawn_app_at(url.clone(), tempfile::tempdir().unwrap(), &[]).await;
    let b = common::spawn_app_at(url, tempfile::tempdir().unwrap(), &[]).await;
    a.class(1, &[42, 43], &[("m1", true), ("m2", true)]).await;

    let mut tasks = Vec::new();
    for key in 0..20 {
        for copy in 0..4 {
            let app_url = if copy % 2 == 0 { a.url() } else { b.url() };
            let user = 42 + (key % 2) as i64;
            tasks.push(tokio::spawn(async move {
                let mut client =
                    practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient::connect(app_url)
                        .await
                        .unwrap();
                let mut req = authed(
                    CreateSessionRequest { class_id: Some(1), title: Some(format!("key {key}")), ..Default::default() },
                    &token(user),
                );
                req.metadata_mut().insert("idempotency-key", format!("shared-{key}").parse().unwrap());
                let s = client.create_session(req).await.expect("every copy succeeds").into_inner();
                (key, s.session_id)
            }));
        }
    }
    let mut by_key: HashMap<i32, HashSet<i64>> = HashMap::new();
    for t in tasks {
        let (key, id) = t.await.unwrap();
        by_key.entry(key).or_default().insert(id);
    }
    assert_eq!(by_key.len(), 20);
    for (key, ids) in &by_key {
        assert_eq!(ids.len(), 1, "key {key} made {} sessions", ids.len());
    }
    let all: HashSet<i64> = by_key.values().flatten().copied().collect();
    assert_eq!(all.len(), 20, "ids are unique across replicas");
    let counts = a.counts().await;
    assert_eq!(counts.sessions, 20);
    assert_eq!(counts.session_models, 40);
    assert_eq!(counts.idempotency_keys, 20);
}
