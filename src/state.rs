//! Shared state of a running server: the store, the configuration and the authenticator.
//! Cheap to clone (all `Arc`s); handed to every request.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::store::DynStore;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub config: Arc<Config>,
    pub auth: Arc<Authenticator>,
}

impl AppState {
    pub fn new(store: DynStore, config: Config) -> Self {
        let auth = Authenticator::new(
            store.clone(),
            config.auth.argon2_concurrency,
            config.auth.cache_seconds,
            config.auth.failures_before_delay,
        );
        AppState {
            store,
            config: Arc::new(config),
            auth,
        }
    }
}
