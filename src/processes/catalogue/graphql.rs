//! The service catalogue: services, offerings, subscriptions.

use async_graphql::{
    Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use entity::{enums, service, service_offering, service_subscription};
use futures_util::{Stream, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Query};

use crate::auth::Staff;
use crate::graphql::{
    args::{maybe, patch_ref},
    context::{ContextExt, load},
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::processes::directory::graphql::{Organization, SupportGroup, User};
use crate::records::name_contains;
use crate::{
    error::AppError,
    events::{ChangeKind, DomainEvent},
    processes::catalogue as domain,
};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::LifecycleStatus")]
pub enum LifecycleStatus {
    /// Planned or being designed; not visible to customers.
    Pipeline,
    /// In operation.
    Live,
    /// Withdrawn; final.
    Retired,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::Criticality")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

/// A service of the catalogue (ISO/IEC 20000-1 8.2.4).
pub struct Service(pub service::Model);

#[Object]
impl Service {
    pub async fn id(&self) -> ID {
        ids::encode("Service", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn status(&self) -> LifecycleStatus {
        self.0.status.into()
    }
    async fn criticality(&self) -> Criticality {
        self.0.criticality.into()
    }
    /// The organization that delivers the service.
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
    }
    async fn owner_group(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<SupportGroup>> {
        let Some(id) = self.0.owner_group_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().support_group, id)
            .await?
            .map(SupportGroup))
    }
    async fn owner_user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.owner_user_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().user, id).await?.map(User))
    }
    /// Offerings of this service; customers see only live ones.
    async fn offerings(
        &self,
        ctx: &Context<'_>,
        status: Option<LifecycleStatus>,
    ) -> async_graphql::Result<Vec<ServiceOffering>> {
        let p = ctx.principal()?;
        let all = load(&ctx.loaders().offerings_by_service, self.0.id)
            .await?
            .unwrap_or_default();
        let want = status.map(enums::LifecycleStatus::from);
        let mut out: Vec<_> = all
            .into_iter()
            .filter(|o| want.is_none_or(|s| o.status == s))
            .filter(|o| !p.is_customer_view() || o.status == enums::LifecycleStatus::Live)
            .collect();
        out.sort_by(|a, b| a.name_key.cmp(&b.name_key).then(a.id.cmp(&b.id)));
        Ok(out.into_iter().map(ServiceOffering).collect())
    }
    /// Customer organizations subscribed to this service (those the caller may see).
    async fn customers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Organization>> {
        let p = ctx.principal()?;
        let loaders = ctx.loaders();
        let subs = load(&loaders.subscriptions_by_service, self.0.id)
            .await?
            .unwrap_or_default();
        let ids: Vec<i64> = subs
            .iter()
            .map(|s| s.customer_id)
            .filter(|id| p.can_see(*id))
            .collect();
        let orgs = loaders
            .organization
            .load_many(ids.iter().copied())
            .await
            .map_err(AppError::internal)?;
        let mut out: Vec<_> = ids.iter().filter_map(|id| orgs.get(id).cloned()).collect();
        out.sort_by(|a, b| a.name_key.cmp(&b.name_key));
        Ok(out.into_iter().map(Organization).collect())
    }
    /// The configuration items the service consists of (those the caller may see).
    async fn configuration_items(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::processes::cmdb::graphql::ConfigurationItem>> {
        let p = ctx.principal()?;
        let loaders = ctx.loaders();
        let links = load(&loaders.service_links_by_service, self.0.id)
            .await?
            .unwrap_or_default();
        let cis = loaders
            .configuration_item
            .load_many(links.iter().map(|l| l.ci_id))
            .await
            .map_err(AppError::internal)?;
        let mut out: Vec<_> = cis
            .into_values()
            .filter(|c| p.can_see(c.organization_id))
            .collect();
        out.sort_by(|a, b| a.name_key.cmp(&b.name_key).then(a.id.cmp(&b.id)));
        Ok(out
            .into_iter()
            .map(crate::processes::cmdb::graphql::ConfigurationItem)
            .collect())
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// What a customer can see and request of a service; only live offerings are requestable.
pub struct ServiceOffering(pub service_offering::Model);

#[Object]
impl ServiceOffering {
    pub async fn id(&self) -> ID {
        ids::encode("ServiceOffering", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn status(&self) -> LifecycleStatus {
        self.0.status.into()
    }
    /// Whether customers can request it now.
    async fn requestable(&self) -> bool {
        self.0.status == enums::LifecycleStatus::Live
    }
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        Ok(load(&ctx.loaders().service, self.0.service_id)
            .await?
            .map(Service))
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A customer's subscription to a service.
pub struct ServiceSubscription(pub service_subscription::Model);

#[Object]
impl ServiceSubscription {
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Service>> {
        Ok(load(&ctx.loaders().service, self.0.service_id)
            .await?
            .map(Service))
    }
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.customer_id)
            .await?
            .map(Organization))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject, Default)]
pub struct ServiceFilter {
    /// Any of these statuses.
    pub status: Option<Vec<LifecycleStatus>>,
    pub criticality: Option<Vec<Criticality>>,
    /// Services this customer organization subscribes to.
    pub customer_id: Option<ID>,
    /// Services delivered by this organization.
    pub organization_id: Option<ID>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum ServiceSortField {
    #[default]
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum SortDirection {
    #[default]
    Asc,
    Desc,
}

#[derive(InputObject, Default)]
pub struct ServiceSort {
    #[graphql(default)]
    pub field: ServiceSortField,
    #[graphql(default)]
    pub direction: SortDirection,
}

#[derive(Default)]
pub struct CatalogueQuery;

#[Object]
impl CatalogueQuery {
    /// Services the caller may see: those its organizations deliver or subscribe to.
    #[allow(clippy::too_many_arguments)]
    async fn services(
        &self,
        ctx: &Context<'_>,
        filter: Option<ServiceFilter>,
        sort: Option<ServiceSort>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Service>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q = service::Entity::find().filter(domain::service_visibility(p));
        if let Some(statuses) = f.status.filter(|s| !s.is_empty()) {
            q = q.filter(
                service::Column::Status
                    .is_in(statuses.into_iter().map(enums::LifecycleStatus::from)),
            );
        }
        if let Some(levels) = f.criticality.filter(|s| !s.is_empty()) {
            q = q.filter(
                service::Column::Criticality
                    .is_in(levels.into_iter().map(enums::Criticality::from)),
            );
        }
        if let Some(customer) = &f.customer_id {
            let customer = ids::reference(customer, "Organization", "customerId")?;
            if !p.can_see(customer) {
                // Another tenant's subscriptions answer like an unknown organization's: none.
                q = q.filter(service::Column::Id.is_in(std::iter::empty::<i64>()));
            }
            q = q.filter(
                service::Column::Id.in_subquery(
                    Query::select()
                        .column(service_subscription::Column::ServiceId)
                        .from(service_subscription::Entity)
                        .and_where(service_subscription::Column::CustomerId.eq(customer))
                        .to_owned(),
                ),
            );
        }
        if let Some(org) = &f.organization_id {
            q = q.filter(service::Column::OrganizationId.eq(ids::reference(
                org,
                "Organization",
                "organizationId",
            )?));
        }
        if let Some(cond) = name_contains(service::Column::Name, f.search.as_deref()) {
            q = q.filter(cond);
        }
        let sort = sort.unwrap_or_default();
        let descending = sort.direction == SortDirection::Desc;
        let keyset = match sort.field {
            ServiceSortField::Name => Keyset::by(
                service::Column::NameKey,
                |m: &service::Model| SortValue::Str(m.name_key.clone()),
                descending,
            ),
            ServiceSortField::CreatedAt => Keyset::by(
                service::Column::CreatedAt,
                |m: &service::Model| SortValue::Time(m.created_at),
                descending,
            ),
            ServiceSortField::UpdatedAt => Keyset::by(
                service::Column::UpdatedAt,
                |m: &service::Model| SortValue::Time(m.updated_at),
                descending,
            ),
        };
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            Service,
        )
        .await
    }

    async fn service(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Service> {
        let n = ids::expect(&id, "Service", "id")?;
        Ok(Service(
            domain::find_service(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

    async fn service_offering(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ServiceOffering> {
        let n = ids::expect(&id, "ServiceOffering", "id")?;
        Ok(ServiceOffering(
            domain::find_offering(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }
}

#[derive(InputObject)]
pub struct CreateServiceInput {
    pub name: String,
    pub description: Option<String>,
    /// PIPELINE (default) or LIVE.
    pub status: Option<LifecycleStatus>,
    /// Defaults to MEDIUM.
    pub criticality: Option<Criticality>,
    /// The delivering organization; defaults to the caller's.
    pub organization_id: Option<ID>,
    pub owner_group_id: Option<ID>,
    pub owner_user_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateServiceInput {
    pub id: ID,
    /// The version you read; a stale one is refused with `CONFLICT`.
    pub version: i32,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    /// PIPELINE -> LIVE -> RETIRED, or PIPELINE -> RETIRED.
    pub status: Option<LifecycleStatus>,
    pub criticality: Option<Criticality>,
    pub owner_group_id: MaybeUndefined<ID>,
    pub owner_user_id: MaybeUndefined<ID>,
}

#[derive(InputObject)]
pub struct CreateServiceOfferingInput {
    pub service_id: ID,
    pub name: String,
    pub description: Option<String>,
    /// PIPELINE (default) or LIVE (only while the service is live).
    pub status: Option<LifecycleStatus>,
}

#[derive(InputObject)]
pub struct UpdateServiceOfferingInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub status: Option<LifecycleStatus>,
}

#[derive(Default)]
pub struct CatalogueMutation;

#[Object]
impl CatalogueMutation {
    /// Adds a service to the catalogue (agent or admin).
    #[graphql(guard = "Staff")]
    async fn create_service(
        &self,
        ctx: &Context<'_>,
        input: CreateServiceInput,
    ) -> async_graphql::Result<Service> {
        let p = ctx.principal()?;
        let new = domain::NewService {
            organization_id: input
                .organization_id
                .as_ref()
                .map(|id| ids::reference(id, "Organization", "organizationId"))
                .transpose()?,
            name: input.name,
            description: input.description,
            status: input.status.map(Into::into),
            criticality: input.criticality.map(Into::into),
            owner_group_id: input
                .owner_group_id
                .as_ref()
                .map(|id| ids::reference(id, "SupportGroup", "ownerGroupId"))
                .transpose()?,
            owner_user_id: input
                .owner_user_id
                .as_ref()
                .map(|id| ids::reference(id, "User", "ownerUserId"))
                .transpose()?,
        };
        Ok(Service(
            domain::create_service(&ctx.app().store, p, new).await?,
        ))
    }

    /// Changes a service; `null` clears an optional field, an absent field is kept.
    #[graphql(guard = "Staff")]
    async fn update_service(
        &self,
        ctx: &Context<'_>,
        input: UpdateServiceInput,
    ) -> async_graphql::Result<Service> {
        let p = ctx.principal()?;
        let patch = domain::ServicePatch {
            id: ids::expect(&input.id, "Service", "id")?,
            version: input.version,
            name: input.name,
            description: maybe(input.description),
            status: input.status.map(Into::into),
            criticality: input.criticality.map(Into::into),
            owner_group_id: patch_ref(input.owner_group_id, "SupportGroup", "ownerGroupId")?,
            owner_user_id: patch_ref(input.owner_user_id, "User", "ownerUserId")?,
        };
        Ok(Service(
            domain::update_service(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Retires a service and its offerings.
    #[graphql(guard = "Staff")]
    async fn retire_service(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<Service> {
        let p = ctx.principal()?;
        let patch = domain::ServicePatch::retire(ids::expect(&id, "Service", "id")?, version);
        Ok(Service(
            domain::update_service(&ctx.app().store, p, patch).await?,
        ))
    }

    #[graphql(guard = "Staff")]
    async fn create_service_offering(
        &self,
        ctx: &Context<'_>,
        input: CreateServiceOfferingInput,
    ) -> async_graphql::Result<ServiceOffering> {
        let p = ctx.principal()?;
        let new = domain::NewOffering {
            service_id: ids::reference(&input.service_id, "Service", "serviceId")?,
            name: input.name,
            description: input.description,
            status: input.status.map(Into::into),
        };
        Ok(ServiceOffering(
            domain::create_offering(&ctx.app().store, p, new).await?,
        ))
    }

    #[graphql(guard = "Staff")]
    async fn update_service_offering(
        &self,
        ctx: &Context<'_>,
        input: UpdateServiceOfferingInput,
    ) -> async_graphql::Result<ServiceOffering> {
        let p = ctx.principal()?;
        let patch = domain::OfferingPatch {
            id: ids::expect(&input.id, "ServiceOffering", "id")?,
            version: input.version,
            name: input.name,
            description: maybe(input.description),
            status: input.status.map(Into::into),
        };
        Ok(ServiceOffering(
            domain::update_offering(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Subscribes a customer organization to a service.
    #[graphql(guard = "Staff")]
    async fn subscribe_customer(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        customer_id: ID,
    ) -> async_graphql::Result<ServiceSubscription> {
        let p = ctx.principal()?;
        let s = ids::reference(&service_id, "Service", "serviceId")?;
        let c = ids::reference(&customer_id, "Organization", "customerId")?;
        Ok(ServiceSubscription(
            domain::subscribe(&ctx.app().store, p, s, c).await?,
        ))
    }

    /// Ends a customer's subscription; true when it existed.
    #[graphql(guard = "Staff")]
    async fn unsubscribe_customer(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        customer_id: ID,
    ) -> async_graphql::Result<bool> {
        let p = ctx.principal()?;
        let s = ids::reference(&service_id, "Service", "serviceId")?;
        let c = ids::reference(&customer_id, "Organization", "customerId")?;
        domain::unsubscribe(&ctx.app().store, p, s, c).await?;
        Ok(true)
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ChangeKind")]
pub enum ChangeKindGql {
    Created,
    Updated,
    Retired,
    Deleted,
}

impl From<ChangeKind> for ChangeKindGql {
    fn from(k: ChangeKind) -> Self {
        match k {
            ChangeKind::Created => Self::Created,
            ChangeKind::Updated => Self::Updated,
            ChangeKind::Retired => Self::Retired,
            ChangeKind::Deleted => Self::Deleted,
        }
    }
}

/// A committed change to a service.
#[derive(SimpleObject)]
pub struct ServiceChangedEvent {
    #[graphql(name = "kind")]
    pub kind: ChangeKindGql,
    pub service: Service,
    /// Names of the stored fields that changed (empty on creation).
    pub changed_fields: Vec<String>,
}

#[derive(InputObject, Default)]
pub struct ServiceChangedFilter {
    /// Only this service.
    pub service_id: Option<ID>,
    /// Only services in one of these statuses after the change.
    pub status: Option<Vec<LifecycleStatus>>,
}

#[derive(Default)]
pub struct CatalogueSubscription;

#[Subscription]
impl CatalogueSubscription {
    /// Services created, updated or retired, as the caller may see them.
    async fn service_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<ServiceChangedFilter>,
    ) -> async_graphql::Result<impl Stream<Item = ServiceChangedEvent> + use<>> {
        let p = ctx.principal()?.clone();
        let f = filter.unwrap_or_default();
        let only = f
            .service_id
            .as_ref()
            .map(|id| ids::reference(id, "Service", "serviceId"))
            .transpose()?;
        let statuses: Option<Vec<enums::LifecycleStatus>> = f
            .status
            .filter(|s| !s.is_empty())
            .map(|s| s.into_iter().map(Into::into).collect());
        let events = ctx.app().store.events.stream();
        Ok(events.filter_map(move |ev| {
            let out = match &*ev {
                DomainEvent::ServiceChanged(c)
                    if only.is_none_or(|id| id == c.service.id)
                        && statuses
                            .as_ref()
                            .is_none_or(|s| s.contains(&c.service.status))
                        && (p.visible_organizations().is_none()
                            || c.visible_to.iter().any(|o| p.can_see(*o)))
                        && !(p.is_customer_view()
                            && c.service.status == enums::LifecycleStatus::Pipeline) =>
                {
                    Some(ServiceChangedEvent {
                        kind: c.kind.into(),
                        service: Service(c.service.clone()),
                        changed_fields: c.changed_fields.clone(),
                    })
                }
                _ => None,
            };
            futures_util::future::ready(out)
        }))
    }
}
