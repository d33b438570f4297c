//! Business rules per process: validation, state machines, tenancy and audit,
//! each operation in one transaction. Nothing here knows about GraphQL or HTTP.

pub mod audit;
pub mod catalogue;
pub mod cmdb;
pub mod directory;
pub mod incident;
pub mod monitoring;
pub mod sla;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{DatabaseConnection, DbErr, SqlErr};

use crate::{
    error::{AppError, AppResult},
    events::EventBus,
};

/// What every domain operation needs: the database, the bus to publish to
/// after commit, and the rules a write must follow that come from the
/// configuration.
#[derive(Clone)]
pub struct Store {
    pub db: DatabaseConnection,
    pub events: EventBus,
    /// `sla.warning_thresholds`: every change of a clock schedules the
    /// breach worker's next look at it by them.
    pub sla_thresholds: std::sync::Arc<[u32]>,
}

/// The current time at the precision both databases store (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A required name: trimmed, 1..=max characters, no control characters.
/// Returns the name and its case-insensitive key.
pub fn clean_name(field: &str, value: &str, max: usize) -> AppResult<(String, String)> {
    let name = value.trim();
    if name.is_empty() {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if name.chars().count() > max {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok((name.to_owned(), name.to_lowercase()))
}

/// Optional free text: trimmed, empty becomes `None`, at most `max` characters.
pub fn clean_text(field: &str, value: Option<String>, max: usize) -> AppResult<Option<String>> {
    let Some(text) = value else { return Ok(None) };
    let text = text.trim();
    if text.chars().count() > max {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// A plausible e-mail address (something@domain), or `None`.
pub fn clean_email(field: &str, value: Option<String>) -> AppResult<Option<String>> {
    let Some(email) = clean_text(field, value, 320)? else {
        return Ok(None);
    };
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !email.contains(char::is_whitespace) =>
        {
            Ok(Some(email))
        }
        _ => Err(AppError::invalid_field(
            field,
            format!("{field} is not an e-mail address"),
        )),
    }
}

/// Optimistic concurrency: the caller must send the version it read.
pub fn check_version(record: &str, sent: i32, current: i32) -> AppResult<()> {
    if sent == current {
        Ok(())
    } else {
        Err(AppError::stale(record, sent, current))
    }
}

/// Maps a unique-constraint violation (a race past our own check) to `CONFLICT`.
pub fn unique_or_internal(err: DbErr, conflict: impl FnOnce() -> String) -> AppError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::Conflict(conflict()),
        _ => AppError::internal(err),
    }
}

/// Applies an optional patch value: `None` keeps, `Some(v)` replaces.
pub fn patch<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

/// Records with optimistic concurrency and an update time.
pub trait Versioned {
    fn bump(&mut self);
}

macro_rules! versioned {
    ($($model:path),*) => {$(
        impl Versioned for $model {
            fn bump(&mut self) {
                self.version += 1;
                self.updated_at = now();
            }
        }
    )*};
}
versioned!(
    entity::organization::Model,
    entity::user::Model,
    entity::support_group::Model,
    entity::service::Model,
    entity::service_offering::Model,
    entity::ci_class::Model,
    entity::configuration_item::Model,
    entity::business_calendar::Model,
    entity::sla::Model,
    entity::priority_rule::Model,
    entity::incident::Model,
    entity::sla_clock::Model,
    entity::integration::Model,
    entity::incident_alert::Model
);

type ActiveOf<M> = <<M as sea_orm::ModelTrait>::Entity as sea_orm::EntityTrait>::ActiveModel;

/// Writes `next` over `before` when anything changed, bumping version and
/// update time, with an `update` audit event. An unchanged record is returned as is.
pub async fn save_versioned<C, M>(
    db: &C,
    actor: &crate::auth::Principal,
    before: &M,
    next: M,
) -> AppResult<M>
where
    C: sea_orm::ConnectionTrait,
    M: sea_orm::ModelTrait
        + sea_orm::IntoActiveModel<ActiveOf<M>>
        + audit::Audited
        + Versioned
        + PartialEq,
    ActiveOf<M>: sea_orm::ActiveModelTrait<Entity = M::Entity> + Send,
    M::Entity: sea_orm::EntityTrait<Model = M>,
{
    use sea_orm::{ActiveModelTrait, Iterable};
    if &next == before {
        return Ok(next);
    }
    let mut next = next;
    next.bump();
    let mut active = next.into_active_model();
    // Every column is written: the row is replaced by the validated record.
    for column in <<M::Entity as sea_orm::EntityTrait>::Column as Iterable>::iter() {
        active.reset(column);
    }
    audit::update(db, actor, "update", before, active).await
}

/// PostgreSQL bulk insert: every row in one JSON parameter unpacked by
/// `json_to_recordset`, instead of one bind parameter per value. Thousands of
/// parameters cost PostgreSQL more to parse and plan than the insert itself.
/// The parameter is read as `json`, not `jsonb`: `jsonb` first built (and
/// key-sorted) a binary copy of every row only to take it apart again; only
/// the `jsonb` columns' own values are built.
/// Columns are those set on the first row; all rows must set the same ones.
pub async fn insert_many_json<C, A>(
    db: &C,
    rows: &[A],
    returning: bool,
) -> Result<Vec<<A::Entity as sea_orm::EntityTrait>::Model>, DbErr>
where
    C: sea_orm::ConnectionTrait,
    A: sea_orm::ActiveModelTrait,
{
    use sea_orm::{EntityName, EntityTrait, IdenStatic, Iterable, Statement, Value as V};
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Vec<(
        <A::Entity as EntityTrait>::Column,
        &'static str,
        &'static str,
    )> = <<A::Entity as EntityTrait>::Column as Iterable>::iter()
        .filter_map(|c| {
            let ty = match first.get(c).into_value()? {
                V::Bool(_) => "boolean",
                V::Int(_) => "integer",
                V::BigInt(_) => "bigint",
                V::String(_) => "text",
                V::Json(_) => "jsonb",
                V::ChronoDateTimeUtc(_) => "timestamptz",
                _ => return None,
            };
            Some((c, c.as_str(), ty))
        })
        .collect();
    // Written as JSON text straight from the rows: no `Value` tree per row.
    let mut text = Vec::with_capacity(rows.len() * 512);
    serde_json::to_writer(
        &mut text,
        &JsonRows {
            rows,
            columns: &columns,
        },
    )
    .map_err(|e| DbErr::Custom(format!("bulk insert rows as JSON: {e}")))?;
    let text = String::from_utf8(text).map_err(|e| DbErr::Custom(e.to_string()))?;
    let names: Vec<String> = columns.iter().map(|(_, n, _)| format!("\"{n}\"")).collect();
    let typed: Vec<String> = columns
        .iter()
        .map(|(_, n, t)| format!("\"{n}\" {t}"))
        .collect();
    let sql = format!(
        "INSERT INTO \"{table}\" ({cols}) SELECT {cols} FROM json_to_recordset($1::json) AS x({typed}){returning}",
        table = A::Entity::default().table_name(),
        cols = names.join(", "),
        typed = typed.join(", "),
        returning = if returning { " RETURNING *" } else { "" },
    );
    let stmt =
        Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, [V::String(Some(text))]);
    if !returning {
        db.execute_raw(stmt).await?;
        return Ok(Vec::new());
    }
    <A::Entity as EntityTrait>::find()
        .from_raw_sql(stmt)
        .all(db)
        .await
}

