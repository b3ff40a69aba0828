//! The engines of the accounts Millrace serves: one per account, each with its own catalog and
//! shard logs. The default account keeps the data directory's root; every other account lives
//! under `<data-dir>/accounts/<id>/`, so accounts never share streams, limits or iterators.

use std::collections::BTreeMap;
use std::sync::Arc;

use millrace_engine::{Engine, EngineConfig, Error};

/// Every account's engine.
pub struct Accounts {
    engines: BTreeMap<String, Arc<Engine>>,
    default: String,
}

impl Accounts {
    /// Opens the engine of every account in `ids` (the template's own account is the default).
    pub fn open(template: &EngineConfig, ids: &[String]) -> Result<Accounts, Error> {
        let mut engines = BTreeMap::new();
        let default = template.account_id.clone();
        engines.insert(default.clone(), Engine::open(template.clone())?);
        for id in ids {
            if engines.contains_key(id) {
                continue;
            }
            let mut config = template.clone();
            config.account_id = id.clone();
            config.data_dir = template.data_dir.join("accounts").join(id);
            std::fs::create_dir_all(&config.data_dir).map_err(|error| {
                Error::Internal(format!(
                    "create account directory {}: {error}",
                    config.data_dir.display()
                ))
            })?;
            engines.insert(id.clone(), Engine::open(config)?);
        }
        Ok(Accounts { engines, default })
    }

    /// One engine serving the default account (tests and embedders without identities).
    pub fn single(engine: Arc<Engine>) -> Accounts {
        let default = engine.account_id().to_owned();
        let mut engines = BTreeMap::new();
        engines.insert(default.clone(), engine);
        Accounts { engines, default }
    }

    /// The engine of `account`, if Millrace serves it.
    pub fn get(&self, account: &str) -> Option<&Arc<Engine>> {
        self.engines.get(account)
    }

    /// The default account's engine.
    pub fn default_engine(&self) -> &Arc<Engine> {
        &self.engines[&self.default]
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Engine>> {
        self.engines.values()
    }
}
