//! Errors of the metadata store.

/// A failure of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("metadata database failed: {context}")]
    Database {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("metadata record {key} is corrupt")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl CatalogError {
    pub(crate) fn database(
        context: &'static str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> CatalogError {
        move |source| CatalogError::Database { context, source }
    }
}
