//! Organizations (customers and the provider), users and support groups.

use entity::{enums::OrganizationKind, group_membership, organization, support_group, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    ModelTrait, QueryFilter, Set,
};

use crate::records::{
    Store, audit, check_version, clean_email, clean_name, clean_text, conflict_on_unique,
    ensure_free, find_visible, find_where, now, patch, save_versioned,
};
use crate::{
    auth::{Principal, Role, TenantScope},
    db::begin_write,
    error::{AppError, AppResult},
    events::DomainEvent,
};

/// A principal for changes the server makes itself (bootstrap, seeding).
pub fn system_principal(organization_id: i64) -> Principal {
    Principal {
        subject: "system".into(),
        organization_id,
        roles: [Role::Admin].into_iter().collect(),
        scope: TenantScope::All,
    }
}

fn clean_code(code: &str) -> AppResult<String> {
    let code = code.trim().to_ascii_lowercase();
    let ok = (2..=64).contains(&code.len())
        && code
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(code)
    } else {
        Err(AppError::invalid_field(
            "code",
            "code must be 2 to 64 characters of letters, digits, '-' or '_', starting with a letter or digit",
        ))
    }
}

/// Creates the provider's own organization when it does not exist; returns its id.
pub async fn ensure_provider(db: &DatabaseConnection, code: &str, name: &str) -> AppResult<i64> {
    let code = clean_code(code)?;
    if let Some(org) = organization::Entity::find()
        .filter(organization::Column::Code.eq(&code))
        .one(db)
        .await?
    {
        return Ok(org.id);
    }
    let (name, name_key) = clean_name("name", name, 200)?;
    let txn = begin_write(db).await?;
    let at = now();
    let org = organization::ActiveModel {
        code: Set(code),
        name: Set(name),
        name_key: Set(name_key),
        kind: Set(OrganizationKind::Provider),
        description: Set(None),
        active: Set(true),
        version: Set(1),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    audit::record(&txn, &system_principal(org.id), "create", None, Some(&org)).await?;
    txn.commit().await?;
    Ok(org.id)
}

pub struct NewOrganization {
    pub code: String,
    pub name: String,
    pub description: Option<String>,
}

pub async fn create_organization(
    store: &Store,
    p: &Principal,
    input: NewOrganization,
) -> AppResult<organization::Model> {
    let code = clean_code(&input.code)?;
    let (name, name_key) = clean_name("name", &input.name, 200)?;
    let description = clean_text("description", input.description, 10_000)?;
    let txn = begin_write(&store.db).await?;
    ensure_free_org(&txn, &code, &name_key, None).await?;
    let at = now();
    let org = audit::insert(
        &txn,
        p,
        organization::ActiveModel {
            code: Set(code),
            name: Set(name),
            name_key: Set(name_key),
            kind: Set(OrganizationKind::Customer),
            description: Set(description),
            active: Set(true),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, "an organization with this code or name already exists"))?;
    txn.commit().await?;
    Ok(org)
}

async fn ensure_free_org<C: ConnectionTrait>(
    db: &C,
    code: &str,
    name_key: &str,
    except: Option<i64>,
) -> AppResult<()> {
    let clash = Condition::any()
        .add(organization::Column::Code.eq(code))
        .add(organization::Column::NameKey.eq(name_key));
    ensure_free::<organization::Entity, _>(db, clash, except, |o| {
        if o.code == code {
            format!("an organization with code {code:?} already exists")
        } else {
            "an organization with this name already exists".into()
        }
    })
    .await
}

pub struct OrganizationPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

pub async fn update_organization(
    store: &Store,
    p: &Principal,
    input: OrganizationPatch,
) -> AppResult<organization::Model> {
    let txn = begin_write(&store.db).await?;
    let before = organization::Entity::find_by_id(input.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("organization"))?;
    check_version("organization", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.name {
        let (name, key) = clean_name("name", name, 200)?;
        ensure_free_org(&txn, &before.code, &key, Some(before.id)).await?;
        next.name = name;
        next.name_key = key;
    }
    if let Some(description) = input.description {
        next.description = clean_text("description", description, 10_000)?;
    }
    if input.active == Some(false) && before.kind == OrganizationKind::Provider {
        return Err(AppError::invalid_field(
            "active",
            "the provider organization cannot be deactivated",
        ));
    }
    patch(&mut next.active, input.active);
    let updated = save_versioned(&txn, p, &before, next).await?;
    txn.commit().await?;
    if updated != before {
        store
            .events
            .publish(DomainEvent::OrganizationChanged(updated.clone()));
    }
    Ok(updated)
}

pub struct NewUser {
    pub organization_id: i64,
    pub subject: String,
    pub display_name: String,
    pub email: Option<String>,
}

pub async fn create_user(store: &Store, p: &Principal, input: NewUser) -> AppResult<user::Model> {
    let subject = input.subject.trim().to_owned();
    if subject.is_empty() || subject.len() > 200 {
        return Err(AppError::invalid_field(
            "subject",
            "subject must be 1 to 200 characters",
        ));
    }
    let (display_name, _) = clean_name("displayName", &input.display_name, 200)?;
    let email = clean_email("email", input.email)?;
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(input.organization_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    if user::Entity::find()
        .filter(user::Column::Subject.eq(&subject))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "a user with subject {subject:?} already exists"
        )));
    }
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        user::ActiveModel {
            organization_id: Set(input.organization_id),
            subject: Set(subject),
            display_name: Set(display_name),
            email: Set(email),
            active: Set(true),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, "a user with this subject already exists"))?;
    txn.commit().await?;
    Ok(created)
}

