//! Which model serves a class best, for its teachers and the catalog's
//! admins: per model over a time window, answers, failures, thumbs, wins,
//! ties and losses from the learners' choices with a Bradley-Terry score,
//! median latency and time to first text, and tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::limits::usage_day;
use crate::domain::stats::{ChosenTurn, Record, records};
use crate::domain::{UserId, now_micros};
use crate::error::Error;
use crate::store::{AnswerCounts, ModelUsage, Store, Timing};

/// The window when none is given: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

/// One model's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelStat {
    pub model_name: String,
    pub counts: Option<AnswerCounts>,
    pub record: Record,
    pub median_latency_ms: Option<i64>,
    pub median_first_byte_ms: Option<i64>,
    pub usage: Option<ModelUsage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelStats {
    pub class_id: i64,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub models: Vec<ModelStat>,
}

#[derive(Clone)]
pub struct StatsService {
    store: Arc<dyn Store>,
}

/// `[since, until)`, or the last 30 days.
fn window(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let until = until.unwrap_or_else(now_micros);
    let since = since.unwrap_or(until - TimeDelta::days(DEFAULT_DAYS));
    if since >= until {
        return Err(Error::invalid_field("since", "must be before until"));
    }
    Ok((since, until))
}

impl StatsService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// For a teacher of the class: a class the caller is not in reads as a
    /// missing one; a member who doesn't teach it is refused.
    pub async fn for_teacher(
        &self,
        user: UserId,
        class_id: i64,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<ModelStats, Error> {
        match self
            .store
            .class_role(class_id, user.get())
            .await?
            .as_deref()
        {
            None => Err(Error::NotFound(format!("class {class_id} not found"))),
            Some("teacher") => self.of_class(class_id, since, until).await,
            Some(_) => Err(Error::PermissionDenied(format!(
                "only the teachers of class {class_id} see its model statistics"
            ))),
        }
    }

    /// For the catalog's admins.
    pub async fn of_class(
        &self,
        class_id: i64,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<ModelStats, Error> {
        let (since, until) = window(since, until)?;
        let mut models: BTreeMap<String, ModelStat> = BTreeMap::new();
        fn stat<'a>(models: &'a mut BTreeMap<String, ModelStat>, name: &str) -> &'a mut ModelStat {
            models.entry(name.to_owned()).or_insert_with(|| ModelStat {
                model_name: name.to_owned(),
                ..ModelStat::default()
            })
        }
        for counts in self.store.answer_counts(class_id, since, until).await? {
            let name = counts.model_name.clone();
            stat(&mut models, &name).counts = Some(counts);
        }
        let subject = super::limits::class_subject(class_id);
        let used = self
            .store
            .usage_between(&subject, &usage_day(since), &usage_day(until))
            .await?;
        for usage in used {
            let name = usage.model_name.clone();
            stat(&mut models, &name).usage = Some(usage);
        }
        let mut turns: BTreeMap<i64, ChosenTurn> = BTreeMap::new();
        for row in self.store.chosen_turns(class_id, since, until).await? {
            let turn = turns.entry(row.prompt_id).or_insert_with(|| ChosenTurn {
                models: BTreeSet::new(),
                winner: None,
            });
            turn.models.insert(row.model_name);
            if row.outcome == "chosen" {
                turn.winner = row.chosen_model;
            }
        }
        let turns: Vec<ChosenTurn> = turns.into_values().collect();
        for (name, record) in records(&turns) {
            stat(&mut models, &name).record = record;
        }
        for m in models.values_mut() {
            m.median_latency_ms = self
                .store
                .median(class_id, &m.model_name, Timing::Latency, since, until)
                .await?;
            m.median_first_byte_ms = self
                .store
                .median(class_id, &m.model_name, Timing::FirstByte, since, until)
                .await?;
        }
        Ok(ModelStats {
            class_id,
            since,
            until,
            models: models.into_values().collect(),
        })
    }
}
