//! The reads and checks every process repeats: a record the caller may see or
//! `NOT_FOUND`, the tenant scope of a list, a free unique name, and a unique
//! index's refusal answered as `CONFLICT`.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PrimaryKeyToColumn, PrimaryKeyTrait,
    QueryFilter,
};

use super::audit::Audited;
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
};

/// The record with this id when `visible` holds for it, else `NOT_FOUND`
/// naming `what`: a record the caller may not see is answered as missing.
pub async fn find_where<E, C>(
    db: &C,
    id: i64,
    what: &str,
    visible: impl FnOnce(&E::Model) -> bool,
) -> AppResult<E::Model>
where
    E: EntityTrait,
    C: ConnectionTrait,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    match E::find_by_id(id).one(db).await? {
        Some(m) if visible(&m) => Ok(m),
        _ => Err(AppError::not_found(what)),
    }
}

/// The record with this id when its organization is visible to the caller
/// (records without one are visible to every caller), else `NOT_FOUND`.
pub async fn find_visible<E, C>(db: &C, p: &Principal, id: i64, what: &str) -> AppResult<E::Model>
where
    E: EntityTrait,
    E::Model: Audited,
    C: ConnectionTrait,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    find_where::<E, C>(db, id, what, |m| {
        m.tenant_id().is_none_or(|org| p.can_see(org))
    })
    .await
}

/// A row with an `i64` id: every audited record, and the logs that are not.
pub trait Identified {
    fn row_id(&self) -> i64;
}

impl<M: Audited> Identified for M {
    fn row_id(&self) -> i64 {
        self.record_id()
    }
}

impl Identified for entity::audit_event::Model {
    fn row_id(&self) -> i64 {
        self.id
    }
}

impl Identified for entity::ingest_delivery::Model {
    fn row_id(&self) -> i64 {
        self.id
    }
}

/// The id column of a record type (its primary key).
pub fn id_column<E: EntityTrait>() -> E::Column {
    <E::PrimaryKey as sea_orm::Iterable>::iter()
        .next()
        .map(PrimaryKeyToColumn::into_column)
        .expect("every entity has a primary key")
}

/// Narrows a query on a column holding an organization id to what the caller may see.
pub fn scope_to<C: ColumnTrait>(p: &Principal, column: C) -> Condition {
    match p.visible_organizations() {
        None => Condition::all(),
        Some(orgs) => Condition::all().add(column.is_in(orgs.iter().copied())),
    }
}

/// `CONFLICT` when a record other than `except` matches `clash` (a name or
/// code already taken); the message is made from the record found.
pub async fn ensure_free<E, C>(
    db: &C,
    clash: Condition,
    except: Option<i64>,
    conflict: impl FnOnce(&E::Model) -> String,
) -> AppResult<()>
where
    E: EntityTrait,
    E::Model: Audited,
    C: ConnectionTrait,
{
    let mut query = E::find().filter(clash);
    if let Some(id) = except {
        query = query.filter(id_column::<E>().ne(id));
    }
    match query.one(db).await? {
        Some(other) => Err(AppError::Conflict(conflict(&other))),
        None => Ok(()),
    }
}

/// A unique index refused the write (a concurrent writer got past
/// [`ensure_free`] first): `CONFLICT` with `message`; other errors pass through.
pub fn conflict_on_unique(err: impl Into<AppError>, message: &str) -> AppError {
    let err = err.into();
    if err.is_unique_violation() {
        AppError::Conflict(message.to_owned())
    } else {
        err
    }
}