/// The columns [`insert_many_json`] writes: column, name, SQL type.
type JsonColumns<A> = [(
    <<A as sea_orm::ActiveModelTrait>::Entity as sea_orm::EntityTrait>::Column,
    &'static str,
    &'static str,
)];

/// The rows of [`insert_many_json`] as a JSON array of objects, one member
/// per column, serialised without building `serde_json::Value`s.
struct JsonRows<'a, A: sea_orm::ActiveModelTrait> {
    rows: &'a [A],
    columns: &'a JsonColumns<A>,
}

impl<A: sea_orm::ActiveModelTrait> serde::Serialize for JsonRows<'_, A> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.rows.len()))?;
        for row in self.rows {
            seq.serialize_element(&JsonRow {
                row,
                columns: self.columns,
            })?;
        }
        return seq.end();

        struct JsonRow<'a, A: sea_orm::ActiveModelTrait> {
            row: &'a A,
            columns: &'a JsonColumns<A>,
        }
        impl<A: sea_orm::ActiveModelTrait> serde::Serialize for JsonRow<'_, A> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.columns.len()))?;
                for (c, name, _) in self.columns {
                    m.serialize_entry(name, &JsonCell(self.row.get(*c).into_value()))?;
                }
                m.end()
            }
        }
    }
}

/// One column value as `json_to_recordset` reads it (the types
/// [`insert_many_json`] declares; anything else is null).
struct JsonCell(Option<sea_orm::Value>);

impl serde::Serialize for JsonCell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use sea_orm::Value as V;
        match &self.0 {
            Some(V::Bool(Some(b))) => s.serialize_bool(*b),
            Some(V::Int(Some(i))) => s.serialize_i32(*i),
            Some(V::BigInt(Some(i))) => s.serialize_i64(*i),
            Some(V::String(Some(t))) => s.serialize_str(t),
            Some(V::Json(Some(j))) => j.serialize(s),
            Some(V::ChronoDateTimeUtc(Some(t))) => t.serialize(s),
            _ => s.serialize_unit(),
        }
    }
}

/// Inserts rows and answers them as stored, in as few statements as the
/// backend allows: one JSON statement on PostgreSQL, multi-row inserts of
/// at most 400 rows on SQLite (below its bind-parameter limit).
pub async fn insert_rows<C, A>(
    db: &C,
    rows: Vec<A>,
) -> Result<Vec<<A::Entity as sea_orm::EntityTrait>::Model>, DbErr>
where
    C: sea_orm::ConnectionTrait,
    A: sea_orm::ActiveModelTrait + Clone,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    use sea_orm::EntityTrait;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        return insert_many_json(db, &rows, true).await;
    }
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(400) {
        out.extend(
            <A::Entity as EntityTrait>::insert_many(chunk.to_vec())
                .exec_with_returning(db)
                .await?,
        );
    }
    Ok(out)
}
