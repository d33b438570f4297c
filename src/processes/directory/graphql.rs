//! Organizations, users and support groups: types, queries, mutations.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object};
use chrono::{DateTime, Utc};
use entity::{organization, support_group, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::auth::Admin;
use crate::graphql::{
    args::maybe,
    context::{ContextExt, load},
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::records::{name_contains, scope_to};
use crate::{auth::Principal, error::AppError, processes::directory as domain};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::OrganizationKind")]
pub enum OrganizationKind {
    /// The service provider itself.
    Provider,
    /// A customer organization.
    Customer,
}

/// A customer organization, or the provider itself: the unit of tenancy.
pub struct Organization(pub organization::Model);

#[Object]
impl Organization {
    pub async fn id(&self) -> ID {
        ids::encode("Organization", self.0.id)
    }
    /// Short stable code, used as the `tenant` claim of tokens.
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> OrganizationKind {
        self.0.kind.into()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn active(&self) -> bool {
        self.0.active
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

/// A person: agent, requester or administrator.
pub struct User(pub user::Model);

#[Object]
impl User {
    pub async fn id(&self) -> ID {
        ids::encode("User", self.0.id)
    }
    /// The identity provider's subject (`sub` claim).
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
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

/// An assignment group: the team that owns services and works incidents.
pub struct SupportGroup(pub support_group::Model);

#[Object]
impl SupportGroup {
    pub async fn id(&self) -> ID {
        ids::encode("SupportGroup", self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
    }
    /// The group's members, by display order of joining.
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let loaders = ctx.loaders();
        let memberships = load(&loaders.memberships_by_group, self.0.id)
            .await?
            .unwrap_or_default();
        let found = loaders
            .user
            .load_many(memberships.iter().map(|m| m.user_id))
            .await
            .map_err(AppError::internal)?;
        Ok(memberships
            .iter()
            .filter_map(|m| found.get(&m.user_id).cloned().map(User))
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

/// The authenticated caller.
pub struct Me(Principal);

#[Object]
impl Me {
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn roles(&self) -> Vec<&'static str> {
        self.0.roles.iter().map(|r| r.as_str()).collect()
    }
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(load(&ctx.loaders().organization, self.0.organization_id)
            .await?
            .map(Organization))
    }
    /// The user record of the caller's organization whose subject matches the token, if any.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let found = user::Entity::find()
            .filter(user::Column::Subject.eq(&self.0.subject))
            .filter(user::Column::OrganizationId.eq(self.0.organization_id))
            .one(&ctx.app().store.db)
            .await
            .map_err(AppError::from)?;
        Ok(found.map(User))
    }
}

#[derive(InputObject, Default)]
pub struct OrganizationFilter {
    pub kind: Option<OrganizationKind>,
    pub active: Option<bool>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
}

#[derive(InputObject, Default)]
pub struct UserFilter {
    pub organization_id: Option<ID>,
    pub search: Option<String>,
}

#[derive(Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
    /// The caller: subject, roles and organization.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        Ok(Me(ctx.principal()?.clone()))
    }

    /// Organizations the caller may see, by name.
    async fn organizations(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrganizationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<Organization>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q = organization::Entity::find().filter(scope_to(p, organization::Column::Id));
        if let Some(kind) = f.kind {
            q = q
                .filter(organization::Column::Kind.eq(entity::enums::OrganizationKind::from(kind)));
        }
        if let Some(active) = f.active {
            q = q.filter(organization::Column::Active.eq(active));
        }
        if let Some(cond) = name_contains(organization::Column::Name, f.search.as_deref()) {
            q = q.filter(cond);
        }
        let keyset = Keyset::by(
            organization::Column::NameKey,
            |m: &organization::Model| SortValue::Str(m.name_key.clone()),
            false,
        );
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            Organization,
        )
        .await
    }

    async fn organization(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Organization> {
        let n = ids::expect(&id, "Organization", "id")?;
        Ok(Organization(
            domain::find_organization(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

    /// Users of the organizations the caller may see, by display name.
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<User>> {
        let p = ctx.principal()?;
        let f = filter.unwrap_or_default();
        let mut q = user::Entity::find().filter(scope_to(p, user::Column::OrganizationId));
        if let Some(org) = &f.organization_id {
            q = q.filter(user::Column::OrganizationId.eq(ids::reference(
                org,
                "Organization",
                "organizationId",
            )?));
        }
        if let Some(cond) = name_contains(user::Column::DisplayName, f.search.as_deref()) {
            q = q.filter(cond);
        }
        let keyset = Keyset::by(
            user::Column::Id,
            |m: &user::Model| SortValue::Int(m.id),
            false,
        );
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            User,
        )
        .await
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<User> {
        let n = ids::expect(&id, "User", "id")?;
        Ok(User(
            domain::find_user(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }

    /// Support groups of the organizations the caller may see, by name.
    async fn support_groups(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<SupportGroup>> {
        let p = ctx.principal()?;
        let mut q = support_group::Entity::find()
            .filter(scope_to(p, support_group::Column::OrganizationId));
        if let Some(cond) = name_contains(support_group::Column::Name, search.as_deref()) {
            q = q.filter(cond);
        }
        let keyset = Keyset::by(
            support_group::Column::NameKey,
            |m: &support_group::Model| SortValue::Str(m.name_key.clone()),
            false,
        );
        page(
            ctx,
            q,
            keyset,
            PageArgs::new(first, after, last, before),
            SupportGroup,
        )
        .await
    }

    async fn support_group(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<SupportGroup> {
        let n = ids::expect(&id, "SupportGroup", "id")?;
        Ok(SupportGroup(
            domain::find_support_group(&ctx.app().store.db, ctx.principal()?, n).await?,
        ))
    }
}

#[derive(InputObject)]
pub struct CreateOrganizationInput {
    /// 2-64 letters, digits, '-' or '_'; becomes the `tenant` claim of its users' tokens.
    pub code: String,
    pub name: String,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateOrganizationInput {
    pub id: ID,
    /// The version you read; a stale one is refused with `CONFLICT`.
    pub version: i32,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub active: Option<bool>,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    pub organization_id: ID,
    pub subject: String,
    pub display_name: String,
    pub email: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateUserInput {
    pub id: ID,
    pub version: i32,
    pub display_name: Option<String>,
    pub email: MaybeUndefined<String>,
    pub active: Option<bool>,
}

#[derive(InputObject)]
pub struct CreateSupportGroupInput {
    /// Defaults to the caller's organization.
    pub organization_id: Option<ID>,
    pub name: String,
    pub description: Option<String>,
    pub email: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateSupportGroupInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
}

#[derive(Default)]
pub struct DirectoryMutation;

#[Object]
impl DirectoryMutation {
    /// Adds a customer organization (admin).
    #[graphql(guard = "Admin")]
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> async_graphql::Result<Organization> {
        let input = domain::NewOrganization {
            code: input.code,
            name: input.name,
            description: input.description,
        };
        Ok(Organization(
            domain::create_organization(&ctx.app().store, ctx.principal()?, input).await?,
        ))
    }

    /// Renames, describes or (de)activates an organization (admin).
    #[graphql(guard = "Admin")]
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        input: UpdateOrganizationInput,
    ) -> async_graphql::Result<Organization> {
        let p = ctx.principal()?;
        let patch = domain::OrganizationPatch {
            id: ids::expect(&input.id, "Organization", "id")?,
            version: input.version,
            name: input.name,
            description: maybe(input.description),
            active: input.active,
        };
        Ok(Organization(
            domain::update_organization(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Adds a user (admin).
    #[graphql(guard = "Admin")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> async_graphql::Result<User> {
        let p = ctx.principal()?;
        let new = domain::NewUser {
            organization_id: ids::reference(
                &input.organization_id,
                "Organization",
                "organizationId",
            )?,
            subject: input.subject,
            display_name: input.display_name,
            email: input.email,
        };
        Ok(User(domain::create_user(&ctx.app().store, p, new).await?))
    }

    #[graphql(guard = "Admin")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        input: UpdateUserInput,
    ) -> async_graphql::Result<User> {
        let p = ctx.principal()?;
        let patch = domain::UserPatch {
            id: ids::expect(&input.id, "User", "id")?,
            version: input.version,
            display_name: input.display_name,
            email: maybe(input.email),
            active: input.active,
        };
        Ok(User(domain::update_user(&ctx.app().store, p, patch).await?))
    }

    /// Adds a support group (admin).
    #[graphql(guard = "Admin")]
    async fn create_support_group(
        &self,
        ctx: &Context<'_>,
        input: CreateSupportGroupInput,
    ) -> async_graphql::Result<SupportGroup> {
        let p = ctx.principal()?;
        let new = domain::NewSupportGroup {
            organization_id: input
                .organization_id
                .as_ref()
                .map(|id| ids::reference(id, "Organization", "organizationId"))
                .transpose()?,
            name: input.name,
            description: input.description,
            email: input.email,
        };
        Ok(SupportGroup(
            domain::create_support_group(&ctx.app().store, p, new).await?,
        ))
    }

    #[graphql(guard = "Admin")]
    async fn update_support_group(
        &self,
        ctx: &Context<'_>,
        input: UpdateSupportGroupInput,
    ) -> async_graphql::Result<SupportGroup> {
        let p = ctx.principal()?;
        let patch = domain::SupportGroupPatch {
            id: ids::expect(&input.id, "SupportGroup", "id")?,
            version: input.version,
            name: input.name,
            description: maybe(input.description),
            email: maybe(input.email),
        };
        Ok(SupportGroup(
            domain::update_support_group(&ctx.app().store, p, patch).await?,
        ))
    }

    /// Adds a user to a support group (admin); returns the group.
    #[graphql(guard = "Admin")]
    async fn add_group_member(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<SupportGroup> {
        let p = ctx.principal()?;
        let (g, u) = (
            ids::expect(&group_id, "SupportGroup", "groupId")?,
            ids::reference(&user_id, "User", "userId")?,
        );
        let store = &ctx.app().store;
        domain::add_group_member(store, p, g, u).await?;
        Ok(SupportGroup(
            domain::find_support_group(&store.db, p, g).await?,
        ))
    }

    /// Removes a user from a support group (admin); returns the group.
    #[graphql(guard = "Admin")]
    async fn remove_group_member(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<SupportGroup> {
        let p = ctx.principal()?;
        let (g, u) = (
            ids::expect(&group_id, "SupportGroup", "groupId")?,
            ids::reference(&user_id, "User", "userId")?,
        );
        let store = &ctx.app().store;
        domain::remove_group_member(store, p, g, u).await?;
        Ok(SupportGroup(
            domain::find_support_group(&store.db, p, g).await?,
        ))
    }
}
