//! What resolvers read from the GraphQL context: the caller, the store, loaders.

use std::{hash::Hash, sync::Arc};

use async_graphql::{
    Context,
    dataloader::{DataLoader, Loader},
};

use super::loaders::Loaders;
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    records::Store,
};

/// Shared by every request of a schema.
pub struct SchemaData {
    pub store: Store,
    /// Shared loaders, for subscriptions; requests bring their own.
    pub loaders: Loaders,
    pub max_page_size: usize,
    pub sla: crate::config::SlaConfig,
    pub ingest: crate::config::IngestConfig,
}

pub trait ContextExt {
    fn principal(&self) -> AppResult<&Principal>;
    fn app(&self) -> &SchemaData;
    /// The request's own loaders, else (subscriptions) the schema's shared ones.
    fn loaders(&self) -> &Loaders;
}

impl ContextExt for Context<'_> {
    fn principal(&self) -> AppResult<&Principal> {
        self.data_opt::<Principal>()
            .ok_or_else(|| AppError::Unauthenticated("authentication required".into()))
    }

    fn app(&self) -> &SchemaData {
        self.data_unchecked::<Arc<SchemaData>>()
    }

    fn loaders(&self) -> &Loaders {
        match self.data_opt::<Arc<Loaders>>() {
            Some(own) => own,
            None => &self.app().loaders,
        }
    }
}

/// Loads one value through a DataLoader, mapping its error into ours.
pub async fn load<L, K>(loader: &DataLoader<L>, key: K) -> AppResult<Option<L::Value>>
where
    L: Loader<K, Error = Arc<sea_orm::DbErr>>,
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    loader.load_one(key).await.map_err(AppError::internal)
}
