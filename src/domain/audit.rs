//! The one audit path: every mutation writes an append-only event, in the same
//! transaction as the change, with the fields before and after.

use entity::audit_event;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    auth::Principal,
    error::{AppResult, current_request_id},
};

/// A record that leaves audit events. Implemented per entity model.
pub trait Audited: Serialize {
    /// The GraphQL type name, e.g. `Service`.
    const RECORD_TYPE: &'static str;
    fn record_id(&self) -> i64;
    /// The organization the record belongs to.
    fn tenant_id(&self) -> Option<i64>;
}

/// Fields that change on every write and say nothing an auditor needs.
const BOOKKEEPING: &[&str] = &["version", "updated_at", "name_key"];

/// `{ field: { before, after } }` for every field that differs.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Value {
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Map::new();
    for key in b.keys().chain(a.keys().filter(|k| !b.contains_key(*k))) {
        if BOOKKEEPING.contains(&key.as_str()) {
            continue;
        }
        let (old, new) = (
            b.get(key).unwrap_or(&Value::Null),
            a.get(key).unwrap_or(&Value::Null),
        );
        if old != new {
            out.insert(key.clone(), json!({ "before": old, "after": new }));
        }
    }
    Value::Object(out)
}

/// Writes one audit event for `action` on a record (`before` is `None` on create,
/// `after` is `None` on delete).
pub async fn record<C: ConnectionTrait, M: Audited>(
    db: &C,
    actor: &Principal,
    action: &str,
    before: Option<&M>,
    after: Option<&M>,
) -> AppResult<()> {
    let Some(subject) = after.or(before) else {
        return Ok(());
    };
    let before_json = before
        .map(serde_json::to_value)
        .transpose()
        .map_err(crate::error::AppError::internal)?;
    let after_json = after
        .map(serde_json::to_value)
        .transpose()
        .map_err(crate::error::AppError::internal)?;
    audit_event::ActiveModel {
        occurred_at: Set(super::now()),
        actor: Set(actor.subject.clone()),
        actor_organization_id: Set(Some(actor.organization_id)),
        tenant_id: Set(subject.tenant_id()),
        action: Set(action.to_owned()),
        record_type: Set(M::RECORD_TYPE.to_owned()),
        record_id: Set(subject.record_id()),
        changes: Set(diff(before_json.as_ref(), after_json.as_ref())),
        snapshot: Set(after_json),
        request_id: Set(current_request_id()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The names of the fields an update changed, for subscription payloads.
pub fn changed_fields<M: Serialize>(before: &M, after: &M) -> Vec<String> {
    let (b, a) = (
        serde_json::to_value(before).ok(),
        serde_json::to_value(after).ok(),
    );
    diff(b.as_ref(), a.as_ref())
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

macro_rules! audited {
    ($model:path, $name:literal, |$m:ident| $tenant:expr) => {
        impl Audited for $model {
            const RECORD_TYPE: &'static str = $name;
            fn record_id(&self) -> i64 {
                self.id
            }
            fn tenant_id(&self) -> Option<i64> {
                let $m = self;
                $tenant
            }
        }
    };
}

audited!(entity::organization::Model, "Organization", |m| Some(m.id));
audited!(entity::user::Model, "User", |m| Some(m.organization_id));
audited!(entity::support_group::Model, "SupportGroup", |m| Some(
    m.organization_id
));
audited!(entity::group_membership::Model, "GroupMembership", |_m| {
    None
});
audited!(entity::service::Model, "Service", |m| Some(
    m.organization_id
));
audited!(
    entity::service_offering::Model,
    "ServiceOffering",
    |m| Some(m.organization_id)
);
audited!(
    entity::service_subscription::Model,
    "ServiceSubscription",
    |m| Some(m.customer_id)
);

audited!(entity::ci_class::Model, "ConfigurationItemClass", |_m| None);
audited!(
    entity::configuration_item::Model,
    "ConfigurationItem",
    |m| Some(m.organization_id)
);
audited!(entity::ci_relationship::Model, "CiRelationship", |m| Some(
    m.organization_id
));
audited!(
    entity::service_configuration_item::Model,
    "ServiceConfigurationItem",
    |m| Some(m.organization_id)
);

/// Writes one `action` event per record, as after-images (bulk creates), in
/// multi-row inserts: the same events [`record`] writes, without a round trip each.
pub async fn record_many<C: ConnectionTrait, M: Audited>(
    db: &C,
    actor: &Principal,
    action: &str,
    records: &[M],
) -> AppResult<()> {
    let pairs: Vec<(Option<&M>, &M)> = records.iter().map(|m| (None, m)).collect();
    insert_events(db, actor, action, &pairs).await
}

/// Writes one `action` event per (before, after) pair (bulk updates), in
/// multi-row inserts: the same events [`record`] writes.
pub async fn record_updates<C: ConnectionTrait, M: Audited>(
    db: &C,
    actor: &Principal,
    action: &str,
    pairs: &[(M, M)],
) -> AppResult<()> {
    let pairs: Vec<(Option<&M>, &M)> = pairs.iter().map(|(b, a)| (Some(b), a)).collect();
    insert_events(db, actor, action, &pairs).await
}

async fn insert_events<C: ConnectionTrait, M: Audited>(
    db: &C,
    actor: &Principal,
    action: &str,
    records: &[(Option<&M>, &M)],
) -> AppResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let at = super::now();
    let request_id = current_request_id();
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        return insert_events_pg(db, actor, action, records, at, request_id.as_deref()).await;
    }
    let mut rows = Vec::with_capacity(records.len());
    for (before, m) in records {
        let after = serde_json::to_value(m).map_err(crate::error::AppError::internal)?;
        let changes = match before {
            None => created(&after),
            Some(b) => {
                let b = serde_json::to_value(b).map_err(crate::error::AppError::internal)?;
                diff(Some(&b), Some(&after))
            }
        };
        rows.push(audit_event::ActiveModel {
            occurred_at: Set(at),
            actor: Set(actor.subject.clone()),
            actor_organization_id: Set(Some(actor.organization_id)),
            tenant_id: Set(m.tenant_id()),
            action: Set(action.to_owned()),
            record_type: Set(M::RECORD_TYPE.to_owned()),
            record_id: Set(m.record_id()),
            changes: Set(changes),
            snapshot: Set(Some(after)),
            request_id: Set(request_id.clone()),
            ..Default::default()
        });
    }
    // 11 columns a row: 400 rows stay far below SQLite's bind limit.
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(400));
        audit_event::Entity::insert_many(std::mem::replace(&mut rows, rest))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The changes of a created record: every field that is set, from null.
fn created(after: &Value) -> Value {
    let Some(fields) = after.as_object() else {
        return Value::Object(Map::new());
    };
    Value::Object(
        fields
            .iter()
            .filter(|(k, v)| !v.is_null() && !BOOKKEEPING.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), json!({ "before": Value::Null, "after": v })))
            .collect(),
    )
}

