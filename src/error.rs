//! The one error type. Each variant maps to a stable `extensions.code`; internal
//! details are logged with the request id and never sent to the client.

use async_graphql::ErrorExtensions;

tokio::task_local! {
    /// The id of the HTTP request being served, for logs and `INTERNAL` errors.
    pub static REQUEST_ID: String;
}

/// The longest request id kept: the `request_id` columns (delivery log,
/// idempotency keys) hold 64 characters, and a client may send any
/// `X-Request-Id`.
const MAX_REQUEST_ID: usize = 64;

/// The `extensions.code` of a GraphQL error, when it has one.
pub fn error_code(err: &async_graphql::ServerError) -> Option<&str> {
    match err.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

/// The current request id, if this task serves one (its first 64 characters).
pub fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.chars().take(MAX_REQUEST_ID).collect())
        .ok()
}

/// Deliberately not `Display`: async-graphql converts every `Display` type into an
/// error without a code, and this type must always carry one.
#[derive(Debug)]
pub enum AppError {
    /// Input that breaks a rule; `field` names the offending input field when there is one.
    Validation {
        message: String,
        field: Option<String>,
    },
    /// Missing, or not visible to the caller (another tenant's record looks missing).
    NotFound(String),
    /// A stale version, a duplicate, or a state that forbids the change.
    Conflict(String),
    /// The caller is known but its role does not allow the operation.
    Forbidden(String),
    Unauthenticated(String),
    /// Anything else: logged in full, answered as `INTERNAL` with the request id.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn stale(record: &str, sent: i32, current: i32) -> Self {
        Self::Conflict(format!(
            "{record} was changed by someone else: you sent version {sent}, the current version is {current}; reload and retry"
        ))
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        let err = Self::Internal(Box::new(err));
        if err.is_unavailable() {
            crate::db::note_outage();
        }
        err
    }

    /// The database error behind an `INTERNAL` error, if that is what it is
    /// (also when it came through a DataLoader, which shares it in an `Arc`).
    pub fn db_err(&self) -> Option<&sea_orm::DbErr> {
        match self {
            Self::Internal(source) => source.downcast_ref::<sea_orm::DbErr>().or_else(|| {
                source
                    .downcast_ref::<std::sync::Arc<sea_orm::DbErr>>()
                    .map(|e| e.as_ref())
            }),
            _ => None,
        }
    }

    /// The database could not be reached, or no pooled connection came free in
    /// time (`database.connect_timeout`): the same request can succeed later.
    pub fn is_unavailable(&self) -> bool {
        self.db_err().is_some_and(is_unavailable)
    }

    /// A unique index refused a write (a concurrent writer got there first).
    pub fn is_unique_violation(&self) -> bool {
        self.db_err().is_some_and(|e| {
            matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            )
        })
    }

    /// The client-facing message (internal details never appear in it).
    pub fn message(&self) -> String {
        match self {
            Self::Validation { message, .. } => message.clone(),
            Self::NotFound(what) => format!("{what} not found"),
            Self::Conflict(m) | Self::Forbidden(m) | Self::Unauthenticated(m) => m.clone(),
            Self::Internal(_) if self.is_unavailable() => {
                "the database is unavailable or busy; retry later".into()
            }
            Self::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "VALIDATION",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Internal(_) if self.is_unavailable() => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

/// Whether a database error says the database could not be reached, or the
/// connection broke under a statement (the server went away, the network
/// dropped it), rather than that the statement itself was wrong.
pub fn is_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match &**e {
                Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut | Error::PoolClosed => true,
                // PostgreSQL: connection exceptions (class 08), shutting
                // down or starting up (57P01-57P03), too many connections.
                Error::Database(d) => d.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::internal(err)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let (code, message) = (err.code(), err.message());
        match err {
            AppError::Internal(source) => {
                let request_id =
                    current_request_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                tracing::error!(request_id = %request_id, error = %source, detail = ?source, code, "internal error");
                async_graphql::Error::new(format!("{message} (request id {request_id})"))
                    .extend_with(|_, e| {
                        e.set("code", code);
                        e.set("requestId", request_id.clone());
                    })
            }
            AppError::Validation { message, field } => async_graphql::Error::new(message)
                .extend_with(|_, e| {
                    e.set("code", code);
                    if let Some(field) = &field {
                        e.set("field", field.as_str());
                    }
                }),
            other => {
                async_graphql::Error::new(other.message()).extend_with(|_, e| e.set("code", code))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

    use super::AppError;

    #[test]
    fn a_database_without_free_connections_is_unavailable_not_internal() {
        let timeout = AppError::from(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert_eq!(timeout.code(), "UNAVAILABLE");
        // Through a DataLoader the error arrives shared in an Arc.
        let loaded =
            AppError::internal(Arc::new(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
        assert_eq!(loaded.code(), "UNAVAILABLE");
        // A connection that broke under a statement: the database went away.
        let cut = sea_orm::sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        let cut = AppError::from(DbErr::Query(RuntimeErr::SqlxError(Arc::new(cut))));
        assert_eq!(cut.code(), "UNAVAILABLE");
        let decode = sea_orm::sqlx::Error::ColumnNotFound("x".into());
        let decode = AppError::from(DbErr::Query(RuntimeErr::SqlxError(Arc::new(decode))));
        assert_eq!(decode.code(), "INTERNAL");
        let other = AppError::from(DbErr::Custom("syntax error at or near".into()));
        assert_eq!(other.code(), "INTERNAL");

        let answer = async_graphql::Error::from(timeout);
        assert!(answer.message.contains("retry later"), "{}", answer.message);
        assert!(
            !answer.message.to_lowercase().contains("pool"),
            "{}",
            answer.message
        );
        let ext = format!("{:?}", answer.extensions);
        assert!(
            ext.contains("UNAVAILABLE") && ext.contains("requestId"),
            "{ext}"
        );
        let answer = async_graphql::Error::from(other);
        assert!(answer.message.starts_with("internal error (request id "));
        assert!(!answer.message.contains("syntax"), "{}", answer.message);
    }
}
