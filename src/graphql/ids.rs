//! Opaque global IDs: base64url of `Type:id`, so portals treat them as strings.

use async_graphql::ID;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::{AppError, AppResult};

pub fn encode(kind: &str, id: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{kind}:{id}")))
}

/// Splits a global ID into its type name and row id.
pub fn decode(id: &str) -> Option<(String, i64)> {
    let raw = URL_SAFE_NO_PAD.decode(id.as_bytes()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (kind, num) = text.split_once(':')?;
    Some((kind.to_owned(), num.parse().ok().filter(|n: &i64| *n > 0)?))
}

/// The row id of a global ID that must name a `kind` (e.g. `Service`) record.
/// A malformed ID is a `VALIDATION` error on `field`; another type's ID is `NOT_FOUND`.
pub fn expect(id: &ID, kind: &str, field: &str) -> AppResult<i64> {
    match decode(id) {
        Some((k, n)) if k == kind => Ok(n),
        Some(_) => Err(AppError::not_found(kind_label(kind))),
        None => Err(AppError::invalid_field(
            field,
            format!("{field} is not a valid ID"),
        )),
    }
}

/// Like [`expect`], for IDs given as references in an input: every problem is a `VALIDATION` error.
pub fn reference(id: &ID, kind: &str, field: &str) -> AppResult<i64> {
    match decode(id) {
        Some((k, n)) if k == kind => Ok(n),
        _ => Err(AppError::invalid_field(
            field,
            format!("{field} is not a {kind} ID"),
        )),
    }
}

/// `ServiceOffering` -> `service offering`, for messages.
pub fn kind_label(kind: &str) -> String {
    let mut out = String::new();
    for (i, c) in kind.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}
