//! The HTTP client: construction (TLS, proxies, checked configuration) and repository
//! handles. Its jobs have their files: `transport.rs` (requests that can be sent again,
//! deadlines, retries, redirects that never carry credentials to another origin),
//! `token.rs` (credentials, auth challenges, tokens) and `answer.rs` (reading answers and
//! turning unexpected ones into errors).

mod answer;
mod token;
mod transport;

pub(crate) use answer::{expect, read_limited, status_error};
pub(crate) use transport::{Req, strip_query};

use std::sync::Arc;

use oci_reference::{Reference, validate_registry, validate_repository};
use reqwest::{Method, StatusCode, Url};
use tracing::debug;

use crate::auth::{AuthState, DockerConfigFile, docker_config_path};
use crate::config::ClientConfig;
use crate::{Error, Repository};

/// An async registry client. Cheap to clone (shared connection pool, token cache and
/// configuration).
///
/// ```
/// use oci_distribution_client::{Client, ClientConfig, Reference};
/// let client = Client::new(ClientConfig::default().with_plain_http("127.0.0.1:5000"))?;
/// let repo = client.repository(&"127.0.0.1:5000/team/app:v1".parse::<Reference>()?)?;
/// assert_eq!(repo.name(), "team/app");
/// # Ok::<(), oci_distribution_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("plain_http", &self.inner.config.plain_http)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    /// For streamed uploads (issue 17): as `http`, without the read timeout, which reqwest
    /// counts from the start of a request to its answer's head and so would cut an upload body
    /// that takes longer; an upload's waits are bounded by its own stall timeout and deadline.
    pub(crate) upload_http: reqwest::Client,
    pub(crate) config: ClientConfig,
    pub(crate) auth: AuthState,
    docker_config: Option<DockerConfigFile>,
}

impl Client {
    /// Builds a client, checking the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unusable CA certificate, an invalid plain-HTTP registry
    /// name, zero or inconsistent chunk sizes, or a TLS/proxy setup reqwest refuses;
    /// [`Error::DockerConfig`] when Docker's `config.json` exists but cannot be read.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let bad = |what: String| Error::InvalidConfig { what, source: None };
        for r in &config.plain_http {
            if validate_registry(r).is_err() {
                return Err(bad(format!("plain_http entry {r:?} is not host[:port]")));
            }
        }
        if config.chunk_size == 0 || config.max_chunk_size < config.chunk_size {
            return Err(bad(format!(
                "chunk_size ({}) must be > 0 and <= max_chunk_size ({})",
                config.chunk_size, config.max_chunk_size
            )));
        }
        if config.max_manifest_size == 0 || config.page_size == 0 {
            return Err(bad("max_manifest_size and page_size must be > 0".into()));
        }
        if let Some(p) = &config.parallel_fetch
            && (p.part_size == 0 || p.concurrency == 0)
        {
            return Err(bad(
                "parallel_fetch part_size and concurrency must be > 0".into()
            ));
        }
        if config.request_timeout.is_zero() {
            return Err(bad("request_timeout must be > 0".into()));
        }
        if let Some(r) = &config.min_rate
            && (r.bytes == 0 || r.window.is_zero())
        {
            return Err(bad(
                "min_rate bytes and window must be > 0 (None disables the minimum)".into(),
            ));
        }
        for (r, _) in &config.credentials {
            if validate_registry(r).is_err() {
                return Err(bad(format!("credentials for {r:?}: not host[:port]")));
            }
        }
        for (r, max) in &config.chunked_uploads {
            if validate_registry(r).is_err() || *max == 0 {
                return Err(bad(format!(
                    "chunked_uploads entry ({r:?}, {max}): expected host[:port] and a largest chunk > 0"
                )));
            }
        }
        let tls = tls_config(&config)?;
        let http_client = |read_timeout: bool| {
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(config.connect_timeout)
                .user_agent(config.user_agent.clone())
                .tls_backend_preconfigured(tls.clone());
            if read_timeout {
                builder = builder.read_timeout(config.read_timeout);
            }
            if !config.proxy_from_env {
                builder = builder.no_proxy();
            }
            builder.build().map_err(|e| Error::InvalidConfig {
                what: "cannot build the HTTP client".into(),
                source: Some(Box::new(e)),
            })
        };
        let http = http_client(true)?;
        let upload_http = http_client(false)?;
        let docker_config = if config.docker_config {
            match config
                .docker_config_file
                .clone()
                .or_else(docker_config_path)
            {
                Some(p) => DockerConfigFile::load(&p)?,
                None => None,
            }
        } else {
            None
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                upload_http,
                config,
                auth: AuthState::default(),
                docker_config,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A handle on the repository a reference names (its tag and digest are ignored).
    ///
    /// # Errors
    /// Never for a parsed reference; kept fallible for symmetry with
    /// [`repository_by_name`](Client::repository_by_name).
    pub fn repository(&self, reference: &Reference) -> Result<Repository, Error> {
        self.repository_at(
            reference.registry(),
            reference.api_host(),
            reference.repository(),
        )
    }

    /// A handle on `registry`/`name`.
    ///
    /// # Errors
    /// [`Error::InvalidReference`] for an invalid registry or repository name.
    pub fn repository_by_name(&self, registry: &str, name: &str) -> Result<Repository, Error> {
        let r = Reference::parse(&format!("{registry}/{name}"))?;
        self.repository(&r)
    }

    fn repository_at(&self, registry: &str, host: &str, name: &str) -> Result<Repository, Error> {
        validate_repository(name)?;
        let base = self.base_url(registry, host)?;
        Ok(Repository {
            client: self.clone(),
            registry: registry.to_owned(),
            name: name.to_owned(),
            base,
            ingests: Default::default(),
            pushed: Default::default(),
        })
    }

    pub(crate) fn base_url(&self, registry: &str, host: &str) -> Result<Url, Error> {
        let scheme = if self.inner.config.plain_http.iter().any(|r| r == registry) {
            "http"
        } else {
            "https"
        };
        Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|e| Error::InvalidConfig {
            what: format!("registry {registry} does not make a valid URL"),
            source: Some(Box::new(e)),
        })
    }

