//! DataLoaders: every relation a list resolves is batched into one query per
//! relation per tick. No cache: subscriptions outlive requests, and a stale
//! record must never be served.

use std::{collections::HashMap, marker::PhantomData, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, Iterable, ModelTrait, PrimaryKeyToColumn,
    QueryFilter, Value,
};

fn as_i64(v: Value) -> Option<i64> {
    match v {
        Value::BigInt(Some(i)) => Some(i),
        Value::Int(Some(i)) => Some(i64::from(i)),
        _ => None,
    }
}

/// Loads records of `E` by primary key.
pub struct ById<E> {
    db: DatabaseConnection,
    _entity: PhantomData<fn() -> E>,
}

impl<E: EntityTrait> ById<E> {
    pub fn loader(db: &DatabaseConnection) -> DataLoader<Self> {
        DataLoader::new(
            Self {
                db: db.clone(),
                _entity: PhantomData,
            },
            tokio::spawn,
        )
    }
}

impl<E> Loader<i64> for ById<E>
where
    E: EntityTrait,
    E::Model: Send + Sync + Clone,
{
    type Value = E::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, E::Model>, Self::Error> {
        let Some(pk) = E::PrimaryKey::iter().next().map(|k| k.into_column()) else {
            return Ok(HashMap::new());
        };
        let rows = E::find()
            .filter(pk.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .filter_map(|m| as_i64(m.get(pk)).map(|id| (id, m)))
            .collect())
    }
}

/// Loads the records of `E` whose foreign-key column holds the key (one-to-many).
pub struct ByColumn<E: EntityTrait> {
    db: DatabaseConnection,
    column: E::Column,
}

impl<E: EntityTrait> ByColumn<E>
where
    E::Column: Send + Sync,
{
    pub fn loader(db: &DatabaseConnection, column: E::Column) -> DataLoader<Self> {
        DataLoader::new(
            Self {
                db: db.clone(),
                column,
            },
            tokio::spawn,
        )
    }
}

impl<E> Loader<i64> for ByColumn<E>
where
    E: EntityTrait,
    E::Model: Send + Sync + Clone,
    E::Column: Send + Sync,
{
    type Value = Vec<E::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Vec<E::Model>>, Self::Error> {
        let rows = E::find()
            .filter(self.column.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut out: HashMap<i64, Vec<E::Model>> = HashMap::new();
        for row in rows {
            if let Some(key) = as_i64(row.get(self.column)) {
                out.entry(key).or_default().push(row);
            }
        }
        Ok(out)
    }
}

/// All loaders, built once per schema.
pub struct Loaders {
    pub organization: DataLoader<ById<entity::organization::Entity>>,
    pub user: DataLoader<ById<entity::user::Entity>>,
    pub support_group: DataLoader<ById<entity::support_group::Entity>>,
    pub service: DataLoader<ById<entity::service::Entity>>,
    pub offerings_by_service: DataLoader<ByColumn<entity::service_offering::Entity>>,
    pub subscriptions_by_service: DataLoader<ByColumn<entity::service_subscription::Entity>>,
    pub memberships_by_group: DataLoader<ByColumn<entity::group_membership::Entity>>,
    pub ci_class: DataLoader<ById<entity::ci_class::Entity>>,
    pub configuration_item: DataLoader<ById<entity::configuration_item::Entity>>,
    pub relationships_by_source: DataLoader<ByColumn<entity::ci_relationship::Entity>>,
    pub relationships_by_target: DataLoader<ByColumn<entity::ci_relationship::Entity>>,
    pub service_links_by_ci: DataLoader<ByColumn<entity::service_configuration_item::Entity>>,
    pub service_links_by_service: DataLoader<ByColumn<entity::service_configuration_item::Entity>>,
    pub calendar: DataLoader<ById<entity::business_calendar::Entity>>,
    pub sla: DataLoader<ById<entity::sla::Entity>>,
    pub clocks_by_incident: DataLoader<ByColumn<entity::sla_clock::Entity>>,
    pub notes_by_incident: DataLoader<ByColumn<entity::incident_note::Entity>>,
    pub affected_cis_by_incident: DataLoader<ByColumn<entity::incident_affected_ci::Entity>>,
    pub alert_by_incident: DataLoader<ByColumn<entity::incident_alert::Entity>>,
    pub integration: DataLoader<ById<entity::integration::Entity>>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection) -> Self {
        Self {
            organization: ById::loader(db),
            user: ById::loader(db),
            support_group: ById::loader(db),
            service: ById::loader(db),
            offerings_by_service: ByColumn::loader(db, entity::service_offering::Column::ServiceId),
            subscriptions_by_service: ByColumn::loader(
                db,
                entity::service_subscription::Column::ServiceId,
            ),
            memberships_by_group: ByColumn::loader(db, entity::group_membership::Column::GroupId),
            ci_class: ById::loader(db),
            configuration_item: ById::loader(db),
            relationships_by_source: ByColumn::loader(
                db,
                entity::ci_relationship::Column::SourceId,
            ),
            relationships_by_target: ByColumn::loader(
                db,
                entity::ci_relationship::Column::TargetId,
            ),
            service_links_by_ci: ByColumn::loader(
                db,
                entity::service_configuration_item::Column::CiId,
            ),
            service_links_by_service: ByColumn::loader(
                db,
                entity::service_configuration_item::Column::ServiceId,
            ),
            calendar: ById::loader(db),
            sla: ById::loader(db),
            clocks_by_incident: ByColumn::loader(db, entity::sla_clock::Column::IncidentId),
            notes_by_incident: ByColumn::loader(db, entity::incident_note::Column::IncidentId),
            affected_cis_by_incident: ByColumn::loader(
                db,
                entity::incident_affected_ci::Column::IncidentId,
            ),
            alert_by_incident: ByColumn::loader(db, entity::incident_alert::Column::IncidentId),
            integration: ById::loader(db),
        }
    }
}
