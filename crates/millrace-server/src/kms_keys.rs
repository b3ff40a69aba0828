//! The engine's stream-encryption keys, served by `millrace-kms`: the one place that joins the
//! engine's `RecordKeys` trait to the key store and turns KMS errors into Kinesis ones.

use std::sync::Arc;

use millrace_engine::encryption::{KeyFailure, KeyProvider, RecordKeys};
use millrace_kms::{Keys, KmsError, Scope};

/// The encryption context every data key of a stream is bound to, as Kinesis uses it.
const CONTEXT_KEY: &str = "aws:kinesis:arn";

/// [`RecordKeys`] over a KMS key store.
pub struct KmsRecordKeys {
    keys: Arc<Keys>,
}

impl KmsRecordKeys {
    pub fn provider(keys: Arc<Keys>) -> KeyProvider {
        KeyProvider(Arc::new(KmsRecordKeys { keys }))
    }
}

fn failure(error: KmsError) -> KeyFailure {
    match error {
        KmsError::NotFound(m) => KeyFailure::NotFound(m),
        KmsError::Disabled(m) => KeyFailure::Disabled(m),
        KmsError::InvalidState(m) => KeyFailure::InvalidState(m),
        KmsError::RootKey(m) => KeyFailure::NotFound(format!("KMS is not available: {m}")),
        KmsError::InvalidCiphertext => {
            KeyFailure::Internal("a record's data key does not decrypt (corrupt or altered)".into())
        }
        other => KeyFailure::Internal(format!("{other:#}")),
    }
}

fn context(stream_arn: &str) -> Vec<(String, String)> {
    vec![(CONTEXT_KEY.to_owned(), stream_arn.to_owned())]
}

impl RecordKeys for KmsRecordKeys {
    fn check(&self, account: &str, region: &str, key_id: &str) -> Result<String, KeyFailure> {
        let scope = Scope { account, region };
        self.keys
            .usable(scope, key_id)
            .map(|doc| doc.arn())
            .map_err(failure)
    }

    fn generate_data_key(
        &self,
        account: &str,
        region: &str,
        key_id: &str,
        stream_arn: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), KeyFailure> {
        let scope = Scope { account, region };
        let key = self
            .keys
            .generate_data_key(scope, key_id, 32, &context(stream_arn))
            .map_err(failure)?;
        Ok((key.plaintext, key.blob))
    }

    fn decrypt_data_key(
        &self,
        account: &str,
        region: &str,
        blob: &[u8],
        stream_arn: &str,
    ) -> Result<Vec<u8>, KeyFailure> {
        let scope = Scope { account, region };
        self.keys
            .decrypt(scope, blob, &context(stream_arn), None)
            .map(|(_, plaintext)| plaintext)
            .map_err(failure)
    }
}
