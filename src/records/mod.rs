//! What every process shares for its records: the domain context ([`Store`]),
//! input cleaning, versions, audit, and bulk inserts. Nothing here knows about
//! GraphQL or HTTP.

pub mod audit;
mod find;
pub mod lifecycle;
pub mod numbers;

pub use find::{
    Identified, conflict_on_unique, ensure_free, find_visible, find_where, id_column, scope_to,
};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{DatabaseConnection, DbErr};

use crate::{
    config::SlaConfig,
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

impl Store {
    /// The context for writes on `db`, publishing to `events`, with the
    /// configured SLA warning thresholds.
    pub fn new(db: DatabaseConnection, events: EventBus, sla: &SlaConfig) -> Self {
        Self {
            db,
            events,
            sla_thresholds: sla.warning_thresholds.as_slice().into(),
        }
    }
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

/// A case-insensitive substring match on `column`, or `None` for a blank search.
/// `%`, `_` and `\` in the search match themselves.
pub fn name_contains<C: sea_orm::ColumnTrait>(
    column: C,
    search: Option<&str>,
) -> Option<sea_orm::sea_query::Expr> {
    use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
    let search = search.map(str::trim).filter(|s| !s.is_empty())?;
    let mut pattern = String::from("%");
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Some(Expr::expr(Func::lower(Expr::col(column))).like(LikeExpr::new(pattern).escape('\\')))
}

/// Optimistic concurrency: the caller must send the version it read.
pub fn check_version(record: &str, sent: i32, current: i32) -> AppResult<()> {
    if sent == current {
        Ok(())
    } else {
        Err(AppError::stale(record, sent, current))
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

/// Registers entity models as versioned (a `version` and an `updated_at`
/// column). Each process registers its own in its `mod.rs`.
macro_rules! versioned {
    ($($model:path),* $(,)?) => {$(
        impl $crate::records::Versioned for $model {
            fn bump(&mut self) {
                self.version += 1;
                self.updated_at = $crate::records::now();
            }
        }
    )*};
}
pub(crate) use versioned;

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

/// PostgreSQL bulk insert: one array parameter per column, sent in binary
/// and zipped back into rows by `unnest`, instead of one bind parameter per
/// value (thousands of parameters cost PostgreSQL more to parse and plan than
/// the insert itself) or one JSON document (which PostgreSQL parses, with a
/// record built per row). A nullable column comes with a second array that
/// marks its nulls: arrays are bound without null elements.
/// Columns are those set on the first row; all rows must set the same ones.
pub async fn insert_many_unnest<C, A>(
    db: &C,
    rows: &[A],
    returning: bool,
) -> Result<Vec<<A::Entity as sea_orm::EntityTrait>::Model>, DbErr>
where
    C: sea_orm::ConnectionTrait,
    A: sea_orm::ActiveModelTrait,
{
    use sea_orm::{
        ColumnTrait, EntityName, EntityTrait, IdenStatic, Iterable, Statement, Value as V,
        sea_query::ArrayType,
    };
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    let mut arrays = Vec::new();
    let mut aliases = Vec::new();
    let mut selected = Vec::new();
    let mut params: Vec<V> = Vec::new();
    for c in <<A::Entity as EntityTrait>::Column as Iterable>::iter() {
        let Some(v0) = first.get(c).into_value() else {
            continue;
        };
        let (ty, array) = match v0 {
            V::Bool(_) => ("boolean[]", ArrayType::Bool),
            V::Int(_) => ("integer[]", ArrayType::Int),
            V::BigInt(_) => ("bigint[]", ArrayType::BigInt),
            V::String(_) => ("text[]", ArrayType::String),
            V::Json(_) => ("jsonb[]", ArrayType::Json),
            V::ChronoDateTimeUtc(_) => ("timestamptz[]", ArrayType::ChronoDateTimeUtc),
            _ => continue,
        };
        // A row that left the column unset gives it the null of its type.
        let null = v0.as_null();
        let nullable = c.def().is_null();
        let mut values = Vec::with_capacity(rows.len());
        let mut nulls = Vec::with_capacity(if nullable { rows.len() } else { 0 });
        for row in rows {
            let v = row.get(c).into_value().unwrap_or_else(|| null.clone());
            if v.is_some() {
                values.push(v);
                if nullable {
                    nulls.push(false);
                }
            } else if nullable {
                values.push(v.dummy_value());
                nulls.push(true);
            } else {
                return Err(DbErr::Custom(format!(
                    "bulk insert: no value for the required column {}",
                    c.as_str()
                )));
            }
        }
        let i = params.len() + 1;
        names.push(format!("\"{}\"", c.as_str()));
        params.push(V::Array(array, Some(Box::new(values))));
        arrays.push(format!("${i}::{ty}"));
        aliases.push(format!("v{i}"));
        if nullable {
            params.push(nulls.into());
            arrays.push(format!("${}::boolean[]", i + 1));
            aliases.push(format!("n{i}"));
            selected.push(format!("CASE WHEN x.n{i} THEN NULL ELSE x.v{i} END"));
        } else {
            selected.push(format!("x.v{i}"));
        }
    }
    let sql = format!(
        "INSERT INTO \"{table}\" ({cols}) SELECT {selected} FROM unnest({arrays}) AS x({aliases}){returning}",
        table = A::Entity::default().table_name(),
        cols = names.join(", "),
        selected = selected.join(", "),
        arrays = arrays.join(", "),
        aliases = aliases.join(", "),
        returning = if returning { " RETURNING *" } else { "" },
    );
    let stmt = Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, params);
    if !returning {
        db.execute_raw(stmt).await?;
        return Ok(Vec::new());
    }
    <A::Entity as EntityTrait>::find()
        .from_raw_sql(stmt)
        .all(db)
        .await
}

/// Inserts rows and answers them as stored, in as few statements as the
/// backend allows: one `unnest` statement on PostgreSQL, multi-row inserts of
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
        return insert_many_unnest(db, &rows, true).await;
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
