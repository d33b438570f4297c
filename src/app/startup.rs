//! Start-up and shutdown: the database made ready (migrations, the provider
//! organization, the standard CI classes, the demo data in development), the
//! event bus and its relay, the verifier of tokens; the work a server does
//! besides answering requests (the SLA worker, the pruners, the relay
//! listener); and the graceful shutdown of [`Application::run_until`].

use std::future::Future;

use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use super::{AppState, Application, idempotency};
use crate::{
    auth::Authenticator,
    config::Config,
    db,
    events::EventBus,
    processes::{cmdb, directory, monitoring, sla},
    records::Store,
};

/// What start-up prepared for the application to serve with.
pub(super) struct Prepared {
    pub database: DatabaseConnection,
    pub provider_id: i64,
    pub events: EventBus,
    /// This process's id in relayed events; set on PostgreSQL only.
    pub relay_origin: Option<String>,
    pub store: Store,
    pub auth: Authenticator,
    /// The admin token printed in development mode.
    pub dev_admin_token: Option<String>,
}

/// Connects and migrates the database, makes sure of the records every
/// server needs, and prepares the event bus and the verifier of tokens.
pub(super) async fn prepare(config: &Config) -> Result<Prepared, String> {
    let database = db::connect(config).await?;
    if config.database.migrate_on_start {
        db::migrate_up(&database)
            .await
            .map_err(|e| format!("database migration failed: {e}"))?;
    }
    let provider_id =
        directory::ensure_provider(&database, &config.provider.code, &config.provider.name)
            .await
            .map_err(|e| format!("cannot create the provider organization: {}", e.message()))?;
    cmdb::ensure_standard_classes(&database, provider_id)
        .await
        .map_err(|e| format!("cannot create the standard CI classes: {}", e.message()))?;
    let origin = uuid::Uuid::new_v4().to_string();
    let on_postgres = database.get_database_backend() == sea_orm::DbBackend::Postgres;
    let mut events = EventBus::default();
    if on_postgres {
        events = events.with_relay(crate::relay::start_sender(database.clone(), origin.clone()));
    }
    let store = Store::new(database.clone(), events.clone(), &config.sla);

    let dev_secret = if config.auth.is_unconfigured() {
        Some(crate::dev::secret(&config.data_dir)?)
    } else {
        None
    };
    let auth = Authenticator::from_config(&config.auth, dev_secret.as_deref()).await?;
    let mut dev_admin_token = None;
    if let Some(secret) = &dev_secret {
        tracing::warn!(
            "DEVELOPMENT MODE: no JWT key is configured, tokens are signed with a generated secret kept in {}. \
             Configure auth.hs256_secret, auth.public_key_pem_file or auth.jwks_url for production.",
            config.data_dir.display()
        );
        if config.dev.seed_demo {
            crate::seed::seed_demo_if_empty(&store, provider_id)
                .await
                .map_err(|e| e.message())?;
        }
        dev_admin_token = Some(crate::dev::admin_token(secret, &config.provider.code)?);
    }
    Ok(Prepared {
        database,
        provider_id,
        events,
        relay_origin: on_postgres.then_some(origin),
        store,
        auth,
        dev_admin_token,
    })
}

impl Application {
    /// Serves until `shutdown` resolves, then, within `http.shutdown_grace`:
    /// lets in-flight requests finish, lets the SLA worker finish the clock
    /// it is at, sends the last events to other processes, delivers them to
    /// this process's subscribers and closes their sockets (1001, so clients
    /// reconnect and subscribe again elsewhere).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state;
        let grace = state.config.http.shutdown_grace;
        let (stop_worker, stopping) = watch::channel(false);
        let mut background = Background::start(&state, stopping);
        if let Some(listener) = self.metrics_listener {
            let router = super::metrics::router(state.clone());
            background._others.push(spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            }));
        }
        let (begun, mut shutdown_begun) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = begun.send(());
        });
        let mut server = std::pin::pin!(server.into_future());
        let ended = tokio::select! {
            biased;
            res = &mut server => Some(res),
            _ = &mut shutdown_begun => None,
        };
        let deadline = tokio::time::Instant::now() + grace;
        let _ = stop_worker.send(true);
        let result = match ended {
            Some(res) => res,
            None => tokio::time::timeout_at(deadline, &mut server)
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(
                        "shutdown grace period over; stopping with requests still in flight"
                    );
                    Ok(())
                }),
        };
        if let Some(AbortOnDrop(task)) = &mut background.sla_worker
            && tokio::time::timeout_at(deadline, task).await.is_err()
        {
            tracing::warn!("shutdown grace period over; stopping the SLA worker mid-clock");
        }
        let delivered = async {
            state.events.flush().await;
            state.events.close().await;
            state.ws_closing.send_replace(true);
            state.ws_closing.closed().await;
        };
        if tokio::time::timeout_at(deadline, delivered).await.is_err() {
            tracing::warn!("shutdown grace period over; subscribers may miss the last events");
        }
        result
    }
}

/// The tasks a server runs besides answering requests, aborted when dropped.
struct Background {
    /// Told to stop at shutdown, it finishes the clock it is at.
    sla_worker: Option<AbortOnDrop>,
    _others: Vec<AbortOnDrop>,
}

impl Background {
    /// The SLA worker (when enabled; it stops once `stopping` turns true),
    /// the pruners of the delivery log and of idempotency keys, and, on
    /// PostgreSQL, the listener for other processes' events.
    fn start(state: &AppState, stopping: watch::Receiver<bool>) -> Self {
        let config = &state.config;
        let store = || Store::new(state.db.clone(), state.events.clone(), &config.sla);
        let sla_worker = config.sla.worker_enabled.then(|| {
            spawn(sla::worker::run(
                store(),
                config.sla.worker_interval,
                directory::system_principal(state.provider_id),
                stopping,
            ))
        });
        let mut others = vec![
            spawn(monitoring::run_pruner(store(), config.ingest.log_retention)),
            spawn(idempotency::run_pruner(
                state.db.clone(),
                config.idempotency.ttl,
            )),
        ];
        if let Some(origin) = state.relay_origin.clone() {
            others.push(spawn(crate::relay::listen(
                config.database_url(),
                state.db.clone(),
                state.events.clone(),
                origin,
            )));
        }
        Self {
            sla_worker,
            _others: others,
        }
    }
}

fn spawn(task: impl Future<Output = ()> + Send + 'static) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(task))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
