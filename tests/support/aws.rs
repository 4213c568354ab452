//! SDK configuration for local servers only.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};

/// Region of every local resource.
pub const TEST_REGION: &str = "us-east-1";

/// Static credentials that no real account accepts.
pub fn test_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "integration-tests")
}

/// Configuration for clients of the local server at `endpoint`: static `test`/`test`
/// credentials, region `us-east-1`, every service sent to `endpoint`.
///
/// Built directly rather than through `aws_config::defaults`, so nothing from the
/// environment or `~/.aws` (a profile, `AWS_ENDPOINT_URL_DYNAMODB`, real credentials) can
/// redirect a test to real AWS. This is the configuration the functions get in
/// production-like local runs from `AWS_ENDPOINT_URL`.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(SharedCredentialsProvider::new(test_credentials()))
        .http_client(sms_shared::aws::https_client())
        .endpoint_url(endpoint)
        .build()
}
