//! Arguments shared by every process's resolvers.

use async_graphql::MaybeUndefined;

/// `undefined` keeps a field, `null` clears it, a value sets it.
pub fn maybe<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}
