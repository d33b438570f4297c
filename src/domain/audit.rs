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
    let at = super::now();
    let request_id = current_request_id();
    let mut rows = Vec::with_capacity(records.len());
    for (before, m) in records {
        let before = before
            .map(serde_json::to_value)
            .transpose()
            .map_err(crate::error::AppError::internal)?;
        let after = serde_json::to_value(m).map_err(crate::error::AppError::internal)?;
        rows.push(audit_event::ActiveModel {
            occurred_at: Set(at),
            actor: Set(actor.subject.clone()),
            actor_organization_id: Set(Some(actor.organization_id)),
            tenant_id: Set(m.tenant_id()),
            action: Set(action.to_owned()),
            record_type: Set(M::RECORD_TYPE.to_owned()),
            record_id: Set(m.record_id()),
            changes: Set(diff(before.as_ref(), Some(&after))),
            snapshot: Set(Some(after)),
            request_id: Set(request_id.clone()),
            ..Default::default()
        });
    }
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        super::insert_many_json(db, &rows, false).await?;
        return Ok(());
    }
    // 11 columns a row: 400 rows stay far below SQLite's bind limit.
    for chunk in rows.chunks(400) {
        audit_event::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
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
