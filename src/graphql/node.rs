//! The `Node` interface and `node(id:)`: one entry point for every record type.
//! Each process adds its types to the enum and a line to `resolve`.

use async_graphql::{Context, ID, Interface, Object};

use super::{audit::AuditEvent, context::ContextExt, ids};
use crate::processes::{
    catalogue::graphql::{Service, ServiceOffering},
    cmdb::graphql::{CiRelationship, ConfigurationItem, ConfigurationItemClass},
    directory::graphql::{Organization, SupportGroup, User},
    incident::graphql::Incident,
    monitoring::graphql::Integration,
    problem::graphql::Problem,
    sla::graphql::{BusinessCalendar, Sla},
};
use crate::{
    error::{AppError, AppResult},
    processes::{catalogue, cmdb, directory, incident, monitoring, problem, sla},
};

#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global identifier."))]
pub enum Node {
    Organization(Organization),
    User(User),
    SupportGroup(SupportGroup),
    Service(Service),
    ServiceOffering(ServiceOffering),
    AuditEvent(AuditEvent),
    ConfigurationItemClass(ConfigurationItemClass),
    ConfigurationItem(ConfigurationItem),
    CiRelationship(CiRelationship),
    BusinessCalendar(BusinessCalendar),
    Sla(Sla),
    Incident(Incident),
    Integration(Integration),
    Problem(Problem),
}

/// Any record by global ID, or `NOT_FOUND` when it is missing or not visible to the caller.
pub async fn resolve(ctx: &Context<'_>, id: &ID) -> AppResult<Node> {
    let p = ctx.principal()?;
    let db = &ctx.app().store.db;
    let (kind, n) =
        ids::decode(id).ok_or_else(|| AppError::invalid_field("id", "id is not a valid ID"))?;
    Ok(match kind.as_str() {
        "Organization" => {
            Node::Organization(Organization(directory::find_organization(db, p, n).await?))
        }
        "User" => Node::User(User(directory::find_user(db, p, n).await?)),
        "SupportGroup" => {
            Node::SupportGroup(SupportGroup(directory::find_support_group(db, p, n).await?))
        }
        "Service" => Node::Service(Service(catalogue::find_service(db, p, n).await?)),
        "ServiceOffering" => {
            Node::ServiceOffering(ServiceOffering(catalogue::find_offering(db, p, n).await?))
        }
        "ConfigurationItemClass" => {
            Node::ConfigurationItemClass(ConfigurationItemClass(cmdb::find_class(db, n).await?))
        }
        "ConfigurationItem" => {
            Node::ConfigurationItem(ConfigurationItem(cmdb::find_ci(db, p, n).await?))
        }
        "CiRelationship" => {
            Node::CiRelationship(CiRelationship(cmdb::find_relationship(db, p, n).await?))
        }
        "BusinessCalendar" => {
            Node::BusinessCalendar(BusinessCalendar(sla::find_calendar(db, p, n).await?))
        }
        "Sla" => Node::Sla(Sla(sla::find_sla(db, p, n).await?)),
        "Incident" => Node::Incident(Incident(incident::find_incident(db, p, n).await?)),
        "Integration" => {
            Node::Integration(Integration(monitoring::find_integration(db, p, n).await?))
        }
        "Problem" => Node::Problem(Problem(problem::find_problem(db, p, n).await?)),
        "AuditEvent" => Node::AuditEvent(AuditEvent(super::audit::find_event(ctx, n).await?)),
        _ => return Err(AppError::not_found("record")),
    })
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
