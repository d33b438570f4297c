//! Records that move through named states: one rule for every process's
//! state machine, and one message that names the moves allowed.

use crate::error::{AppError, AppResult};

/// A state machine: each state's API name and the states it may move to.
pub trait Lifecycle: Copy + PartialEq + 'static {
    /// The input field that carries the state: "state" or "status".
    const FIELD: &'static str;
    /// Whether moving to the same state is accepted (as no move).
    const SAME_IS_NO_MOVE: bool = false;
    /// The state as the API names it: `IN_PROGRESS`.
    fn name(self) -> &'static str;
    /// The states this one may move to.
    fn allowed(self) -> &'static [Self];
}

/// `VALIDATION` on `S::FIELD` when `from -> to` is not a move of the machine,
/// naming the moves that are; `record` with its article: "an incident".
pub fn check_transition<S: Lifecycle>(record: &str, from: S, to: S) -> AppResult<()> {
    let allowed = from.allowed();
    if allowed.contains(&to) || (S::SAME_IS_NO_MOVE && from == to) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|s| s.name()).collect();
    Err(AppError::invalid_field(
        S::FIELD,
        format!(
            "{} cannot move from {} to {}; allowed from {}: {}",
            record,
            from.name(),
            to.name(),
            from.name(),
            if names.is_empty() {
                format!("none ({} is final)", from.name())
            } else {
                names.join(", ")
            }
        ),
    ))
}