pub struct UserPatch {
    pub id: i64,
    pub version: i32,
    pub display_name: Option<String>,
    pub email: Option<Option<String>>,
    pub active: Option<bool>,
}

pub async fn update_user(store: &Store, p: &Principal, input: UserPatch) -> AppResult<user::Model> {
    let txn = begin_write(&store.db).await?;
    let before = user::Entity::find_by_id(input.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    check_version("user", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.display_name {
        next.display_name = clean_name("displayName", name, 200)?.0;
    }
    if let Some(email) = input.email {
        next.email = clean_email("email", email)?;
    }
    patch(&mut next.active, input.active);
    let updated = save_versioned(&txn, p, &before, next).await?;
    txn.commit().await?;
    Ok(updated)
}

pub struct NewSupportGroup {
    pub organization_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub email: Option<String>,
}

pub async fn create_support_group(
    store: &Store,
    p: &Principal,
    input: NewSupportGroup,
) -> AppResult<support_group::Model> {
    let organization_id = input.organization_id.unwrap_or(p.organization_id);
    let (name, name_key) = clean_name("name", &input.name, 200)?;
    let description = clean_text("description", input.description, 10_000)?;
    let email = clean_email("email", input.email)?;
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(organization_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    ensure_free_group(&txn, organization_id, &name_key, None).await?;
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        support_group::ActiveModel {
            organization_id: Set(organization_id),
            name: Set(name),
            name_key: Set(name_key),
            description: Set(description),
            email: Set(email),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, "a support group with this name already exists"))?;
    txn.commit().await?;
    Ok(created)
}

async fn ensure_free_group<C: ConnectionTrait>(
    db: &C,
    org: i64,
    name_key: &str,
    except: Option<i64>,
) -> AppResult<()> {
    let clash = Condition::all()
        .add(support_group::Column::OrganizationId.eq(org))
        .add(support_group::Column::NameKey.eq(name_key));
    ensure_free::<support_group::Entity, _>(db, clash, except, |_| {
        "a support group with this name already exists".into()
    })
    .await
}

pub struct SupportGroupPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub email: Option<Option<String>>,
}

pub async fn update_support_group(
    store: &Store,
    p: &Principal,
    input: SupportGroupPatch,
) -> AppResult<support_group::Model> {
    let txn = begin_write(&store.db).await?;
    let before = support_group::Entity::find_by_id(input.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("support group"))?;
    check_version("support group", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.name {
        let (name, key) = clean_name("name", name, 200)?;
        ensure_free_group(&txn, before.organization_id, &key, Some(before.id)).await?;
        next.name = name;
        next.name_key = key;
    }
    if let Some(description) = input.description {
        next.description = clean_text("description", description, 10_000)?;
    }
    if let Some(email) = input.email {
        next.email = clean_email("email", email)?;
    }
    let updated = save_versioned(&txn, p, &before, next).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Adds a user to a support group; adding a member twice is a `CONFLICT`.
pub async fn add_group_member(
    store: &Store,
    p: &Principal,
    group_id: i64,
    user_id: i64,
) -> AppResult<group_membership::Model> {
    let txn = begin_write(&store.db).await?;
    support_group::Entity::find_by_id(group_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("support group"))?;
    user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    let existing = group_membership::Entity::find()
        .filter(group_membership::Column::GroupId.eq(group_id))
        .filter(group_membership::Column::UserId.eq(user_id))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(AppError::Conflict(
            "the user is already a member of this group".into(),
        ));
    }
    let created = audit::insert(
        &txn,
        p,
        group_membership::ActiveModel {
            group_id: Set(group_id),
            user_id: Set(user_id),
            created_at: Set(now()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, "the user is already a member of this group"))?;
    txn.commit().await?;
    Ok(created)
}

pub async fn remove_group_member(
    store: &Store,
    p: &Principal,
    group_id: i64,
    user_id: i64,
) -> AppResult<()> {
    let txn = begin_write(&store.db).await?;
    let membership = group_membership::Entity::find()
        .filter(group_membership::Column::GroupId.eq(group_id))
        .filter(group_membership::Column::UserId.eq(user_id))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("group membership"))?;
    membership.clone().delete(&txn).await?;
    audit::record(&txn, p, "delete", Some(&membership), None).await?;
    txn.commit().await?;
    Ok(())
}

/// An organization the caller may see, or `NOT_FOUND`.
pub async fn find_organization<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<organization::Model> {
    find_visible::<organization::Entity, _>(db, p, id, "organization").await
}

/// A user of an organization the caller may see, or `NOT_FOUND`.
pub async fn find_user<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<user::Model> {
    find_visible::<user::Entity, _>(db, p, id, "user").await
}

/// A support group of an organization the caller may see, or `NOT_FOUND`.
pub async fn find_support_group<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<support_group::Model> {
    find_visible::<support_group::Entity, _>(db, p, id, "support group").await
}

/// An assignment named in an input: the support group and the (active)
/// assignee must be visible to the caller, else `VALIDATION` on their field.
/// Database errors pass through.
pub async fn check_assignment<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    group: Option<i64>,
    assignee: Option<i64>,
) -> AppResult<()> {
    let on_field = |field: &'static str, message: &'static str| {
        move |e: AppError| match e {
            AppError::NotFound(_) => AppError::invalid_field(field, message),
            other => other,
        }
    };
    if let Some(g) = group {
        find_visible::<support_group::Entity, _>(db, p, g, "support group")
            .await
            .map_err(on_field("assignmentGroupId", "support group not found"))?;
    }
    if let Some(u) = assignee {
        find_where::<user::Entity, _>(db, u, "user", |u| p.can_see(u.organization_id) && u.active)
            .await
            .map_err(on_field("assigneeId", "user not found"))?;
    }
    Ok(())
}
