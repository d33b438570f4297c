//! Impact analysis: objects and the `ciImpact` query.

use async_graphql::{Context, Enum, ID, Object};

use super::cis::ConfigurationItem;
use crate::graphql::{
    context::{ContextExt, load},
    ids,
};
use crate::processes::{
    catalogue::graphql::Service, directory::graphql::Organization, incident::graphql::Incident,
};
use crate::{error::AppError, processes::cmdb as domain};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
#[graphql(remote = "crate::processes::cmdb::ImpactDirection")]
pub enum ImpactDirection {
    /// What depends on the CI, transitively (what goes down with it): follows
    /// "used by", "runs", "hosts", "connected from" and "contains".
    #[default]
    Downstream,
    /// What the CI depends on, transitively (what could have caused its failure):
    /// follows "depends on", "runs on", "hosted on", "connects to" and "contained in".
    Upstream,
}

/// A CI reached by impact analysis.
pub struct ImpactedConfigurationItem(domain::ImpactedCi);

#[Object]
impl ImpactedConfigurationItem {
    /// Relationships between the root and this CI on the path (0 for the root).
    async fn depth(&self) -> i32 {
        self.0.depth
    }
    /// The reached CI's ID (without loading it).
    async fn configuration_item_id(&self) -> ID {
        ids::encode("ConfigurationItem", self.0.ci_id)
    }
    /// The IDs of the CIs from the root to this one, both included: one shortest
    /// path.
    async fn path(&self) -> Vec<ID> {
        self.0
            .path
            .iter()
            .map(|id| ids::encode("ConfigurationItem", *id))
            .collect()
    }
    async fn configuration_item(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ConfigurationItem>> {
        Ok(load(&ctx.loaders().configuration_item, self.0.ci_id)
            .await?
            .map(ConfigurationItem))
    }
}

/// A service one of whose CIs was reached.
pub struct ImpactedService(domain::ImpactedService);

#[Object]
impl ImpactedService {
    /// The depth of the closest reached CI of the service.
    async fn depth(&self) -> i32 {
        self.0.depth
    }
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        Ok(load(&ctx.loaders().service, self.0.service_id)
            .await?
            .map(Service))
    }
    /// The reached CI through which the service is impacted.
    async fn via(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ConfigurationItem>> {
        Ok(load(&ctx.loaders().configuration_item, self.0.via_ci_id)
            .await?
            .map(ConfigurationItem))
    }
}

/// The answer of `ciImpact`.
pub struct ImpactAnalysis(domain::Impact);

#[Object]
impl ImpactAnalysis {
    async fn root(&self) -> ConfigurationItem {
        ConfigurationItem(self.0.root.clone())
    }
    async fn direction(&self) -> ImpactDirection {
        self.0.direction.into()
    }
    async fn max_depth(&self) -> i32 {
        self.0.max_depth
    }
    /// Whether redundancy groups were honoured (downstream only).
    async fn consider_redundancy(&self) -> bool {
        self.0.consider_redundancy
    }
    /// How many CIs were reached, the root included.
    async fn reached_count(&self) -> usize {
        self.0.cis.len()
    }
    /// The reached CIs by depth then id, the root first; `first` limits the list.
    async fn configuration_items(&self, first: Option<usize>) -> Vec<ImpactedConfigurationItem> {
        self.0
            .cis
            .iter()
            .take(first.unwrap_or(usize::MAX))
            .cloned()
            .map(ImpactedConfigurationItem)
            .collect()
    }
    /// Services that consist of a reached CI.
    async fn services(&self) -> Vec<ImpactedService> {
        self.0
            .services
            .iter()
            .cloned()
            .map(ImpactedService)
            .collect()
    }
    /// Open incidents (not resolved or closed) of the customers the caller may
    /// see that name a reached CI as affected or whose service is among the
    /// impacted services; newest first, `first` at most the page size (default 50).
    async fn open_incidents(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<Incident>> {
        let app = ctx.app();
        let limit = first
            .unwrap_or(50)
            .clamp(0, i32::try_from(app.max_page_size).unwrap_or(i32::MAX));
        let cis: Vec<i64> = self.0.cis.iter().map(|c| c.ci_id).collect();
        let services: Vec<i64> = self.0.services.iter().map(|s| s.service_id).collect();
        let found = crate::processes::incident::open_incidents_touching(
            &app.store.db,
            ctx.principal()?,
            &cis,
            &services,
            u64::try_from(limit).unwrap_or_default(),
        )
        .await?;
        Ok(found.into_iter().map(Incident).collect())
    }
    /// Open problems (new, under investigation, known error) the caller may see
    /// that name a reached CI as affected; newest first, `first` at most the
    /// page size (default 50). A known error's workaround is on the problem.
    async fn open_problems(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<crate::processes::problem::graphql::Problem>> {
        let app = ctx.app();
        let limit = first
            .unwrap_or(50)
            .clamp(0, i32::try_from(app.max_page_size).unwrap_or(i32::MAX));
        let cis: Vec<i64> = self.0.cis.iter().map(|c| c.ci_id).collect();
        let found = crate::processes::problem::open_problems_touching(
            &app.store.db,
            ctx.principal()?,
            &cis,
            u64::try_from(limit).unwrap_or_default(),
        )
        .await?;
        Ok(found
            .into_iter()
            .map(crate::processes::problem::graphql::Problem)
            .collect())
    }
    /// Customers affected: subscribers of those services and owners of reached CIs.
    async fn customers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Organization>> {
        let orgs = ctx
            .loaders()
            .organization
            .load_many(self.0.customer_ids.iter().copied())
            .await
            .map_err(AppError::internal)?;
        Ok(self
            .0
            .customer_ids
            .iter()
            .filter_map(|id| orgs.get(id).cloned().map(Organization))
            .collect())
    }
}

#[derive(Default)]
pub struct ImpactQuery;

#[Object]
impl ImpactQuery {
    /// Impact analysis from a CI in one query, run in the database (a recursive
    /// CTE on both PostgreSQL and SQLite). DOWNSTREAM answers what goes down
    /// with the CI, UPSTREAM what it depends on. Cycles never loop; each CI is
    /// answered once, at its smallest depth, with one shortest path. With
    /// `considerRedundancy` (DOWNSTREAM), a CI whose dependency is one of several
    /// redundant members (same dependent CI and relationship type, all marked
    /// redundant) stays up until every member is down. Only CIs, services and
    /// customers the caller may see are answered.
    async fn ci_impact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] direction: ImpactDirection,
        #[graphql(desc = "1 to 50; default 10.")] max_depth: Option<i32>,
        #[graphql(default)] consider_redundancy: bool,
    ) -> async_graphql::Result<ImpactAnalysis> {
        let n = ids::expect(&id, "ConfigurationItem", "id")?;
        // Paths cost the edges into the reached CIs: fetched only when selected.
        let with_paths = ctx
            .look_ahead()
            .field("configurationItems")
            .field("path")
            .exists();
        Ok(ImpactAnalysis(
            domain::impact(
                &ctx.app().store.db,
                ctx.principal()?,
                n,
                direction.into(),
                max_depth,
                consider_redundancy,
                with_paths,
            )
            .await?,
        ))
    }
}
