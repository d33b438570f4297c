//! DataLoaders: every relation a list resolves is batched into one query per
//! relation per tick. No cache: subscriptions outlive requests, and a stale
//! record must never be served.
//!
//! A loader's fetch starts 1 ms after its first key is registered. Inside
//! [`batched`] (every HTTP request), the fetch is only spawned once the
//! request's future has finished the poll that registered the key, so a
//! thread descheduled in the middle of that poll no longer splits the batch:
//! the number of statements a request makes does not depend on the load of
//! the machine.

use std::{
    cell::RefCell, collections::HashMap, future::Future, marker::PhantomData, pin::pin, sync::Arc,
};

use async_graphql::dataloader::{DataLoader, Loader};
use futures_util::future::BoxFuture;
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

thread_local! {
    /// The fetches started while a [`batched`] future is being polled on this
    /// thread; `None` outside one.
    static DEFERRED: RefCell<Option<Vec<BoxFuture<'static, ()>>>> = const { RefCell::new(None) };
}

/// The loaders' spawner: inside [`batched`], holds the fetch until the poll ends.
fn spawn_fetch(fetch: BoxFuture<'static, ()>) {
    let now = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(queue) => {
            queue.push(fetch);
            None
        }
        None => Some(fetch),
    });
    if let Some(fetch) = now {
        tokio::spawn(fetch);
    }
}

/// Restores the enclosing scope when a poll ends, even by a panic, and spawns
/// the fetches the poll started.
struct Scope(Option<Vec<BoxFuture<'static, ()>>>);

impl Drop for Scope {
    fn drop(&mut self) {
        let started = DEFERRED.with(|d| d.replace(self.0.take()));
        for fetch in started.unwrap_or_default() {
            tokio::spawn(fetch);
        }
    }
}

/// Runs `fut` (a GraphQL execution) so that the loader fetches started in one
/// of its polls are spawned when that poll returns: each batch then holds
/// every key the poll registered.
pub async fn batched<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        let _scope = Scope(DEFERRED.with(|d| d.replace(Some(Vec::new()))));
        fut.as_mut().poll(cx)
    })
    .await
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
            spawn_fetch,
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
            spawn_fetch,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the keys of each batch it is asked for.
    struct Batches(Arc<Mutex<Vec<Vec<i64>>>>);

    impl Loader<i64> for Batches {
        type Value = i64;
        type Error = Arc<DbErr>;

        async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, Self::Error> {
            let mut keys = keys.to_vec();
            keys.sort_unstable();
            self.0.lock().unwrap().push(keys.clone());
            Ok(keys.into_iter().map(|k| (k, k)).collect())
        }
    }

    /// Two keys asked for in one poll, 5 ms apart (a thread descheduled
    /// between them): one batch inside `batched`, two outside.
    async fn batches_of_a_slow_poll(scoped: bool) -> Vec<Vec<i64>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let loader = DataLoader::new(Batches(seen.clone()), spawn_fetch);
        let both = async {
            futures_util::join!(loader.load_one(1), async {
                std::thread::sleep(std::time::Duration::from_millis(5));
                loader.load_one(2).await
            })
        };
        let (a, b) = if scoped {
            batched(both).await
        } else {
            both.await
        };
        assert_eq!((a.unwrap(), b.unwrap()), (Some(1), Some(2)));
        seen.lock().unwrap().clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_holds_every_key_of_the_poll() {
        assert_eq!(batches_of_a_slow_poll(true).await, [vec![1, 2]]);
        assert_eq!(batches_of_a_slow_poll(false).await, [vec![1], vec![2]]);
    }
}
