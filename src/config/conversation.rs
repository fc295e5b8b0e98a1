//! How prompts are answered: the models, the prompt deadline, what a model
//! is shown of earlier turns, replica leases and the per-user limits.

use std::path::PathBuf;
use std::time::Duration;

use super::{Vars, bad};
use crate::error::Error;

/// How prompts are answered.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// `PRACTICE_MODELS_FILE`; without one the development model answers.
    pub models_file: Option<PathBuf>,
    /// The deadline of a prompt (all its models), unless `grpc-timeout` is
    /// smaller: answers take longer than other requests.
    pub prompt_timeout: Duration,
    /// How many characters of a model's earlier turns it is shown at most.
    pub history_chars: usize,
    /// The development model's pause between words.
    pub dev_word_delay: Duration,
    /// `PRACTICE_DEV_MODEL_MAX_CONCURRENCY`: answers the development model
    /// gives at once (0: no limit), to try fair sharing without a provider.
    pub dev_max_concurrency: usize,
    /// `PRACTICE_LEASE_MS`: how long a replica's lease on its answers lasts
    /// unrenewed; an answer of a replica that died reads `interrupted`
    /// about this long after.
    pub lease: Duration,
    /// Per-user limits on prompts (`PRACTICE_USER_*`, `PRACTICE_CLASS_*`,
    /// `PRACTICE_MODELS_PER_PROMPT`).
    pub usage: crate::service::limits::UsageLimits,
}

impl ConversationConfig {
    pub(super) fn read(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, Error> {
        Ok(ConversationConfig {
            models_file: vars.get("PRACTICE_MODELS_FILE").map(PathBuf::from),
            prompt_timeout: vars.ms("PRACTICE_PROMPT_TIMEOUT_MS", 120_000)?,
            history_chars: vars.number("PRACTICE_HISTORY_CHARS", 24_000)? as usize,
            dev_word_delay: vars.ms("PRACTICE_DEV_MODEL_DELAY_MS", 30)?,
            dev_max_concurrency: vars.number("PRACTICE_DEV_MODEL_MAX_CONCURRENCY", 0)? as usize,
            lease: vars
                .ms("PRACTICE_LEASE_MS", 15_000)?
                .max(Duration::from_millis(300)),
            usage: {
                let d = crate::service::limits::UsageLimits::default();
                crate::service::limits::UsageLimits {
                    prompts_in_flight: vars
                        .number(
                            "PRACTICE_USER_PROMPTS_IN_FLIGHT",
                            d.prompts_in_flight as u64,
                        )?
                        .max(1) as usize,
                    prompts_per_minute: vars
                        .number(
                            "PRACTICE_USER_PROMPTS_PER_MINUTE",
                            d.prompts_per_minute.into(),
                        )?
                        .clamp(1, 1_000_000) as u32,
                    models_per_prompt: vars
                        .number("PRACTICE_MODELS_PER_PROMPT", d.models_per_prompt as u64)?
                        .max(1) as usize,
                    user_tokens_per_day: vars
                        .number("PRACTICE_USER_TOKENS_PER_DAY", d.user_tokens_per_day as u64)?
                        .min(i64::MAX as u64) as i64,
                    class_tokens_per_day: vars
                        .number(
                            "PRACTICE_CLASS_TOKENS_PER_DAY",
                            d.class_tokens_per_day as u64,
                        )?
                        .min(i64::MAX as u64) as i64,
                    user_cost_per_day_micros: match vars.get("PRACTICE_USER_COST_PER_DAY_USD") {
                        None => d.user_cost_per_day_micros,
                        Some(v) => match v.parse::<f64>() {
                            Ok(usd) if usd.is_finite() && usd >= 0.0 => {
                                (usd * 1e6).round().min(i64::MAX as f64) as i64
                            }
                            _ => {
                                return Err(bad(
                                    "PRACTICE_USER_COST_PER_DAY_USD",
                                    format!("{v:?} is not an amount of US dollars"),
                                ));
                            }
                        },
                    },
                }
            },
        })
    }
}
