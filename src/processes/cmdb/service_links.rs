//! Which CIs a service consists of: a CI joins a service its organization
//! delivers or subscribes to.

use entity::{enums::CiStatus, service_configuration_item, service_subscription};
use sea_orm::{ColumnTrait, EntityTrait, ModelTrait, QueryFilter, Set};

use super::cis::referenced_ci;
use crate::processes::catalogue;
use crate::records::{Store, audit, conflict_on_unique, now};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
};

/// Links a CI to a service it is part of (staff). The CI belongs to the
/// service's organization or to a customer subscribed to the service.
pub async fn link_service_ci(
    store: &Store,
    p: &Principal,
    service_id: i64,
    ci_id: i64,
) -> AppResult<service_configuration_item::Model> {
    let txn = begin_write(&store.db).await?;
    let svc = catalogue::find_service(&txn, p, service_id)
        .await
        .map_err(|_| AppError::invalid_field("serviceId", "service not found"))?;
    if !p.can_see(svc.organization_id) {
        return Err(AppError::invalid_field("serviceId", "service not found"));
    }
    let ci = referenced_ci(&txn, p, ci_id, "configurationItemId").await?;
    if ci.status == CiStatus::Retired {
        return Err(AppError::invalid_field(
            "configurationItemId",
            "a retired configuration item cannot join a service",
        ));
    }
    if ci.organization_id != svc.organization_id {
        let subscribed = service_subscription::Entity::find()
            .filter(service_subscription::Column::ServiceId.eq(svc.id))
            .filter(service_subscription::Column::CustomerId.eq(ci.organization_id))
            .one(&txn)
            .await?;
        if subscribed.is_none() {
            return Err(AppError::invalid_field(
                "configurationItemId",
                "the configuration item belongs to an organization that neither delivers nor subscribes to this service",
            ));
        }
    }
    let existing = service_configuration_item::Entity::find()
        .filter(service_configuration_item::Column::ServiceId.eq(svc.id))
        .filter(service_configuration_item::Column::CiId.eq(ci.id))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(AppError::Conflict(
            "this configuration item is already part of this service".into(),
        ));
    }
    let created = audit::insert(
        &txn,
        p,
        service_configuration_item::ActiveModel {
            service_id: Set(svc.id),
            ci_id: Set(ci.id),
            organization_id: Set(ci.organization_id),
            created_at: Set(now()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| {
        conflict_on_unique(e, "this configuration item is already part of this service")
    })?;
    txn.commit().await?;
    Ok(created)
}

pub async fn unlink_service_ci(
    store: &Store,
    p: &Principal,
    service_id: i64,
    ci_id: i64,
) -> AppResult<()> {
    let txn = begin_write(&store.db).await?;
    catalogue::find_service(&txn, p, service_id).await?;
    let link = service_configuration_item::Entity::find()
        .filter(service_configuration_item::Column::ServiceId.eq(service_id))
        .filter(service_configuration_item::Column::CiId.eq(ci_id))
        .one(&txn)
        .await?
        .filter(|l| p.can_see(l.organization_id))
        .ok_or_else(|| AppError::not_found("service configuration item"))?;
    link.clone().delete(&txn).await?;
    audit::record(&txn, p, "delete", Some(&link), None).await?;
    txn.commit().await?;
    Ok(())
}
