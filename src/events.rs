//! The event bus that feeds subscriptions. Domain operations publish after
//! their transaction commits; each subscription filters what its caller may see.

use std::sync::Arc;

use tokio::sync::broadcast;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Every event the bus carries. Each process adds its variants here.
#[derive(Debug, Clone)]
pub enum DomainEvent {
    ServiceChanged(ServiceChanged),
    /// An organization was changed (its code, name or active flag); caches drop it.
    OrganizationChanged(entity::organization::Model),
    ConfigurationItemChanged(CiChanged),
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<DomainEvent>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx }
    }

    /// Publishes a committed event. Having no subscribers is not an error.
    pub fn publish(&self, event: DomainEvent) {
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.tx.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}
