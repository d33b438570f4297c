//! Who may call an operation, in one place: async-graphql guards on the
//! resolvers (`#[graphql(guard = "Admin")]`). Rules keep only the checks that
//! depend on a record (its tenant, its requester), never the caller's role.

use async_graphql::{Context, Guard};

use crate::graphql::context::ContextExt;

/// Admins only: configuration, the directory, classes, integrations.
pub struct Admin;

/// Agents and admins: the service desk's work on records.
pub struct Staff;

impl Guard for Admin {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        Ok(ctx.principal()?.require_admin()?)
    }
}

impl Guard for Staff {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        Ok(ctx.principal()?.require_staff()?)
    }
}
