//! Monitoring mutations: integrations (admins) and `raiseAlert`.

use async_graphql::{Context, Object};

use super::inputs::{
    CreateIntegrationInput, IntegrationSecret, RaiseAlertInput, RaiseAlertPayload,
    RotateIntegrationSecretInput, UpdateIntegrationInput,
};
use super::integration::Integration;
use crate::auth::Admin;
use crate::error::AppError;
use crate::graphql::{args::optional_ref, context::ContextExt, ids};
use crate::processes::incident::graphql::Incident;
use crate::processes::monitoring as domain;

#[derive(Default)]
pub struct MonitoringMutation;

#[Object]
impl MonitoringMutation {
    /// Creates an integration for an organization; the answer carries its
    /// secret, shown only this once. Admins only.
    #[graphql(guard = "Admin")]
    async fn create_integration(
        &self,
        ctx: &Context<'_>,
        input: CreateIntegrationInput,
    ) -> async_graphql::Result<IntegrationSecret> {
        let app = ctx.app();
        let org = ids::reference(&input.organization_id, "Organization", "organizationId")?;
        let kind = input.kind.into();
        let settings = input.settings()?;
        let (created, secret) = domain::create_integration(
            &app.store,
            ctx.principal()?,
            org,
            kind,
            settings,
            &app.ingest,
        )
        .await?;
        Ok(IntegrationSecret {
            integration: Integration(created),
            secret,
        })
    }

    /// Changes an integration's routing and behaviour, or deactivates it. Admins only.
    async fn update_integration(
        &self,
        ctx: &Context<'_>,
        input: UpdateIntegrationInput,
    ) -> async_graphql::Result<Integration> {
        let id = ids::expect(&input.id, "Integration", "id")?;
        let version = input.version;
        let settings = input.settings()?;
        let saved =
            domain::update_integration(&ctx.app().store, ctx.principal()?, id, version, settings)
                .await?;
        Ok(Integration(saved))
    }

    /// Replaces an integration's secret; the old one stops working at once.
    async fn rotate_integration_secret(
        &self,
        ctx: &Context<'_>,
        input: RotateIntegrationSecretInput,
    ) -> async_graphql::Result<IntegrationSecret> {
        let id = ids::expect(&input.id, "Integration", "id")?;
        let (saved, secret) =
            domain::rotate_secret(&ctx.app().store, ctx.principal()?, id, input.version).await?;
        Ok(IntegrationSecret {
            integration: Integration(saved),
            secret,
        })
    }

    /// Raises, repeats, acknowledges or resolves an alert, with the same
    /// meaning as the ingest endpoints. Authenticate with the integration's
    /// secret as the bearer token, or as staff naming `integrationId`.
    async fn raise_alert(
        &self,
        ctx: &Context<'_>,
        input: RaiseAlertInput,
    ) -> async_graphql::Result<RaiseAlertPayload> {
        let started = std::time::Instant::now();
        let app = ctx.app();
        let p = ctx.principal()?;
        let named = optional_ref(
            input.integration_id.as_ref(),
            "Integration",
            "integrationId",
        )?;
        let integration = domain::integration_for_caller(&app.store.db, p, named).await?;
        let alert = input.into_alert(&app.ingest, &integration)?;
        let outcome = domain::ingest(
            &app.store,
            &app.ingest,
            &integration,
            "graphql",
            None,
            vec![alert],
            started,
        )
        .await?;
        let first = outcome
            .alerts
            .into_iter()
            .next()
            .ok_or_else(|| AppError::internal(std::io::Error::other("no outcome")))?;
        Ok(RaiseAlertPayload {
            action: first.action.into(),
            dedup_key: first.key,
            incident: first.incident.map(Incident),
        })
    }
}
