//! RTSP over TLS (`rtsps://`) for `retina`, which speaks plain TCP only: the camera's TLS
//! connection is opened and verified here (the system's roots, or `SSL_CERT_FILE`; or no
//! verification at all with `?tls_verify=0`, for cameras with self-signed certificates), then
//! offered to retina as one plain connection on a loopback port that accepts exactly one
//! client and pipes it through. Interleaved TCP only: RTSPS over UDP would need SRTP.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::{CONNECT_TIMEOUT, SourceError, brief};

/// The query parameter (ours, not the camera's) that turns certificate verification off.
pub const VERIFY_PARAM: &str = "tls_verify";

/// A verified (or, on request, unverified) TLS connection to a camera, served as plain TCP on
/// a loopback port for one client. Dropping it closes both.
#[derive(Debug)]
pub struct Tunnel {
    /// Where retina connects.
    pub local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tunnel {
    /// Connects to `host:port` over TLS (server name `host`), verifying its certificate unless
    /// `verify` is false, and starts serving the connection on a loopback port.
    pub async fn open(host: &str, port: u16, verify: bool) -> Result<Self, SourceError> {
        let config = client_config(verify)?;
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| SourceError::InvalidUrl(format!("TLS server name `{host}`: {e}")))?;
        let connect = async {
            let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
                .await
                .map_err(|e| SourceError::Connect(format!("TLS connect: {}", brief(e))))?;
            TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| SourceError::Connect(format!("TLS handshake: {}", brief(e))))
        };
        let mut tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| SourceError::Timeout("TLS handshake"))??;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| SourceError::Connect(format!("TLS tunnel: {}", brief(e))))?;
        let local = listener
            .local_addr()
            .map_err(|e| SourceError::Connect(format!("TLS tunnel: {}", brief(e))))?;
        let task = tokio::spawn(async move {
            // One client (retina, which connects at once); the listener closes after it.
            let Ok(Ok((mut plain, _))) =
                tokio::time::timeout(CONNECT_TIMEOUT, listener.accept()).await
            else {
                return;
            };
            drop(listener);
            let _ = tokio::io::copy_bidirectional(&mut plain, &mut tls).await;
        });
        Ok(Self { local, task })
    }
}

/// TLS settings: ring, TLS 1.2 and 1.3, the platform's verifier (or none).
fn client_config(verify: bool) -> Result<ClientConfig, SourceError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| SourceError::Connect(format!("TLS set-up: {e}"));
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let config = if verify {
        builder
            .with_platform_verifier()
            .map_err(tls_error)?
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(config)
}

/// Accepts any certificate (`?tls_verify=0`), still checking that the handshake is signed by
/// the certificate's key: the connection is encrypted, but not authenticated.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
