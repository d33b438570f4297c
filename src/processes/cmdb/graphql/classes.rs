//! CI classes and their attribute schemas: objects, inputs, queries, mutations.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::ci_class;

use crate::auth::Admin;
use crate::graphql::{
    args::maybe,
    context::ContextExt,
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::processes::cmdb as domain;
use sea_orm::EntityTrait;

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

fn by_code() -> Keyset<ci_class::Entity> {
    Keyset::by(
        ci_class::Column::Code,
        |m: &ci_class::Model| SortValue::Str(m.code.clone()),
        false,
    )
}

#[derive(Default)]
pub struct ClassQuery;

#[Object]
impl ClassQuery {
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
}

#[derive(Default)]
pub struct ClassMutation;

#[Object]
impl ClassMutation {
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
}
