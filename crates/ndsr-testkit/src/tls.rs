//! Certificates for a TLS ZooKeeper, made at test time with rcgen: a CA,
//! the server's certificate (for `127.0.0.1` and `localhost`), a client's
//! certificate, and another CA that signed none of them (for the "wrong
//! CA" cases). ZooKeeper 3.8 reads them as PEM key and trust stores.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{io, Error, Result};

/// The PEM files of a TLS server (in its work directory) and what a client
/// needs: the CA, and a certificate and key the server accepts.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA that signed the server's and the client's certificates.
    pub ca_pem: String,
    /// A client certificate the server accepts.
    pub client_cert_pem: String,
    /// Its private key (PKCS#8).
    pub client_key_pem: String,
    /// A CA that signed nothing here: a client trusting only it must refuse
    /// the server.
    pub other_ca_pem: String,
    /// A client certificate and key signed by the other CA: the server must
    /// refuse them.
    pub other_client_cert_pem: String,
    /// Its key.
    pub other_client_key_pem: String,
}

fn rc(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::InvalidState(format!("making the test {what}: {e}"))
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> Result<Ca> {
    let key = KeyPair::generate().map_err(rc("CA key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc("CA"))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let pem = params.self_signed(&key).map_err(rc("CA certificate"))?.pem();
    Ok(Ca { params, key, pem })
}

/// A certificate for 127.0.0.1 and localhost signed by `ca`: (cert, key).
fn leaf(ca: &Ca, name: &str, purpose: ExtendedKeyUsagePurpose) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(rc("key"))?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(rc("certificate"))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![purpose];
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).map_err(rc("certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl TlsMaterial {
    /// Makes the certificates and writes the server's stores into `dir`.
    pub(crate) fn generate(dir: &Path) -> Result<TlsMaterial> {
        std::fs::create_dir_all(dir).map_err(io("creating the TLS directory"))?;
        let ca = ca("ndsr test CA")?;
        let other = ca_other()?;
        let (server_cert, server_key) = leaf(&ca, "ndsr test server", ExtendedKeyUsagePurpose::ServerAuth)?;
        let (client_cert, client_key) = leaf(&ca, "ndsr test client", ExtendedKeyUsagePurpose::ClientAuth)?;
        let (other_cert, other_key) = leaf(&other, "someone else", ExtendedKeyUsagePurpose::ClientAuth)?;
        // ZooKeeper's PEM key store: the key and the certificate in one file.
        std::fs::write(dir.join("server.pem"), format!("{server_key}{server_cert}"))
            .map_err(io("writing the server's key store"))?;
        std::fs::write(dir.join("ca.pem"), &ca.pem).map_err(io("writing the trust store"))?;
        Ok(TlsMaterial {
            dir: dir.to_path_buf(),
            ca_pem: ca.pem,
            client_cert_pem: client_cert,
            client_key_pem: client_key,
            other_ca_pem: other.pem,
            other_client_cert_pem: other_cert,
            other_client_key_pem: other_key,
        })
    }

    /// The `zoo.cfg` lines of a server serving TLS on `port` (clients must
    /// present a certificate the CA signed).
    pub(crate) fn config(&self, port: u16) -> String {
        format!(
            "secureClientPort={port}\nsecureClientPortAddress=127.0.0.1\n\
             ssl.keyStore.location={dir}/server.pem\nssl.keyStore.type=PEM\n\
             ssl.trustStore.location={dir}/ca.pem\nssl.trustStore.type=PEM\nssl.clientAuth=need\n",
            dir = self.dir.display()
        )
    }
}

fn ca_other() -> Result<Ca> {
    ca("another CA")
}
