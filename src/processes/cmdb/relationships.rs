//! Typed relationships between CIs of one tenant, their readable names, and
//! which end depends on which.

use chrono::{DateTime, Utc};
use entity::{
    ci_relationship, configuration_item,
    enums::{CiStatus, RelationshipKind},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait, QueryFilter, Set};

use super::cis::referenced_ci;
use crate::records::{Store, audit, conflict_on_unique, find_visible, now};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
};

/// The readable names of a relationship type: from the source, and from the target.
pub fn relationship_names(kind: RelationshipKind) -> (&'static str, &'static str) {
    match kind {
        RelationshipKind::DependsOn => ("depends on", "used by"),
        RelationshipKind::RunsOn => ("runs on", "runs"),
        RelationshipKind::HostedOn => ("hosted on", "hosts"),
        RelationshipKind::ConnectsTo => ("connects to", "connected from"),
        RelationshipKind::Contains => ("contains", "contained in"),
    }
}

/// `(dependent, dependency)` of an edge: the dependent goes down when the dependency does.
/// For `contains` the contained CI depends on its container; for every other type
/// the source depends on the target.
pub fn dependency_of(kind: RelationshipKind, source: i64, target: i64) -> (i64, i64) {
    match kind {
        RelationshipKind::Contains => (target, source),
        _ => (source, target),
    }
}

/// A relationship by id, or `NOT_FOUND` when it belongs to another tenant.
pub async fn find_relationship<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<ci_relationship::Model> {
    find_visible::<ci_relationship::Entity, _>(db, p, id, "relationship").await
}

/// The edge-level rules shared by the single and the bulk path.
pub(super) fn check_edge(
    source: &configuration_item::Model,
    target: &configuration_item::Model,
    source_field: &str,
    target_field: &str,
) -> AppResult<()> {
    if source.id == target.id {
        return Err(AppError::invalid_field(
            target_field,
            "a configuration item cannot relate to itself",
        ));
    }
    if source.organization_id != target.organization_id {
        return Err(AppError::invalid_field(
            target_field,
            "the configuration items belong to different organizations; relationships join CIs of one organization",
        ));
    }
    for (ci, field) in [(source, source_field), (target, target_field)] {
        if ci.status == CiStatus::Retired {
            return Err(AppError::invalid_field(
                field,
                format!("configuration item {:?} is retired", ci.name),
            ));
        }
    }
    Ok(())
}

pub(super) fn new_edge(
    source: &configuration_item::Model,
    target_id: i64,
    kind: RelationshipKind,
    redundant: bool,
    at: DateTime<Utc>,
) -> ci_relationship::ActiveModel {
    let (dependent, dependency) = dependency_of(kind, source.id, target_id);
    ci_relationship::ActiveModel {
        organization_id: Set(source.organization_id),
        source_id: Set(source.id),
        target_id: Set(target_id),
        kind: Set(kind),
        redundant: Set(redundant),
        dependent_id: Set(dependent),
        dependency_id: Set(dependency),
        created_at: Set(at),
        ..Default::default()
    }
}

pub(super) const DUPLICATE_EDGE: &str = "this relationship already exists";

pub struct NewRelationship {
    pub source_id: i64,
    pub target_id: i64,
    pub kind: RelationshipKind,
    pub redundant: bool,
}

/// Adds a relationship (staff): no self edge, no duplicate, one tenant, no retired end.
pub async fn add_relationship(
    store: &Store,
    p: &Principal,
    input: NewRelationship,
) -> AppResult<ci_relationship::Model> {
    let txn = begin_write(&store.db).await?;
    let source = referenced_ci(&txn, p, input.source_id, "sourceId").await?;
    let target = referenced_ci(&txn, p, input.target_id, "targetId").await?;
    check_edge(&source, &target, "sourceId", "targetId")?;
    let existing = ci_relationship::Entity::find()
        .filter(ci_relationship::Column::SourceId.eq(source.id))
        .filter(ci_relationship::Column::TargetId.eq(target.id))
        .filter(ci_relationship::Column::Kind.eq(input.kind))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(AppError::Conflict(DUPLICATE_EDGE.into()));
    }
    let created = audit::insert(
        &txn,
        p,
        new_edge(&source, target.id, input.kind, input.redundant, now()),
    )
    .await
    .map_err(|e| conflict_on_unique(e, DUPLICATE_EDGE))?;
    txn.commit().await?;
    Ok(created)
}

