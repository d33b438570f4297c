//! The incident's state machine (pure; no database, no GraphQL).

use entity::enums::IncidentState;

use crate::records::lifecycle::Lifecycle;

impl Lifecycle for IncidentState {
    const FIELD: &'static str = "state";

    fn name(self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::Assigned => "ASSIGNED",
            Self::InProgress => "IN_PROGRESS",
            Self::OnHold => "ON_HOLD",
            Self::Resolved => "RESOLVED",
            Self::Closed => "CLOSED",
        }
    }

    /// Resolved -> in progress is a reopening; closed is final.
    fn allowed(self) -> &'static [Self] {
        use IncidentState::*;
        match self {
            New => &[Assigned, InProgress, Resolved],
            Assigned => &[InProgress, OnHold, Resolved],
            InProgress => &[Assigned, OnHold, Resolved],
            OnHold => &[InProgress, Resolved],
            Resolved => &[InProgress, Closed],
            Closed => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use entity::enums::IncidentState::{self, *};

    use crate::{error::AppError, records::lifecycle::check_transition};

    fn refused(from: IncidentState, to: IncidentState) -> String {
        match check_transition("an incident", from, to) {
            Err(AppError::Validation { field, message }) => {
                assert_eq!(field.as_deref(), Some("state"));
                message
            }
            other => panic!("{from:?} -> {to:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn the_service_desk_path_is_allowed() {
        for (from, to) in [
            (New, Assigned),
            (Assigned, InProgress),
            (InProgress, OnHold),
            (OnHold, InProgress),
            (InProgress, Resolved),
            (Resolved, Closed),
        ] {
            assert!(
                check_transition("an incident", from, to).is_ok(),
                "{from:?} -> {to:?}"
            );
        }
    }

    #[test]
    fn a_resolved_incident_can_be_reopened_but_a_closed_one_cannot() {
        assert!(check_transition("an incident", Resolved, InProgress).is_ok());
        assert_eq!(
            refused(Closed, InProgress),
            "an incident cannot move from CLOSED to IN_PROGRESS; allowed from CLOSED: none (CLOSED is final)"
        );
    }

    #[test]
    fn a_refusal_names_the_allowed_moves() {
        assert_eq!(
            refused(New, Closed),
            "an incident cannot move from NEW to CLOSED; allowed from NEW: ASSIGNED, IN_PROGRESS, RESOLVED"
        );
        // Staying put is not a move.
        refused(InProgress, InProgress);
    }
}
