//! Which CIs a record of another process (an incident, a problem) may name as
//! affected: the CMDB's rule, asked by those processes.

use entity::{
    configuration_item,
    enums::{CiStatus, OrganizationKind},
    organization,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::{
    auth::Principal,
    error::{AppError, AppResult},
};

/// How many CIs one record may name: beyond that, impact analysis says more.
pub const MAX_AFFECTED_CIS: usize = 100;

/// The record that names affected CIs, for its rule and its messages.
pub struct AffectedBy<'a> {
    /// With its article: "an incident".
    pub record: &'a str,
    /// Whose CIs it may name besides the provider's: "the incident's customer".
    pub owner: &'a str,
    /// That owner organization.
    pub organization_id: i64,
    /// A provider's record may name any CI the caller sees.
    pub any_organization: bool,
}

/// The CIs named in `affectedCiIds`, de-duplicated in input order, at most
/// [`MAX_AFFECTED_CIS`]. Each must exist, be visible to the caller, not be
/// retired, and belong to the record's organization or to the provider;
/// another tenant's CI answers like a missing one.
pub async fn check_affected_cis<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    by: &AffectedBy<'_>,
    ids: &[i64],
) -> AppResult<Vec<i64>> {
    const FIELD: &str = "affectedCiIds";
    let mut unique = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(id) {
            unique.push(*id);
        }
    }
    if unique.len() > MAX_AFFECTED_CIS {
        return Err(AppError::invalid_field(
            FIELD,
            format!(
                "{} names at most {MAX_AFFECTED_CIS} affected configuration items",
                by.record
            ),
        ));
    }
    if unique.is_empty() {
        return Ok(unique);
    }
    let cis = configuration_item::Entity::find()
        .filter(configuration_item::Column::Id.is_in(unique.iter().copied()))
        .all(db)
        .await?;
    let others: Vec<i64> = cis
        .iter()
        .map(|c| c.organization_id)
        .filter(|o| *o != by.organization_id)
        .collect();
    let providers: Vec<i64> = if others.is_empty() || by.any_organization {
        Vec::new()
    } else {
        organization::Entity::find()
            .filter(organization::Column::Id.is_in(others))
            .filter(organization::Column::Kind.eq(OrganizationKind::Provider))
            .all(db)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    for id in &unique {
        let ci = cis
            .iter()
            .find(|c| c.id == *id && p.can_see(c.organization_id))
            .ok_or_else(|| AppError::invalid_field(FIELD, "configuration item not found"))?;
        if !by.any_organization
            && ci.organization_id != by.organization_id
            && !providers.contains(&ci.organization_id)
        {
            return Err(AppError::invalid_field(
                FIELD,
                format!(
                    "configuration item {} belongs neither to {} nor to the provider",
                    ci.name, by.owner
                ),
            ));
        }
        if ci.status == CiStatus::Retired {
            return Err(AppError::invalid_field(
                FIELD,
                format!("configuration item {} is retired", ci.name),
            ));
        }
    }
    Ok(unique)
}
