//! One round of a delivery (at most one alert per key), step by step: a
//! repeat, a re-fire that reopens or flaps, a resolve, an acknowledgement,
//! and the new incidents, repeats and notes written in bulk at the round's end.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    enums::{AlertStatus, IncidentSource, IncidentState, NoteKind, Priority, ResolveAction},
    incident, incident_alert, incident_note, integration,
};
use sea_orm::{ActiveValue::NotSet, ConnectionTrait, Set};

use super::alert_rows::{alert_next, new_alert_row, save_repeats};
use super::alerts::{
    AlertAction, AlertOutcome, IncomingAlert, KeyState, annotations_note, describe, is_open,
    json_map, printable, refire, title_of, truncate, within_reopen_window,
};
use super::cis::{CiIndex, ci_index};
use super::delivery::Announce;
use super::integrations::integration_principal;
use super::routing::{Routing, RoutingRule};
use crate::auth::Principal;
use crate::error::{AppError, AppResult};
use crate::processes::incident::IncidentChangeKind;
use crate::processes::{
    incident::{self as incidents, ClockCause, IncidentDraft},
    sla as sla_domain,
};
use crate::records::{audit, insert_rows, save_versioned};

/// An alert of a round: its place in the delivery, its key, the alert.
pub(super) type RoundAlert<'a> = (usize, &'a str, &'a IncomingAlert);

/// A firing alert without an incident to repeat or reopen: raised at the
/// round's end, together with the round's others.
struct Creation<'a> {
    index: usize,
    key: &'a str,
    alert: &'a IncomingAlert,
    rule: &'a RoutingRule,
}

/// A delivery's processing, round by round: the context every step needs,
/// each key's state, what was done so far, and the round's pending writes.
pub(super) struct Rounds<'a, C> {
    db: &'a C,
    p: Principal,
    integration: &'a integration::Model,
    routing: &'a Routing,
    at: DateTime<Utc>,
    thresholds: &'a [u32],
    states: HashMap<String, KeyState>,
    outcomes: Vec<Option<AlertOutcome>>,
    announce: Vec<Announce>,
    cis: Option<CiIndex>,
    creations: Vec<Creation<'a>>,
    notes: Vec<incident_note::ActiveModel>,
    repeats: Vec<(incident_alert::Model, incident_alert::Model)>,
    priorities: HashMap<(i32, i32), Priority>,
}

impl<'a, C: ConnectionTrait> Rounds<'a, C> {
    pub(super) fn new(
        db: &'a C,
        integration: &'a integration::Model,
        routing: &'a Routing,
        at: DateTime<Utc>,
        thresholds: &'a [u32],
        states: HashMap<String, KeyState>,
        alerts: usize,
    ) -> Self {
        Self {
            db,
            p: integration_principal(integration),
            integration,
            routing,
            at,
            thresholds,
            states,
            outcomes: vec![None; alerts],
            announce: Vec::new(),
            cis: None,
            creations: Vec::new(),
            notes: Vec::new(),
            repeats: Vec::new(),
            priorities: HashMap::new(),
        }
    }

    /// Each alert's outcome, in the delivery's order, and what to publish
    /// after commit.
    pub(super) fn finish(self) -> (Vec<AlertOutcome>, Vec<Announce>) {
        (self.outcomes.into_iter().flatten().collect(), self.announce)
    }

