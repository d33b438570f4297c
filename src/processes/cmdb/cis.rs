//! Configuration items: their tenant scope, external identity, lifecycle
//! (retired is final and takes the CI out of the graph) and the `ciChanged` events.

use entity::{
    ci_relationship, configuration_item,
    enums::{CiEnvironment, CiStatus},
    organization, service_configuration_item, support_group,
};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, ModelTrait, QueryFilter, Set};
use serde_json::Value;

use super::attributes::{class_schema, validate_attributes};
use super::classes::{class_by_code, find_class};
use crate::records::{
    Store, audit, check_version, clean_name, clean_text, conflict_on_unique, ensure_free,
    find_visible, now, save_versioned,
};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
    events::{ChangeKind, DomainEvent},
    processes::cmdb::CiChanged,
};

/// The CIs a principal may see: those of its organizations.
pub fn ci_visibility(p: &Principal) -> Condition {
    crate::records::scope_to(p, configuration_item::Column::OrganizationId)
}

/// A CI by id, or `NOT_FOUND` when it does not exist or belongs to another tenant.
pub async fn find_ci<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<configuration_item::Model> {
    find_visible::<configuration_item::Entity, _>(db, p, id, "configuration item").await
}

/// A CI named in an input (`field`): missing or invisible is a `VALIDATION` error on that field.
pub(super) async fn referenced_ci<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
    field: &str,
) -> AppResult<configuration_item::Model> {
    find_ci(db, p, id)
        .await
        .map_err(|_| AppError::invalid_field(field, "configuration item not found"))
}

/// The tenant of new CIs: the one asked for, else the caller's own; one the
/// caller may not see is answered as missing.
pub(super) fn tenant_of(p: &Principal, requested: Option<i64>) -> AppResult<i64> {
    let org = requested.unwrap_or(p.organization_id);
    if p.can_see(org) {
        Ok(org)
    } else {
        Err(AppError::invalid_field(
            "organizationId",
            "organization not found",
        ))
    }
}

/// The tenant of new CIs must exist.
pub(super) async fn check_tenant<C: ConnectionTrait>(db: &C, org: i64) -> AppResult<()> {
    organization::Entity::find_by_id(org)
        .one(db)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    Ok(())
}

/// The status a new CI starts in: in production unless given; never retired.
pub(super) fn initial_status(status: Option<CiStatus>) -> AppResult<CiStatus> {
    match status.unwrap_or(CiStatus::InProduction) {
        CiStatus::Retired => Err(AppError::invalid_field(
            "status",
            "a new configuration item cannot start retired",
        )),
        status => Ok(status),
    }
}

/// Legal lifecycle moves: any non-retired status to any other; retired is final.
pub(super) fn check_ci_transition(from: CiStatus, to: CiStatus) -> AppResult<()> {
    if from == CiStatus::Retired && to != CiStatus::Retired {
        return Err(AppError::invalid_field(
            "status",
            "a retired configuration item cannot change status (retired is final)",
        ));
    }
    Ok(())
}

pub(super) fn clean_identity(
    source: Option<String>,
    external_id: Option<String>,
) -> AppResult<(Option<String>, Option<String>)> {
    let source = clean_text("source", source, 64)?;
    let external_id = clean_text("externalId", external_id, 200)?;
    match (&source, &external_id) {
        (Some(_), None) => Err(AppError::invalid_field(
            "externalId",
            "externalId is required with source",
        )),
        (None, Some(_)) => Err(AppError::invalid_field(
            "source",
            "source is required with externalId",
        )),
        _ => Ok((source, external_id)),
    }
}

/// The owner group must exist in an organization the caller may see (another tenant's looks missing).
async fn check_owner_group<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    group: Option<i64>,
) -> AppResult<()> {
    if let Some(g) = group
        && !support_group::Entity::find_by_id(g)
            .one(db)
            .await?
            .is_some_and(|g| p.can_see(g.organization_id))
    {
        return Err(AppError::invalid_field(
            "ownerGroupId",
            "support group not found",
        ));
    }
    Ok(())
}

