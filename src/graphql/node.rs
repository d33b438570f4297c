//! The `Node` interface and `node(id:)`: one entry point for every record type.
//! Each process adds its types to the enum and a line to `resolve`.

use async_graphql::{Context, ID, Interface, Object};

use super::{context::ContextExt, ids};
use crate::{
    error::{AppError, AppResult},
    processes::{catalogue, cmdb, directory, incident, monitoring, problem, sla},
};

/// Declares the `Node` interface and `resolve` from one list: each record type
/// (its GraphQL wrapper, a tuple struct around the model) with the read that
/// finds it for the caller (`NOT_FOUND` when missing or not visible).
macro_rules! nodes {
    (|$ctx:ident, $db:ident, $p:ident, $n:ident| $($name:ident($($wrap:ident)::+) = $find:expr,)*) => {
        #[derive(Interface)]
        #[graphql(field(name = "id", ty = "ID", desc = "Opaque global identifier."))]
        pub enum Node {
            $($name($($wrap)::+),)*
        }

        /// Any record by global ID, or `NOT_FOUND` when it is missing or not visible to the caller.
        pub async fn resolve($ctx: &Context<'_>, id: &ID) -> AppResult<Node> {
            let $p = $ctx.principal()?;
            let $db = &$ctx.app().store.db;
            let (kind, $n) = ids::decode(id)
                .ok_or_else(|| AppError::invalid_field("id", "id is not a valid ID"))?;
            Ok(match kind.as_str() {
                $(stringify!($name) => Node::$name($($wrap)::+($find.await?)),)*
                _ => return Err(AppError::not_found("record")),
            })
        }
    };
}

// One line per record type.
nodes! { |ctx, db, p, n|
    Organization(directory::graphql::Organization) = directory::find_organization(db, p, n),
    User(directory::graphql::User) = directory::find_user(db, p, n),
    SupportGroup(directory::graphql::SupportGroup) = directory::find_support_group(db, p, n),
    Service(catalogue::graphql::Service) = catalogue::find_service(db, p, n),
    ServiceOffering(catalogue::graphql::ServiceOffering) = catalogue::find_offering(db, p, n),
    AuditEvent(super::audit::AuditEvent) = super::audit::find_event(ctx, n),
    ConfigurationItemClass(cmdb::graphql::ConfigurationItemClass) = cmdb::find_class(db, n),
    ConfigurationItem(cmdb::graphql::ConfigurationItem) = cmdb::find_ci(db, p, n),
    CiRelationship(cmdb::graphql::CiRelationship) = cmdb::find_relationship(db, p, n),
    BusinessCalendar(sla::graphql::BusinessCalendar) = sla::find_calendar(db, p, n),
    Sla(sla::graphql::Sla) = sla::find_sla(db, p, n),
    Incident(incident::graphql::Incident) = incident::find_incident(db, p, n),
    Integration(monitoring::graphql::Integration) = monitoring::find_integration(db, p, n),
    Problem(problem::graphql::Problem) = problem::find_problem(db, p, n),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any record by its global ID.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Node> {
        Ok(resolve(ctx, &id).await?)
    }

    /// Fetches several records by global ID, in the order given.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> async_graphql::Result<Vec<Node>> {
        if ids.len() > ctx.app().max_page_size {
            return Err(AppError::invalid_field(
                "ids",
                format!("at most {} ids", ctx.app().max_page_size),
            )
            .into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(resolve(ctx, id).await?);
        }
        Ok(out)
    }
}
