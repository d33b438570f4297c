//! The service catalogue (ISO/IEC 20000-1 8.2.4): services, the offerings
//! customers see, and which customers subscribe to which services.

use super::events::ServiceChanged;
use entity::{
    enums::{Criticality, LifecycleStatus},
    organization, service, service_offering, service_subscription, support_group, user,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, ModelTrait, QueryFilter, QuerySelect,
    Set, sea_query::Query,
};

use crate::records::conflict_on_unique;
use crate::records::{
    Store, audit, check_version, clean_name, clean_text, ensure_free, lifecycle::check_transition,
    now, patch, save_versioned,
};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
    events::{ChangeKind, DomainEvent},
};

/// The services a principal may see: those its organizations own or subscribe to.
/// Customers (requesters) do not see services still in the pipeline.
pub fn service_visibility(p: &Principal) -> Condition {
    let mut cond = Condition::all();
    if let Some(orgs) = p.visible_organizations() {
        let subscribed = Query::select()
            .column(service_subscription::Column::ServiceId)
            .from(service_subscription::Entity)
            .and_where(service_subscription::Column::CustomerId.is_in(orgs.iter().copied()))
            .to_owned();
        cond = cond.add(
            Condition::any()
                .add(service::Column::OrganizationId.is_in(orgs.iter().copied()))
                .add(service::Column::Id.in_subquery(subscribed)),
        );
    }
    if p.is_customer_view() {
        cond = cond.add(service::Column::Status.ne(LifecycleStatus::Pipeline));
    }
    cond
}

/// Whether a principal may see a service already loaded (same rule as [`service_visibility`]).
pub async fn can_see_service<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    s: &service::Model,
) -> AppResult<bool> {
    if p.is_customer_view() && s.status == LifecycleStatus::Pipeline {
        return Ok(false);
    }
    if p.can_see(s.organization_id) {
        return Ok(true);
    }
    let Some(orgs) = p.visible_organizations() else {
        return Ok(true);
    };
    let hit = service_subscription::Entity::find()
        .filter(service_subscription::Column::ServiceId.eq(s.id))
        .filter(service_subscription::Column::CustomerId.is_in(orgs.iter().copied()))
        .one(db)
        .await?;
    Ok(hit.is_some())
}

/// A service by id, or `NOT_FOUND` when it does not exist or is not visible.
pub async fn find_service<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<service::Model> {
    let found = service::Entity::find_by_id(id).one(db).await?;
    match found {
        Some(s) if can_see_service(db, p, &s).await? => Ok(s),
        _ => Err(AppError::not_found("service")),
    }
}

/// Staff may change a service only within the organizations they serve.
fn require_service_writer(p: &Principal, s: &service::Model) -> AppResult<()> {
    p.require_staff()?;
    if p.can_see(s.organization_id) {
        Ok(())
    } else {
        Err(AppError::not_found("service"))
    }
}

