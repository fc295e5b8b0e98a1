//! Usage as users and teachers read it: a subject's tokens today (UTC), per
//! model, with the limits that apply to it.

use std::sync::Arc;

use super::limits::{
    UsageLimits, class_subject, total_cost, total_tokens, usage_day, user_subject,
};
use crate::domain::{UserId, now_micros};
use crate::error::Error;
use crate::store::{ModelUsage, Store};

/// One subject's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub subject: String,
    pub day: String,
    pub models: Vec<ModelUsage>,
    pub total_tokens: i64,
    pub total_cost_micros: i64,
    /// The subject's daily budgets (0: none).
    pub tokens_per_day: i64,
    pub cost_per_day_micros: i64,
    pub limits: UsageLimits,
}

#[derive(Clone)]
pub struct UsageService {
    store: Arc<dyn Store>,
    limits: UsageLimits,
}

impl UsageService {
    pub fn new(store: Arc<dyn Store>, limits: UsageLimits) -> Self {
        Self { store, limits }
    }

    /// The caller's own usage today.
    pub async fn of_user(&self, user: UserId) -> Result<UsageReport, Error> {
        self.report(
            user_subject(user.get()),
            self.limits.user_tokens_per_day,
            self.limits.user_cost_per_day_micros,
        )
        .await
    }

    /// A class's usage today (for the catalog's admins).
    pub async fn of_class(&self, class_id: i64) -> Result<UsageReport, Error> {
        self.report(class_subject(class_id), self.limits.class_tokens_per_day, 0)
            .await
    }

    async fn report(
        &self,
        subject: String,
        tokens_per_day: i64,
        cost_per_day_micros: i64,
    ) -> Result<UsageReport, Error> {
        let day = usage_day(now_micros());
        let models = self.store.usage(&subject, &day).await?;
        Ok(UsageReport {
            total_tokens: total_tokens(&models),
            total_cost_micros: total_cost(&models),
            cost_per_day_micros,
            subject,
            day,
            models,
            tokens_per_day,
            limits: self.limits,
        })
    }
}
