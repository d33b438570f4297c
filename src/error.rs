//! The one error type. Each variant maps to a stable `extensions.code`; internal
//! details are logged with the request id and never sent to the client.

use async_graphql::ErrorExtensions;

tokio::task_local! {
    /// The id of the HTTP request being served, for logs and `INTERNAL` errors.
    pub static REQUEST_ID: String;
}

/// The current request id, if this task serves one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
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
        Self::Internal(Box::new(err))
    }

    /// The database error behind an `INTERNAL` error, if that is what it is.
    pub fn db_err(&self) -> Option<&sea_orm::DbErr> {
        match self {
            Self::Internal(source) => source.downcast_ref::<sea_orm::DbErr>(),
            _ => None,
        }
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
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::internal(err)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        match err {
            AppError::Internal(source) => {
                let request_id =
                    current_request_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                tracing::error!(request_id = %request_id, error = %source, detail = ?source, "internal error");
                async_graphql::Error::new(format!("internal error (request id {request_id})"))
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
