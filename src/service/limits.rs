//! Per-user usage limits on prompts: how many a user has in flight, how
//! many they start a minute (a token bucket), how many models one prompt
//! may ask, and the tokens a user and a class may spend a day. The first
//! two are counted in this replica's memory (each replica enforces them on
//! its own share of the traffic); the daily budgets are counted in the
//! database, so they hold across replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The limits an operator sets; 0 turns a daily budget off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageLimits {
    pub prompts_in_flight: usize,
    pub prompts_per_minute: u32,
    pub models_per_prompt: usize,
    pub user_tokens_per_day: i64,
    pub class_tokens_per_day: i64,
    /// Millionths of a US dollar a user's answers may cost a day (0: none),
    /// from the models' prices.
    pub user_cost_per_day_micros: i64,
}

impl Default for UsageLimits {
    /// Safe for a small deployment: a user can keep a few chats going and
    /// type fast, and can't spend more than a heavy day's use.
    fn default() -> Self {
        Self {
            prompts_in_flight: 16,
            prompts_per_minute: 120,
            models_per_prompt: 8,
            user_tokens_per_day: 2_000_000,
            class_tokens_per_day: 0,
            user_cost_per_day_micros: 0,
        }
    }
}

/// The most tokens one answer counts against a budget, whatever a
/// provider reports: one absurd report can't end a user's day.
pub const MAX_COUNTED_TOKENS: i64 = 1_000_000;

pub struct Limiter {
    limits: UsageLimits,
    users: Mutex<HashMap<i64, UserState>>,
}

struct UserState {
    in_flight: usize,
    /// Prompts that may start now (the bucket), refilled continuously.
    tokens: f64,
    refilled: Instant,
}

/// A prompt counted in flight until every model call holding it ends.
pub struct PromptPermit {
    limiter: Arc<Limiter>,
    user: i64,
}

impl Drop for PromptPermit {
    fn drop(&mut self) {
        let mut users = self.limiter.users.lock().expect("limiter lock");
        if let Some(state) = users.get_mut(&self.user) {
            state.in_flight -= 1;
        }
    }
}

impl PromptPermit {
    /// The prompt was refused after all: its minute's token comes back.
    pub fn refund(&self) {
        let mut users = self.limiter.users.lock().expect("limiter lock");
        if let Some(state) = users.get_mut(&self.user) {
            state.tokens = (state.tokens + 1.0).min(self.limiter.burst());
        }
    }
}

/// Users tracked before idle ones are forgotten.
const FORGET_ABOVE: usize = 10_000;

