//! The monitoring API's enums, each the remote of its domain type.

use async_graphql::Enum;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::IntegrationKind")]
pub enum IntegrationKind {
    /// Prometheus Alertmanager (`POST /ingest/alertmanager`).
    Alertmanager,
    /// Grafana alerting (`POST /ingest/grafana`).
    Grafana,
    /// PagerDuty Events API v2-compatible senders (`POST /ingest/events`).
    EventsApi,
    /// Senders using `raiseAlert`.
    Generic,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::ResolveAction")]
pub enum ResolveAction {
    /// A resolved alert resolves its incident at the alert's end time.
    Resolve,
    /// A resolved alert only adds a work note; an agent resolves.
    Note,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::AlertStatus")]
pub enum AlertStatus {
    Firing,
    /// Assigns the open incident (its first response).
    Acknowledged,
    Resolved,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::processes::monitoring::MatchOp")]
pub enum MatchOp {
    Equals,
    NotEquals,
    /// A regular expression matching the whole value.
    Matches,
    NotMatches,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::processes::monitoring::AlertAction")]
pub enum AlertAction {
    /// A new incident was raised.
    Created,
    /// A repeat: the open incident's alert count and last-seen time moved.
    Updated,
    /// A resolved incident within the reopen window was reopened.
    Reopened,
    /// A re-fire was recorded on the flapping incident instead of reopening it.
    Flapping,
    Resolved,
    /// The resolved alert was noted; the incident stays open.
    Noted,
    Acknowledged,
    /// Nothing to do (a resolve or acknowledge without an open incident).
    Ignored,
}
