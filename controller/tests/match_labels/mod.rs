//! Equality-based label selector for allocator tests (the controller uses the config model's).

use ferrolb_controller::allocator::{LabelMatcher, Labels};

/// Matches labels holding every given key with the given value.
#[derive(Debug)]
pub struct MatchLabels(pub Labels);

impl LabelMatcher for MatchLabels {
    fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}
