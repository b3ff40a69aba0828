//! KMS for Millrace: customer and AWS managed keys, aliases, data keys, Encrypt and Decrypt,
//! served as the `TrentService` JSON API and used by the engine for stream encryption.
//!
//! Key material is generated here and stored only wrapped by the operator's root key
//! (`--master-key-file` or `MILLRACE_MASTER_KEY`); without it the key store reveals no material.
//! **Invariant:** knows no HTTP and nothing of the engine (the engine reaches keys through its
//! own trait, implemented by the server over [`Kms`]).
#![deny(clippy::unwrap_used)]

mod blob;
mod crypto;
mod error;
mod keys;
mod service;

use std::path::Path;
use std::sync::Arc;

pub use crypto::RootKey;
pub use error::KmsError;
pub use keys::{DataKey, KeyDoc, Keys, Scope, KINESIS_MANAGED_ALIAS};
pub use service::service_error;

/// The KMS service over one key store (`<data-dir>/kms.redb`).
#[derive(Clone)]
pub struct Kms {
    keys: Arc<Keys>,
}

impl Kms {
    pub fn open(path: &Path, root: Option<RootKey>) -> Result<Kms, KmsError> {
        Ok(Kms {
            keys: Arc::new(Keys::open(path, root)?),
        })
    }

    /// The key store, for the engine's data keys.
    pub fn key_store(&self) -> &Arc<Keys> {
        &self.keys
    }
}