    /// Handles one round: each alert by its status and its key's state,
    /// then the round's bulk writes.
    pub(super) async fn run(&mut self, round: &[RoundAlert<'a>]) -> AppResult<()> {
        self.priorities.clear();
        for &(index, key, alert) in round {
            // Taken out, not cloned: every step puts the key's new state back
            // (a round holds each key once; a creation's comes with its incident).
            let state = self.states.remove(key);
            let outcome = match (alert.status, state) {
                (AlertStatus::Firing, Some(s)) if is_open(s.incident.state) => {
                    self.repeat(key, s, alert).await?
                }
                (AlertStatus::Firing, Some(s))
                    if within_reopen_window(
                        &s.incident,
                        self.at,
                        self.integration.reopen_window_seconds,
                    ) =>
                {
                    self.refire(key, s, alert).await?
                }
                (AlertStatus::Firing, _) => {
                    let routing = self.routing;
                    let rule = routing.route(&alert.labels);
                    self.creations.push(Creation {
                        index,
                        key,
                        alert,
                        rule,
                    });
                    continue;
                }
                (AlertStatus::Resolved, Some(s)) if is_open(s.incident.state) => {
                    self.resolve(key, s, alert).await?
                }
                (AlertStatus::Acknowledged, Some(s)) if is_open(s.incident.state) => {
                    self.acknowledge(key, s, alert).await?
                }
                (_, s) => self.ignore(key, s),
            };
            self.outcomes[index] = Some(outcome);
        }
        self.create().await?;
        save_repeats(self.db, &self.p, std::mem::take(&mut self.repeats)).await?;
        self.save_notes().await
    }

    /// A repeat of an alert whose incident is open: count, last seen, latest
    /// labels (written in bulk at the round's end); a note when the
    /// annotations changed.
    async fn repeat(
        &mut self,
        key: &str,
        s: KeyState,
        alert: &IncomingAlert,
    ) -> AppResult<AlertOutcome> {
        let changed = s
            .alert
            .as_ref()
            .is_none_or(|a| a.annotations != json_map(&alert.annotations));
        let row = match &s.alert {
            Some(before) => {
                let mut next = alert_next(before, alert, self.at);
                next.alert_count += 1;
                next.version += 1;
                next.updated_at = self.at;
                self.repeats.push((before.clone(), next.clone()));
                next
            }
            None => self.save_alert(&s, alert, |a| a.alert_count += 1).await?,
        };
        if changed {
            let text = format!("Alert fired again (seen {} times).", row.alert_count);
            self.note(&s.incident, annotations_note(&text, alert));
        }
        self.announce.push(Announce::Repeat(s.incident.clone()));
        Ok(self.settle(key, AlertAction::Updated, s.incident, Some(row)))
    }

    /// An alert firing again within the reopen window of its resolved
    /// incident: reopens it, unless the re-fires make it flapping.
    async fn refire(
        &mut self,
        key: &str,
        s: KeyState,
        alert: &IncomingAlert,
    ) -> AppResult<AlertOutcome> {
        let i = self.integration;
        let refires = refire(
            s.alert.as_ref(),
            self.at,
            i.flap_window_seconds,
            i.flap_threshold,
        );
        let times = serde_json::to_value(&refires.times).map_err(AppError::internal)?;
        if refires.flapping {
            self.flap(key, s, alert, refires.times.len(), times).await
        } else {
            self.reopen(key, s, alert, times).await
        }
    }

    /// A flapping re-fire: recorded on the incident instead of reopening it
    /// again, with a note the first time.
    async fn flap(
        &mut self,
        key: &str,
        s: KeyState,
        alert: &IncomingAlert,
        refires: usize,
        times: serde_json::Value,
    ) -> AppResult<AlertOutcome> {
        let was_flapping = s.alert.as_ref().is_some_and(|a| a.flapping);
        let row = self
            .save_alert(&s, alert, |a| {
                a.alert_count += 1;
                a.flap_count += 1;
                a.flapping = true;
                a.refires = times;
            })
            .await?;
        if !was_flapping {
            let text = format!(
                "Alert is flapping: it fired again {refires} times within {} seconds. \
                 Further re-fires are counted here instead of reopening the incident.",
                self.integration.flap_window_seconds
            );
            self.note(&s.incident, text);
        }
        self.announce.push(Announce::Repeat(s.incident.clone()));
        Ok(self.settle(key, AlertAction::Flapping, s.incident, Some(row)))
    }

    /// Reopens the resolved incident (in progress again).
    async fn reopen(
        &mut self,
        key: &str,
        s: KeyState,
        alert: &IncomingAlert,
        times: serde_json::Value,
    ) -> AppResult<AlertOutcome> {
        let next = incidents::moved(&s.incident, IncidentState::InProgress, None, self.at);
        let updated = self
            .change(&s.incident, next, ClockCause::default(), self.at)
            .await?;
        let row = self
            .save_alert(&s, alert, |a| {
                a.alert_count += 1;
                a.reopen_count += 1;
                a.flapping = false;
                a.refires = times;
            })
            .await?;
        let text = "Alert fired again within the reopen window: incident reopened.";
        self.note(&updated, annotations_note(text, alert));
        Ok(self.settle(key, AlertAction::Reopened, updated, Some(row)))
    }

    /// A resolved alert: resolves the open incident at the alert's end, or
    /// only notes it (resolve action NOTE).
    async fn resolve(
        &mut self,
        key: &str,
        s: KeyState,
        alert: &IncomingAlert,
    ) -> AppResult<AlertOutcome> {
        let ended = alert
            .ends_at
            .filter(|e| *e <= self.at)
            .unwrap_or(self.at)
            .max(s.incident.updated_at);
        let row = self
            .save_alert(&s, alert, |a| {
                a.status = AlertStatus::Resolved;
                a.ended_at = Some(ended);
            })
            .await?;
        let text = format!(
            "Alert resolved at {} ({}).",
            ended.to_rfc3339(),
            self.integration.name
        );
        let (incident, action) = match self.integration.resolve_action {
            ResolveAction::Resolve => {
                let reason = Some(("monitoring_cleared".into(), Some(text)));
                let next = incidents::moved(&s.incident, IncidentState::Resolved, reason, ended);
                let updated = self
                    .change(&s.incident, next, ClockCause::default(), ended)
                    .await?;
                (updated, AlertAction::Resolved)
            }
            ResolveAction::Note => {
                self.note(&s.incident, text);
                self.announce.push(Announce::Repeat(s.incident.clone()));
                (s.incident, AlertAction::Noted)
            }
        };
        Ok(self.settle(key, action, incident, Some(row)))
    }

    /// An acknowledged alert: a new incident gets its first response
    /// (assigned, else in progress); a note either way.
    async fn acknowledge(
        &mut self,
        key: &str,
        s: KeyState,
        alert: &IncomingAlert,
    ) -> AppResult<AlertOutcome> {
        let row = self
            .save_alert(&s, alert, |a| a.status = AlertStatus::Acknowledged)
            .await?;
        let incident = if s.incident.state == IncidentState::New {
            let next = self.responded(&s.incident, alert);
            let responded = ClockCause { responded: true };
            self.change(&s.incident, next, responded, self.at).await?
        } else {
            s.incident
        };
        let text = format!(
            "Alert acknowledged by the sender ({}).",
            self.integration.name
        );
        self.note(&incident, text);
        Ok(self.settle(key, AlertAction::Acknowledged, incident, Some(row)))
    }

    /// A new incident after its first response: assigned to its group (its
    /// own, the rule's, else the integration's default), else in progress.
    fn responded(&self, inc: &incident::Model, alert: &IncomingAlert) -> incident::Model {
        let rule = self.routing.route(&alert.labels);
        let mut next = inc.clone();
        let group = next
            .assignment_group_id
            .or(rule.assignment_group_id)
            .or(self.integration.default_assignment_group_id);
        next.assignment_group_id = group;
        next.state = if group.is_some() {
            IncidentState::Assigned
        } else {
            IncidentState::InProgress
        };
        next
    }

    /// Nothing to do: a resolve or acknowledge without an open incident.
    fn ignore(&mut self, key: &str, s: Option<KeyState>) -> AlertOutcome {
        match s {
            Some(s) => self.settle(key, AlertAction::Ignored, s.incident, s.alert),
            None => AlertOutcome {
                key: key.to_owned(),
                action: AlertAction::Ignored,
                incident: None,
            },
        }
    }

    /// Puts the key's new state back and answers the alert's outcome.
    fn settle(
        &mut self,
        key: &str,
        action: AlertAction,
        incident: incident::Model,
        alert: Option<incident_alert::Model>,
    ) -> AlertOutcome {
        self.states.insert(
            key.to_owned(),
            KeyState {
                incident: incident.clone(),
                alert,
            },
        );
        AlertOutcome {
            key: key.to_owned(),
            action,
            incident: Some(incident),
        }
    }

    /// Moves an incident (state, clocks, audit) and announces the change.
    async fn change(
        &mut self,
        before: &incident::Model,
        next: incident::Model,
        cause: ClockCause,
        at: DateTime<Utc>,
    ) -> AppResult<incident::Model> {
        let (updated, met) =
            incidents::apply_change(self.db, &self.p, before, next, cause, at, self.thresholds)
                .await?;
        self.announce.push(Announce::Changed(
            IncidentChangeKind::StateChanged,
            Box::new((before.clone(), updated.clone())),
        ));
        self.announce.push(Announce::Met(updated.clone(), met));
        Ok(updated)
    }

    /// A work note on the incident, written at the round's end.
    fn note(&mut self, inc: &incident::Model, body: String) {
        self.notes.push(incident_note::ActiveModel {
            id: NotSet,
            incident_id: Set(inc.id),
            customer_id: Set(inc.customer_id),
            kind: Set(NoteKind::WorkNote),
            body: Set(body),
            author_subject: Set(self.p.subject.clone()),
            author_is_staff: Set(false),
            created_at: Set(self.at),
        });
    }

    async fn save_notes(&mut self) -> AppResult<()> {
        if self.notes.is_empty() {
            return Ok(());
        }
        let saved = insert_rows(self.db, std::mem::take(&mut self.notes)).await?;
        audit::record_many(self.db, &self.p, "create", &saved).await
    }

    /// Updates the alert row of a key with the alert's latest labels and
    /// annotations and `change`, version-bumped and audited (a row is created
    /// for an incident that has none).
    async fn save_alert(
        &self,
        s: &KeyState,
        alert: &IncomingAlert,
        change: impl FnOnce(&mut incident_alert::Model),
    ) -> AppResult<incident_alert::Model> {
        let before = match &s.alert {
            Some(a) => a.clone(),
            None => {
                let fresh = new_alert_row(&s.incident, self.integration.id, None, self.at);
                audit::insert(self.db, &self.p, fresh).await?
            }
        };
        let mut next = alert_next(&before, alert, self.at);
        change(&mut next);
        save_versioned(self.db, &self.p, &before, next).await
    }

    /// Raises the round's new incidents together, with their alert rows.
    async fn create(&mut self) -> AppResult<()> {
        let creations = std::mem::take(&mut self.creations);
        if creations.is_empty() {
            return Ok(());
        }
        self.index_cis(&creations).await?;
        let mut drafts = Vec::with_capacity(creations.len());
        for c in &creations {
            drafts.push(self.draft(c).await?);
        }
        let raised =
            incidents::raise_many(self.db, &self.p, drafts, self.at, self.thresholds).await?;
        let rows: Vec<incident_alert::ActiveModel> = creations
            .iter()
            .zip(&raised)
            .map(|(c, r)| new_alert_row(&r.incident, self.integration.id, Some(c.alert), self.at))
            .collect();
        let rows = insert_rows(self.db, rows).await?;
        audit::record_many(self.db, &self.p, "create", &rows).await?;
        for ((c, r), row) in creations.iter().zip(raised).zip(rows) {
            let outcome = self.settle(c.key, AlertAction::Created, r.incident.clone(), Some(row));
            self.outcomes[c.index] = Some(outcome);
            self.announce.push(Announce::Raised(r));
        }
        Ok(())
    }

    /// Reads the CIs the creations' CI labels name: once per delivery, and
    /// again only when a round names one the index lacks.
    async fn index_cis(&mut self, creations: &[Creation<'_>]) -> AppResult<()> {
        let values: Vec<String> = creations
            .iter()
            .flat_map(|c| {
                c.rule
                    .ci_labels
                    .iter()
                    .filter_map(|l| c.alert.labels.get(l))
            })
            .cloned()
            .collect();
        let stale = self
            .cis
            .as_ref()
            .is_none_or(|idx| values.iter().any(|v| !idx.knows(v)));
        if !values.is_empty() && stale {
            let customer = self.integration.organization_id;
            self.cis = Some(ci_index(self.db, customer, &values).await?);
        }
        Ok(())
    }

    /// The incident a creation raises, routed by its rule, else the
    /// integration's defaults.
    async fn draft(&mut self, c: &Creation<'_>) -> AppResult<IncidentDraft> {
        let i = self.integration;
        let (impact, urgency) = c
            .rule
            .levels(c.alert.severity(), (i.default_impact, i.default_urgency));
        Ok(IncidentDraft {
            customer_id: i.organization_id,
            title: title_of(c.alert, c.key),
            description: Some(describe(c.alert)).filter(|d| !d.is_empty()),
            impact,
            urgency,
            priority: self.priority(impact, urgency).await?,
            major: false,
            source: IncidentSource::Monitoring,
            category: c
                .rule
                .category
                .as_ref()
                .map(|cat| truncate(&printable(cat, false), 100)),
            reporter_subject: self.p.subject.clone(),
            reporter_id: None,
            service_id: c.rule.service_id.or(i.default_service_id),
            assignment_group_id: c.rule.assignment_group_id.or(i.default_assignment_group_id),
            assignee_id: None,
            dedup_key: Some(c.key.to_owned()),
            affected_ci_ids: self.affected_cis(c),
        })
    }

    /// The priority of impact and urgency, read once per round.
    async fn priority(&mut self, impact: i32, urgency: i32) -> AppResult<Priority> {
        if let Some(p) = self.priorities.get(&(impact, urgency)) {
            return Ok(*p);
        }
        let p = sla_domain::priority_for(self.db, impact, urgency).await?;
        self.priorities.insert((impact, urgency), p);
        Ok(p)
    }

    /// The CIs the creation's CI labels name, each once.
    fn affected_cis(&self, c: &Creation<'_>) -> Vec<i64> {
        let mut cis = Vec::new();
        let Some(idx) = &self.cis else {
            return cis;
        };
        for l in &c.rule.ci_labels {
            if let Some(id) = c.alert.labels.get(l).and_then(|v| idx.find(v))
                && !cis.contains(&id)
            {
                cis.push(id);
            }
        }
        cis
    }
}
