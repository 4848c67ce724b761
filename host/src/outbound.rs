//! Helio's own outbound HTTP: the connector every client Helio opens uses
//! (the upstream, approval webhooks), with the system's CA certificates on
//! the `ring` provider.

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

/// An HTTP(S) connector with `connect_timeout`. `https` says whether the
/// CA store is needed (reading it is not free, so an `http://` target skips
/// it).
pub fn connector(
    https: bool,
    connect_timeout: Duration,
) -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(https)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// The system's CA certificates with the ring provider, loaded only for
/// HTTPS. A machine without CA certificates fails HTTPS verification,
/// reported per request.
fn tls_config(https: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "skipping a system CA certificate");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(
                "no system CA certificates found; HTTPS requests will fail TLS verification"
            );
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
