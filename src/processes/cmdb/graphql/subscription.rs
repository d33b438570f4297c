//! `ciChanged`: committed changes to configuration items.

use async_graphql::{Context, ID, InputObject, SimpleObject, Subscription};
use futures_util::{Stream, StreamExt};

use super::cis::ConfigurationItem;
use crate::events::DomainEvent;
use crate::graphql::{
    args::{optional_ref, refs},
    context::ContextExt,
};
use crate::processes::catalogue::graphql::ChangeKindGql;

/// A committed change to a configuration item.
#[derive(SimpleObject)]
pub struct CiChangedEvent {
    pub kind: ChangeKindGql,
    pub configuration_item: ConfigurationItem,
    /// Names of the stored fields that changed (empty on creation).
    pub changed_fields: Vec<String>,
}

#[derive(InputObject, Default)]
pub struct CiChangedFilter {
    /// Only this CI.
    pub configuration_item_id: Option<ID>,
    /// Only CIs of these classes.
    pub class_ids: Option<Vec<ID>>,
    /// Only this tenant's CIs.
    pub organization_id: Option<ID>,
}

#[derive(Default)]
pub struct CmdbSubscription;

#[Subscription]
impl CmdbSubscription {
    /// CIs created, updated or retired, among those the caller may see.
    async fn ci_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<CiChangedFilter>,
    ) -> async_graphql::Result<impl Stream<Item = CiChangedEvent> + use<>> {
        let p = ctx.principal()?.clone();
        let f = filter.unwrap_or_default();
        let only = optional_ref(
            f.configuration_item_id.as_ref(),
            "ConfigurationItem",
            "configurationItemId",
        )?;
        let classes = refs(
            f.class_ids.filter(|c| !c.is_empty()),
            "ConfigurationItemClass",
            "classIds",
        )?;
        let org = optional_ref(f.organization_id.as_ref(), "Organization", "organizationId")?;
        let events = ctx.app().store.events.stream();
        Ok(events.filter_map(move |ev| {
            let out = match &*ev {
                DomainEvent::ConfigurationItemChanged(c)
                    if p.can_see(c.ci.organization_id)
                        && only.is_none_or(|id| id == c.ci.id)
                        && org.is_none_or(|o| o == c.ci.organization_id)
                        && classes
                            .as_ref()
                            .is_none_or(|cs| cs.contains(&c.ci.class_id)) =>
                {
                    Some(CiChangedEvent {
                        kind: c.kind.into(),
                        configuration_item: ConfigurationItem(c.ci.clone()),
                        changed_fields: c.changed_fields.clone(),
                    })
                }
                _ => None,
            };
            futures_util::future::ready(out)
        }))
    }
}