impl Limiter {
    pub fn new(limits: UsageLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            users: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> &UsageLimits {
        &self.limits
    }

    fn burst(&self) -> f64 {
        f64::from(self.limits.prompts_per_minute.max(1))
    }

    /// Checks that a prompt asking `models` models may start now for
    /// `user`, and counts it.
    pub fn admit(self: &Arc<Self>, user: i64, models: usize) -> Result<PromptPermit, Error> {
        let subject = user_subject(user);
        if models > self.limits.models_per_prompt {
            return Err(Error::OverLimit {
                message: format!(
                    "a prompt may ask at most {} models; ask fewer with session_model_ids",
                    self.limits.models_per_prompt
                ),
                subject,
                limit: "models per prompt".into(),
                retry_after: None,
            });
        }
        let now = Instant::now();
        let burst = self.burst();
        let per_second = burst / 60.0;
        let mut users = self.users.lock().expect("limiter lock");
        if users.len() > FORGET_ABOVE {
            // Idle users with a full bucket carry no state worth keeping.
            users.retain(|_, s| {
                s.in_flight > 0
                    || s.tokens + now.duration_since(s.refilled).as_secs_f64() * per_second < burst
            });
        }
        let state = users.entry(user).or_insert(UserState {
            in_flight: 0,
            tokens: burst,
            refilled: now,
        });
        state.tokens = (state.tokens
            + now.duration_since(state.refilled).as_secs_f64() * per_second)
            .min(burst);
        state.refilled = now;
        if state.in_flight >= self.limits.prompts_in_flight {
            return Err(Error::OverLimit {
                message: format!(
                    "you have {} prompts being answered, the most at once; send this one when one is done",
                    state.in_flight
                ),
                subject,
                limit: "prompts in flight".into(),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        if state.tokens < 1.0 {
            let wait = (1.0 - state.tokens) / per_second;
            return Err(Error::OverLimit {
                message: format!(
                    "more than {} prompts a minute; try again shortly",
                    self.limits.prompts_per_minute
                ),
                subject,
                limit: "prompts per minute".into(),
                retry_after: Some(Duration::from_secs_f64(wait)),
            });
        }
        state.tokens -= 1.0;
        state.in_flight += 1;
        Ok(PromptPermit {
            limiter: self.clone(),
            user,
        })
    }
}

/// Whose usage a user's answers count in.
pub fn user_subject(user: i64) -> String {
    format!("user:{user}")
}

/// Whose usage the answers in a class's sessions count in.
pub fn class_subject(class_id: i64) -> String {
    format!("class:{class_id}")
}

/// The UTC day budgets count in, as `YYYY-MM-DD`.
pub fn usage_day(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y-%m-%d").to_string()
}

/// How long until the next UTC day, when daily budgets renew.
pub fn until_next_day(now: chrono::DateTime<chrono::Utc>) -> Duration {
    let tomorrow = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (tomorrow - now).to_std().unwrap_or(Duration::from_secs(1))
}

/// The whole of a subject's usage of a day, in tokens.
pub fn total_tokens(usage: &[crate::store::ModelUsage]) -> i64 {
    usage.iter().fold(0i64, |sum, m| {
        sum.saturating_add(m.prompt_tokens)
            .saturating_add(m.completion_tokens)
    })
}

/// What a subject's usage of a day cost, in millionths of a US dollar.
pub fn total_cost(usage: &[crate::store::ModelUsage]) -> i64 {
    usage
        .iter()
        .fold(0i64, |sum, m| sum.saturating_add(m.cost_micros))
}

/// Refuses a prompt when a daily cost budget (millionths of a US dollar;
/// 0: none) is spent.
pub fn check_cost(
    subject: &str,
    spent: i64,
    budget: i64,
    until_midnight: Duration,
) -> Result<(), Error> {
    if budget > 0 && spent >= budget {
        return Err(Error::OverLimit {
            message: format!(
                "{subject} has spent its US${:.2} for today (UTC); the budget renews at midnight",
                budget as f64 / 1e6
            ),
            subject: subject.to_owned(),
            limit: "cost per day".into(),
            retry_after: Some(until_midnight),
        });
    }
    Ok(())
}

/// Refuses a prompt when a daily budget is spent: `used` tokens of
/// `budget` (0: no budget) for `subject`; `until_midnight` is the wait.
pub fn check_budget(
    subject: &str,
    used: i64,
    budget: i64,
    until_midnight: Duration,
) -> Result<(), Error> {
    if budget > 0 && used >= budget {
        return Err(Error::OverLimit {
            message: format!(
                "{subject} has used {used} of its {budget} tokens for today (UTC); the budget renews at midnight"
            ),
            subject: subject.to_owned(),
            limit: "tokens per day".into(),
            retry_after: Some(until_midnight),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(in_flight: usize, per_minute: u32) -> UsageLimits {
        UsageLimits {
            prompts_in_flight: in_flight,
            prompts_per_minute: per_minute,
            models_per_prompt: 3,
            ..UsageLimits::default()
        }
    }

    fn limit_of(e: Error) -> (String, Option<Duration>) {
        match e {
            Error::OverLimit {
                limit, retry_after, ..
            } => (limit, retry_after),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_flight_prompts_are_counted_per_user_until_dropped() {
        let limiter = Limiter::new(limits(2, 100));
        let a = limiter.admit(1, 1).unwrap();
        let _b = limiter.admit(1, 1).unwrap();
        let (limit, _) = limit_of(limiter.admit(1, 1).err().unwrap());
        assert_eq!(limit, "prompts in flight");
        assert!(limiter.admit(2, 1).is_ok(), "another user is not held back");
        drop(a);
        assert!(limiter.admit(1, 1).is_ok());
    }

    #[test]
    fn the_minute_bucket_empties_and_says_how_long_to_wait() {
        let limiter = Limiter::new(limits(100, 3));
        let permits: Vec<_> = (0..3).map(|_| limiter.admit(1, 1).unwrap()).collect();
        let (limit, wait) = limit_of(limiter.admit(1, 1).err().unwrap());
        assert_eq!(limit, "prompts per minute");
        let wait = wait.unwrap();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        permits[0].refund();
        assert!(limiter.admit(1, 1).is_ok());
    }

    #[test]
    fn days_are_utc_and_renew_at_midnight() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-05T23:59:30Z")
            .unwrap()
            .to_utc();
        assert_eq!(usage_day(t), "2026-12-05");
        assert_eq!(until_next_day(t), Duration::from_secs(30));
    }

    #[test]
    fn fan_out_and_budgets() {
        let limiter = Limiter::new(limits(10, 10));
        let (limit, wait) = limit_of(limiter.admit(1, 4).err().unwrap());
        assert_eq!((limit.as_str(), wait), ("models per prompt", None));
        assert!(check_budget("user:1", 99, 100, Duration::from_secs(5)).is_ok());
        assert!(check_budget("user:1", 100, 0, Duration::from_secs(5)).is_ok());
        let (limit, wait) =
            limit_of(check_budget("user:1", 100, 100, Duration::from_secs(5)).unwrap_err());
        assert_eq!(
            (limit.as_str(), wait),
            ("tokens per day", Some(Duration::from_secs(5)))
        );
    }
}
