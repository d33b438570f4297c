//! Monitoring queries: integrations and the delivery log, for admins.

use async_graphql::{Context, ID, InputObject, Object};
use entity::{ingest_delivery, integration};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::delivery::IngestDelivery;
use super::integration::Integration;
use crate::auth::Admin;
use crate::graphql::{
    context::ContextExt,
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::processes::monitoring as domain;
use crate::records::scope_to;

#[derive(InputObject, Default)]
pub struct IntegrationFilter {
    pub organization_id: Option<ID>,
    pub active: Option<bool>,
}

#[derive(Default)]
pub struct MonitoringQuery;

#[Object]
impl MonitoringQuery {
    /// Monitoring integrations, by name. Admins only.
    #[graphql(guard = "Admin")]
    async fn integrations(
        &self,
        ctx: &Context<'_>,
        filter: Option<IntegrationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Integration>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q =
            integration::Entity::find().filter(scope_to(p, integration::Column::OrganizationId));
        if let Some(o) = &f.organization_id {
            q = q.filter(integration::Column::OrganizationId.eq(ids::reference(
                o,
                "Organization",
                "organizationId",
            )?));
        }
        if let Some(a) = f.active {
            q = q.filter(integration::Column::Active.eq(a));
        }
        let keyset = Keyset::by(
            integration::Column::NameKey,
            |m: &integration::Model| SortValue::Str(m.name_key.clone()),
            false,
        );
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            Integration,
        )
        .await
    }

    #[graphql(guard = "Admin")]
    async fn integration(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Integration> {
        let n = ids::expect(&id, "Integration", "id")?;
        Ok(Integration(
            domain::find_integration(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

    /// The ingest deliveries, newest first, kept for `ingest.log_retention`.
    /// Admins only.
    #[graphql(guard = "Admin")]
    async fn ingest_log(
        &self,
        ctx: &Context<'_>,
        integration_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<IngestDelivery>> {
        let p = ctx.principal()?;
        let mut q = ingest_delivery::Entity::find()
            .filter(scope_to(p, ingest_delivery::Column::OrganizationId));
        if let Some(i) = &integration_id {
            q = q.filter(ingest_delivery::Column::IntegrationId.eq(ids::reference(
                i,
                "Integration",
                "integrationId",
            )?));
        }
        let keyset = Keyset::<ingest_delivery::Entity>::by_id(true);
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            IngestDelivery,
        )
        .await
    }
}
