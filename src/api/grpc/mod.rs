//! One file per proto service: convert, call the use case, convert back.

pub mod catalog;
pub mod practice;

pub use catalog::CatalogApi;
pub use practice::PracticeApi;
