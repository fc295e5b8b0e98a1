//! Changes to an existing session: the learner renames it, edits its notes,
//! or adjusts its settings; and what a list of sessions is filtered by.

use serde_json::{Map, Value};

use super::rules;
use crate::error::Error;

/// At most this many few-shot examples in one session.
pub const MAX_FEW_SHOT_EXAMPLES: usize = 50;

/// The fields an UpdateSession changes; `None` leaves a field as it is,
/// `Some(None)` clears it. The text rules are the proto's: the request's
/// title and notes take `CreateSessionRequest`'s (`string_or_null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPatch {
    pub title: Option<Option<String>>,
    pub notes: Option<Option<String>>,
}

/// The settings fields an UpdateSessionSettings changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsPatch {
    pub style_preset: Option<String>,
    pub style_params: Option<Map<String, Value>>,
    pub generation_params: Option<Map<String, Value>>,
    /// Replaces the few-shot links, in this order.
    pub few_shot_example_ids: Option<Vec<i64>>,
    pub blind: Option<bool>,
    pub continue_from: Option<String>,
}

impl SettingsPatch {
    /// The rules on the example list (a free-form list, which the proto's
    /// annotations can't describe); which examples may be linked is the use
    /// case's to check, and the preset's rule is the proto's.
    pub fn validate(&self) -> Result<(), Error> {
        let mut v = Vec::new();
        rules::free_form("style_params", self.style_params.as_ref(), &mut v);
        rules::free_form("generation_params", self.generation_params.as_ref(), &mut v);
        if let Some(ids) = &self.few_shot_example_ids {
            rules::distinct_ids("few_shot_example_ids", ids, MAX_FEW_SHOT_EXAMPLES, &mut v);
        }
        rules::finish(v)
    }
}

/// Which of the caller's sessions a list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub class_id: Option<i64>,
    pub project_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_lists_are_distinct_positive_ids() {
        let bad = SettingsPatch {
            few_shot_example_ids: Some(vec![1, 1, 0]),
            ..Default::default()
        };
        let Err(Error::InvalidArgument { violations, .. }) = bad.validate() else {
            panic!("expected a field violation");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["few_shot_example_ids[1]", "few_shot_example_ids[2]"]
        );
    }
}
