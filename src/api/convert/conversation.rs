//! The conversation's events as `practice.v1.PromptEvent`.

use super::response_to_proto;
use chrono::{DateTime, Utc};

use crate::proto::practice::v1::{self as pb, prompt_event::Event};
use crate::service::conversation::PromptEvent;

impl From<PromptEvent> for pb::PromptEvent {
    fn from(e: PromptEvent) -> Self {
        let event = match e {
            PromptEvent::Started {
                session_model_id,
                response_id,
                model_name,
            } => Event::Started(pb::ModelStarted {
                session_model_id,
                response_id,
                model_name,
            }),
            PromptEvent::Delta {
                session_model_id,
                text,
            } => Event::Delta(pb::TextDelta {
                session_model_id,
                text,
            }),
            PromptEvent::Finished(r) => Event::Finished(response_to_proto(r)),
            PromptEvent::Failed(r) => Event::Failed(response_to_proto(r)),
        };
        pb::PromptEvent { event: Some(event) }
    }
}

pub fn usage_to_proto(u: crate::service::usage::UsageReport) -> pb::Usage {
    let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    pb::Usage {
        subject: u.subject,
        day: u.day,
        models: u
            .models
            .into_iter()
            .map(|m| pb::ModelUsage {
                total_tokens: m.prompt_tokens.saturating_add(m.completion_tokens),
                cost_usd: m.cost_micros as f64 / 1e6,
                model_name: m.model_name,
                answers: m.answers,
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
            })
            .collect(),
        total_tokens: u.total_tokens,
        total_cost_usd: u.total_cost_micros as f64 / 1e6,
        limits: Some(pb::UsageLimits {
            tokens_per_day: u.tokens_per_day,
            cost_per_day_usd: u.cost_per_day_micros as f64 / 1e6,
            prompts_per_minute: clamp(u.limits.prompts_per_minute as usize),
            prompts_in_flight: clamp(u.limits.prompts_in_flight),
            models_per_prompt: clamp(u.limits.models_per_prompt),
        }),
    }
}

pub fn stats_to_proto(s: crate::service::stats::ModelStats) -> pb::ModelStats {
    pb::ModelStats {
        class_id: s.class_id,
        since: Some(super::timestamp(s.since)),
        until: Some(super::timestamp(s.until)),
        models: s
            .models
            .into_iter()
            .map(|m| {
                let counts = m.counts.unwrap_or_default();
                let usage = m.usage.unwrap_or_default();
                pb::ModelStat {
                    model_name: m.model_name,
                    answers: counts.answers,
                    completed: counts.completed,
                    failed: counts.failed,
                    wins: m.record.wins,
                    ties: m.record.ties,
                    losses: m.record.losses,
                    score: m.record.score,
                    thumbs_up: counts.thumbs_up,
                    thumbs_down: counts.thumbs_down,
                    median_latency_ms: m.median_latency_ms,
                    median_first_byte_ms: m.median_first_byte_ms,
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                }
            })
            .collect(),
    }
}

/// A window's two ends; `None` where the request leaves one open.
pub type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A stats request's window, as times (a timestamp out of range is a field
/// violation).
pub fn window_of(r: &pb::GetModelStatsRequest) -> Result<Window, crate::error::Error> {
    let time = |field: &str, t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map(|t| {
                DateTime::from_timestamp(t.seconds, t.nanos.clamp(0, 999_999_999) as u32)
                    .ok_or_else(|| crate::error::Error::invalid_field(field, "is out of range"))
            })
            .transpose()
    };
    Ok((time("since", &r.since)?, time("until", &r.until)?))
}
