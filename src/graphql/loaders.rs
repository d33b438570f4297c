//! DataLoaders: every relation a list resolves is batched into one query per
//! relation per level. No cache: subscriptions outlive requests, and a stale
//! record must never be served.
//!
//! Every HTTP request gets its own [`Loaders`] ([`Loaders::for_request`]) and
//! runs inside [`batched`], which drives the loaders' fetches in the
//! request's own task, level by level: the fetches a level asks for start
//! together once the previous level's are all answered, so each batch holds
//! every key of its level and the number of statements a request makes does
//! not depend on timing or on the load of the machine. Subscriptions, which
//! outlive requests, use the schema's shared loaders ([`Loaders::new`]),
//! whose fetches are spawned after the usual 1 ms window.

use std::{
    cell::RefCell,
    collections::HashMap,
    future::Future,
    marker::PhantomData,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use async_graphql::dataloader::{DataLoader, Loader};
use futures_util::{
    StreamExt,
    future::BoxFuture,
    stream::FuturesUnordered,
    task::{ArcWake, AtomicWaker},
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, Iterable, JoinType,
    ModelTrait, PrimaryKeyToColumn, QueryFilter, QueryResult, QuerySelect, RelationDef, Value,
};

fn as_i64(v: Value) -> Option<i64> {
    match v {
        Value::BigInt(Some(i)) => Some(i),
        Value::Int(Some(i)) => Some(i64::from(i)),
        _ => None,
    }
}

type Fetch = BoxFuture<'static, ()>;

thread_local! {
    /// The fetches asked for while a [`batched`] future is being polled on
    /// this thread; `None` outside one.
    static HELD: RefCell<Option<Vec<Fetch>>> = const { RefCell::new(None) };
}

/// How a set of loaders runs its fetches.
#[derive(Clone, Copy)]
enum Mode {
    /// Spawned on the runtime after a 1 ms window (shared loaders).
    Spawned,
    /// Held by the enclosing [`batched`] and run in its task (one request's loaders).
    Held,
}

fn spawn_fetch(fetch: Fetch) {
    tokio::spawn(fetch);
}

/// A per-request loader's spawner: hands the fetch to the enclosing
/// [`batched`]; spawns it when there is none.
fn hold_fetch(fetch: Fetch) {
    let outside = HELD.with(|h| match h.borrow_mut().as_mut() {
        Some(held) => {
            held.push(fetch);
            None
        }
        None => Some(fetch),
    });
    if let Some(fetch) = outside {
        tokio::spawn(fetch);
    }
}

fn data_loader<T: Send + Sync + 'static>(loader: T, mode: Mode) -> DataLoader<T> {
    match mode {
        Mode::Spawned => DataLoader::new(loader, spawn_fetch),
        Mode::Held => DataLoader::new(loader, hold_fetch).delay(Duration::ZERO),
    }
}

/// Collects the fetches asked for during one poll; restores the enclosing
/// scope when dropped, even by a panic.
struct Scope(Option<Vec<Fetch>>);

impl Scope {
    fn enter() -> Self {
        Self(HELD.with(|h| h.replace(Some(Vec::new()))))
    }

    fn finish(mut self) -> Vec<Fetch> {
        let outer = self.0.take();
        HELD.with(|h| h.replace(outer)).unwrap_or_default()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            HELD.with(|h| h.replace(Some(outer)));
        } else {
            // Unwinding out of `poll`: drop what this poll asked for.
            HELD.with(|h| h.replace(None));
        }
    }
}

/// Remembers that the execution was woken, and passes the wake on.
struct WakeFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl ArcWake for WakeFlag {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::Release);
        arc_self.task.wake();
    }
}

/// How many times in a row one poll of [`batched`] re-polls an execution
/// that keeps waking itself before it lets the runtime in.
const SELF_WAKES: usize = 64;

