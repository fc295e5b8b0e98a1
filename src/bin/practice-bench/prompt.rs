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

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
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
