//! The `prompt` scenario: SendPrompt over gRPC against the development
//! model, every prompt answered by the class's three models. Reports the
//! time to the first delta and to the end of the stream, per prompt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::proto::practice::v1::{
    CreateSessionRequest, SendPromptRequest, prompt_event::Event,
};
use tonic::transport::Channel;

/// What one run of prompts measured.
pub struct PromptStats {
    pub prompts: u64,
    pub elapsed: Duration,
    pub first_delta: Histogram<u64>,
    pub total: Histogram<u64>,
}

pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII"),
    );
    request
}

/// One prompt: microseconds to the first delta and to the end.
async fn one(
    client: &mut PracticeServiceClient<Channel>,
    token: &str,
    session_id: i64,
    i: u64,
) -> anyhow::Result<(u64, u64)> {
    let start = Instant::now();
    let request = SendPromptRequest {
        session_id,
        prompt_text: format!("Please check sentence number {i} for mistakes."),
        session_model_ids: vec![],
    };
    let mut stream = client
        .send_prompt(authed(request, token))
        .await?
        .into_inner();
    let mut first = None;
    let mut finished = 0;
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Delta(_)) => {
                first.get_or_insert_with(|| start.elapsed());
            }
            Some(Event::Finished(_)) => finished += 1,
            Some(Event::Failed(r)) => anyhow::bail!("a model failed: {:?}", r.error),
            _ => {}
        }
    }
    anyhow::ensure!(finished == 3, "{finished} of 3 models finished");
    let first = first.ok_or_else(|| anyhow::anyhow!("no delta"))?;
    Ok((first.as_micros() as u64, start.elapsed().as_micros() as u64))
}

/// What one user saw in a two-user run (`run_two_users`).
pub struct UserStats {
    pub prompts: u64,
    /// Prompts refused over a limit (429).
    pub refused: u64,
    pub first_delta: Histogram<u64>,
}

/// A user's session of the class.
async fn session(client: &mut PracticeServiceClient<Channel>, token: &str) -> anyhow::Result<i64> {
    let create = CreateSessionRequest {
        class_id: Some(1),
        title: Some("Prompt bench".into()),
        ..Default::default()
    };
    Ok(client
        .create_session(authed(create, token))
        .await?
        .into_inner()
        .session_id)
}

/// Two users for `duration`: the first floods with `flood` prompts at once
/// (each sent again as soon as it ends or is refused), the second sends one
/// prompt after another. What each saw.
pub async fn run_two_users(
    url: &str,
    flood: usize,
    duration: Duration,
) -> anyhow::Result<[UserStats; 2]> {
    let tokens = super::load::tokens();
    let channel = Channel::from_shared(url.to_owned())?.connect().await?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for (user, count) in [(0, flood), (1, 1)] {
        let token = Arc::new(tokens[user].clone());
        let mut client = PracticeServiceClient::new(channel.clone());
        let session_id = session(&mut client, &token).await?;
        for _ in 0..count {
            let (mut client, token) = (client.clone(), token.clone());
            workers.push((
                user,
                tokio::spawn(async move {
                    let (mut seen, mut refused, mut i) = (Vec::new(), 0u64, 0);
                    while started.elapsed() < duration {
                        match one(&mut client, &token, session_id, i).await {
                            Ok((first, _)) => seen.push(first),
                            Err(e) if is_refused(&e) => {
                                refused += 1;
                                // A refused client backs off a little.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(e) => return Err(e),
                        }
                        i += 1;
                    }
                    anyhow::Ok((seen, refused))
                }),
            ));
        }
    }
    let new = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let mut stats = [0, 1].map(|_| UserStats {
        prompts: 0,
        refused: 0,
        first_delta: new(),
    });
    for (user, w) in workers {
        let (seen, refused) = w.await??;
        let s = &mut stats[user];
        s.refused += refused;
        for first in seen {
            s.first_delta.record(first)?;
            s.prompts += 1;
        }
    }
    Ok(stats)
}

fn is_refused(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tonic::Status>()
        .is_some_and(|s| s.code() == tonic::Code::ResourceExhausted)
}

/// `concurrency` users, each with a session of the class, send prompts
/// back to back for `duration`.
pub async fn run(url: &str, concurrency: usize, duration: Duration) -> anyhow::Result<PromptStats> {
    let tokens = super::load::tokens();
    let channel = Channel::from_shared(url.to_owned())?.connect().await?;
    let mut workers = Vec::new();
    let started = Instant::now();
    for w in 0..concurrency {
        let token = tokens[w % tokens.len()].clone();
        let mut client = PracticeServiceClient::new(channel.clone());
        let create = CreateSessionRequest {
            class_id: Some(1),
            title: Some(format!("Prompt bench {w}")),
            ..Default::default()
        };
        let session_id = client
            .create_session(authed(create, &token))
            .await?
            .into_inner()
            .session_id;
        let token = Arc::new(token);
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = 0;
            while started.elapsed() < duration {
                out.push(one(&mut client, &token, session_id, i).await?);
                i += 1;
            }
            anyhow::Ok(out)
        }));
    }
    let new = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let (mut first_delta, mut total) = (new(), new());
    let mut prompts = 0;
    for w in workers {
        for (first, end) in w.await?? {
            first_delta.record(first)?;
            total.record(end)?;
            prompts += 1;
        }
    }
    Ok(PromptStats {
        prompts,
        elapsed: started.elapsed(),
        first_delta,
        total,
    })
}
