//! The bulk upsert discovery tools call: CIs and their relationships by
//! external identity, item by item, idempotent.

use std::collections::{HashMap, HashSet};

use entity::{
    ci_class, ci_relationship, configuration_item,
    enums::{CiEnvironment, CiStatus, RelationshipKind},
    support_group,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
    TransactionTrait,
};
use serde_json::Value;

use super::attributes::{AttributeDefinition, class_schema, validate_attributes};
use super::cis::{
    IDENTITY_CLASH, check_ci_transition, check_tenant, clean_identity, detach, initial_status,
    publish, tenant_of,
};
use super::relationships::{DUPLICATE_EDGE, check_edge, new_edge};
use crate::records::{Store, audit, clean_name, conflict_on_unique, now, save_versioned};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
    events::ChangeKind,
};

/// The most CIs one `upsertConfigurationItems` call may carry.
pub const MAX_UPSERT_ITEMS: usize = 1_000;
/// The most relationships one `upsertConfigurationItems` call may carry.
pub const MAX_UPSERT_RELATIONSHIPS: usize = 5_000;
/// Values per IN list: well under both backends' bind limits.
const CHUNK: usize = 500;

/// A CI by external identity, for discovery tools.
#[derive(Debug, Clone)]
pub struct UpsertItem {
    pub source: String,
    pub external_id: String,
    pub class_code: String,
    pub name: String,
    pub status: Option<CiStatus>,
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<i64>,
    pub attributes: Option<Value>,
}

/// A relationship between CIs named by external identity (in the call or already stored).
#[derive(Debug, Clone)]
pub struct UpsertRelationship {
    pub source: (String, String),
    pub target: (String, String),
    pub kind: RelationshipKind,
    pub redundant: bool,
}

