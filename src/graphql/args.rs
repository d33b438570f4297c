//! Arguments shared by every process's resolvers.

use async_graphql::{ID, MaybeUndefined};

use super::ids;
use crate::error::AppResult;

/// `undefined` keeps a field, `null` clears it, a value sets it.
pub fn maybe<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

/// An optional reference in an input: absent is `None`; a wrong ID is `VALIDATION` naming `field`.
pub fn optional_ref(v: Option<&ID>, kind: &str, field: &str) -> AppResult<Option<i64>> {
    v.map(|id| ids::reference(id, kind, field)).transpose()
}

/// A reference in a patch: absent keeps (`None`), null clears (`Some(None)`),
/// a value sets it; a wrong ID is `VALIDATION` naming `field`.
pub fn patch_ref(v: MaybeUndefined<ID>, kind: &str, field: &str) -> AppResult<Option<Option<i64>>> {
    maybe(v)
        .map(|o| o.map(|id| ids::reference(&id, kind, field)).transpose())
        .transpose()
}

/// A list of references in an input, each checked like [`optional_ref`].
pub fn refs(v: Option<Vec<ID>>, kind: &str, field: &str) -> AppResult<Option<Vec<i64>>> {
    v.map(|ids| {
        ids.iter()
            .map(|id| ids::reference(id, kind, field))
            .collect()
    })
    .transpose()
}
