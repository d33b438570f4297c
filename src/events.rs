//! The event bus that feeds subscriptions. Domain operations publish after
//! their transaction commits; each subscription filters what its caller may see.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Created,
    Updated,
    Retired,
    Deleted,
}

/// A committed change to a service, with the organizations allowed to see it.
#[derive(Debug, Clone)]
pub struct ServiceChanged {
    pub kind: ChangeKind,
    pub service: entity::service::Model,
    /// The owner organization and the subscribing customers at the time of the change.
    pub visible_to: Vec<i64>,
    pub changed_fields: Vec<String>,
}

/// A committed change to a configuration item; visible to its tenant's principals.
#[derive(Debug, Clone)]
pub struct CiChanged {
    pub kind: ChangeKind,
    pub ci: entity::configuration_item::Model,
    pub changed_fields: Vec<String>,
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncidentChangeKind {
    Created,
    Updated,
    StateChanged,
    Commented,
}

/// A committed change to an incident. Its customer is the only organization
/// (besides the staff serving it) allowed to see it.
#[derive(Debug, Clone)]
pub struct IncidentChanged {
    pub kind: IncidentChangeKind,
    pub incident: entity::incident::Model,
    pub changed_fields: Vec<String>,
    /// The timeline entry added, for `Commented`.
    pub note: Option<entity::incident_note::Model>,
}

/// What an SLA clock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlaEventKind {
    /// Crossed a warning threshold (percent of its target).
    Warning,
    /// Went past its target.
    Breached,
    /// Stopped within its target.
    Met,
}

/// An SLA clock event, fired once per clock and threshold.
#[derive(Debug, Clone)]
pub struct SlaClockEvent {
    pub kind: SlaEventKind,
    /// The warning threshold in percent, for `Warning`.
    pub threshold: Option<u32>,
    pub clock: entity::sla_clock::Model,
    pub incident: entity::incident::Model,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Every event the bus carries. Each process adds its variants here.
#[derive(Debug, Clone)]
pub enum DomainEvent {
    ServiceChanged(ServiceChanged),
    /// An organization was changed (its code, name or active flag); caches drop it.
    OrganizationChanged(entity::organization::Model),
    ConfigurationItemChanged(CiChanged),
    IncidentChanged(Box<IncidentChanged>),
    SlaEvent(Box<SlaClockEvent>),
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<DomainEvent>>,
    /// Forwards published events to other server processes (PostgreSQL NOTIFY).
    relay: Option<mpsc::UnboundedSender<Arc<DomainEvent>>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx, relay: None }
    }

    /// A bus whose events are also handed to `relay` for other processes.
    pub fn with_relay(mut self, relay: mpsc::UnboundedSender<Arc<DomainEvent>>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Publishes a committed event to this process's subscribers and, through
    /// the relay, to other processes'. Having no subscribers is not an error.
    pub fn publish(&self, event: DomainEvent) {
        let event = Arc::new(event);
        if let Some(relay) = &self.relay {
            let _ = relay.send(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// Publishes an event that came from another process (not relayed again).
    pub fn publish_local(&self, event: DomainEvent) {
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.tx.subscribe()
    }

    /// Every event published from now on, as a stream for a subscription.
    /// A subscriber too slow to keep up skips what it missed (logged), never blocks the bus.
    pub fn stream(&self) -> impl futures_util::Stream<Item = Arc<DomainEvent>> + Send + use<> {
        use broadcast::error::RecvError;
        futures_util::stream::unfold(self.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "slow subscriber skipped events")
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}
