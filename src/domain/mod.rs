//! Entities and validated values. No transport or database types here.

pub mod catalog;
pub mod conversation;
pub mod generation;
pub mod rules;
pub mod session;
pub mod session_edit;
pub mod stats;
pub mod user;

pub use catalog::{
    Agent, Class, ClassMember, ClassModel, Example, ExamplePatch, Knowledge, NewExample, Project,
};
pub use session::{FewShotLink, NewSession, Session, SessionModel, Settings};
pub use session_edit::{SessionFilter, SessionPatch, SettingsPatch};
pub use user::{IdempotencyKey, UserId};

use chrono::{DateTime, Utc};

/// Now, truncated to microseconds: both databases keep microseconds, so a
/// created session reads back with exactly the times it was answered with.
pub fn now_micros() -> DateTime<Utc> {
    let micros = Utc::now().timestamp_micros();
    DateTime::from_timestamp_micros(micros).expect("current time is in range")
}

/// Times in snapshots are RFC 3339 in UTC with `Z`, like everywhere else.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