pub struct UpsertBatch {
    pub organization_id: Option<i64>,
    pub items: Vec<UpsertItem>,
    pub relationships: Vec<UpsertRelationship>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertStatus {
    Created,
    Updated,
    Unchanged,
    Error,
}

pub struct ItemOutcome {
    pub source: String,
    pub external_id: String,
    pub status: UpsertStatus,
    pub error: Option<AppError>,
    pub ci: Option<configuration_item::Model>,
}

pub struct RelationshipOutcome {
    pub status: UpsertStatus,
    pub error: Option<AppError>,
    pub relationship: Option<ci_relationship::Model>,
}

pub struct UpsertResult {
    pub items: Vec<ItemOutcome>,
    pub relationships: Vec<RelationshipOutcome>,
}

type Identity = (String, String);

struct Prepared {
    class_id: i64,
    name: String,
    name_key: String,
    status: Option<CiStatus>,
    environment: Option<CiEnvironment>,
    owner_group_id: Option<i64>,
    attributes: Value,
}

fn prepare_item(
    item: &UpsertItem,
    classes: &HashMap<String, (ci_class::Model, Vec<AttributeDefinition>)>,
) -> AppResult<Prepared> {
    let (name, name_key) = clean_name("name", &item.name, 200)?;
    let Some((class, defs)) = classes.get(&item.class_code.trim().to_ascii_lowercase()) else {
        return Err(AppError::invalid_field(
            "classCode",
            format!("unknown configuration item class {:?}", item.class_code),
        ));
    };
    let attributes = validate_attributes(class, defs, item.attributes.clone())?;
    Ok(Prepared {
        class_id: class.id,
        name,
        name_key,
        status: item.status,
        environment: item.environment,
        owner_group_id: item.owner_group_id,
        attributes,
    })
}

/// Existing CIs of a tenant by external identity, in chunked queries.
async fn cis_by_identity<C: ConnectionTrait>(
    db: &C,
    org: i64,
    identities: &[Identity],
) -> AppResult<HashMap<Identity, configuration_item::Model>> {
    let mut out = HashMap::new();
    let wanted: HashSet<&Identity> = identities.iter().collect();
    let mut ext_ids: Vec<&str> = identities.iter().map(|(_, e)| e.as_str()).collect();
    ext_ids.sort_unstable();
    ext_ids.dedup();
    for chunk in ext_ids.chunks(CHUNK) {
        let rows = configuration_item::Entity::find()
            .filter(configuration_item::Column::OrganizationId.eq(org))
            .filter(configuration_item::Column::ExternalId.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        for ci in rows {
            if let (Some(s), Some(e)) = (&ci.source, &ci.external_id) {
                let key = (s.clone(), e.clone());
                if wanted.contains(&key) {
                    out.insert(key, ci);
                }
            }
        }
    }
    Ok(out)
}

/// Inserts many rows with `create` audit events in one savepoint. `None` when
/// anything failed (the savepoint is rolled back and the caller goes row by row).
async fn insert_all<A>(
    txn: &sea_orm::DatabaseTransaction,
    p: &Principal,
    rows: Vec<A>,
) -> AppResult<Option<Vec<<A::Entity as EntityTrait>::Model>>>
where
    A: ActiveModelTrait + Send + Clone,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + audit::Audited,
{
    let sp = txn.begin().await?;
    let wanted = rows.len();
    let created = match crate::records::insert_rows(&sp, rows).await {
        Ok(created) if created.len() == wanted => created,
        Ok(_) => {
            sp.rollback().await?;
            return Ok(None);
        }
        Err(e) => {
            tracing::debug!(error = %e, "batch insert failed; going row by row");
            sp.rollback().await?;
            return Ok(None);
        }
    };
    audit::record_many(&sp, p, "create", &created).await?;
    sp.commit().await?;
    Ok(Some(created))
}

/// Inserts one row with its audit event in its own savepoint; an error leaves nothing behind.
async fn insert_one<A>(
    txn: &sea_orm::DatabaseTransaction,
    p: &Principal,
    row: A,
    conflict: &str,
) -> AppResult<<A::Entity as EntityTrait>::Model>
where
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + audit::Audited,
{
    let sp = txn.begin().await?;
    match audit::insert(&sp, p, row).await {
        Ok(m) => {
            sp.commit().await?;
            Ok(m)
        }
        Err(e) => {
            sp.rollback().await?;
            Err(conflict_on_unique(e, conflict))
        }
    }
}

/// Creates or updates up to [`MAX_UPSERT_ITEMS`] CIs of one tenant by external
/// identity, then their relationships, in one transaction. Each item answers
/// for itself: an item in error writes nothing of itself while the others are
/// written. Unchanged items write nothing at all, so a repeated call is idempotent.
/// Relationships are only added or updated (their `redundant` flag), never removed.
pub async fn upsert(store: &Store, p: &Principal, batch: UpsertBatch) -> AppResult<UpsertResult> {
    if batch.items.len() > MAX_UPSERT_ITEMS {
        return Err(AppError::invalid_field(
            "items",
            format!(
                "at most {MAX_UPSERT_ITEMS} configuration items per call, this one has {}",
                batch.items.len()
            ),
        ));
    }
    if batch.relationships.len() > MAX_UPSERT_RELATIONSHIPS {
        return Err(AppError::invalid_field(
            "relationships",
            format!(
                "at most {MAX_UPSERT_RELATIONSHIPS} relationships per call, this one has {}",
                batch.relationships.len()
            ),
        ));
    }
    let org = tenant_of(p, batch.organization_id)?;
    let txn = begin_write(&store.db).await?;
    check_tenant(&txn, org).await?;
    let classes: HashMap<String, (ci_class::Model, Vec<AttributeDefinition>)> =
        ci_class::Entity::find()
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| {
                let defs = class_schema(&c);
                (c.code.clone(), (c, defs))
            })
            .collect();
    let groups: Vec<i64> = batch
        .items
        .iter()
        .filter_map(|i| i.owner_group_id)
        .collect();
    let known_groups: HashSet<i64> = if groups.is_empty() {
        HashSet::new()
    } else {
        support_group::Entity::find()
            .filter(support_group::Column::Id.is_in(groups))
            .all(&txn)
            .await?
            .into_iter()
            .filter(|g| p.can_see(g.organization_id))
            .map(|g| g.id)
            .collect()
    };

    // Validate every item without touching the database.
    let mut seen: HashSet<Identity> = HashSet::new();
    let mut prepared: Vec<AppResult<(Identity, Prepared)>> = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let result = (|| {
            let (source, external_id) =
                clean_identity(Some(item.source.clone()), Some(item.external_id.clone()))?;
            let (Some(source), Some(external_id)) = (source, external_id) else {
                return Err(AppError::invalid_field(
                    "externalId",
                    "source and externalId are required",
                ));
            };
            let key = (source, external_id);
            if !seen.insert(key.clone()) {
                return Err(AppError::invalid_field(
                    "externalId",
                    "this source and externalId appear twice in this call",
                ));
            }
            let prep = prepare_item(item, &classes)?;
            if let Some(g) = prep.owner_group_id
                && !known_groups.contains(&g)
            {
                return Err(AppError::invalid_field(
                    "ownerGroupId",
                    "support group not found",
                ));
            }
            Ok((key, prep))
        })();
        prepared.push(result);
    }
    let identities: Vec<Identity> = prepared
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(k, _)| k.clone()))
        .collect();
    let existing = cis_by_identity(&txn, org, &identities).await?;

    let at = now();
    let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(batch.items.len());
    let mut to_create: Vec<(usize, configuration_item::ActiveModel)> = Vec::new();
    let mut events: Vec<(ChangeKind, configuration_item::Model, Vec<String>)> = Vec::new();
    for (i, result) in prepared.into_iter().enumerate() {
        let item = &batch.items[i];
        let mut outcome = ItemOutcome {
            source: item.source.clone(),
            external_id: item.external_id.clone(),
            status: UpsertStatus::Error,
            error: None,
            ci: None,
        };
        let (key, prep) = match result {
            Ok(ok) => ok,
            Err(e) => {
                outcome.error = Some(e);
                outcomes.push(outcome);
                continue;
            }
        };
        (outcome.source, outcome.external_id) = key.clone();
        match existing.get(&key) {
            None => match initial_status(prep.status) {
                Err(e) => outcome.error = Some(e),
                Ok(status) => to_create.push((
                    i,
                    configuration_item::ActiveModel {
                        organization_id: Set(org),
                        class_id: Set(prep.class_id),
                        name: Set(prep.name),
                        name_key: Set(prep.name_key),
                        status: Set(status),
                        environment: Set(prep.environment.unwrap_or(CiEnvironment::Production)),
                        owner_group_id: Set(prep.owner_group_id),
                        attributes: Set(prep.attributes),
                        source: Set(Some(key.0)),
                        external_id: Set(Some(key.1)),
                        version: Set(1),
                        created_at: Set(at),
                        updated_at: Set(at),
                        ..Default::default()
                    },
                )),
            },
            Some(before) => {
                let mut next = before.clone();
                next.class_id = prep.class_id;
                next.name = prep.name;
                next.name_key = prep.name_key;
                crate::records::patch(&mut next.status, prep.status);
                crate::records::patch(&mut next.environment, prep.environment);
                next.owner_group_id = prep.owner_group_id;
                next.attributes = prep.attributes;
                if next == *before {
                    outcome.status = UpsertStatus::Unchanged;
                    outcome.ci = Some(next);
                } else if let Err(e) =
                    check_ci_transition(before.status, next.status).and_then(|_| {
                        if before.status == CiStatus::Retired {
                            Err(AppError::invalid_field(
                                "status",
                                "a retired configuration item cannot be changed",
                            ))
                        } else {
                            Ok(())
                        }
                    })
                {
                    outcome.error = Some(e);
                } else {
                    let retiring = next.status == CiStatus::Retired;
                    let sp = txn.begin().await?;
                    let saved = async {
                        let updated = save_versioned(&sp, p, before, next).await?;
                        if retiring {
                            detach(&sp, p, before.id).await?;
                        }
                        Ok::<_, AppError>(updated)
                    }
                    .await;
                    match saved {
                        Ok(updated) => {
                            sp.commit().await?;
                            events.push((
                                if retiring {
                                    ChangeKind::Retired
                                } else {
                                    ChangeKind::Updated
                                },
                                updated.clone(),
                                audit::changed_fields(before, &updated),
                            ));
                            outcome.status = UpsertStatus::Updated;
                            outcome.ci = Some(updated);
                        }
                        Err(e) => {
                            sp.rollback().await?;
                            outcome.error = Some(conflict_on_unique(e, IDENTITY_CLASH));
                        }
                    }
                }
            }
        }
        outcomes.push(outcome);
    }

    // New CIs: one multi-row insert per chunk; row by row only when that fails.
    if !to_create.is_empty() {
        let rows: Vec<_> = to_create.iter().map(|(_, r)| r.clone()).collect();
        match insert_all(&txn, p, rows).await? {
            Some(created) => {
                let by_key: HashMap<Identity, configuration_item::Model> = created
                    .into_iter()
                    .filter_map(|c| Some(((c.source.clone()?, c.external_id.clone()?), c)))
                    .collect();
                for (i, _) in &to_create {
                    let o = &mut outcomes[*i];
                    if let Some(ci) = by_key.get(&(o.source.clone(), o.external_id.clone())) {
                        o.status = UpsertStatus::Created;
                        o.ci = Some(ci.clone());
                    }
                }
            }
            None => {
                for (i, row) in to_create {
                    match insert_one(&txn, p, row, IDENTITY_CLASH).await {
                        Ok(ci) => {
                            outcomes[i].status = UpsertStatus::Created;
                            outcomes[i].ci = Some(ci);
                        }
                        Err(e) => outcomes[i].error = Some(e),
                    }
                }
            }
        }
        for o in &outcomes {
            if o.status == UpsertStatus::Created
                && let Some(ci) = &o.ci
            {
                events.push((ChangeKind::Created, ci.clone(), Vec::new()));
            }
        }
    }

    let relationships = upsert_relationships(&txn, p, org, &outcomes, batch.relationships).await?;
    txn.commit().await?;
    for (kind, ci, changed) in events {
        publish(store, kind, &ci, changed);
    }
    Ok(UpsertResult {
        items: outcomes,
        relationships,
    })
}

