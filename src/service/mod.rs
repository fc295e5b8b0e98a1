//! Use cases on domain types, independent of any transport.

pub mod answers;
pub mod catalog;
mod checkpoints;
pub mod conversation;
pub mod examples;
pub mod joined_deltas;
mod keys;
pub mod leases;
pub mod limits;
mod model_call;
mod model_open;
mod paging;
pub mod practice;
pub mod responses;
pub mod sessions;
pub mod stats;
mod turns;
mod tx;
pub mod usage;

pub use catalog::CatalogService;
pub use conversation::ConversationService;
pub use examples::ExampleService;
pub use practice::PracticeService;
pub use stats::StatsService;
pub use usage::UsageService;

pub use keys::spawn_expiry as spawn_key_expiry;