/// `CONFLICT` when another CI of the tenant has this source and external id.
async fn ensure_free_identity<C: ConnectionTrait>(
    db: &C,
    org: i64,
    source: &Option<String>,
    external_id: &Option<String>,
    except: Option<i64>,
) -> AppResult<()> {
    let (Some(source), Some(external_id)) = (source, external_id) else {
        return Ok(());
    };
    let clash = Condition::all()
        .add(configuration_item::Column::OrganizationId.eq(org))
        .add(configuration_item::Column::Source.eq(source))
        .add(configuration_item::Column::ExternalId.eq(external_id));
    ensure_free::<configuration_item::Entity, _>(db, clash, except, |_| {
        format!(
            "a configuration item with source {source:?} and externalId {external_id:?} already exists in this organization"
        )
    })
    .await
}

pub(super) const IDENTITY_CLASH: &str =
    "a configuration item with this source and externalId already exists in this organization";

pub(super) fn publish(
    store: &Store,
    kind: ChangeKind,
    ci: &configuration_item::Model,
    changed: Vec<String>,
) {
    store
        .events
        .publish(DomainEvent::ConfigurationItemChanged(CiChanged {
            kind,
            ci: ci.clone(),
            changed_fields: changed,
        }));
}

pub struct NewCi {
    pub organization_id: Option<i64>,
    pub class_code: String,
    pub name: String,
    pub status: Option<CiStatus>,
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<i64>,
    pub attributes: Option<Value>,
    pub source: Option<String>,
    pub external_id: Option<String>,
}

/// Creates a CI (staff), its attributes validated against its class.
pub async fn create_ci(
    store: &Store,
    p: &Principal,
    input: NewCi,
) -> AppResult<configuration_item::Model> {
    let organization_id = tenant_of(p, input.organization_id)?;
    let (name, name_key) = clean_name("name", &input.name, 200)?;
    let (source, external_id) = clean_identity(input.source, input.external_id)?;
    let status = initial_status(input.status)?;
    let txn = begin_write(&store.db).await?;
    check_tenant(&txn, organization_id).await?;
    let class = class_by_code(&txn, &input.class_code).await?;
    let attributes = validate_attributes(&class, &class_schema(&class), input.attributes)?;
    check_owner_group(&txn, p, input.owner_group_id).await?;
    ensure_free_identity(&txn, organization_id, &source, &external_id, None).await?;
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        configuration_item::ActiveModel {
            organization_id: Set(organization_id),
            class_id: Set(class.id),
            name: Set(name),
            name_key: Set(name_key),
            status: Set(status),
            environment: Set(input.environment.unwrap_or(CiEnvironment::Production)),
            owner_group_id: Set(input.owner_group_id),
            attributes: Set(attributes),
            source: Set(source),
            external_id: Set(external_id),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, IDENTITY_CLASH))?;
    txn.commit().await?;
    publish(store, ChangeKind::Created, &created, Vec::new());
    Ok(created)
}

pub struct CiPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub class_code: Option<String>,
    pub status: Option<CiStatus>,
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<Option<i64>>,
    /// Replaces all attributes (validated against the class, new or current).
    pub attributes: Option<Value>,
    pub source: Option<Option<String>>,
    pub external_id: Option<Option<String>>,
}

impl CiPatch {
    pub fn retire(id: i64, version: i32) -> Self {
        Self {
            id,
            version,
            name: None,
            class_code: None,
            status: Some(CiStatus::Retired),
            environment: None,
            owner_group_id: None,
            attributes: None,
            source: None,
            external_id: None,
        }
    }
}

