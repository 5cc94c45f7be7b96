//! TLS to the broker (rustls): the CA certificates that sign the brokers' certificates,
//! and optionally this client's certificate and key (mutual TLS). TLS 1.2 and 1.3.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig as RustlsConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// How a client speaks TLS: cheap to clone, shared by its connections.
#[derive(Clone)]
pub struct TlsConfig {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig")
    }
}

impl TlsConfig {
    /// Trusts the CA certificates in the PEM file `ca` (only those: not the system's).
    pub fn from_ca_file(ca: &Path) -> Result<TlsConfig> {
        TlsConfig::build(ca, None)
    }

    /// As [`TlsConfig::from_ca_file`], presenting the certificate chain `cert` with its
    /// private key `key` (PEM files) to brokers that ask for one.
    pub fn with_client_cert(ca: &Path, cert: &Path, key: &Path) -> Result<TlsConfig> {
        TlsConfig::build(ca, Some((cert, key)))
    }

    fn build(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<TlsConfig> {
        let mut roots = RootCertStore::empty();
        for c in read_certs(ca)? {
            roots
                .add(c)
                .map_err(|e| Error::InvalidArgument(format!("{}: {e}", ca.display())))?;
        }
        let builder = RustlsConfig::builder_with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| Error::InvalidArgument(format!("{}: no private key read: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::InvalidArgument(format!("{}: {e}", cert.display())))?
            }
        };
        Ok(TlsConfig {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The handshake on a connected socket to `addr` (`host:port`): the broker's
    /// certificate must name `host` (a DNS name, or an IP address SAN).
    pub(crate) async fn connect(&self, addr: &str, sock: TcpStream) -> Result<TlsStream<TcpStream>> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|e| Error::Connect {
            addr: addr.to_owned(),
            reason: format!("{host:?} is not a name TLS can check: {e}"),
        })?;
        self.connector.connect(name, sock).await.map_err(|e| Error::Connect {
            addr: addr.to_owned(),
            reason: format!("TLS handshake failed: {e}"),
        })
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}
