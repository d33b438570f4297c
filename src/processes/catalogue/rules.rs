//! The catalogue's lifecycle (pure; no database, no GraphQL).

use entity::enums::LifecycleStatus;

use crate::records::lifecycle::Lifecycle;

impl Lifecycle for LifecycleStatus {
    const FIELD: &'static str = "status";
    const SAME_IS_NO_MOVE: bool = true;

    fn name(self) -> &'static str {
        match self {
            Self::Pipeline => "PIPELINE",
            Self::Live => "LIVE",
            Self::Retired => "RETIRED",
        }
    }

    /// pipeline -> live -> retired, and pipeline -> retired.
    fn allowed(self) -> &'static [Self] {
        use LifecycleStatus::*;
        match self {
            Pipeline => &[Live, Retired],
            Live => &[Retired],
            Retired => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use entity::enums::LifecycleStatus::*;

    use crate::records::lifecycle::check_transition;

    #[test]
    fn services_go_live_then_retire_and_never_come_back() {
        assert!(check_transition("a service", Pipeline, Live).is_ok());
        assert!(check_transition("a service", Pipeline, Retired).is_ok());
        assert!(check_transition("a service", Live, Retired).is_ok());
        assert!(check_transition("a service", Live, Live).is_ok(), "no move");
        let back = check_transition("a service", Live, Pipeline).unwrap_err();
        assert_eq!(
            back.message(),
            "a service cannot move from LIVE to PIPELINE; allowed from LIVE: RETIRED"
        );
        let revive = check_transition("a service offering", Retired, Live).unwrap_err();
        assert!(
            revive.message().contains("none (RETIRED is final)"),
            "{}",
            revive.message()
        );
    }
}
