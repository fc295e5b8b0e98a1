//! One file per proto service: convert, call the use case, convert back.

pub mod practice;

pub use practice::PracticeApi;
