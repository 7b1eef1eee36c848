//! One file per command; what several commands need is here.

pub(crate) mod backfill;
pub(crate) mod calls;
pub(crate) mod contacts;
pub(crate) mod desk;
pub(crate) mod events;
pub(crate) mod hub;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod subscriptions;
pub(crate) mod tokens;

use anyhow::{bail, Context, Result};

use callpop_engine::config::Config;
use callpop_store::{Store, StoreOptions};

pub(crate) fn open_history(config: &Config) -> Result<Store> {
    Ok(Store::open_existing(
        &config.db_path(),
        StoreOptions::new(config.default_country),
    )?)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The RingCentral client from the configuration, or a clear message about what is missing.
pub(crate) fn platform(
    config: &mut Config,
) -> Result<std::sync::Arc<callpop_ringcentral::api::Platform>> {
    callpop_engine::secrets::complete_platform_credentials(config)?;
    let rc = &config.ringcentral;
    let (Some(client_id), Some(client_secret), Some(jwt)) = (
        rc.client_id.clone(),
        rc.client_secret.clone(),
        rc.jwt.clone(),
    ) else {
        bail!(
            "RingCentral credentials are not set: set CALLPOP_RINGCENTRAL_CLIENT_ID, \
             CALLPOP_RINGCENTRAL_CLIENT_SECRET and CALLPOP_RINGCENTRAL_JWT (or the desktop settings)"
        );
    };
    Ok(std::sync::Arc::new(
        callpop_ringcentral::api::Platform::new(
            &rc.server,
            callpop_ringcentral::api::Credentials {
                client_id,
                client_secret,
                jwt,
            },
            config.clock,
        )?,
    ))
}
