//! Reading the audit trail: per record for the staff who may see it, and the
//! whole filtered trail for admins. There is no API that changes it.

use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{
    context::ContextExt,
    ids,
    pagination::{Keyset, Page, PageArgs, SortValue, page},
};
use crate::error::{AppError, AppResult};

/// One change to one record: who, when, what changed.
pub struct AuditEvent(pub audit_event::Model);

#[Object]
impl AuditEvent {
    pub async fn id(&self) -> ID {
        ids::encode("AuditEvent", self.0.id)
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// The token subject that made the change (`system` for the server itself).
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// `create`, `update`, `delete`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// The changed record's GraphQL type.
    async fn record_type(&self) -> &str {
        &self.0.record_type
    }
    /// The changed record's global ID.
    async fn record_id(&self) -> ID {
        ids::encode(&self.0.record_type, self.0.record_id)
    }
    /// `{ field: { before, after } }` for each changed field (stored field names).
    async fn changes(&self) -> Json<serde_json::Value> {
        Json(crate::records::audit::changes_of(&self.0))
    }
    /// The whole record after the change; null after a delete.
    async fn snapshot(&self) -> Option<Json<serde_json::Value>> {
        self.0.snapshot.clone().map(Json)
    }
    /// The HTTP request that made the change, to match server logs.
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
}

/// Audit events are staff-only; an agent sees those of the organizations it serves.
pub async fn find_event(ctx: &Context<'_>, id: i64) -> AppResult<audit_event::Model> {
    let p = ctx.principal()?;
    p.require_staff()?;
    match audit_event::Entity::find_by_id(id)
        .one(&ctx.app().store.db)
        .await?
    {
        Some(e) if p.is_admin() || e.tenant_id.is_some_and(|t| p.can_see(t)) => Ok(e),
        _ => Err(AppError::not_found("audit event")),
    }
}

fn newest_first() -> Keyset<audit_event::Entity> {
    Keyset::by(
        audit_event::Column::Id,
        |m: &audit_event::Model| SortValue::Int(m.id),
        true,
    )
}

#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    /// A GraphQL type name such as `Service`.
    pub record_type: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Events of records belonging to this organization.
    pub organization_id: Option<ID>,
    /// Inclusive lower bound.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The history of one record, newest first (agents and admins).
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        record_id: ID,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<AuditEvent>> {
        let p = ctx.principal()?;
        p.require_staff()?;
        let (kind, n) = ids::decode(&record_id)
            .ok_or_else(|| AppError::invalid_field("recordId", "recordId is not a valid ID"))?;
        // The record must be visible; admins may also read the trail of a deleted record.
        if let Err(e) = super::node::resolve(ctx, &record_id).await
            && !p.is_admin()
        {
            return Err(e.into());
        }
        let q = audit_event::Entity::find()
            .filter(audit_event::Column::RecordType.eq(kind))
            .filter(audit_event::Column::RecordId.eq(n));
        page(
            ctx,
            q,
            newest_first(),
            PageArgs::new(first, after, last, before),
            AuditEvent,
        )
        .await
    }

    /// Every audit event, newest first, filtered (admins only).
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Page<AuditEvent>> {
        ctx.principal()?.require_admin()?;
        let f = filter.unwrap_or_default();
        let mut q = audit_event::Entity::find();
        if let Some(t) = f.record_type {
            q = q.filter(audit_event::Column::RecordType.eq(t));
        }
        if let Some(a) = f.actor {
            q = q.filter(audit_event::Column::Actor.eq(a));
        }
        if let Some(a) = f.action {
            q = q.filter(audit_event::Column::Action.eq(a));
        }
        if let Some(org) = &f.organization_id {
            q = q.filter(audit_event::Column::TenantId.eq(ids::reference(
                org,
                "Organization",
                "organizationId",
            )?));
        }
        if let Some(from) = f.from {
            q = q.filter(audit_event::Column::OccurredAt.gte(from));
        }
        if let Some(to) = f.to {
            q = q.filter(audit_event::Column::OccurredAt.lt(to));
        }
        page(
            ctx,
            q,
            newest_first(),
            PageArgs::new(first, after, last, before),
            AuditEvent,
        )
        .await
    }
}