    /// Checks that the registry speaks the v2 API and that our credentials work
    /// (`GET /v2/`).
    ///
    /// # Errors
    /// [`Error::Unauthorized`], [`Error::Registry`] or [`Error::Transport`].
    pub async fn ping(&self, registry: &str) -> Result<(), Error> {
        let r = Reference::parse(&format!("{registry}/ping"))?;
        let base = self.base_url(registry, r.api_host())?;
        let resp = self
            .send(registry, Req::new(Method::GET, base), &[])
            .await?;
        expect(resp, &Method::GET, &[StatusCode::OK])
            .await
            .map(drop)
    }
}

fn tls_config(config: &ClientConfig) -> Result<rustls::ClientConfig, Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if config.use_system_roots {
        let found = rustls_native_certs::load_native_certs();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        debug!(
            added,
            ignored,
            errors = found.errors.len(),
            "system CA certificates"
        );
    }
    for (i, pem) in config.ca_certificates_pem.iter().enumerate() {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::InvalidConfig {
                what: format!("CA certificate #{i} is not valid PEM"),
                source: Some(Box::new(e)),
            })?;
            roots.add(cert).map_err(|e| Error::InvalidConfig {
                what: format!("CA certificate #{i} is not a usable certificate"),
                source: Some(Box::new(e)),
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::InvalidConfig {
                what: format!("CA certificate #{i} contains no PEM certificate"),
                source: None,
            });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig {
            what: "TLS protocol versions".into(),
            source: Some(Box::new(e)),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let p = crate::RetryPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(800));
        for attempt in 1..10 {
            let step =
                Duration::from_millis(100 * 2u64.pow(attempt - 1)).min(Duration::from_millis(800));
            let d = p.backoff(attempt);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut c = ClientConfig::default();
        c.plain_http.push("not a host/".into());
        assert!(matches!(Client::new(c), Err(Error::InvalidConfig { .. })));
        let mut c = ClientConfig::default();
        c.ca_certificates_pem.push(b"garbage".to_vec());
        assert!(matches!(Client::new(c), Err(Error::InvalidConfig { .. })));
        let c = ClientConfig {
            chunk_size: 0,
            ..Default::default()
        };
        assert!(matches!(Client::new(c), Err(Error::InvalidConfig { .. })));
        let mut c = ClientConfig::default();
        c.chunk_size = c.max_chunk_size + 1;
        assert!(matches!(Client::new(c), Err(Error::InvalidConfig { .. })));
        let c = ClientConfig {
            docker_config: false,
            ..Default::default()
        };
        assert!(Client::new(c).is_ok());
    }
}