async fn visible_to(db: &impl ConnectionTrait, s: &service::Model) -> AppResult<Vec<i64>> {
    let mut ids: Vec<i64> = service_subscription::Entity::find()
        .filter(service_subscription::Column::ServiceId.eq(s.id))
        .select_only()
        .column(service_subscription::Column::CustomerId)
        .into_tuple()
        .all(db)
        .await?;
    ids.push(s.organization_id);
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Owners must exist in an organization the caller may see (another tenant's looks missing).
async fn check_owner<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    group: Option<i64>,
    user_id: Option<i64>,
) -> AppResult<()> {
    if let Some(g) = group
        && !support_group::Entity::find_by_id(g)
            .one(db)
            .await?
            .is_some_and(|g| p.can_see(g.organization_id))
    {
        return Err(AppError::invalid_field(
            "ownerGroupId",
            "support group not found",
        ));
    }
    if let Some(u) = user_id
        && !user::Entity::find_by_id(u)
            .one(db)
            .await?
            .is_some_and(|u| p.can_see(u.organization_id))
    {
        return Err(AppError::invalid_field("ownerUserId", "user not found"));
    }
    Ok(())
}

async fn ensure_free_service_name<C: ConnectionTrait>(
    db: &C,
    org: i64,
    key: &str,
    except: Option<i64>,
) -> AppResult<()> {
    let clash = Condition::all()
        .add(service::Column::OrganizationId.eq(org))
        .add(service::Column::NameKey.eq(key));
    ensure_free::<service::Entity, _>(db, clash, except, |s| {
        format!(
            "a service named {:?} already exists in this organization",
            s.name
        )
    })
    .await
}

pub struct NewService {
    pub organization_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub status: Option<LifecycleStatus>,
    pub criticality: Option<Criticality>,
    pub owner_group_id: Option<i64>,
    pub owner_user_id: Option<i64>,
}

pub async fn create_service(
    store: &Store,
    p: &Principal,
    input: NewService,
) -> AppResult<service::Model> {
    let organization_id = input.organization_id.unwrap_or(p.organization_id);
    if !p.can_see(organization_id) {
        return Err(AppError::invalid_field(
            "organizationId",
            "organization not found",
        ));
    }
    let (name, name_key) = clean_name("name", &input.name, 200)?;
    let description = clean_text("description", input.description, 10_000)?;
    let status = input.status.unwrap_or(LifecycleStatus::Pipeline);
    if status == LifecycleStatus::Retired {
        return Err(AppError::invalid_field(
            "status",
            "a new service starts as PIPELINE or LIVE",
        ));
    }
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(organization_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    check_owner(&txn, p, input.owner_group_id, input.owner_user_id).await?;
    ensure_free_service_name(&txn, organization_id, &name_key, None).await?;
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        service::ActiveModel {
            organization_id: Set(organization_id),
            name: Set(name),
            name_key: Set(name_key),
            description: Set(description),
            status: Set(status),
            criticality: Set(input.criticality.unwrap_or(Criticality::Medium)),
            owner_group_id: Set(input.owner_group_id),
            owner_user_id: Set(input.owner_user_id),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| {
        conflict_on_unique(
            e,
            "a service with this name already exists in this organization",
        )
    })?;
    txn.commit().await?;
    store
        .events
        .publish(DomainEvent::ServiceChanged(ServiceChanged {
            kind: ChangeKind::Created,
            visible_to: vec![created.organization_id],
            changed_fields: Vec::new(),
            service: created.clone(),
        }));
    Ok(created)
}

pub struct ServicePatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<LifecycleStatus>,
    pub criticality: Option<Criticality>,
    pub owner_group_id: Option<Option<i64>>,
    pub owner_user_id: Option<Option<i64>>,
}

impl ServicePatch {
    pub fn retire(id: i64, version: i32) -> Self {
        Self {
            id,
            version,
            name: None,
            description: None,
            status: Some(LifecycleStatus::Retired),
            criticality: None,
            owner_group_id: None,
            owner_user_id: None,
        }
    }
}

/// Updates a service. Retiring it also retires its offerings, in the same transaction.
pub async fn update_service(
    store: &Store,
    p: &Principal,
    input: ServicePatch,
) -> AppResult<service::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_service(&txn, p, input.id).await?;
    require_service_writer(p, &before)?;
    check_version("service", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.name {
        let (name, key) = clean_name("name", name, 200)?;
        ensure_free_service_name(&txn, before.organization_id, &key, Some(before.id)).await?;
        next.name = name;
        next.name_key = key;
    }
    if let Some(description) = input.description {
        next.description = clean_text("description", description, 10_000)?;
    }
    if let Some(status) = input.status {
        check_transition("a service", before.status, status)?;
        next.status = status;
    }
    patch(&mut next.criticality, input.criticality);
    patch(&mut next.owner_group_id, input.owner_group_id);
    patch(&mut next.owner_user_id, input.owner_user_id);
    check_owner(
        &txn,
        p,
        next.owner_group_id
            .filter(|_| input.owner_group_id.is_some()),
        next.owner_user_id.filter(|_| input.owner_user_id.is_some()),
    )
    .await?;
    let retiring =
        before.status != LifecycleStatus::Retired && next.status == LifecycleStatus::Retired;
    // Rules from processes that land later hook in here.
    if retiring
        && let Some(open) =
            crate::processes::sla::open_agreement_for_service(&txn, before.id).await?
    {
        return Err(AppError::Conflict(format!(
            "the service has an open agreement ({:?}); retire or end it before retiring the service",
            open.name
        )));
    }
    let updated = save_versioned(&txn, p, &before, next).await.map_err(|e| {
        conflict_on_unique(
            e,
            "a service with this name already exists in this organization",
        )
    })?;
    if retiring {
        let offerings = service_offering::Entity::find()
            .filter(service_offering::Column::ServiceId.eq(before.id))
            .filter(service_offering::Column::Status.ne(LifecycleStatus::Retired))
            .all(&txn)
            .await?;
        for offering in offerings {
            let mut next = offering.clone();
            next.status = LifecycleStatus::Retired;
            save_versioned(&txn, p, &offering, next).await?;
        }
    }
    let visible = visible_to(&txn, &updated).await?;
    txn.commit().await?;
    if updated != before {
        store
            .events
            .publish(DomainEvent::ServiceChanged(ServiceChanged {
                kind: if retiring {
                    ChangeKind::Retired
                } else {
                    ChangeKind::Updated
                },
                changed_fields: audit::changed_fields(&before, &updated),
                visible_to: visible,
                service: updated.clone(),
            }));
    }
    Ok(updated)
}

/// An offering by id, visible when its service is (customers see only live offerings).
pub async fn find_offering<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<service_offering::Model> {
    let offering = service_offering::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("service offering"))?;
    if p.is_customer_view() && offering.status != LifecycleStatus::Live {
        return Err(AppError::not_found("service offering"));
    }
    find_service(db, p, offering.service_id)
        .await
        .map_err(|_| AppError::not_found("service offering"))?;
    Ok(offering)
}

pub struct NewOffering {
    pub service_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub status: Option<LifecycleStatus>,
}

