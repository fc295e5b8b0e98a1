//! Use cases on domain types, independent of any transport.

pub mod catalog;
pub mod examples;
mod paging;
pub mod practice;
pub mod sessions;
mod tx;

pub use catalog::CatalogService;
pub use examples::ExampleService;
pub use practice::PracticeService;
