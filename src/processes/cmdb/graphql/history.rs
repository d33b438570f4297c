//! CIs as they were at a point in time: the `ciAsOf` query.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::cis::ConfigurationItem;
use crate::graphql::{context::ContextExt, ids};
use crate::processes::cmdb as domain;

#[derive(Default)]
pub struct HistoryQuery;

#[Object]
impl HistoryQuery {
    /// A CI as it was at `at`, from the audit trail (its own fields; relationships
    /// and services are today's). `NOT_FOUND` when it did not exist then.
    async fn ci_as_of(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at: DateTime<Utc>,
    ) -> async_graphql::Result<ConfigurationItem> {
        let n = ids::expect(&id, "ConfigurationItem", "id")?;
        Ok(ConfigurationItem(
            domain::ci_as_of(&ctx.app().store.db, ctx.principal()?, n, at).await?,
        ))
    }
}