/// Removes a relationship (staff).
pub async fn remove_relationship(store: &Store, p: &Principal, id: i64) -> AppResult<()> {
    let txn = begin_write(&store.db).await?;
    let edge = find_relationship(&txn, p, id).await?;
    edge.clone().delete(&txn).await?;
    audit::record(&txn, p, "delete", Some(&edge), None).await?;
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(id: i64, organization_id: i64, status: CiStatus) -> configuration_item::Model {
        configuration_item::Model {
            id,
            organization_id,
            class_id: 1,
            name: format!("ci-{id}"),
            name_key: format!("ci-{id}"),
            status,
            environment: entity::enums::CiEnvironment::Production,
            owner_group_id: None,
            attributes: serde_json::json!({}),
            source: None,
            external_id: None,
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn refusal(e: AppError) -> (String, String) {
        match e {
            AppError::Validation {
                field: Some(f),
                message,
            } => (f, message),
            other => panic!("expected a validation error on a field, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_reads_both_ways() {
        assert_eq!(
            relationship_names(RelationshipKind::DependsOn),
            ("depends on", "used by")
        );
        assert_eq!(
            relationship_names(RelationshipKind::RunsOn),
            ("runs on", "runs")
        );
        assert_eq!(
            relationship_names(RelationshipKind::Contains),
            ("contains", "contained in")
        );
    }

    #[test]
    fn the_source_depends_on_the_target_except_for_contains() {
        for kind in [
            RelationshipKind::DependsOn,
            RelationshipKind::RunsOn,
            RelationshipKind::HostedOn,
            RelationshipKind::ConnectsTo,
        ] {
            assert_eq!(dependency_of(kind, 1, 2), (1, 2), "{kind:?}");
        }
        // The rack contains the server: the server goes down with the rack.
        assert_eq!(dependency_of(RelationshipKind::Contains, 1, 2), (2, 1));
    }

    #[test]
    fn an_edge_joins_two_live_cis_of_one_tenant() {
        let app = ci(1, 10, CiStatus::InProduction);
        let db = ci(2, 10, CiStatus::Maintenance);
        assert!(check_edge(&app, &db, "sourceId", "targetId").is_ok());

        let (field, message) = refusal(check_edge(&app, &app, "sourceId", "targetId").unwrap_err());
        assert_eq!(field, "targetId");
        assert_eq!(message, "a configuration item cannot relate to itself");

        let other_tenant = ci(3, 11, CiStatus::InProduction);
        let (field, _) = refusal(check_edge(&app, &other_tenant, "source", "target").unwrap_err());
        assert_eq!(field, "target");

        let retired = ci(4, 10, CiStatus::Retired);
        let (field, message) =
            refusal(check_edge(&retired, &db, "sourceId", "targetId").unwrap_err());
        assert_eq!(field, "sourceId");
        assert_eq!(message, r#"configuration item "ci-4" is retired"#);
        let (field, _) = refusal(check_edge(&app, &retired, "sourceId", "targetId").unwrap_err());
        assert_eq!(field, "targetId");
    }

    #[test]
    fn a_new_edge_records_which_end_depends_on_which() {
        let rack = ci(7, 10, CiStatus::InProduction);
        let edge = new_edge(&rack, 8, RelationshipKind::Contains, false, Utc::now());
        assert_eq!(*edge.organization_id.as_ref(), 10);
        assert_eq!(*edge.dependent_id.as_ref(), 8);
        assert_eq!(*edge.dependency_id.as_ref(), 7);
        let edge = new_edge(&rack, 8, RelationshipKind::HostedOn, true, Utc::now());
        assert_eq!(*edge.dependent_id.as_ref(), 7);
        assert!(*edge.redundant.as_ref());
    }
}