/// Updates a CI (staff) with a version check. Retiring it removes its
/// relationships and service links (each audited): a retired CI leaves the graph.
pub async fn update_ci(
    store: &Store,
    p: &Principal,
    input: CiPatch,
) -> AppResult<configuration_item::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_ci(&txn, p, input.id).await?;
    check_version("configuration item", input.version, before.version)?;
    if before.status == CiStatus::Retired && input.status != Some(CiStatus::Retired) {
        return Err(AppError::invalid_field(
            "status",
            "a retired configuration item cannot be changed",
        ));
    }
    let mut next = before.clone();
    if let Some(name) = &input.name {
        (next.name, next.name_key) = clean_name("name", name, 200)?;
    }
    let class = match &input.class_code {
        Some(code) => class_by_code(&txn, code).await?,
        None => find_class(&txn, before.class_id).await?,
    };
    next.class_id = class.id;
    if input.attributes.is_some() || input.class_code.is_some() {
        let given = input
            .attributes
            .clone()
            .unwrap_or_else(|| before.attributes.clone());
        next.attributes = validate_attributes(&class, &class_schema(&class), Some(given))?;
    }
    if let Some(status) = input.status {
        check_ci_transition(before.status, status)?;
        next.status = status;
    }
    crate::records::patch(&mut next.environment, input.environment);
    if let Some(group) = input.owner_group_id {
        check_owner_group(&txn, p, group).await?;
        next.owner_group_id = group;
    }
    if input.source.is_some() || input.external_id.is_some() {
        (next.source, next.external_id) = clean_identity(
            input.source.unwrap_or(before.source.clone()),
            input.external_id.unwrap_or(before.external_id.clone()),
        )?;
        ensure_free_identity(
            &txn,
            before.organization_id,
            &next.source,
            &next.external_id,
            Some(before.id),
        )
        .await?;
    }
    let retiring = before.status != CiStatus::Retired && next.status == CiStatus::Retired;
    let updated = save_versioned(&txn, p, &before, next)
        .await
        .map_err(|e| conflict_on_unique(e, IDENTITY_CLASH))?;
    if retiring {
        detach(&txn, p, before.id).await?;
    }
    txn.commit().await?;
    if updated != before {
        let kind = if retiring {
            ChangeKind::Retired
        } else {
            ChangeKind::Updated
        };
        publish(
            store,
            kind,
            &updated,
            audit::changed_fields(&before, &updated),
        );
    }
    Ok(updated)
}

/// Removes a CI's relationships and service links, with a `delete` audit event each.
pub(super) async fn detach<C: ConnectionTrait>(db: &C, p: &Principal, ci_id: i64) -> AppResult<()> {
    let edges = ci_relationship::Entity::find()
        .filter(
            Condition::any()
                .add(ci_relationship::Column::SourceId.eq(ci_id))
                .add(ci_relationship::Column::TargetId.eq(ci_id)),
        )
        .all(db)
        .await?;
    for edge in edges {
        edge.clone().delete(db).await?;
        audit::record(db, p, "delete", Some(&edge), None).await?;
    }
    let links = service_configuration_item::Entity::find()
        .filter(service_configuration_item::Column::CiId.eq(ci_id))
        .all(db)
        .await?;
    for link in links {
        link.clone().delete(db).await?;
        audit::record(db, p, "delete", Some(&link), None).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: AppError) -> String {
        match e {
            AppError::Validation { field: Some(f), .. } => f,
            other => panic!("expected a validation error on a field, got {other:?}"),
        }
    }

    #[test]
    fn retired_is_final() {
        use CiStatus::*;
        for to in [Planned, Ordered, InProduction, Maintenance] {
            assert_eq!(
                field(check_ci_transition(Retired, to).unwrap_err()),
                "status"
            );
        }
        assert!(check_ci_transition(Retired, Retired).is_ok());
        for from in [Planned, Ordered, InProduction, Maintenance] {
            for to in [Planned, Ordered, InProduction, Maintenance, Retired] {
                assert!(check_ci_transition(from, to).is_ok(), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_new_ci_starts_in_production_unless_told_and_never_retired() {
        assert_eq!(initial_status(None).unwrap(), CiStatus::InProduction);
        assert_eq!(
            initial_status(Some(CiStatus::Planned)).unwrap(),
            CiStatus::Planned
        );
        assert_eq!(
            field(initial_status(Some(CiStatus::Retired)).unwrap_err()),
            "status"
        );
    }

    #[test]
    fn source_and_external_id_come_together() {
        assert_eq!(clean_identity(None, None).unwrap(), (None, None));
        assert_eq!(
            clean_identity(Some(" scanner ".into()), Some("vm-1".into())).unwrap(),
            (Some("scanner".into()), Some("vm-1".into()))
        );
        assert_eq!(
            field(clean_identity(Some("scanner".into()), None).unwrap_err()),
            "externalId"
        );
        assert_eq!(
            field(clean_identity(None, Some("vm-1".into())).unwrap_err()),
            "source"
        );
        assert_eq!(
            field(clean_identity(Some("s".repeat(65)), Some("vm-1".into())).unwrap_err()),
            "source"
        );
    }
}
