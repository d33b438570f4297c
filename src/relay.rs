//! Events across server processes on PostgreSQL: every published event is sent
//! with `pg_notify` as a small reference (kind and record ids, never the
//! record, so payloads stay far below NOTIFY's 8000-byte limit), and every
//! process LISTENs, reloads the records and publishes them to its own
//! subscribers. A process ignores its own notifications (its subscribers got
//! the event directly). Delivery is best-effort, like the in-process bus: a
//! process that is disconnected while an event is sent misses it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::events::{EventBus, Relayed, WireEvent};

pub const CHANNEL: &str = "servicegraph_events";

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: String,
    /// The sender's count: keeps equal events of one batch apart.
    #[serde(default)]
    seq: u64,
    event: WireEvent,
}

/// Most events sent in one statement.
const BATCH: usize = 256;

/// Sends every event handed to the returned sender with `pg_notify`, in
/// order. Events that queued while the previous statement ran go together in
/// one statement (one transaction): a delivery of 100 alerts publishes about
/// 100 events, and one transaction each cost PostgreSQL a commit apiece.
/// Each payload carries a sequence number, so PostgreSQL does not fold two
/// equal events of one transaction into one.
/// A flush is answered once the events handed over before it were sent (or
/// failed to send): at shutdown, so that the last events still reach the others.
pub fn start_sender(db: DatabaseConnection, origin: String) -> mpsc::UnboundedSender<Relayed> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Relayed>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        let mut payloads = Vec::with_capacity(BATCH);
        let mut seq: u64 = 0;
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            for item in batch.drain(..) {
                match item {
                    Relayed::Event(event) => {
                        seq += 1;
                        let envelope = Envelope {
                            origin: origin.clone(),
                            seq,
                            event: event.to_wire(),
                        };
                        if let Ok(p) = serde_json::to_string(&envelope) {
                            payloads.push(p);
                        }
                    }
                    Relayed::Flush(done) => {
                        notify(&db, std::mem::take(&mut payloads)).await;
                        let _ = done.send(());
                    }
                }
            }
            notify(&db, std::mem::take(&mut payloads)).await;
        }
    });
    tx
}

async fn notify(db: &DatabaseConnection, payloads: Vec<String>) {
    if payloads.is_empty() {
        return;
    }
    let sent = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS e(p, n) ORDER BY n",
            [CHANNEL.into(), payloads.into()],
        ))
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not relay events to other server processes");
    }
}

/// LISTENs for other processes' events and publishes them on `bus`; reconnects on failure.
pub async fn listen(url: String, db: DatabaseConnection, bus: EventBus, origin: String) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "event listener cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "event listener cannot LISTEN; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(n) => {
                    let Ok(envelope) = serde_json::from_str::<Envelope>(n.payload()) else {
                        tracing::warn!("ignoring a malformed event notification");
                        continue;
                    };
                    if envelope.origin == origin {
                        continue;
                    }
                    match envelope.event.reload(&db).await {
                        Ok(Some(event)) => bus.publish_local(event),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot load a relayed event"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}
