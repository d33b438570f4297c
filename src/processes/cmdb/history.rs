//! CIs as they were at a point in time, from the audit trail.

use chrono::{DateTime, Utc};
use entity::{audit_event, configuration_item};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::records::audit;
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
};

/// A CI as it was at `at`, rebuilt from the snapshot of its latest audit event
/// at or before that time. `NOT_FOUND` when it did not exist then, or the
/// caller may not see it (now or then).
pub async fn ci_as_of<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
    at: DateTime<Utc>,
) -> AppResult<configuration_item::Model> {
    let event = audit_event::Entity::find()
        .filter(
            audit_event::Column::RecordType
                .eq(<configuration_item::Model as audit::Audited>::RECORD_TYPE),
        )
        .filter(audit_event::Column::RecordId.eq(id))
        .filter(audit_event::Column::OccurredAt.lte(at))
        .order_by_desc(audit_event::Column::Id)
        .one(db)
        .await?;
    let snapshot = event
        .and_then(|e| e.snapshot)
        .and_then(|s| serde_json::from_value::<configuration_item::Model>(s).ok());
    match snapshot {
        Some(ci) if p.can_see(ci.organization_id) => Ok(ci),
        _ => Err(AppError::not_found("configuration item")),
    }
}