/// [`created`] as it serialises, without building it: the bulk path writes
/// each after-image once as JSON text, and its changes from the same value.
struct CreatedChanges<'a>(&'a Value);

impl Serialize for CreatedChanges<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Change<'a>(&'a Value);
        impl Serialize for Change<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("before", &Value::Null)?;
                m.serialize_entry("after", self.0)?;
                m.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        if let Some(fields) = self.0.as_object() {
            for (k, v) in fields {
                if !v.is_null() && !BOOKKEEPING.contains(&k.as_str()) {
                    m.serialize_entry(k, &Change(v))?;
                }
            }
        }
        m.end()
    }
}

/// PostgreSQL: every event of the batch in one `INSERT ... SELECT FROM
/// unnest(..)`: what all events share as single parameters, the rest as
/// arrays (sent in binary, so PostgreSQL parses no envelope), `changes` and
/// `snapshot` as JSON text written straight from each record's after-image.
/// The columns are `json` (migration `m20261122_000008`): PostgreSQL checks
/// the text and stores it, where `jsonb` rebuilt and key-sorted every object.
/// The rows are those [`record`] writes.
async fn insert_events_pg<C: ConnectionTrait, M: Audited>(
    db: &C,
    actor: &Principal,
    action: &str,
    records: &[(Option<&M>, &M)],
    at: chrono::DateTime<chrono::Utc>,
    request_id: Option<&str>,
) -> AppResult<()> {
    use crate::error::AppError;
    let n = records.len();
    // Arrays cannot hold nulls here: a tenant is its id as text, '' for none.
    let mut tenants: Vec<String> = Vec::with_capacity(n);
    let mut ids: Vec<i64> = Vec::with_capacity(n);
    let mut changes: Vec<String> = Vec::with_capacity(n);
    let mut snapshots: Vec<String> = Vec::with_capacity(n);
    for (before, m) in records {
        let after = serde_json::to_value(m).map_err(AppError::internal)?;
        let change = match before {
            None => serde_json::to_string(&CreatedChanges(&after)),
            Some(b) => {
                let b = serde_json::to_value(b).map_err(AppError::internal)?;
                serde_json::to_string(&diff(Some(&b), Some(&after)))
            }
        }
        .map_err(AppError::internal)?;
        tenants.push(m.tenant_id().map(|t| t.to_string()).unwrap_or_default());
        ids.push(m.record_id());
        changes.push(change);
        snapshots.push(serde_json::to_string(&after).map_err(AppError::internal)?);
    }
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "INSERT INTO audit_events (occurred_at, actor, actor_organization_id, tenant_id, action, \
         record_type, record_id, changes, snapshot, request_id) \
         SELECT $1, $2, $3, CAST(NULLIF(u.tenant, '') AS bigint), $4, $5, u.id, \
         CAST(u.changes AS json), CAST(u.snapshot AS json), $6 \
         FROM unnest($7::text[], $8::bigint[], $9::text[], $10::text[]) \
         AS u(tenant, id, changes, snapshot)",
        [
            at.into(),
            actor.subject.as_str().into(),
            actor.organization_id.into(),
            action.into(),
            M::RECORD_TYPE.into(),
            request_id.map(str::to_owned).into(),
            tenants.into(),
            ids.into(),
            changes.into(),
            snapshots.into(),
        ],
    ))
    .await?;
    Ok(())
}
audited!(entity::business_calendar::Model, "BusinessCalendar", |m| {
    Some(m.organization_id)
});
audited!(entity::sla::Model, "Sla", |m| Some(m.customer_id));
audited!(entity::priority_rule::Model, "PriorityRule", |_m| None);
audited!(entity::incident::Model, "Incident", |m| Some(m.customer_id));
audited!(
    entity::incident_affected_ci::Model,
    "IncidentAffectedCi",
    |m| Some(m.organization_id)
);
audited!(entity::incident_note::Model, "IncidentNote", |m| Some(
    m.customer_id
));
audited!(entity::sla_clock::Model, "SlaClock", |m| Some(
    m.customer_id
));

