//! The AWS SDK configuration, loaded once per cold start.
//!
//! Every client shares one HTTPS client: rustls on ring (the SDK crates are built without
//! their default client, so no second TLS stack is linked). Endpoints, region and credentials
//! come from the standard environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`,
//! `AWS_REGION`, the Lambda role's variables): local runs differ from AWS only in those.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// The one HTTPS client (connection pool) of the process.
pub fn https_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Loads the SDK configuration from the environment with [`https_client`].
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}
