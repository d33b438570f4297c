//! The problem state machine, pure: which moves are legal, and what a move
//! records. No database, no GraphQL.

use chrono::{DateTime, Utc};
use entity::{enums::ProblemState, problem};

use crate::{
    error::{AppError, AppResult},
    records::lifecycle::{self, Lifecycle},
};

impl Lifecycle for ProblemState {
    const FIELD: &'static str = "state";

    fn name(self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::UnderInvestigation => "UNDER_INVESTIGATION",
            Self::KnownError => "KNOWN_ERROR",
            Self::Resolved => "RESOLVED",
            Self::Closed => "CLOSED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Under investigation may go straight to resolved (a cause found and
    /// removed needs no known-error record); resolved may go back under
    /// investigation (the fix did not hold); any open state may be
    /// cancelled. Closed and cancelled are final.
    fn allowed(self) -> &'static [Self] {
        use ProblemState::*;
        match self {
            New => &[UnderInvestigation, Cancelled],
            UnderInvestigation => &[KnownError, Resolved, Cancelled],
            KnownError => &[Resolved, Cancelled],
            Resolved => &[Closed, UnderInvestigation],
            Closed | Cancelled => &[],
        }
    }
}

/// Open: still being worked on (new, under investigation, known error).
pub fn is_open(s: ProblemState) -> bool {
    matches!(
        s,
        ProblemState::New | ProblemState::UnderInvestigation | ProblemState::KnownError
    )
}

/// `VALIDATION` on `state` naming the allowed moves, unless `from -> to` is legal.
pub fn check_transition(from: ProblemState, to: ProblemState) -> AppResult<()> {
    lifecycle::check_transition("a problem", from, to)
}

/// What the move needs from the problem as it will be: a known error
/// documents a root cause or a workaround; a resolution is required to resolve.
pub fn check_requirements(next: &problem::Model) -> AppResult<()> {
    match next.state {
        ProblemState::KnownError if next.root_cause.is_none() && next.workaround.is_none() => {
            Err(AppError::invalid_field(
                "workaround",
                "a known error documents a workaround or a root cause",
            ))
        }
        ProblemState::Resolved if next.resolution.is_none() => Err(AppError::invalid_field(
            "resolution",
            "resolving a problem needs a resolution",
        )),
        _ => Ok(()),
    }
}

/// `before` moved to `to` at `at` (the move is legal): the time of the move
/// is recorded, and going back under investigation forgets the resolution.
pub fn moved(before: &problem::Model, to: ProblemState, at: DateTime<Utc>) -> problem::Model {
    use ProblemState::*;
    let mut next = before.clone();
    next.state = to;
    match to {
        KnownError => next.known_error_at = Some(at),
        Resolved => next.resolved_at = Some(at),
        Closed | Cancelled => next.closed_at = Some(at),
        New | UnderInvestigation => {}
    }
    if before.state == Resolved && to == UnderInvestigation {
        next.resolution = None;
        next.resolved_at = None;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProblemState::*;

    fn problem(state: ProblemState) -> problem::Model {
        let at = chrono::Utc::now();
        problem::Model {
            id: 1,
            organization_id: 1,
            number: "PRB-000001".into(),
            title: "t".into(),
            description: None,
            symptoms: None,
            impact: 2,
            urgency: 2,
            priority: entity::enums::Priority::P3,
            state,
            service_id: None,
            assignment_group_id: None,
            assignee_id: None,
            root_cause: None,
            workaround: None,
            resolution: None,
            reporter_subject: "a".into(),
            known_error_at: None,
            resolved_at: None,
            closed_at: None,
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn the_lifecycle_moves_forward_and_any_open_state_cancels() {
        for (from, to) in [
            (New, UnderInvestigation),
            (UnderInvestigation, KnownError),
            (KnownError, Resolved),
            (Resolved, Closed),
            (UnderInvestigation, Resolved),
            (Resolved, UnderInvestigation),
        ] {
            assert!(check_transition(from, to).is_ok(), "{from:?} -> {to:?}");
        }
        for from in [New, UnderInvestigation, KnownError] {
            assert!(is_open(from));
            assert!(check_transition(from, Cancelled).is_ok());
        }
        for from in [Resolved, Closed, Cancelled] {
            assert!(!is_open(from));
            assert!(check_transition(from, Cancelled).is_err());
        }
    }

    #[test]
    fn an_illegal_move_names_the_allowed_ones() {
        let e = check_transition(New, Resolved).unwrap_err();
        assert_eq!(
            e.message(),
            "a problem cannot move from NEW to RESOLVED; allowed from NEW: UNDER_INVESTIGATION, CANCELLED"
        );
        let e = check_transition(Closed, New).unwrap_err();
        assert!(
            e.message().ends_with("none (CLOSED is final)"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn resolving_needs_a_resolution_and_a_known_error_a_workaround_or_cause() {
        let mut p = problem(Resolved);
        assert!(check_requirements(&p).is_err());
        p.resolution = Some("patched".into());
        assert!(check_requirements(&p).is_ok());
        let mut k = problem(KnownError);
        assert!(check_requirements(&k).is_err());
        k.root_cause = Some("leak".into());
        assert!(check_requirements(&k).is_ok());
    }

    #[test]
    fn reopening_forgets_the_resolution() {
        let at = chrono::Utc::now();
        let mut p = moved(&problem(UnderInvestigation), Resolved, at);
        p.resolution = Some("patched".into());
        assert_eq!(p.resolved_at, Some(at));
        let back = moved(&p, UnderInvestigation, at);
        assert_eq!(back.resolution, None);
        assert_eq!(back.resolved_at, None);
        assert_eq!(moved(&p, Closed, at).closed_at, Some(at));
    }
}
