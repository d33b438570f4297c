//! The one audit path: every mutation writes an append-only event, in the same
//! transaction as the change, with the fields before and after.

use entity::audit_event;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
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

/// Fields that change on every write, or only schedule the breach worker,
/// and say nothing an auditor needs.
const BOOKKEEPING: &[&str] = &["version", "updated_at", "name_key", "next_check_at"];

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
        changes: Set(match before_json {
            None => Value::Null,
            Some(_) => diff(before_json.as_ref(), after_json.as_ref()),
        }),
        snapshot: Set(after_json),
        request_id: Set(current_request_id()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// An event's changes, `{ field: { before, after } }`. A creation event
/// stores JSON `null` there: its changes are every field of its snapshot,
/// set from nothing ([`diff`] from `None`), and storing both doubled the
/// largest share of the trail (hundreds of creation events a monitoring
/// delivery). Earlier creation events, stored whole, read the same.
pub fn changes_of(e: &audit_event::Model) -> Value {
    if e.changes.is_null() {
        diff(None, e.snapshot.as_ref())
    } else {
        e.changes.clone()
    }
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

/// Registers an entity model as audited: its GraphQL type name and the
/// organization (tenant) it belongs to. Each process registers its own in its
/// `mod.rs`.
macro_rules! audited {
    ($model:path, $name:literal, |$m:ident| $tenant:expr) => {
        impl $crate::records::audit::Audited for $model {
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
pub(crate) use audited;

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
    use crate::error::AppError;
    if records.is_empty() {
        return Ok(());
    }
    let at = super::now();
    let request_id = current_request_id();
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        return insert_events_pg(db, actor, action, records, at, request_id.as_deref()).await;
    }
    // SQLite keeps JSON as text: the texts are bound as they are, in
    // multi-row inserts of at most 400 rows (4,000 parameters, below
    // SQLite's bind limit).
    for chunk in records.chunks(400) {
        let mut sql = String::with_capacity(200 + chunk.len() * 24);
        sql.push_str(
            "INSERT INTO audit_events (occurred_at, actor, actor_organization_id, tenant_id, \
             action, record_type, record_id, changes, snapshot, request_id) VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 10);
        for (n, (before, m)) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?,?,?,?,?,?)");
            let (changes, snapshot) = event_texts(*before, *m).map_err(AppError::internal)?;
            values.extend([
                at.into(),
                actor.subject.as_str().into(),
                actor.organization_id.into(),
                m.tenant_id().into(),
                action.into(),
                M::RECORD_TYPE.into(),
                m.record_id().into(),
                changes.into(),
                snapshot.into(),
                request_id.clone().into(),
            ]);
        }
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

/// An event's `changes` and `snapshot` as JSON text: a creation's changes
/// are JSON `null` (see [`changes_of`]), an update's the diff of the two images.
fn event_texts<M: Serialize>(
    before: Option<&M>,
    after: &M,
) -> Result<(String, String), serde_json::Error> {
    let Some(before) = before else {
        return Ok(("null".to_owned(), serde_json::to_string(after)?));
    };
    let a = serde_json::to_value(after)?;
    let b = serde_json::to_value(before)?;
    let changes = diff(Some(&b), Some(&a));
    Ok((serde_json::to_string(&changes)?, serde_json::to_string(&a)?))
}

/// PostgreSQL: every event of the batch in one `INSERT ... SELECT FROM
/// unnest(..)`: what all events share as single parameters, the rest as
/// arrays (sent in binary, so PostgreSQL parses no envelope), `changes` and
/// `snapshot` as JSON text written straight from each record ([`event_texts`]).
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
        let (change, snapshot) = event_texts(*before, *m).map_err(AppError::internal)?;
        tenants.push(m.tenant_id().map(|t| t.to_string()).unwrap_or_default());
        ids.push(m.record_id());
        changes.push(change);
        snapshots.push(snapshot);
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

/// Makes one record's links exactly `wanted` (the ids at their far end, as
/// `far_end` reads them from a link): links that go are deleted and new ones
/// inserted (`new_link` builds one), each with its audit event. Answers
/// whether anything changed.
pub async fn sync_links<C, A>(
    db: &C,
    actor: &Principal,
    existing: Vec<<A::Entity as sea_orm::EntityTrait>::Model>,
    far_end: impl Fn(&<A::Entity as sea_orm::EntityTrait>::Model) -> i64,
    wanted: &[i64],
    new_link: impl Fn(i64) -> A,
) -> AppResult<bool>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A> + Audited + Clone,
{
    use sea_orm::ModelTrait;
    let mut changed = false;
    for link in &existing {
        if !wanted.contains(&far_end(link)) {
            link.clone().delete(db).await?;
            record(db, actor, "delete", Some(link), None).await?;
            changed = true;
        }
    }
    for id in wanted {
        if !existing.iter().any(|l| far_end(l) == *id) {
            insert(db, actor, new_link(*id)).await?;
            changed = true;
        }
    }
    Ok(changed)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A creation stores its snapshot and JSON `null` changes, which read
    /// as the diff from nothing; an update stores its diff.
    #[test]
    fn creation_changes_read_as_the_diff_from_nothing() {
        #[derive(Serialize, Clone)]
        #[serde(rename_all = "snake_case")]
        enum State {
            InProgress,
        }
        #[derive(Serialize, Clone)]
        struct Record {
            id: i64,
            title: String,
            description: Option<String>,
            state: State,
            labels: Value,
            resolved_at: Option<chrono::DateTime<chrono::Utc>>,
            created_at: chrono::DateTime<chrono::Utc>,
            version: i32,
            updated_at: chrono::DateTime<chrono::Utc>,
        }
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00.123456Z")
            .unwrap()
            .to_utc();
        let record = Record {
            id: 7,
            title: "Disk \"full\" \u{1f} on db-01 \u{e9}".into(),
            description: None,
            state: State::InProgress,
            labels: json!({ "job": "web", "z": [1, null] }),
            resolved_at: None,
            created_at: at,
            version: 1,
            updated_at: at,
        };
        let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap();
        let event = |changes: &str, snapshot: &str| audit_event::Model {
            id: 1,
            occurred_at: at,
            actor: "system".into(),
            actor_organization_id: None,
            tenant_id: None,
            action: "create".into(),
            record_type: "Record".into(),
            record_id: 7,
            changes: parse(changes),
            snapshot: Some(parse(snapshot)),
            request_id: None,
        };
        let (changes, snapshot) = event_texts(None, &record).unwrap();
        assert_eq!(changes, "null");
        assert_eq!(parse(&snapshot), serde_json::to_value(&record).unwrap());
        assert_eq!(
            changes_of(&event(&changes, &snapshot)),
            json!({
                "id": { "before": null, "after": 7 },
                "title": { "before": null, "after": "Disk \"full\" \u{1f} on db-01 \u{e9}" },
                "state": { "before": null, "after": "in_progress" },
                "labels": { "before": null, "after": { "job": "web", "z": [1, null] } },
                "created_at": { "before": null, "after": "2026-11-22T10:00:00.123456Z" },
            })
        );

        let before = record;
        let mut later = before.clone();
        later.title = "Disk full".into();
        later.version = 2;
        let (changes, snapshot) = event_texts(Some(&before), &later).unwrap();
        let expected = json!({ "title": { "before": "Disk \"full\" \u{1f} on db-01 \u{e9}", "after": "Disk full" } });
        assert_eq!(parse(&changes), expected);
        assert_eq!(changes_of(&event(&changes, &snapshot)), expected);
    }
}
