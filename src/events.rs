//! The event bus that feeds subscriptions. Domain operations publish after
//! their transaction commits; each subscription filters what its caller may see.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// How an event crosses to the other server processes (see `crate::relay`):
/// as a small reference to its records, never the records themselves, which
/// the receiving process reloads.
pub trait Relay: Sized {
    type Wire: Serialize + DeserializeOwned + Send;
    fn to_wire(&self) -> Self::Wire;
    /// The event again from its reference; `None` when its records are gone.
    fn from_wire(
        db: &DatabaseConnection,
        wire: Self::Wire,
    ) -> impl std::future::Future<Output = Result<Option<Self>, DbErr>> + Send;
}

impl<T: Relay + Send> Relay for Box<T> {
    type Wire = T::Wire;
    fn to_wire(&self) -> Self::Wire {
        T::to_wire(self)
    }
    async fn from_wire(db: &DatabaseConnection, wire: Self::Wire) -> Result<Option<Self>, DbErr> {
        Ok(T::from_wire(db, wire).await?.map(Box::new))
    }
}

/// Declares [`DomainEvent`] and its wire form [`WireEvent`] from one list.
macro_rules! domain_events {
    ($($(#[$doc:meta])* $name:ident($ty:ty)),* $(,)?) => {
        /// Every event the bus carries.
        #[derive(Debug, Clone)]
        pub enum DomainEvent {
            $($(#[$doc])* $name($ty),)*
        }

        /// An event as sent to other server processes.
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(tag = "t", content = "e")]
        pub enum WireEvent {
            $($name(<$ty as Relay>::Wire),)*
        }

        impl DomainEvent {
            pub fn to_wire(&self) -> WireEvent {
                match self {
                    $(Self::$name(e) => WireEvent::$name(e.to_wire()),)*
                }
            }
        }

        impl WireEvent {
            /// The event with its records reloaded; `None` when they are gone.
            pub async fn reload(self, db: &DatabaseConnection) -> Result<Option<DomainEvent>, DbErr> {
                Ok(match self {
                    $(Self::$name(w) => <$ty as Relay>::from_wire(db, w).await?.map(DomainEvent::$name),)*
                })
            }
        }
    };
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Created,
    Updated,
    Retired,
    Deleted,
}

// Every event the bus carries (`DomainEvent`): one line per event type, each
// defined (with its `Relay` form) in its process's `events.rs`.
domain_events! {
    ServiceChanged(crate::processes::catalogue::ServiceChanged),
    /// An organization was changed (its code, name or active flag); caches drop it.
    OrganizationChanged(entity::organization::Model),
    ConfigurationItemChanged(crate::processes::cmdb::CiChanged),
    IncidentChanged(Box<crate::processes::incident::IncidentChanged>),
    SlaEvent(Box<crate::processes::sla::SlaClockEvent>),
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