/// Runs `fut` (a GraphQL execution using [`Loaders::for_request`]) with its
/// loaders' fetches in its own task. Fetches asked for while others are in
/// flight wait until all of those are answered, then start together: keys
/// registered meanwhile join their batch. A level only starts once the
/// execution has nothing left to do without it (it is re-polled while it
/// wakes itself, and runs outside tokio's cooperative budget, which would
/// otherwise stop a wide list half way through a poll). The execution keeps
/// being polled throughout, so its own queries never wait on the loaders.
pub async fn batched<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut running: FuturesUnordered<Fetch> = FuturesUnordered::new();
    let mut held: Vec<Fetch> = Vec::new();
    let flag = Arc::new(WakeFlag {
        woken: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    let waker = futures_util::task::waker(flag.clone());
    tokio::task::coop::unconstrained(std::future::poll_fn(move |cx| {
        flag.task.register(cx.waker());
        loop {
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
            for _ in 0..SELF_WAKES {
                if !flag.woken.swap(false, Ordering::AcqRel) {
                    break;
                }
                let scope = Scope::enter();
                let out = fut.as_mut().poll(&mut Context::from_waker(&waker));
                held.extend(scope.finish());
                if out.is_ready() {
                    return out;
                }
            }
            if running.is_empty() && !held.is_empty() {
                running.extend(held.drain(..));
                continue;
            }
            return Poll::Pending;
        }
    }))
    .await
}

/// Loads records of `E` by primary key.
pub struct ById<E> {
    db: DatabaseConnection,
    _entity: PhantomData<fn() -> E>,
}

impl<E: EntityTrait> ById<E> {
    fn loader(db: &DatabaseConnection, mode: Mode) -> DataLoader<Self> {
        data_loader(
            Self {
                db: db.clone(),
                _entity: PhantomData,
            },
            mode,
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
    fn loader(db: &DatabaseConnection, column: E::Column, mode: Mode) -> DataLoader<Self> {
        data_loader(
            Self {
                db: db.clone(),
                column,
            },
            mode,
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

/// Loads the business calendar of each SLA, by SLA id, in one statement
/// (a join): a clock's reading needs only that.
pub struct CalendarBySla {
    db: DatabaseConnection,
}

impl Loader<i64> for CalendarBySla {
    /// Shared: a page of clocks asks for the same few calendars again and again.
    type Value = Arc<entity::business_calendar::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        use entity::{business_calendar, sla};
        let of_sla: RelationDef = sla::Entity::belongs_to(business_calendar::Entity)
            .from(sla::Column::CalendarId)
            .to(business_calendar::Column::Id)
            .into();
        let rows = business_calendar::Entity::find()
            .select_also(sla::Entity)
            .join(JoinType::InnerJoin, of_sla.rev())
            .filter(sla::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .filter_map(|(calendar, agreement)| agreement.map(|a| (a.id, Arc::new(calendar))))
            .collect())
    }
}

/// The stored version of a business calendar: (id, version, updated_at). A
/// clock's reading needs only the calendar, and
/// [`crate::processes::sla::calendar_cached`] keeps calendars by this key, so a clock
/// that carries it needs no calendar fetch.
pub use crate::processes::sla::CalendarKey;

/// A clock with the key of its SLA's calendar.
#[derive(Debug, Clone)]
pub struct ClockWithCalendar {
    pub clock: entity::sla_clock::Model,
    pub calendar: Option<CalendarKey>,
}

impl FromQueryResult for ClockWithCalendar {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        let id: Option<i64> = res.try_get(pre, "calendar_id")?;
        let version: Option<i32> = res.try_get(pre, "calendar_version")?;
        let updated: Option<chrono::DateTime<chrono::Utc>> =
            res.try_get(pre, "calendar_updated_at")?;
        Ok(Self {
            clock: entity::sla_clock::Model::from_query_result(res, pre)?,
            calendar: id.zip(version).zip(updated).map(|((i, v), u)| (i, v, u)),
        })
    }
}

/// Loads the clocks of each incident with their calendar's key, in one
/// statement (joined through the SLA).
pub struct ClocksByIncident {
    db: DatabaseConnection,
}

impl Loader<i64> for ClocksByIncident {
    type Value = Vec<ClockWithCalendar>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        use entity::{business_calendar, sla, sla_clock};
        let to_sla: RelationDef = sla_clock::Entity::belongs_to(sla::Entity)
            .from(sla_clock::Column::SlaId)
            .to(sla::Column::Id)
            .into();
        let to_calendar: RelationDef = sla::Entity::belongs_to(business_calendar::Entity)
            .from(sla::Column::CalendarId)
            .to(business_calendar::Column::Id)
            .into();
        let rows = sla_clock::Entity::find()
            .join(JoinType::LeftJoin, to_sla)
            .join(JoinType::LeftJoin, to_calendar)
            .column_as(business_calendar::Column::Id, "calendar_id")
            .column_as(business_calendar::Column::Version, "calendar_version")
            .column_as(business_calendar::Column::UpdatedAt, "calendar_updated_at")
            .filter(sla_clock::Column::IncidentId.is_in(keys.iter().copied()))
            .into_model::<ClockWithCalendar>()
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut out: HashMap<i64, Self::Value> = HashMap::new();
        for row in rows {
            out.entry(row.clock.incident_id).or_default().push(row);
        }
        Ok(out)
    }
}

/// All loaders: the schema's shared set, or one request's.
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
    pub calendar_by_sla: DataLoader<CalendarBySla>,
    pub clocks_by_incident: DataLoader<ClocksByIncident>,
    pub notes_by_incident: DataLoader<ByColumn<entity::incident_note::Entity>>,
    pub affected_cis_by_incident: DataLoader<ByColumn<entity::incident_affected_ci::Entity>>,
    pub alert_by_incident: DataLoader<ByColumn<entity::incident_alert::Entity>>,
    pub integration: DataLoader<ById<entity::integration::Entity>>,
    pub incident: DataLoader<ById<entity::incident::Entity>>,
    pub problem: DataLoader<ById<entity::problem::Entity>>,
    pub problem_links_by_problem: DataLoader<ByColumn<entity::problem_incident::Entity>>,
    pub problem_links_by_incident: DataLoader<ByColumn<entity::problem_incident::Entity>>,
    pub affected_cis_by_problem: DataLoader<ByColumn<entity::problem_affected_ci::Entity>>,
    pub notes_by_problem: DataLoader<ByColumn<entity::problem_note::Entity>>,
}

impl Loaders {
    /// The schema's loaders, shared by subscriptions: fetches are spawned.
    pub fn new(db: &DatabaseConnection) -> Self {
        Self::build(db, Mode::Spawned)
    }

    /// One request's loaders, to be run inside [`batched`].
    pub fn for_request(db: &DatabaseConnection) -> Self {
        Self::build(db, Mode::Held)
    }

    fn build(db: &DatabaseConnection, m: Mode) -> Self {
        Self {
            organization: ById::loader(db, m),
            user: ById::loader(db, m),
            support_group: ById::loader(db, m),
            service: ById::loader(db, m),
            offerings_by_service: ByColumn::loader(
                db,
                entity::service_offering::Column::ServiceId,
                m,
            ),
            subscriptions_by_service: ByColumn::loader(
                db,
                entity::service_subscription::Column::ServiceId,
                m,
            ),
            memberships_by_group: ByColumn::loader(
                db,
                entity::group_membership::Column::GroupId,
                m,
            ),
            ci_class: ById::loader(db, m),
            configuration_item: ById::loader(db, m),
            relationships_by_source: ByColumn::loader(
                db,
                entity::ci_relationship::Column::SourceId,
                m,
            ),
            relationships_by_target: ByColumn::loader(
                db,
                entity::ci_relationship::Column::TargetId,
                m,
            ),
            service_links_by_ci: ByColumn::loader(
                db,
                entity::service_configuration_item::Column::CiId,
                m,
            ),
            service_links_by_service: ByColumn::loader(
                db,
                entity::service_configuration_item::Column::ServiceId,
                m,
            ),
            calendar: ById::loader(db, m),
            sla: ById::loader(db, m),
            calendar_by_sla: data_loader(CalendarBySla { db: db.clone() }, m),
            clocks_by_incident: data_loader(ClocksByIncident { db: db.clone() }, m),
            notes_by_incident: ByColumn::loader(db, entity::incident_note::Column::IncidentId, m),
            affected_cis_by_incident: ByColumn::loader(
                db,
                entity::incident_affected_ci::Column::IncidentId,
                m,
            ),
            alert_by_incident: ByColumn::loader(db, entity::incident_alert::Column::IncidentId, m),
            integration: ById::loader(db, m),
            incident: ById::loader(db, m),
            problem: ById::loader(db, m),
            problem_links_by_problem: ByColumn::loader(
                db,
                entity::problem_incident::Column::ProblemId,
                m,
            ),
            problem_links_by_incident: ByColumn::loader(
                db,
                entity::problem_incident::Column::IncidentId,
                m,
            ),
            affected_cis_by_problem: ByColumn::loader(
                db,
                entity::problem_affected_ci::Column::ProblemId,
                m,
            ),
            notes_by_problem: ByColumn::loader(db, entity::problem_note::Column::ProblemId, m),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the keys of each batch it is asked for; answers after `wait_ms`.
    struct Batches {
        seen: Seen,
        wait_ms: u64,
    }

    impl Loader<i64> for Batches {
        type Value = i64;
        type Error = Arc<DbErr>;

        async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, Self::Error> {
            let mut keys = keys.to_vec();
            keys.sort_unstable();
            self.seen.lock().unwrap().push(keys.clone());
            tokio::time::sleep(std::time::Duration::from_millis(self.wait_ms)).await;
            Ok(keys.into_iter().map(|k| (k, k)).collect())
        }
    }

    type Seen = Arc<Mutex<Vec<Vec<i64>>>>;

    fn recording(mode: Mode, wait_ms: u64) -> (DataLoader<Batches>, Seen) {
        let seen = Seen::default();
        let loader = data_loader(
            Batches {
                seen: seen.clone(),
                wait_ms,
            },
            mode,
        );
        (loader, seen)
    }

    /// Two keys asked for in one poll, 5 ms apart (a thread descheduled
    /// between them): one batch for a request's loaders (the shared ones'
    /// 1 ms window would usually split it).
    async fn batches_of_a_slow_poll(mode: Mode) -> Vec<Vec<i64>> {
        let (loader, seen) = recording(mode, 0);
        let both = async {
            futures_util::join!(loader.load_one(1), async {
                std::thread::sleep(std::time::Duration::from_millis(5));
                loader.load_one(2).await
            })
        };
        let (a, b) = batched(both).await;
        assert_eq!((a.unwrap(), b.unwrap()), (Some(1), Some(2)));
        seen.lock().unwrap().clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_holds_every_key_of_the_poll() {
        assert_eq!(batches_of_a_slow_poll(Mode::Held).await, [vec![1, 2]]);
    }

    /// Two parents answered 30 ms apart both lead to the same child loader:
    /// one child batch inside `batched`, whatever the timing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_level_waits_for_all_of_its_parents() {
        let (fast, _) = recording(Mode::Held, 1);
        let (slow, _) = recording(Mode::Held, 30);
        let (child, seen) = recording(Mode::Held, 0);
        let (a, b) = batched(async {
            futures_util::join!(
                async {
                    child
                        .load_one(fast.load_one(10).await.unwrap().unwrap() + 1)
                        .await
                },
                async {
                    child
                        .load_one(slow.load_one(20).await.unwrap().unwrap() + 1)
                        .await
                },
            )
        })
        .await;
        assert_eq!((a.unwrap(), b.unwrap()), (Some(11), Some(21)));
        assert_eq!(*seen.lock().unwrap(), [vec![11, 21]]);
    }

    /// A wide list whose items each pass a tokio resource first (as a
    /// clock's fields pass its reading's OnceCell) exhausts tokio's
    /// cooperative budget within one poll: still one batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wide_level_is_one_batch() {
        let (loader, seen) = recording(Mode::Held, 0);
        let gate = tokio::sync::Semaphore::new(1000);
        let found = batched(futures_util::future::join_all((0..400).map(|i| {
            let (loader, gate) = (&loader, &gate);
            async move {
                let _permit = gate.acquire().await.unwrap();
                loader.load_one(i).await.unwrap()
            }
        })))
        .await;
        assert_eq!(found.len(), 400);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
