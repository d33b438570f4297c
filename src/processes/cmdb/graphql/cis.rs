//! Configuration items: objects, the list filter, inputs, queries, mutations.

use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object};
use chrono::{DateTime, Utc};
use entity::{ci_class, configuration_item, enums};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, QueryFilter,
    sea_query::{Expr, SimpleExpr},
};
use serde_json::Value;

use super::classes::ConfigurationItemClass;
use super::relationships::{RelatedConfigurationItem, RelationshipDirection, RelationshipKind};
use crate::auth::Staff;
use crate::graphql::{
    args::{maybe, optional_ref, patch_ref},
    context::{ContextExt, load},
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::processes::{
    catalogue::graphql::Service,
    directory::graphql::{Organization, SupportGroup},
};
use crate::records::name_contains;
use crate::{
    error::{AppError, AppResult},
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

/// A configuration item (ISO/IEC 20000-1 8.2.6).
pub struct ConfigurationItem(pub configuration_item::Model);

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

#[derive(Default)]
pub struct CiQuery;

#[Object]
impl CiQuery {
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
}

#[derive(Default)]
pub struct CiMutation;

#[Object]
impl CiMutation {
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
            owner_group_id: patch_ref(input.owner_group_id, "SupportGroup", "ownerGroupId")?,
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
}
