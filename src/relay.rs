//! Events across server processes on PostgreSQL: every published event is sent
//! with `pg_notify` as a small reference (kind and record ids, never the
//! record, so payloads stay far below NOTIFY's 8000-byte limit), and every
//! process LISTENs, reloads the records and publishes them to its own
//! subscribers. A process ignores its own notifications (its subscribers got
//! the event directly). Delivery is best-effort, like the in-process bus: a
//! process that is disconnected while an event is sent misses it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{configuration_item, incident, incident_note, organization, service, sla_clock};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::events::{
    ChangeKind, CiChanged, DomainEvent, EventBus, IncidentChangeKind, IncidentChanged, Relayed,
    ServiceChanged, SlaClockEvent, SlaEventKind,
};

pub const CHANNEL: &str = "servicegraph_events";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Wire {
    Service {
        kind: ChangeKind,
        id: i64,
        visible_to: Vec<i64>,
        changed_fields: Vec<String>,
    },
    Incident {
        kind: IncidentChangeKind,
        id: i64,
        changed_fields: Vec<String>,
        note_id: Option<i64>,
    },
    Organization {
        id: i64,
    },
    ConfigurationItem {
        kind: ChangeKind,
        id: i64,
        changed_fields: Vec<String>,
    },
    Sla {
        kind: SlaEventKind,
        threshold: Option<u32>,
        clock_id: i64,
        incident_id: i64,
        at: DateTime<Utc>,
    },
    Problem {
        kind: crate::processes::problem::ProblemChangeKind,
        id: i64,
        changed_fields: Vec<String>,
        note_id: Option<i64>,
        incident_id: Option<i64>,
        incident_customers: Vec<i64>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: String,
    /// The sender's count: keeps equal events of one batch apart.
    #[serde(default)]
    seq: u64,
    event: Wire,
}

fn to_wire(e: &DomainEvent) -> Wire {
    match e {
        DomainEvent::ServiceChanged(c) => Wire::Service {
            kind: c.kind,
            id: c.service.id,
            visible_to: c.visible_to.clone(),
            changed_fields: c.changed_fields.clone(),
        },
        DomainEvent::OrganizationChanged(o) => Wire::Organization { id: o.id },
        DomainEvent::ConfigurationItemChanged(c) => Wire::ConfigurationItem {
            kind: c.kind,
            id: c.ci.id,
            changed_fields: c.changed_fields.clone(),
        },
        DomainEvent::IncidentChanged(c) => Wire::Incident {
            kind: c.kind,
            id: c.incident.id,
            changed_fields: c.changed_fields.clone(),
            note_id: c.note.as_ref().map(|n| n.id),
        },
        DomainEvent::SlaEvent(e) => Wire::Sla {
            kind: e.kind,
            threshold: e.threshold,
            clock_id: e.clock.id,
            incident_id: e.incident.id,
            at: e.at,
        },
        DomainEvent::ProblemChanged(c) => Wire::Problem {
            kind: c.kind,
            id: c.problem.id,
            changed_fields: c.changed_fields.clone(),
            note_id: c.note.as_ref().map(|n| n.id),
            incident_id: c.incident_id,
            incident_customers: c.incident_customers.clone(),
        },
    }
}

async fn from_wire(
    db: &DatabaseConnection,
    w: Wire,
) -> Result<Option<DomainEvent>, sea_orm::DbErr> {
    Ok(match w {
        Wire::Service {
            kind,
            id,
            visible_to,
            changed_fields,
        } => service::Entity::find_by_id(id)
            .one(db)
            .await?
            .map(|service| {
                DomainEvent::ServiceChanged(ServiceChanged {
                    kind,
                    service,
                    visible_to,
                    changed_fields,
                })
            }),
        Wire::Organization { id } => organization::Entity::find_by_id(id)
            .one(db)
            .await?
            .map(DomainEvent::OrganizationChanged),
        Wire::ConfigurationItem {
            kind,
            id,
            changed_fields,
        } => configuration_item::Entity::find_by_id(id)
            .one(db)
            .await?
            .map(|ci| {
                DomainEvent::ConfigurationItemChanged(CiChanged {
                    kind,
                    ci,
                    changed_fields,
                })
            }),
        Wire::Incident {
            kind,
            id,
            changed_fields,
            note_id,
        } => {
            let note = match note_id {
                Some(n) => incident_note::Entity::find_by_id(n).one(db).await?,
                None => None,
            };
            incident::Entity::find_by_id(id)
                .one(db)
                .await?
                .map(|incident| {
                    DomainEvent::IncidentChanged(Box::new(IncidentChanged {
                        kind,
                        incident,
                        changed_fields,
                        note,
                    }))
                })
        }
        Wire::Sla {
            kind,
            threshold,
            clock_id,
            incident_id,
            at,
        } => {
            let clock = sla_clock::Entity::find_by_id(clock_id).one(db).await?;
            let incident = incident::Entity::find_by_id(incident_id).one(db).await?;
            match (clock, incident) {
                (Some(clock), Some(incident)) => {
                    Some(DomainEvent::SlaEvent(Box::new(SlaClockEvent {
                        kind,
                        threshold,
                        clock,
                        incident,
                        at,
                    })))
                }
                _ => None,
            }
        }
        Wire::Problem {
            kind,
            id,
            changed_fields,
            note_id,
            incident_id,
            incident_customers,
        } => {
            use crate::processes::problem::ProblemChanged;
            let note = match note_id {
                Some(n) => entity::problem_note::Entity::find_by_id(n).one(db).await?,
                None => None,
            };
            entity::problem::Entity::find_by_id(id)
                .one(db)
                .await?
                .map(|problem| {
                    DomainEvent::ProblemChanged(Box::new(ProblemChanged {
                        kind,
                        problem,
                        changed_fields,
                        note,
                        incident_id,
                        incident_customers,
                    }))
                })
        }
    })
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
                            event: to_wire(&event),
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
                    match from_wire(&db, envelope.event).await {
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
