//! Use cases on domain types, independent of any transport.

pub mod practice;

pub use practice::PracticeService;
