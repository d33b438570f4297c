//! The problem process's event: `problemChanged`.

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::events::Relay;

/// What happened to a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProblemChangeKind {
    Created,
    Updated,
    StateChanged,
    Commented,
    IncidentLinked,
    IncidentUnlinked,
}

/// A committed change to a problem, published after commit.
#[derive(Debug, Clone)]
pub struct ProblemChanged {
    pub kind: ProblemChangeKind,
    pub problem: entity::problem::Model,
    pub changed_fields: Vec<String>,
    /// The timeline entry added, for `Commented`.
    pub note: Option<entity::problem_note::Model>,
    /// The incident linked or unlinked, for `IncidentLinked`/`IncidentUnlinked`.
    pub incident_id: Option<i64>,
    /// The customers of its linked incidents when it changed: besides the
    /// staff of its organization, they are who may see the problem.
    pub incident_customers: Vec<i64>,
}

impl ProblemChanged {
    /// Whether `p` may hear of it: the rule of [`super::store::can_see_problem`].
    pub fn visible_to(&self, p: &crate::auth::Principal) -> bool {
        (p.is_staff() && p.can_see(self.problem.organization_id))
            || self.incident_customers.iter().any(|c| p.can_see(*c))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ProblemRef {
    kind: ProblemChangeKind,
    id: i64,
    changed_fields: Vec<String>,
    note_id: Option<i64>,
    incident_id: Option<i64>,
    incident_customers: Vec<i64>,
}

impl Relay for ProblemChanged {
    type Wire = ProblemRef;
    fn to_wire(&self) -> ProblemRef {
        ProblemRef {
            kind: self.kind,
            id: self.problem.id,
            changed_fields: self.changed_fields.clone(),
            note_id: self.note.as_ref().map(|n| n.id),
            incident_id: self.incident_id,
            incident_customers: self.incident_customers.clone(),
        }
    }
    async fn from_wire(db: &DatabaseConnection, w: ProblemRef) -> Result<Option<Self>, DbErr> {
        let note = match w.note_id {
            Some(n) => entity::problem_note::Entity::find_by_id(n).one(db).await?,
            None => None,
        };
        Ok(entity::problem::Entity::find_by_id(w.id)
            .one(db)
            .await?
            .map(|problem| Self {
                kind: w.kind,
                problem,
                changed_fields: w.changed_fields,
                note,
                incident_id: w.incident_id,
                incident_customers: w.incident_customers,
            }))
    }
}