async fn upsert_relationships(
    txn: &sea_orm::DatabaseTransaction,
    p: &Principal,
    org: i64,
    items: &[ItemOutcome],
    rels: Vec<UpsertRelationship>,
) -> AppResult<Vec<RelationshipOutcome>> {
    if rels.is_empty() {
        return Ok(Vec::new());
    }
    let mut cis: HashMap<Identity, configuration_item::Model> = HashMap::new();
    let mut failed: HashSet<Identity> = HashSet::new();
    for o in items {
        let key = (o.source.clone(), o.external_id.clone());
        match &o.ci {
            Some(ci) => {
                cis.insert(key, ci.clone());
            }
            None => {
                failed.insert(key);
            }
        }
    }
    let unknown: Vec<Identity> = rels
        .iter()
        .flat_map(|r| [r.source.clone(), r.target.clone()])
        .filter(|k| !cis.contains_key(k) && !failed.contains(k))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    cis.extend(cis_by_identity(txn, org, &unknown).await?);

    let resolve = |key: &Identity, field: &str| -> AppResult<&configuration_item::Model> {
        if failed.contains(key) {
            return Err(AppError::invalid_field(
                field,
                format!(
                    "configuration item {}/{} was not written (see its item error)",
                    key.0, key.1
                ),
            ));
        }
        cis.get(key).ok_or_else(|| {
            AppError::invalid_field(
                field,
                format!(
                    "no configuration item with source {:?} and externalId {:?} in this organization",
                    key.0, key.1
                ),
            )
        })
    };
    let mut checked: Vec<AppResult<(i64, i64, RelationshipKind, bool)>> = Vec::new();
    let mut seen = HashSet::new();
    for r in &rels {
        checked.push((|| {
            let source = resolve(&r.source, "source")?;
            let target = resolve(&r.target, "target")?;
            check_edge(source, target, "source", "target")?;
            if !seen.insert((source.id, target.id, r.kind)) {
                return Err(AppError::invalid_field(
                    "target",
                    "this relationship appears twice in this call",
                ));
            }
            Ok((source.id, target.id, r.kind, r.redundant))
        })());
    }
    let mut sources: Vec<i64> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().map(|t| t.0))
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let mut stored: HashMap<(i64, i64, RelationshipKind), ci_relationship::Model> = HashMap::new();
    for chunk in sources.chunks(CHUNK) {
        for e in ci_relationship::Entity::find()
            .filter(ci_relationship::Column::SourceId.is_in(chunk.iter().copied()))
            .all(txn)
            .await?
        {
            stored.insert((e.source_id, e.target_id, e.kind), e);
        }
    }
    let at = now();
    let by_id: HashMap<i64, &configuration_item::Model> = cis.values().map(|c| (c.id, c)).collect();
    let mut out: Vec<RelationshipOutcome> = Vec::with_capacity(rels.len());
    let mut to_create: Vec<(usize, ci_relationship::ActiveModel)> = Vec::new();
    for (i, c) in checked.into_iter().enumerate() {
        let mut o = RelationshipOutcome {
            status: UpsertStatus::Error,
            error: None,
            relationship: None,
        };
        match c {
            Err(e) => o.error = Some(e),
            Ok((s, t, kind, redundant)) => match stored.get(&(s, t, kind)) {
                Some(edge) if edge.redundant == redundant => {
                    o.status = UpsertStatus::Unchanged;
                    o.relationship = Some(edge.clone());
                }
                Some(edge) => {
                    let mut active: ci_relationship::ActiveModel = edge.clone().into();
                    active.redundant = Set(redundant);
                    let updated = audit::update(txn, p, "update", edge, active).await?;
                    o.status = UpsertStatus::Updated;
                    o.relationship = Some(updated);
                }
                None => {
                    if let Some(source) = by_id.get(&s) {
                        to_create.push((i, new_edge(source, t, kind, redundant, at)));
                    }
                }
            },
        }
        out.push(o);
    }
    if !to_create.is_empty() {
        let rows: Vec<_> = to_create.iter().map(|(_, r)| r.clone()).collect();
        match insert_all(txn, p, rows).await? {
            Some(created) => {
                let by_key: HashMap<(i64, i64, RelationshipKind), ci_relationship::Model> = created
                    .into_iter()
                    .map(|e| ((e.source_id, e.target_id, e.kind), e))
                    .collect();
                for (i, row) in &to_create {
                    let key = (
                        *row.source_id.as_ref(),
                        *row.target_id.as_ref(),
                        *row.kind.as_ref(),
                    );
                    if let Some(e) = by_key.get(&key) {
                        out[*i].status = UpsertStatus::Created;
                        out[*i].relationship = Some(e.clone());
                    }
                }
            }
            None => {
                for (i, row) in to_create {
                    match insert_one(txn, p, row, DUPLICATE_EDGE).await {
                        Ok(e) => {
                            out[i].status = UpsertStatus::Created;
                            out[i].relationship = Some(e);
                        }
                        Err(e) => out[i].error = Some(e),
                    }
                }
            }
        }
    }
    Ok(out)
}
