//! The AWS SDK configuration, loaded once per cold start.
//!
//! Every client shares one HTTPS client: rustls on ring (the SDK crates are built without
//! their default client, so no second TLS stack is linked). Endpoints, region and credentials
//! come from the standard environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`,
//! `AWS_REGION`, the Lambda role's variables): local runs differ from AWS only in those.
//!
//! The client trusts the root certificates of Amazon Trust Services, compiled in
//! ([`AMAZON_TRUST_SERVICES_ROOTS`]), not the system's: every endpoint these functions call is
//! an AWS service endpoint, and AWS serves them with certificates of its own CA, which chain
//! to Amazon Root CA 1–4 or to the Starfield Services root that cross-signs them. Why, as
//! measured (docs/bench.md, "TLS roots"): the system's roots cost 3.6 ms of file reads and PEM
//! decoding (147 files on Debian), on the path to the first `/next` when loaded at init and on
//! the first request's when not (a thread started at init to load them was, under load, not
//! scheduled before the first request, which then loaded them itself); these five parse in
//! 0.05 ms when the first connection is made, and add 4 KiB to a zip. A deployment that must
//! trust more (a TLS-inspecting proxy, an endpoint that is not AWS's) sets `SSL_CERT_FILE` or
//! `SSL_CERT_DIR`: the system's roots are then trusted as well.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{ConfigBag, RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::shared::IntoShared;

/// Amazon Root CA 1, 2, 3 and 4 and Starfield Services Root Certificate Authority - G2, as
/// published at <https://www.amazontrust.com/repository/> (valid until 2037–2040).
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("aws/amazon-trust-services.pem");

/// The variables with which OpenSSL, and rustls-native-certs, are pointed at other roots.
const SYSTEM_ROOTS_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The one HTTPS client (connection pool) of the process. It builds its TLS configuration
/// when the first request needs a connection; nothing of it runs during init.
pub fn https_client() -> SharedHttpClient {
    let system_roots = SYSTEM_ROOTS_VARIABLES
        .iter()
        .any(|variable| std::env::var_os(variable).is_some());
    let client = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls_context(system_roots))
        .build_https();
    NoConnectorAtConstruction(client).into_shared()
}

/// Amazon's roots, and the system's too when `system_roots`.
fn tls_context(system_roots: bool) -> TlsContext {
    let trust = TrustStore::empty()
        .with_native_roots(system_roots)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS);
    TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store without server names is always valid")
}

/// [`https_client`]'s client, without the SDK's throwaway connector at each client's
/// construction (`validate_base_client_config` builds one only to load the system's roots
/// early, which these roots do not need): the connector is built once, by the first request.
#[derive(Debug)]
struct NoConnectorAtConstruction(SharedHttpClient);

impl HttpClient for NoConnectorAtConstruction {
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
///
/// When the region and the credentials are both in the environment, as Lambda always sets
/// them (`AWS_REGION`, and the role's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
/// `AWS_SESSION_TOKEN`), they are taken from there directly. The default chains look there
/// first too, so the result is the same; what is saved is building the chains' other links
/// (instance metadata, container, web identity, SSO, profile), which never answer in Lambda:
/// 0.47 → 0.18 ms of init before the first `/next` (docs/bench.md, "Init"). Anywhere else (a
/// laptop with a profile, an operator's SSO session) the standard chains run as usual.
pub async fn load_sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    match region_with_env_credentials(|name| std::env::var(name).ok()) {
        Some(region) => {
            loader
                .region(aws_config::Region::new(region))
                .credentials_provider(
                    aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                )
                .load()
                .await
        }
        None => loader.load().await,
    }
}

/// `AWS_REGION`, when the environment also holds a key pair (the session token is optional,
/// as for the default chain's environment link).
fn region_with_env_credentials(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| var(name).filter(|value| !value.is_empty());
    let has_credentials =
        set("AWS_ACCESS_KEY_ID").is_some() && set("AWS_SECRET_ACCESS_KEY").is_some();
    set("AWS_REGION").filter(|_| has_credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn lambdas_environment_skips_the_default_chains() {
        let lambda = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ];
        assert_eq!(
            region_with_env_credentials(env(&lambda)).as_deref(),
            Some("eu-west-1")
        );
        // A key pair without a session token is what the environment link accepts too.
        assert_eq!(
            region_with_env_credentials(env(&lambda[..3])).as_deref(),
            Some("eu-west-1")
        );
    }

    #[test]
    fn anything_less_runs_the_default_chains() {
        for vars in [
            &[("AWS_REGION", "eu-west-1")][..],
            &[("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "AKIA")],
            &[
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ],
            &[
                ("AWS_REGION", ""),
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ],
            &[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ],
        ] {
            assert_eq!(region_with_env_credentials(env(vars)), None, "{vars:?}");
        }
    }

    #[test]
    fn a_connector_builds_with_them() {
        // The SDK parses the trust store when it builds a connector and panics on a bad PEM.
        let _ = aws_smithy_http_client::Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .tls_context(tls_context(false))
            .build();
    }

    #[test]
    fn the_compiled_in_roots_are_amazons_five() {
        let pem = std::str::from_utf8(AMAZON_TRUST_SERVICES_ROOTS).unwrap();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(pem.contains(&format!("# {name}\n")), "{name} is missing");
        }
    }
}
