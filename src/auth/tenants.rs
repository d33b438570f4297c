//! Who the caller is: a bearer token (a JWT, or a monitoring integration's
//! secret) turned into a [`Principal`], with the tokens' organization codes
//! resolved through a cache of the directory.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::RwLock;

use super::{Authenticator, Principal, principal_from_claims};
use crate::{
    error::AppError,
    events::{DomainEvent, EventBus},
    processes::monitoring,
};

/// Organization codes to ids, cached: tokens name tenants by code on every
/// request. Only active organizations resolve; an entry is trusted for
/// [`TENANT_CACHE_TTL`], so a deactivation takes effect within that time.
#[derive(Default)]
pub struct TenantDirectory {
    cache: RwLock<HashMap<String, (Option<i64>, Instant)>>,
}

pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(30);

/// Verifies a bearer token and resolves its tenant and served organizations.
pub async fn authenticate(
    db: &DatabaseConnection,
    verifier: &Authenticator,
    tenants: &TenantDirectory,
    token: &str,
) -> Result<Principal, AppError> {
    if token.starts_with(monitoring::SECRET_PREFIX) {
        // A monitoring integration's secret: it may raise alerts, nothing else.
        return match monitoring::integration_by_secret(db, token).await? {
            Some(i) => Ok(monitoring::integration_principal(&i)),
            None => Err(AppError::Unauthenticated(
                "unknown integration secret".into(),
            )),
        };
    }
    let claims = verifier.verify(token).await?;
    let mut codes = vec![claims.tenant.clone()];
    codes.extend(claims.orgs.iter().filter(|c| *c != "*").cloned());
    let ids = tenants.resolve_many(db, &codes).await?;
    principal_from_claims(&claims, |code| ids.get(code).copied())
}

impl TenantDirectory {
    /// An empty directory that keeps in step with the organization changes
    /// published on `events`.
    pub fn following(events: &EventBus) -> Arc<Self> {
        let directory = Arc::new(Self::default());
        directory.follow(events);
        directory
    }

    async fn resolve_many(
        &self,
        db: &DatabaseConnection,
        codes: &[String],
    ) -> Result<HashMap<String, i64>, AppError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.cache.read().await;
            for code in codes {
                match cache.get(code) {
                    Some((id, at)) if at.elapsed() < TENANT_CACHE_TTL => {
                        if let Some(id) = id {
                            found.insert(code.clone(), *id);
                        }
                    }
                    _ => missing.push(code.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let rows = entity::organization::Entity::find()
                .filter(entity::organization::Column::Code.is_in(missing.clone()))
                .all(db)
                .await?;
            let now = Instant::now();
            let mut cache = self.cache.write().await;
            // Unknown codes are not cached: any string would otherwise grow the map.
            for org in rows {
                let id = org.active.then_some(org.id);
                cache.insert(org.code.clone(), (id, now));
                if let Some(id) = id {
                    found.insert(org.code, id);
                }
            }
        }
        Ok(found)
    }

    /// Drops an organization's entry, so its next token is checked against the database.
    async fn forget(&self, code: &str) {
        self.cache.write().await.remove(code);
    }

    /// Keeps the cache in step with organization changes made through this process.
    fn follow(self: &Arc<Self>, events: &EventBus) {
        let (directory, mut rx) = (Arc::downgrade(self), events.subscribe());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        let Some(directory) = directory.upgrade() else {
                            return;
                        };
                        if let DomainEvent::OrganizationChanged(org) = &*event {
                            directory.forget(&org.code).await;
                        }
                    }
                    // Missed events: forget everything rather than trust stale entries.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        match directory.upgrade() {
                            Some(d) => d.cache.write().await.clear(),
                            None => return,
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}
