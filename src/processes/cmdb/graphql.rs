//! Configuration management: CI classes, configuration items, relationships,
//! service composition, impact analysis, bulk upsert, history and `ciChanged`.

use async_graphql::{
    Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use entity::{ci_class, ci_relationship, configuration_item, enums};
use futures_util::{Stream, StreamExt};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, QueryFilter,
    sea_query::{Expr, SimpleExpr},
};
use serde_json::Value;

use crate::auth::{Admin, Staff};
use crate::graphql::{
    args::{maybe, optional_ref},
    context::{ContextExt, load},
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::processes::{
    catalogue::graphql::{ChangeKindGql, Service},
    directory::graphql::{Organization, SupportGroup},
    incident::graphql::Incident,
};
use crate::records::name_contains;
use crate::{
    error::{AppError, AppResult},
    events::DomainEvent,
    processes::cmdb as domain,
};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::CiStatus")]
pub enum CiStatus {
    Planned,
    Ordered,
    InProduction,
    Maintenance,
    /// Final: a retired CI has no relationships and belongs to no service.
    Retired,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::CiEnvironment")]
pub enum CiEnvironment {
    Production,
    Staging,
    Test,
    Development,
    DisasterRecovery,
}

/// Relationship types in their canonical direction, `source -> target`. Impact
/// flows from target to source (the source depends on the target), except for
/// `CONTAINS`, where the contained target depends on its container source.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::RelationshipKind")]
pub enum RelationshipKind {
    /// source "depends on" target; target is "used by" source.
    DependsOn,
    /// source "runs on" target; target "runs" source.
    RunsOn,
    /// source is "hosted on" target; target "hosts" source.
    HostedOn,
    /// source "connects to" target; target is "connected from" source.
    ConnectsTo,
    /// source "contains" target; target is "contained in" source.
    Contains,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::processes::cmdb::AttributeType")]
pub enum AttributeType {
    String,
    Integer,
    /// Any JSON number.
    Decimal,
    Boolean,
    /// An RFC 3339 string, e.g. `2026-11-22T09:00:00Z`.
    DateTime,
    /// A string from the attribute's `values`.
    Enum,
}

/// One typed attribute of a CI class.
#[derive(SimpleObject)]
pub struct AttributeDefinition {
    pub name: String,
    #[graphql(name = "type")]
    pub kind: AttributeType,
    pub required: bool,
    /// The allowed values of an ENUM attribute.
    pub values: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct AttributeDefinitionInput {
    /// Starts with a letter; letters, digits and `_`.
    pub name: String,
    #[graphql(name = "type")]
    pub kind: AttributeType,
    #[graphql(default)]
    pub required: bool,
    /// Required for ENUM attributes, refused for the others.
    pub values: Option<Vec<String>>,
    pub description: Option<String>,
}

impl From<AttributeDefinitionInput> for domain::AttributeDefinition {
    fn from(d: AttributeDefinitionInput) -> Self {
        Self {
            name: d.name,
            kind: d.kind.into(),
            required: d.required,
            values: d.values,
            description: d.description,
        }
    }
}

/// A class of configuration items, with the attribute schema its CIs follow.
pub struct ConfigurationItemClass(pub ci_class::Model);

#[Object]
impl ConfigurationItemClass {
    pub async fn id(&self) -> ID {
        ids::encode("ConfigurationItemClass", self.0.id)
    }
    /// Stable code, e.g. `server`; inputs name classes by it.
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn attributes(&self) -> Vec<AttributeDefinition> {
        domain::class_schema(&self.0)
            .into_iter()
            .map(|d| AttributeDefinition {
                name: d.name,
                kind: d.kind.into(),
                required: d.required,
                values: d.values,
                description: d.description,
            })
            .collect()
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

/// A configuration item (ISO/IEC 20000-1 8.2.6).
pub struct ConfigurationItem(pub configuration_item::Model);

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum RelationshipDirection {
    /// Relationships where this CI is the source.
    Outgoing,
    /// Relationships where this CI is the target.
    Incoming,
}

#[Object]
impl ConfigurationItem {
    pub async fn id(&self) -> ID {
        ids::encode("ConfigurationItem", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn class(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ConfigurationItemClass>> {
        Ok(load(&ctx.loaders().ci_class, self.0.class_id)
            .await?
            .map(ConfigurationItemClass))
    }
    /// The tenant the CI belongs to.
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
    }
    async fn status(&self) -> CiStatus {
        self.0.status.into()
    }
    async fn environment(&self) -> CiEnvironment {
        self.0.environment.into()
    }
    async fn owner_group(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<SupportGroup>> {
        let Some(id) = self.0.owner_group_id else {
            return Ok(None);
        };
        Ok(load(&ctx.loaders().support_group, id)
            .await?
            .map(SupportGroup))
    }
    /// Attribute values by name, valid for the class.
    async fn attributes(&self) -> Json<Value> {
        Json(self.0.attributes.clone())
    }
    /// One attribute's value, or null.
    async fn attribute(&self, name: String) -> Option<Json<Value>> {
        self.0.attributes.get(&name).cloned().map(Json)
    }
    /// The discovery tool or feed that owns the record.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// The CI's identity in `source`; unique per tenant with it.
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }
    /// Relationships from both ends (or one), each with its name read from this CI:
    /// "depends on" when outgoing, "used by" when incoming.
    async fn relationships(
        &self,
        ctx: &Context<'_>,
        direction: Option<RelationshipDirection>,
        kind: Option<RelationshipKind>,
    ) -> async_graphql::Result<Vec<RelatedConfigurationItem>> {
        let loaders = ctx.loaders();
        let mut out = Vec::new();
        if direction != Some(RelationshipDirection::Incoming) {
            for r in load(&loaders.relationships_by_source, self.0.id)
                .await?
                .unwrap_or_default()
            {
                out.push(RelatedConfigurationItem {
                    direction: RelationshipDirection::Outgoing,
                    relationship: r,
                });
            }
        }
        if direction != Some(RelationshipDirection::Outgoing) {
            for r in load(&loaders.relationships_by_target, self.0.id)
                .await?
                .unwrap_or_default()
            {
                out.push(RelatedConfigurationItem {
                    direction: RelationshipDirection::Incoming,
                    relationship: r,
                });
            }
        }
        let want = kind.map(enums::RelationshipKind::from);
        out.retain(|r| want.is_none_or(|k| r.relationship.kind == k));
        out.sort_by_key(|r| r.relationship.id);
        Ok(out)
    }
    /// The services this CI is part of (those the caller may see).
    async fn services(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Service>> {
        let p = ctx.principal()?;
        let loaders = ctx.loaders();
        let links = load(&loaders.service_links_by_ci, self.0.id)
            .await?
            .unwrap_or_default();
        let services = loaders
            .service
            .load_many(links.iter().map(|l| l.service_id))
            .await
            .map_err(AppError::internal)?;
        let mut out = Vec::new();
        for s in services.into_values() {
            if crate::processes::catalogue::can_see_service(&ctx.app().store.db, p, &s).await? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.name_key.cmp(&b.name_key).then(a.id.cmp(&b.id)));
        Ok(out.into_iter().map(Service).collect())
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

/// A directed, typed relationship: `source <kind> target`.
pub struct CiRelationship(pub ci_relationship::Model);

#[Object]
impl CiRelationship {
    pub async fn id(&self) -> ID {
        ids::encode("CiRelationship", self.0.id)
    }
    async fn kind(&self) -> RelationshipKind {
        self.0.kind.into()
    }
    /// Read from the source, e.g. "depends on".
    async fn name(&self) -> &'static str {
        domain::relationship_names(self.0.kind).0
    }
    /// Read from the target, e.g. "used by".
    async fn reverse_name(&self) -> &'static str {
        domain::relationship_names(self.0.kind).1
    }
    async fn source(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ConfigurationItem>> {
        Ok(load(&ctx.loaders().configuration_item, self.0.source_id)
            .await?
            .map(ConfigurationItem))
    }
    async fn target(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ConfigurationItem>> {
        Ok(load(&ctx.loaders().configuration_item, self.0.target_id)
            .await?
            .map(ConfigurationItem))
    }
    /// One of several members the dependent can use: losing it alone does not take the dependent down.
    async fn redundant(&self) -> bool {
        self.0.redundant
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A relationship seen from one of its CIs.
pub struct RelatedConfigurationItem {
    direction: RelationshipDirection,
    relationship: ci_relationship::Model,
}

#[Object]
impl RelatedConfigurationItem {
    async fn direction(&self) -> RelationshipDirection {
        self.direction
    }
    /// The relationship's name read from this CI, e.g. "runs on" or "runs".
    async fn name(&self) -> &'static str {
        let (forward, reverse) = domain::relationship_names(self.relationship.kind);
        match self.direction {
            RelationshipDirection::Outgoing => forward,
            RelationshipDirection::Incoming => reverse,
        }
    }
    async fn kind(&self) -> RelationshipKind {
        self.relationship.kind.into()
    }
    async fn redundant(&self) -> bool {
        self.relationship.redundant
    }
    /// The CI at the other end.
    async fn configuration_item(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ConfigurationItem>> {
        let other = match self.direction {
            RelationshipDirection::Outgoing => self.relationship.target_id,
            RelationshipDirection::Incoming => self.relationship.source_id,
        };
        Ok(load(&ctx.loaders().configuration_item, other)
            .await?
            .map(ConfigurationItem))
    }
    async fn relationship(&self) -> CiRelationship {
        CiRelationship(self.relationship.clone())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
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
        match self.0.direction {
            domain::ImpactDirection::Downstream => ImpactDirection::Downstream,
            domain::ImpactDirection::Upstream => ImpactDirection::Upstream,
        }
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

/// An attribute that must equal a value (JSON scalar; `null` matches an absent attribute).
#[derive(InputObject)]
pub struct AttributeEquals {
    pub name: String,
    pub value: Json<Value>,
}

#[derive(InputObject, Default)]
pub struct ConfigurationItemFilter {
    /// Any of these class codes.
    pub class_codes: Option<Vec<String>>,
    pub status: Option<Vec<CiStatus>>,
    pub environment: Option<Vec<CiEnvironment>>,
    /// Only this tenant's CIs.
    pub organization_id: Option<ID>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub source: Option<String>,
    pub external_id: Option<String>,
    /// Every one of these attribute equalities (typed: `"4"` does not equal `4`).
    pub attributes: Option<Vec<AttributeEquals>>,
}

/// `attributes.<name> = value`, typed, per backend: PostgreSQL compares `jsonb`
/// values; SQLite compares `json_extract`, which yields SQL values (true is 1).
fn attribute_equals(backend: DbBackend, f: &AttributeEquals) -> AppResult<SimpleExpr> {
    let field = format!("attributes.{}", f.name);
    if !f
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || f.name.is_empty()
    {
        return Err(AppError::invalid_field(&field, "not an attribute name"));
    }
    let value = &f.value.0;
    if value.is_object() || value.is_array() {
        return Err(AppError::invalid_field(
            &field,
            "attribute filters compare scalar values",
        ));
    }
    Ok(match backend {
        DbBackend::Postgres if value.is_null() => {
            Expr::cust_with_values("(attributes -> $1) IS NULL", [f.name.clone()])
        }
        DbBackend::Postgres => Expr::cust_with_values(
            "(attributes -> $1) = CAST($2 AS jsonb)",
            [f.name.clone(), value.to_string()],
        ),
        _ => {
            let path = format!("$.{}", f.name);
            let v: sea_orm::Value = match value {
                Value::Null => {
                    return Ok(Expr::cust_with_values(
                        "json_extract(attributes, ?) IS NULL",
                        [path],
                    ));
                }
                Value::Bool(b) => i64::from(*b).into(),
                Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default().into(),
                Value::Number(n) => n.as_f64().unwrap_or_default().into(),
                Value::String(s) => s.clone().into(),
                _ => unreachable!("objects and arrays are refused above"),
            };
            Expr::cust_with_values(
                "json_extract(attributes, ?) = ?",
                [sea_orm::Value::from(path), v],
            )
        }
    })
}

fn by_code() -> Keyset<ci_class::Entity> {
    Keyset::by(
        ci_class::Column::Code,
        |m: &ci_class::Model| SortValue::Str(m.code.clone()),
        false,
    )
}

#[derive(Default)]
pub struct CmdbQuery;

#[Object]
impl CmdbQuery {
    /// CI classes by code.
    async fn configuration_item_classes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<ConfigurationItemClass>> {
        ctx.principal()?;
        page(
            ctx,
            ci_class::Entity::find(),
            by_code(),
            PageArgs::new(first, after, last, before),
            ConfigurationItemClass,
        )
        .await
    }

    async fn configuration_item_class(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ConfigurationItemClass> {
        ctx.principal()?;
        let n = ids::expect(&id, "ConfigurationItemClass", "id")?;
        Ok(ConfigurationItemClass(
            domain::find_class(&ctx.app().store.db, n).await?,
        ))
    }

    /// CIs the caller may see (its organizations'), by name.
    #[allow(clippy::too_many_arguments)]
    async fn configuration_items(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConfigurationItemFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<ConfigurationItem>> {
        let p = ctx.principal()?;
        let app = ctx.app();
        let f = filter.unwrap_or_default();
        let mut q = configuration_item::Entity::find().filter(domain::ci_visibility(p));
        if let Some(codes) = f.class_codes.filter(|c| !c.is_empty()) {
            let codes: Vec<String> = codes
                .iter()
                .map(|c| c.trim().to_ascii_lowercase())
                .collect();
            q = q.filter(
                configuration_item::Column::ClassId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(ci_class::Column::Id)
                        .from(ci_class::Entity)
                        .and_where(ci_class::Column::Code.is_in(codes))
                        .to_owned(),
                ),
            );
        }
        if let Some(statuses) = f.status.filter(|s| !s.is_empty()) {
            q = q.filter(
                configuration_item::Column::Status
                    .is_in(statuses.into_iter().map(enums::CiStatus::from)),
            );
        }
        if let Some(envs) = f.environment.filter(|s| !s.is_empty()) {
            q = q.filter(
                configuration_item::Column::Environment
                    .is_in(envs.into_iter().map(enums::CiEnvironment::from)),
            );
        }
        if let Some(org) = &f.organization_id {
            q = q.filter(
                configuration_item::Column::OrganizationId.eq(ids::reference(
                    org,
                    "Organization",
                    "organizationId",
                )?),
            );
        }
        if let Some(cond) = name_contains(configuration_item::Column::Name, f.search.as_deref()) {
            q = q.filter(cond);
        }
        if let Some(source) = f.source {
            q = q.filter(configuration_item::Column::Source.eq(source));
        }
        if let Some(external_id) = f.external_id {
            q = q.filter(configuration_item::Column::ExternalId.eq(external_id));
        }
        let backend = app.store.db.get_database_backend();
        for a in f.attributes.unwrap_or_default() {
            q = q.filter(attribute_equals(backend, &a)?);
        }
        let keyset = Keyset::by(
            configuration_item::Column::NameKey,
            |m: &configuration_item::Model| SortValue::Str(m.name_key.clone()),
            false,
        );
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            ConfigurationItem,
        )
        .await
    }

    async fn configuration_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ConfigurationItem> {
        let n = ids::expect(&id, "ConfigurationItem", "id")?;
        Ok(ConfigurationItem(
            domain::find_ci(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

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
        let direction = match direction {
            ImpactDirection::Downstream => domain::ImpactDirection::Downstream,
            ImpactDirection::Upstream => domain::ImpactDirection::Upstream,
        };
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
                direction,
                max_depth,
                consider_redundancy,
                with_paths,
            )
            .await?,
        ))
    }

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

#[derive(InputObject)]
pub struct CreateConfigurationItemClassInput {
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    #[graphql(default)]
    pub attributes: Vec<AttributeDefinitionInput>,
}

#[derive(InputObject)]
pub struct UpdateConfigurationItemClassInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    /// Replaces the whole schema; existing CIs are validated against it on their next change.
    pub attributes: Option<Vec<AttributeDefinitionInput>>,
}

#[derive(InputObject)]
pub struct CreateConfigurationItemInput {
    pub name: String,
    /// The class code, e.g. `server`.
    pub class_code: String,
    /// The tenant; defaults to the caller's organization.
    pub organization_id: Option<ID>,
    /// Defaults to IN_PRODUCTION; RETIRED is refused.
    pub status: Option<CiStatus>,
    /// Defaults to PRODUCTION.
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<ID>,
    /// Values by attribute name, validated against the class.
    pub attributes: Option<Json<Value>>,
    pub source: Option<String>,
    pub external_id: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateConfigurationItemInput {
    pub id: ID,
    /// The version you read; a stale one is refused with `CONFLICT`.
    pub version: i32,
    pub name: Option<String>,
    pub class_code: Option<String>,
    /// RETIRED is final and detaches the CI from relationships and services.
    pub status: Option<CiStatus>,
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: MaybeUndefined<ID>,
    /// Replaces all attributes.
    pub attributes: Option<Json<Value>>,
    pub source: MaybeUndefined<String>,
    pub external_id: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct AddCiRelationshipInput {
    pub source_id: ID,
    pub target_id: ID,
    pub kind: RelationshipKind,
    #[graphql(default)]
    pub redundant: bool,
}

/// A CI named by external identity.
#[derive(InputObject)]
pub struct ExternalCiRef {
    pub source: String,
    pub external_id: String,
}

#[derive(InputObject)]
pub struct UpsertConfigurationItemInput {
    pub source: String,
    pub external_id: String,
    pub class_code: String,
    pub name: String,
    /// Kept when absent (IN_PRODUCTION for a new CI).
    pub status: Option<CiStatus>,
    /// Kept when absent (PRODUCTION for a new CI).
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<ID>,
    /// The complete attributes (replaces the stored ones).
    pub attributes: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct UpsertCiRelationshipInput {
    pub source: ExternalCiRef,
    pub target: ExternalCiRef,
    pub kind: RelationshipKind,
    #[graphql(default)]
    pub redundant: bool,
}

#[derive(InputObject)]
pub struct UpsertConfigurationItemsInput {
    /// The tenant of every CI of the call; defaults to the caller's organization.
    pub organization_id: Option<ID>,
    /// At most 1,000.
    pub items: Vec<UpsertConfigurationItemInput>,
    /// At most 5,000; they may name CIs of this call or already stored ones.
    #[graphql(default)]
    pub relationships: Vec<UpsertCiRelationshipInput>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum UpsertStatus {
    Created,
    Updated,
    /// Nothing to change: nothing was written.
    Unchanged,
    /// Nothing of this item was written; see `error`.
    Error,
}

impl From<domain::UpsertStatus> for UpsertStatus {
    fn from(s: domain::UpsertStatus) -> Self {
        match s {
            domain::UpsertStatus::Created => Self::Created,
            domain::UpsertStatus::Updated => Self::Updated,
            domain::UpsertStatus::Unchanged => Self::Unchanged,
            domain::UpsertStatus::Error => Self::Error,
        }
    }
}

/// Why one item of a bulk call was refused (the same codes as top-level errors).
#[derive(SimpleObject)]
pub struct ItemError {
    pub code: String,
    pub message: String,
    /// The offending input field, e.g. `attributes.cpuCount`.
    pub field: Option<String>,
}

impl From<AppError> for ItemError {
    fn from(e: AppError) -> Self {
        let field = match &e {
            AppError::Validation { field, .. } => field.clone(),
            _ => None,
        };
        if let AppError::Internal(source) = &e {
            tracing::error!(error = %source, "internal error in a bulk item");
        }
        Self {
            code: e.code().to_owned(),
            message: e.message(),
            field,
        }
    }
}

#[derive(SimpleObject)]
pub struct UpsertItemResult {
    pub source: String,
    pub external_id: String,
    pub status: UpsertStatus,
    pub error: Option<ItemError>,
    pub configuration_item: Option<ConfigurationItem>,
}

#[derive(SimpleObject)]
pub struct UpsertRelationshipResult {
    /// The position of the relationship in the input list.
    pub index: i32,
    pub status: UpsertStatus,
    pub error: Option<ItemError>,
    pub relationship: Option<CiRelationship>,
}

/// The answer of `upsertConfigurationItems`, item by item in input order.
#[derive(SimpleObject)]
pub struct UpsertConfigurationItemsPayload {
    pub items: Vec<UpsertItemResult>,
    pub relationships: Vec<UpsertRelationshipResult>,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub errors: i32,
}

#[derive(Default)]
pub struct CmdbMutation;

#[Object]
impl CmdbMutation {
    /// Adds a CI class with its attribute schema (admin).
    #[graphql(guard = "Admin")]
    async fn create_configuration_item_class(
        &self,
        ctx: &Context<'_>,
        input: CreateConfigurationItemClassInput,
    ) -> async_graphql::Result<ConfigurationItemClass> {
        let p = ctx.principal()?;
        let new = domain::NewCiClass {
            code: input.code,
            name: input.name,
            description: input.description,
            attributes: input.attributes.into_iter().map(Into::into).collect(),
        };
        Ok(ConfigurationItemClass(
            domain::create_class(&ctx.app().store, p, new).await?,
        ))
    }

    /// Changes a CI class (admin).
    #[graphql(guard = "Admin")]
    async fn update_configuration_item_class(
        &self,
        ctx: &Context<'_>,
        input: UpdateConfigurationItemClassInput,
    ) -> async_graphql::Result<ConfigurationItemClass> {
        let p = ctx.principal()?;
        let patch = domain::CiClassPatch {
            id: ids::expect(&input.id, "ConfigurationItemClass", "id")?,
            version: input.version,
            name: input.name,
            description: maybe(input.description),
            attributes: input
                .attributes
                .map(|a| a.into_iter().map(Into::into).collect()),
        };
        Ok(ConfigurationItemClass(
            domain::update_class(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Records a CI (agent or admin).
    #[graphql(guard = "Staff")]
    async fn create_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: CreateConfigurationItemInput,
    ) -> async_graphql::Result<ConfigurationItem> {
        let p = ctx.principal()?;
        let new = domain::NewCi {
            organization_id: optional_ref(
                input.organization_id.as_ref(),
                "Organization",
                "organizationId",
            )?,
            class_code: input.class_code,
            name: input.name,
            status: input.status.map(Into::into),
            environment: input.environment.map(Into::into),
            owner_group_id: optional_ref(
                input.owner_group_id.as_ref(),
                "SupportGroup",
                "ownerGroupId",
            )?,
            attributes: input.attributes.map(|j| j.0),
            source: input.source,
            external_id: input.external_id,
        };
        Ok(ConfigurationItem(
            domain::create_ci(&ctx.app().store, p, new).await?,
        ))
    }

    /// Changes a CI; `null` clears an optional field, an absent field is kept.
    #[graphql(guard = "Staff")]
    async fn update_configuration_item(
        &self,
        ctx: &Context<'_>,
        input: UpdateConfigurationItemInput,
    ) -> async_graphql::Result<ConfigurationItem> {
        let p = ctx.principal()?;
        let patch = domain::CiPatch {
            id: ids::expect(&input.id, "ConfigurationItem", "id")?,
            version: input.version,
            name: input.name,
            class_code: input.class_code,
            status: input.status.map(Into::into),
            environment: input.environment.map(Into::into),
            owner_group_id: maybe(input.owner_group_id)
                .map(|o| {
                    o.map(|id| ids::reference(&id, "SupportGroup", "ownerGroupId"))
                        .transpose()
                })
                .transpose()?,
            attributes: input.attributes.map(|j| j.0),
            source: maybe(input.source),
            external_id: maybe(input.external_id),
        };
        Ok(ConfigurationItem(
            domain::update_ci(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Retires a CI: final; its relationships and service links are removed.
    #[graphql(guard = "Staff")]
    async fn retire_configuration_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<ConfigurationItem> {
        let p = ctx.principal()?;
        let patch = domain::CiPatch::retire(ids::expect(&id, "ConfigurationItem", "id")?, version);
        Ok(ConfigurationItem(
            domain::update_ci(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Adds a relationship `source <kind> target` between two CIs of one
    /// organization. A self edge, a duplicate (`CONFLICT`), a CI of another
    /// organization or a retired CI is refused.
    #[graphql(guard = "Staff")]
    async fn add_ci_relationship(
        &self,
        ctx: &Context<'_>,
        input: AddCiRelationshipInput,
    ) -> async_graphql::Result<CiRelationship> {
        let p = ctx.principal()?;
        let new = domain::NewRelationship {
            source_id: ids::reference(&input.source_id, "ConfigurationItem", "sourceId")?,
            target_id: ids::reference(&input.target_id, "ConfigurationItem", "targetId")?,
            kind: input.kind.into(),
            redundant: input.redundant,
        };
        Ok(CiRelationship(
            domain::add_relationship(&ctx.app().store, p, new).await?,
        ))
    }

    /// Removes a relationship; true when it existed.
    #[graphql(guard = "Staff")]
    async fn remove_ci_relationship(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let p = ctx.principal()?;
        let n = ids::expect(&id, "CiRelationship", "id")?;
        domain::remove_relationship(&ctx.app().store, p, n).await?;
        Ok(true)
    }

    /// Records that a service consists of (among others) this CI.
    #[graphql(guard = "Staff")]
    async fn add_service_configuration_item(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        configuration_item_id: ID,
    ) -> async_graphql::Result<ConfigurationItem> {
        let p = ctx.principal()?;
        let s = ids::reference(&service_id, "Service", "serviceId")?;
        let c = ids::reference(
            &configuration_item_id,
            "ConfigurationItem",
            "configurationItemId",
        )?;
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
        let s = ids::reference(&service_id, "Service", "serviceId")?;
        let c = ids::reference(
            &configuration_item_id,
            "ConfigurationItem",
            "configurationItemId",
        )?;
        domain::unlink_service_ci(&ctx.app().store, p, s, c).await?;
        Ok(true)
    }

    /// Creates or updates up to 1,000 CIs of one organization by external
    /// identity (`source` + `externalId`), then their relationships, in one
    /// transaction. Each item answers for itself (CREATED, UPDATED, UNCHANGED,
    /// or ERROR with nothing of it written); a call over the limit is refused
    /// whole with `VALIDATION`. Discovery tools call it on a schedule: the same
    /// call twice answers UNCHANGED and writes nothing the second time.
    #[graphql(guard = "Staff")]
    async fn upsert_configuration_items(
        &self,
        ctx: &Context<'_>,
        input: UpsertConfigurationItemsInput,
    ) -> async_graphql::Result<UpsertConfigurationItemsPayload> {
        let p = ctx.principal()?;
        let mut items = Vec::with_capacity(input.items.len());
        let mut early: Vec<Option<AppError>> = Vec::with_capacity(input.items.len());
        for i in input.items {
            let group = optional_ref(i.owner_group_id.as_ref(), "SupportGroup", "ownerGroupId");
            let (group, err) = match group {
                Ok(g) => (g, None),
                // Reported on the item: refer to a group that cannot exist.
                Err(e) => (Some(0), Some(e)),
            };
            early.push(err);
            items.push(domain::UpsertItem {
                source: i.source,
                external_id: i.external_id,
                class_code: i.class_code,
                name: i.name,
                status: i.status.map(Into::into),
                environment: i.environment.map(Into::into),
                owner_group_id: group,
                attributes: i.attributes.map(|j| j.0),
            });
        }
        let batch = domain::UpsertBatch {
            organization_id: optional_ref(
                input.organization_id.as_ref(),
                "Organization",
                "organizationId",
            )?,
            items,
            relationships: input
                .relationships
                .into_iter()
                .map(|r| domain::UpsertRelationship {
                    source: (r.source.source, r.source.external_id),
                    target: (r.target.source, r.target.external_id),
                    kind: r.kind.into(),
                    redundant: r.redundant,
                })
                .collect(),
        };
        let result = domain::upsert(&ctx.app().store, p, batch).await?;
        let mut payload = UpsertConfigurationItemsPayload {
            items: Vec::with_capacity(result.items.len()),
            relationships: Vec::with_capacity(result.relationships.len()),
            created: 0,
            updated: 0,
            unchanged: 0,
            errors: 0,
        };
        for (o, early) in result.items.into_iter().zip(early) {
            let error = early.or(o.error);
            let status = if error.is_some() {
                domain::UpsertStatus::Error
            } else {
                o.status
            };
            match status {
                domain::UpsertStatus::Created => payload.created += 1,
                domain::UpsertStatus::Updated => payload.updated += 1,
                domain::UpsertStatus::Unchanged => payload.unchanged += 1,
                domain::UpsertStatus::Error => payload.errors += 1,
            }
            payload.items.push(UpsertItemResult {
                source: o.source,
                external_id: o.external_id,
                status: status.into(),
                error: error.map(Into::into),
                configuration_item: o.ci.map(ConfigurationItem),
            });
        }
        for (index, o) in result.relationships.into_iter().enumerate() {
            payload.relationships.push(UpsertRelationshipResult {
                index: index as i32,
                status: o.status.into(),
                error: o.error.map(Into::into),
                relationship: o.relationship.map(CiRelationship),
            });
        }
        Ok(payload)
    }
}

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
        let only = f
            .configuration_item_id
            .as_ref()
            .map(|id| ids::reference(id, "ConfigurationItem", "configurationItemId"))
            .transpose()?;
        let classes: Option<Vec<i64>> = f
            .class_ids
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.iter()
                    .map(|id| ids::reference(id, "ConfigurationItemClass", "classIds"))
                    .collect::<AppResult<Vec<_>>>()
            })
            .transpose()?;
        let org = f
            .organization_id
            .as_ref()
            .map(|id| ids::reference(id, "Organization", "organizationId"))
            .transpose()?;
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
