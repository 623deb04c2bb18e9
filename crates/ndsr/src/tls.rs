//! TLS to ZooKeeper (a server's `secureClientPort`): the CA that signed the
//! servers' certificates and, for servers that ask for one, this client's
//! certificate and key, all PEM.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::{Error, Result};

/// How to talk TLS to ZooKeeper: see
/// [`RegistryBuilder::tls`](crate::RegistryBuilder::tls). Its `Debug`
/// never shows the key.
#[derive(Clone)]
pub struct Tls {
    ca_pem: String,
    identity: Option<(String, String)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field("identity", &self.identity.as_ref().map(|_| "<certificate and key>"))
            .finish()
    }
}

fn tls_error(reason: impl Into<String>) -> Error {
    Error::Tls { reason: reason.into() }
}

impl Tls {
    /// Trust the servers whose certificates `ca_pem` (one or more PEM
    /// certificates) signed.
    pub fn new(ca_pem: impl Into<String>) -> Tls {
        Tls { ca_pem: ca_pem.into(), identity: None }
    }

    /// Present this certificate (PEM, its chain after it) and its private
    /// key (PEM, PKCS#8, PKCS#1 or SEC1) to servers that ask for one.
    pub fn identity(mut self, cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Tls {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Checks the PEM and makes the client's options.
    pub(crate) fn options(&self) -> Result<zookeeper_client::TlsOptions> {
        install_crypto_provider();
        self.check()?;
        let options = zookeeper_client::TlsOptions::new()
            .with_pem_ca(&self.ca_pem)
            .map_err(|e| tls_error(format!("the CA: {e}")))?;
        match &self.identity {
            None => Ok(options),
            Some((cert, key)) => options
                .with_pem_identity(cert, key)
                .map_err(|e| tls_error(format!("the client certificate or key: {e}"))),
        }
    }

    /// What is wrong with the PEM, said plainly (never showing the key).
    fn check(&self) -> Result<()> {
        let cas: Vec<_> = CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()).collect();
        if cas.is_empty() || cas.iter().any(|c| c.is_err()) {
            return Err(tls_error("the CA is not PEM certificates (-----BEGIN CERTIFICATE-----)"));
        }
        if let Some((cert, key)) = &self.identity {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes()).collect();
            if certs.is_empty() || certs.iter().any(|c| c.is_err()) {
                return Err(tls_error("the client certificate is not PEM (-----BEGIN CERTIFICATE-----)"));
            }
            if PrivateKeyDer::from_pem_slice(key.as_bytes()).is_err() {
                return Err(tls_error(
                    "the client key is not a PEM private key (-----BEGIN PRIVATE KEY-----)",
                ));
            }
        }
        Ok(())
    }

    /// Why a TLS handshake with `host:port` fails, if it does (a
    /// certificate refused either way): the ZooKeeper client only says that
    /// no server answered. `None` when the handshake works, or the server
    /// cannot be reached at all (that is no connection, not TLS).
    pub(crate) async fn diagnose(&self, address: &str, timeout: std::time::Duration) -> Option<String> {
        install_crypto_provider();
        let (host, _) = address.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()).flatten() {
            roots.add(ca).ok()?;
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match &self.identity {
            None => config.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = CertificateDer::pem_slice_iter(cert.as_bytes()).flatten().collect();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).ok()?;
                config.with_client_auth_cert(certs, key).ok()?
            }
        };
        let name = ServerName::try_from(host).ok()?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let handshake = async {
            // A server that cannot be reached is not a TLS problem: the
            // caller reports it as no connection.
            let Ok(tcp) = tokio::net::TcpStream::connect(address).await else { return Ok(()) };
            let mut stream = connector.connect(name, tcp).await.map_err(|e| explain(&e))?;
            // A server that refuses our certificate says so after the
            // handshake: read its first answer (none is due, so a close or
            // an alert is the refusal).
            use tokio::io::AsyncReadExt;
            let mut byte = [0u8; 1];
            match tokio::time::timeout(std::time::Duration::from_millis(300), stream.read(&mut byte)).await {
                Ok(Err(e)) => Err(explain(&e)),
                _ => Ok(()),
            }
        };
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Err(why)) => Some(why),
            // Through, unreachable, or too slow to tell: not a TLS problem.
            Ok(Ok(())) | Err(_) => None,
        }
    }
}

/// A handshake's failure in words: whose certificate is the problem.
fn explain(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(why)) => {
            format!("the server's certificate does not check out against the CA given ({why:?}): is it the CA that signed the server's certificate?")
        }
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "the server refused this client's certificate (or its lack of one) with the TLS alert {alert:?}: \
             give a certificate and key signed by a CA the server trusts"
        ),
        Some(other) => format!("TLS handshake: {other}"),
        None => format!("TLS handshake: {e}"),
    }
}

/// rustls picks its cryptography per process; when more than one provider
/// is compiled in, it must be told. The first call wins.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
