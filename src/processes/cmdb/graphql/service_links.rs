//! Which CIs a service consists of: mutations.

use async_graphql::{Context, ID, Object};

use super::cis::ConfigurationItem;
use crate::auth::Staff;
use crate::error::AppResult;
use crate::graphql::{context::ContextExt, ids};
use crate::processes::cmdb as domain;

#[derive(Default)]
pub struct ServiceLinkMutation;

#[Object]
impl ServiceLinkMutation {
    /// Records that a service consists of (among others) this CI.
    #[graphql(guard = "Staff")]
    async fn add_service_configuration_item(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        configuration_item_id: ID,
    ) -> async_graphql::Result<ConfigurationItem> {
        let p = ctx.principal()?;
        let (s, c) = link_ids(&service_id, &configuration_item_id)?;
        let link = domain::link_service_ci(&ctx.app().store, p, s, c).await?;
        Ok(ConfigurationItem(
            domain::find_ci(&ctx.app().store.db, p, link.ci_id).await?,
        ))
    }

    /// Removes a CI from a service; true when it was part of it.
    #[graphql(guard = "Staff")]
    async fn remove_service_configuration_item(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        configuration_item_id: ID,
    ) -> async_graphql::Result<bool> {
        let p = ctx.principal()?;
        let (s, c) = link_ids(&service_id, &configuration_item_id)?;
        domain::unlink_service_ci(&ctx.app().store, p, s, c).await?;
        Ok(true)
    }
}

/// The service and the CI a link names.
fn link_ids(service_id: &ID, configuration_item_id: &ID) -> AppResult<(i64, i64)> {
    Ok((
        ids::reference(service_id, "Service", "serviceId")?,
        ids::reference(
            configuration_item_id,
            "ConfigurationItem",
            "configurationItemId",
        )?,
    ))
}
