//! The event bus that feeds subscriptions. Domain operations publish after
//! their transaction commits; each subscription filters what its caller may see.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

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
    ProblemChanged(Box<crate::processes::problem::ProblemChanged>),
}

/// What the relay to other processes is handed, in order.
pub enum Relayed {
    Event(Arc<DomainEvent>),
    /// Answered once every event handed over before it was sent.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<DomainEvent>>,
    /// Forwards published events to other server processes (PostgreSQL NOTIFY).
    relay: Option<mpsc::UnboundedSender<Relayed>>,
    /// Set at shutdown: subscription streams end once they have delivered
    /// what was published before. Each stream holds a receiver, so the
    /// sender sees when the last one has ended.
    closing: Arc<watch::Sender<bool>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self {
            tx,
            relay: None,
            closing: Arc::new(watch::Sender::new(false)),
        }
    }

    /// A bus whose events are also handed to `relay` for other processes.
    pub fn with_relay(mut self, relay: mpsc::UnboundedSender<Relayed>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Publishes a committed event to this process's subscribers and, through
    /// the relay, to other processes'. Having no subscribers is not an error.
    pub fn publish(&self, event: DomainEvent) {
        let event = Arc::new(event);
        if let Some(relay) = &self.relay {
            let _ = relay.send(Relayed::Event(event.clone()));
        }
        let _ = self.tx.send(event);
    }

    /// Waits until the events published so far have been sent to other
    /// processes (at once without a relay).
    pub async fn flush(&self) {
        if let Some(relay) = &self.relay {
            let (tx, rx) = oneshot::channel();
            if relay.send(Relayed::Flush(tx)).is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// At shutdown: ends every subscription stream once it has delivered
    /// what was published before, and waits until all have ended.
    pub async fn close(&self) {
        self.closing.send_replace(true);
        self.closing.closed().await;
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
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
    /// Ends at shutdown, after the events published before it.
    pub fn stream(&self) -> impl futures_util::Stream<Item = Arc<DomainEvent>> + Send + use<> {
        use broadcast::error::RecvError;
        let state = (self.subscribe(), self.closing.subscribe());
        futures_util::stream::unfold(state, |(mut rx, mut closing)| async move {
            loop {
                // Biased: what is queued is delivered before the close is seen.
                let received = tokio::select! {
                    biased;
                    r = rx.recv() => r,
                    _ = closing.wait_for(|c| *c) => return None,
                };
                match received {
                    Ok(event) => return Some((event, (rx, closing))),
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
