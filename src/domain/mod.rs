//! Business rules per process: validation, state machines, tenancy and audit,
//! each operation in one transaction. Nothing here knows about GraphQL or HTTP.

pub mod audit;
pub mod catalogue;
pub mod directory;
pub mod incident;
pub mod sla;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{DatabaseConnection, DbErr, SqlErr};

use crate::{
    error::{AppError, AppResult},
    events::EventBus,
};

/// What every domain operation needs: the database and the bus to publish to after commit.
#[derive(Clone)]
pub struct Store {
    pub db: DatabaseConnection,
    pub events: EventBus,
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
    entity::business_calendar::Model,
    entity::sla::Model,
    entity::priority_rule::Model,
    entity::incident::Model,
    entity::sla_clock::Model
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
