//! Opens the backend the config names: PostgreSQL when `store` is a URL, else SQLite in the data dir.

use std::sync::Arc;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{ModelLimits, Store, StoreResult};
use crate::config::Config;
use crate::throttle::SharedFailures;

/// Which backend a config uses, for messages and for what only SQLite needs (its data dir lock, its
/// database file).
pub fn is_postgres(config: &Config) -> bool {
    config.store.is_some()
}

/// Opens (creating or migrating as needed) the store the config names.
pub async fn open(config: &Config) -> StoreResult<Arc<dyn Store>> {
    Ok(open_for_serving(config).await?.0)
}

/// [`open`], and where login failures are shared with other nodes (with PostgreSQL: the database).
pub async fn open_for_serving(
    config: &Config,
) -> StoreResult<(Arc<dyn Store>, Option<Arc<dyn SharedFailures>>)> {
    let limits = ModelLimits::from(&config.limits);
    match &config.store {
        Some(url) => {
            let roots = config.store_tls_roots.as_deref();
            let store = Arc::new(PgStore::open_with_tls(url, limits, roots).await?);
            let shared = store.shared_failures();
            Ok((store, Some(shared)))
        }
        None => Ok((
            Arc::new(SqliteStore::open_with(&config.data_dir, limits)?),
            None,
        )),
    }
}

/// Where the store is, for messages: never the URL itself (it may hold a password).
pub fn describe(config: &Config) -> String {
    match &config.store {
        Some(url) => match url.parse::<tokio_postgres::Config>() {
            Ok(c) => {
                let host = c
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(name) => name.clone(),
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .unwrap_or_default();
                format!(
                    "PostgreSQL database {} on {host}",
                    c.get_dbname().unwrap_or("(default)")
                )
            }
            Err(_) => "a PostgreSQL database".to_string(),
        },
        None => format!("the data dir {}", config.data_dir.display()),
    }
}