pub async fn create_offering(
    store: &Store,
    p: &Principal,
    input: NewOffering,
) -> AppResult<service_offering::Model> {
    let (name, name_key) = clean_name("name", &input.name, 200)?;
    let description = clean_text("description", input.description, 10_000)?;
    let status = input.status.unwrap_or(LifecycleStatus::Pipeline);
    let txn = begin_write(&store.db).await?;
    let svc = find_service(&txn, p, input.service_id).await?;
    require_service_writer(p, &svc)?;
    check_offering_status(&svc, None, status)?;
    ensure_free_offering_name(&txn, svc.id, &name_key, None).await?;
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        service_offering::ActiveModel {
            service_id: Set(svc.id),
            organization_id: Set(svc.organization_id),
            name: Set(name),
            name_key: Set(name_key),
            description: Set(description),
            status: Set(status),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| {
        conflict_on_unique(
            e,
            "an offering with this name already exists for this service",
        )
    })?;
    txn.commit().await?;
    Ok(created)
}

/// An offering follows the service lifecycle and is live only while its service is.
fn check_offering_status(
    svc: &service::Model,
    from: Option<LifecycleStatus>,
    to: LifecycleStatus,
) -> AppResult<()> {
    match from {
        Some(from) => check_transition("a service offering", from, to)?,
        None if to == LifecycleStatus::Retired => {
            return Err(AppError::invalid_field(
                "status",
                "a new offering starts as PIPELINE or LIVE",
            ));
        }
        None => {}
    }
    if to == LifecycleStatus::Live && svc.status != LifecycleStatus::Live {
        return Err(AppError::invalid_field(
            "status",
            "an offering can be LIVE only while its service is LIVE",
        ));
    }
    Ok(())
}

async fn ensure_free_offering_name<C: ConnectionTrait>(
    db: &C,
    service_id: i64,
    key: &str,
    except: Option<i64>,
) -> AppResult<()> {
    let clash = Condition::all()
        .add(service_offering::Column::ServiceId.eq(service_id))
        .add(service_offering::Column::NameKey.eq(key));
    ensure_free::<service_offering::Entity, _>(db, clash, except, |_| {
        "an offering with this name already exists for this service".into()
    })
    .await
}

pub struct OfferingPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<LifecycleStatus>,
}

pub async fn update_offering(
    store: &Store,
    p: &Principal,
    input: OfferingPatch,
) -> AppResult<service_offering::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_offering(&txn, p, input.id).await?;
    let svc = find_service(&txn, p, before.service_id).await?;
    require_service_writer(p, &svc)?;
    check_version("service offering", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.name {
        let (name, key) = clean_name("name", name, 200)?;
        ensure_free_offering_name(&txn, svc.id, &key, Some(before.id)).await?;
        next.name = name;
        next.name_key = key;
    }
    if let Some(description) = input.description {
        next.description = clean_text("description", description, 10_000)?;
    }
    if let Some(status) = input.status {
        if status != before.status {
            check_offering_status(&svc, Some(before.status), status)?;
        }
        next.status = status;
    }
    let updated = save_versioned(&txn, p, &before, next).await.map_err(|e| {
        conflict_on_unique(
            e,
            "an offering with this name already exists for this service",
        )
    })?;
    txn.commit().await?;
    Ok(updated)
}

/// Subscribes a customer organization to a service.
pub async fn subscribe(
    store: &Store,
    p: &Principal,
    service_id: i64,
    customer_id: i64,
) -> AppResult<service_subscription::Model> {
    if !p.can_see(customer_id) {
        return Err(AppError::invalid_field(
            "customerId",
            "organization not found",
        ));
    }
    let txn = begin_write(&store.db).await?;
    let svc = find_service(&txn, p, service_id).await?;
    if svc.status == LifecycleStatus::Retired {
        return Err(AppError::invalid_field(
            "serviceId",
            "a retired service takes no new subscriptions",
        ));
    }
    organization::Entity::find_by_id(customer_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("customerId", "organization not found"))?;
    let existing = service_subscription::Entity::find()
        .filter(service_subscription::Column::ServiceId.eq(service_id))
        .filter(service_subscription::Column::CustomerId.eq(customer_id))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(AppError::Conflict(
            "this customer already subscribes to this service".into(),
        ));
    }
    let created = audit::insert(
        &txn,
        p,
        service_subscription::ActiveModel {
            service_id: Set(service_id),
            customer_id: Set(customer_id),
            created_at: Set(now()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, "this customer already subscribes to this service"))?;
    txn.commit().await?;
    Ok(created)
}

pub async fn unsubscribe(
    store: &Store,
    p: &Principal,
    service_id: i64,
    customer_id: i64,
) -> AppResult<()> {
    let txn = begin_write(&store.db).await?;
    find_service(&txn, p, service_id).await?;
    let subscription = service_subscription::Entity::find()
        .filter(service_subscription::Column::ServiceId.eq(service_id))
        .filter(service_subscription::Column::CustomerId.eq(customer_id))
        .one(&txn)
        .await?
        .filter(|s| p.can_see(s.customer_id))
        .ok_or_else(|| AppError::not_found("service subscription"))?;
    subscription.clone().delete(&txn).await?;
    audit::record(&txn, p, "delete", Some(&subscription), None).await?;
    txn.commit().await?;
    Ok(())
}
