//! The AWS SDK configuration, loaded once per cold start.
//!
//! Every client shares one HTTPS client: rustls on ring (the SDK crates are built without
//! their default client, so no second TLS stack is linked). Endpoints, region and credentials
//! come from the standard environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`,
//! `AWS_REGION`, the Lambda role's variables): local runs differ from AWS only in those.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{ConfigBag, RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::shared::IntoShared;

/// The one HTTPS client (connection pool) of the process.
///
/// Its root certificates load on a background thread ([`crate::background`]): reading and decoding the system's
/// certificate bundle takes 2 to 5 ms, which the SDK would otherwise spend building the first
/// client, in the function's init, before the runtime asks for its first event. The first
/// request that needs them waits for them if they are not ready yet (they load once).
pub fn https_client() -> SharedHttpClient {
    let client = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let warming = client.clone();
    crate::background::spawn_low_priority("tls-roots", move || {
        // What the SDK does at client construction: build a connector, loading the roots.
        let _ = warming.validate_base_client_config(
            &RuntimeComponentsBuilder::new("https_client warm-up"),
            &ConfigBag::base(),
        );
    });
    RootsLoadedInBackground(client).into_shared()
}

/// [`https_client`]'s client, without the SDK's eager build of a connector at client
/// construction (its background thread has started that instead).
#[derive(Debug)]
struct RootsLoadedInBackground(SharedHttpClient);

impl HttpClient for RootsLoadedInBackground {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        _: &RuntimeComponentsBuilder,
        _: &ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// Loads the SDK configuration from the environment with [`https_client`].
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}
