//! The CIs a delivery's alerts may name as affected: the tenant's and the
//! provider's, by name or external id, read once per delivery.

use std::collections::HashMap;

use entity::{configuration_item, enums::CiStatus};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::integrations::provider_ids;
use crate::error::AppResult;

/// CIs the alerts of a delivery may name: the tenant's and the provider's,
/// by lower-cased name and by external id.
pub(super) struct CiIndex {
    by_name: HashMap<String, i64>,
    by_external: HashMap<String, i64>,
}

pub(super) async fn ci_index<C: ConnectionTrait>(
    db: &C,
    customer: i64,
    values: &[String],
) -> AppResult<CiIndex> {
    let mut owners = provider_ids(db).await?;
    owners.push(customer);
    let lowered: Vec<String> = values.iter().map(|v| v.to_lowercase()).collect();
    let rows = configuration_item::Entity::find()
        .filter(configuration_item::Column::OrganizationId.is_in(owners))
        .filter(configuration_item::Column::Status.ne(CiStatus::Retired))
        .filter(
            Condition::any()
                .add(configuration_item::Column::NameKey.is_in(lowered))
                .add(configuration_item::Column::ExternalId.is_in(values.iter().cloned())),
        )
        .order_by_asc(configuration_item::Column::Id)
        .all(db)
        .await?;
    let mut idx = CiIndex {
        by_name: HashMap::new(),
        by_external: HashMap::new(),
    };
    // The tenant's own CI wins over a provider's of the same name.
    for ci in rows {
        let own = ci.organization_id == customer;
        if own || !idx.by_name.contains_key(&ci.name_key) {
            idx.by_name.insert(ci.name_key.clone(), ci.id);
        }
        if let Some(e) = &ci.external_id
            && (own || !idx.by_external.contains_key(e))
        {
            idx.by_external.insert(e.clone(), ci.id);
        }
    }
    Ok(idx)
}

impl CiIndex {
    /// The CI a label's value names: by external id, else by name.
    pub(super) fn find(&self, value: &str) -> Option<i64> {
        self.by_external
            .get(value)
            .or_else(|| self.by_name.get(&value.to_lowercase()))
            .copied()
    }

    /// Whether the value names a CI of the index (else it is read again).
    pub(super) fn knows(&self, value: &str) -> bool {
        self.by_name.contains_key(&value.to_lowercase()) || self.by_external.contains_key(value)
    }
}