/// Inserts a record and writes its `create` audit event.
pub async fn insert<C, A>(
    db: &C,
    actor: &Principal,
    model: A,
) -> AppResult<<A::Entity as sea_orm::EntityTrait>::Model>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A> + Audited,
{
    let created = model.insert(db).await?;
    record(db, actor, "create", None, Some(&created)).await?;
    Ok(created)
}

/// Updates a record and writes an audit event named `action` with the fields before and after.
pub async fn update<C, A>(
    db: &C,
    actor: &Principal,
    action: &str,
    before: &<A::Entity as sea_orm::EntityTrait>::Model,
    model: A,
) -> AppResult<<A::Entity as sea_orm::EntityTrait>::Model>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A> + Audited,
{
    let updated = model.update(db).await?;
    record(db, actor, action, Some(before), Some(&updated)).await?;
    Ok(updated)
}
audited!(entity::integration::Model, "Integration", |m| Some(
    m.organization_id
));
audited!(entity::incident_alert::Model, "IncidentAlert", |m| Some(
    m.customer_id
));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_creation_changes_are_the_diff_from_nothing() {
        let after = json!({
            "id": 7, "title": "Disk full", "description": null, "version": 1,
            "updated_at": "2026-11-22T10:00:00Z", "labels": { "job": "web" }, "count": 0
        });
        let expected = diff(None, Some(&after));
        assert_eq!(created(&after), expected);
        assert_eq!(
            serde_json::to_value(CreatedChanges(&after)).unwrap(),
            expected
        );
    }
}
