//! The HTTP client: TLS, redirects without leaking credentials, auth challenges and retries.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use tracing::{debug, warn};

use crate::auth::{
    AuthState, CachedToken, Challenge, Credential, DEFAULT_TOKEN_LIFETIME, DockerConfigFile,
    MAX_TOKEN_LIFETIME, TOKEN_EXPIRY_MARGIN, TokenResponse, docker_config_path, merge_scopes,
};
use crate::config::ClientConfig;
use crate::error::RegistryErrors;
use crate::reference::{Reference, valid_registry, valid_repository};
use crate::{Error, Repository};

/// Largest error body read from a failed answer.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest number of redirects followed.
const MAX_REDIRECTS: usize = 10;
/// Attempts at a request whose connection is refused: one more after a short delay (a registry
/// restarting), no more.
const REFUSED_ATTEMPTS: u32 = 2;
/// Longest wait for the body of an error answer that has no deadline of its own (a blob
/// download's): its details are a courtesy, not worth a hang.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);

/// How long one attempt of a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The whole exchange, the answer's body included, within
    /// [`ClientConfig::request_timeout`] (manifests, tokens, listings, small requests).
    Whole,
    /// The answer's head within the request timeout; the body is a blob read under the
    /// minimum rate ([`crate::rate::RateWatch`]).
    Stream,
    /// The whole exchange within this time (uploads: their body at the minimum rate).
    Within(Duration),
}

/// When the body of an answer must have arrived (the request's deadline), kept in the
/// answer's extensions for [`read_limited`] and [`read_errors`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline {
    at: tokio::time::Instant,
    limit: Duration,
}

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
    pub(crate) config: ClientConfig,
    pub(crate) auth: AuthState,
    docker_config: Option<DockerConfigFile>,
}

/// A request that can be sent again (retries, re-challenges, redirects).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    /// Whether transient failures may be retried by sending the same request again.
    pub(crate) retry: bool,
    /// The body carries a secret (an OAuth2 refresh token): redirects to another origin are
    /// not followed, so the body is never replayed there.
    pub(crate) secret_body: bool,
    /// How long an attempt may take.
    pub(crate) wait: Wait,
}

impl Req {
    pub(crate) fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            retry: true,
            secret_body: false,
            wait: Wait::Whole,
        }
    }

    /// A blob download: the answer's head within the request deadline, the body under the
    /// minimum rate.
    pub(crate) fn streaming(mut self) -> Req {
        self.wait = Wait::Stream;
        self
    }

    /// An upload of `len` bytes: the deadline plus the body's time at the minimum rate.
    pub(crate) fn uploading(mut self, config: &ClientConfig, len: u64) -> Req {
        self.wait = Wait::Within(config.upload_deadline(len));
        self
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Req {
        self.body = Some(body);
        self
    }

    pub(crate) fn no_retry(mut self) -> Req {
        self.retry = false;
        self
    }
}

fn retryable_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The delay a `Retry-After` header asks for (delta-seconds or an HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
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
            if !valid_registry(r) {
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
            if !valid_registry(r) {
                return Err(bad(format!("credentials for {r:?}: not host[:port]")));
            }
        }
        let tls = tls_config(&config)?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(config.user_agent.clone())
            .tls_backend_preconfigured(tls);
        if !config.proxy_from_env {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| Error::InvalidConfig {
            what: "cannot build the HTTP client".into(),
            source: Some(Box::new(e)),
        })?;
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
        if !valid_repository(name) {
            return Err(Error::InvalidReference {
                input: name.to_owned(),
                reason: crate::InvalidReferenceReason::InvalidPathComponent,
            });
        }
        let base = self.base_url(registry, host)?;
        Ok(Repository {
            client: self.clone(),
            registry: registry.to_owned(),
            name: name.to_owned(),
            base,
            ingests: Default::default(),
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

    async fn credential(&self, registry: &str) -> Result<Option<Credential>, Error> {
        if let Some(c) = self.inner.auth.cached_credential(registry) {
            return Ok(c);
        }
        let from_code = self
            .inner
            .config
            .credentials
            .iter()
            .find(|(r, _)| r == registry)
            .map(|(_, c)| c.clone());
        let c = match from_code {
            Some(c) => Some(c),
            None => match &self.inner.docker_config {
                Some(dc) => dc.credential(registry).await?,
                None => None,
            },
        };
        self.inner.auth.cache_credential(registry, c.clone());
        Ok(c)
    }

    /// The Authorization header to send to `registry` for `scopes`, from what is known so far.
    async fn authorization(
        &self,
        registry: &str,
        scopes: &[String],
    ) -> Result<Option<String>, Error> {
        let cred = self.credential(registry).await?;
        if let Some(Credential::Bearer(t)) = &cred {
            return Ok(Some(format!("Bearer {t}")));
        }
        match self.inner.auth.challenge(registry) {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(cred.as_ref().and_then(Credential::basic_header)),
            Some(Challenge::Bearer {
                realm,
                service,
                scopes: server_scopes,
            }) => {
                let all: Vec<String> = merge_scopes(scopes.iter().chain(server_scopes.iter()));
                let token = self
                    .token(registry, &realm, service.as_deref(), &all, cred.as_ref())
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn token_key(registry: &str, realm: &str, service: Option<&str>, scopes: &[String]) -> String {
        format!(
            "{registry}\n{realm}\n{}\n{}",
            service.unwrap_or(""),
            scopes.join(" ")
        )
    }

    /// A token for `scopes` from the cache or the token service; one request at a time per key.
    async fn token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<String, Error> {
        let key = Self::token_key(registry, realm, service, scopes);
        let slot = self.inner.auth.token_slot(&key);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref()
            && t.expires > Instant::now()
        {
            return Ok(t.token.clone());
        }
        let fetched = self.fetch_token(realm, service, scopes, cred).await?;
        let token = fetched.token.clone();
        *guard = Some(fetched);
        Ok(token)
    }

    fn invalidate_token(&self, registry: &str, scopes: &[String]) {
        if let Some(Challenge::Bearer {
            realm,
            service,
            scopes: server_scopes,
        }) = self.inner.auth.challenge(registry)
        {
            let all = merge_scopes(scopes.iter().chain(server_scopes.iter()));
            let key = Self::token_key(registry, &realm, service.as_deref(), &all);
            let slot = self.inner.auth.token_slot(&key);
            if let Ok(mut g) = slot.try_lock() {
                *g = None;
            };
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<CachedToken, Error> {
        let mut url = Url::parse(realm).map_err(|e| Error::Protocol {
            method: "GET".into(),
            url: realm.to_owned(),
            what: format!("token realm is not a URL: {e}"),
        })?;
        let secret = matches!(cred, Some(Credential::IdentityToken(_)))
            || cred.and_then(Credential::basic_header).is_some();
        if secret && url.scheme() != "https" && !self.is_plain_http(&url) {
            // The registry chose the realm: it must not lead our secrets onto the wire in
            // clear text unless the user named that host as plain HTTP.
            return Err(Error::Protocol {
                method: "GET".into(),
                url: strip_query(&url),
                what: "the token realm is not HTTPS and not a registry named in plain_http; \
                       credentials are not sent to it"
                    .into(),
            });
        }
        let req = if let Some(Credential::IdentityToken(refresh)) = cred {
            let mut form = Url::parse("http://form.invalid/").map_err(|e| Error::Protocol {
                method: "POST".into(),
                url: realm.to_owned(),
                what: e.to_string(),
            })?;
            {
                let mut q = form.query_pairs_mut();
                q.append_pair("grant_type", "refresh_token");
                q.append_pair("refresh_token", refresh);
                q.append_pair("client_id", "oci-distribution-client");
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                if !scopes.is_empty() {
                    q.append_pair("scope", &scopes.join(" "));
                }
            }
            let body = form.query().unwrap_or("").to_owned();
            let mut r = Req::new(Method::POST, url.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Bytes::from(body));
            r.secret_body = true;
            r
        } else {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
            }
            Req::new(Method::GET, url.clone())
        };
        // Basic credentials go as the request's `auth`, which is only sent to the realm's
        // origin, never along a redirect to another one.
        let basic = cred.and_then(Credential::basic_header);
        debug!(realm = %url.as_str().split('?').next().unwrap_or(""), ?scopes, "requesting token");
        let method = req.method.clone();
        let resp = self.send_with_retries(req, basic.as_deref()).await?;
        let status = resp.status();
        if !status.is_success() {
            let url = resp.url().to_string();
            let errors = read_errors(resp).await;
            return Err(Error::Unauthorized {
                method: method.to_string(),
                url,
                status: status.as_u16(),
                errors,
            });
        }
        let bytes = read_limited(resp, &method, 1024 * 1024).await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
                method: method.to_string(),
                url: realm.to_owned(),
                what: format!("token answer is not JSON: {e}"),
            })?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token)
            .ok_or_else(|| Error::Protocol {
                method: method.to_string(),
                url: realm.to_owned(),
                what: "token answer has neither token nor access_token".into(),
            })?;
        let expires = token_expiry(Instant::now(), parsed.expires_in);
        Ok(CachedToken { token, expires })
    }

    /// Whether the user named `url`'s host (`host[:port]`) as a plain-HTTP registry.
    fn is_plain_http(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let with_port = url.port_or_known_default().map(|p| format!("{host}:{p}"));
        self.inner
            .config
            .plain_http
            .iter()
            .any(|r| (r == host && url.port().is_none()) || Some(r) == with_port.as_ref())
    }

    /// Sends a registry request with auth for `scopes`, re-challenging once on 401 and retrying
    /// transient failures. Answers other than 401 are returned for the caller to judge.
    ///
    /// Credentials and tokens go only to the registry's own origin: a URL the registry named
    /// elsewhere (`Location` of an upload, a `Link` page) on another origin gets the request
    /// without them, and its challenges are not taken for the registry's.
    pub(crate) async fn send(
        &self,
        registry: &str,
        req: Req,
        scopes: &[String],
    ) -> Result<Response, Error> {
        let host = Reference::parse(&format!("{registry}/x"))?;
        let origin = self.base_url(registry, host.api_host())?;
        if !same_origin(&req.url, &origin) {
            debug!(registry, url = %strip_query(&req.url), "request to another origin than the registry's: sent without credentials");
            return self.send_with_retries(req, None).await;
        }
        let mut rechallenged = false;
        loop {
            let auth = self.authorization(registry, scopes).await?;
            let resp = self.send_with_retries(req.clone(), auth.as_deref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(Challenge::parse)
                .max_by_key(|c| matches!(c, Challenge::Bearer { .. }));
            let cred = self.credential(registry).await?;
            let can_answer = match &challenge {
                Some(Challenge::Bearer { .. }) => true,
                Some(Challenge::Basic) => cred.as_ref().is_some_and(|c| c.basic_header().is_some()),
                None => false,
            };
            if rechallenged || !can_answer {
                let url = resp.url().to_string();
                let status = resp.status().as_u16();
                let errors = read_errors(resp).await;
                return Err(Error::Unauthorized {
                    method: req.method.to_string(),
                    url,
                    status,
                    errors,
                });
            }
            rechallenged = true;
            self.invalidate_token(registry, scopes);
            if let Some(c) = challenge {
                debug!(registry, "auth challenge received");
                self.inner.auth.set_challenge(registry, c);
            }
        }
    }

    /// Sends with retries of transient failures; no auth logic beyond the given header.
    ///
    /// Each attempt has the request's deadline ([`Wait`]); one past it fails with
    /// [`Error::DeadlineExceeded`], not retried. A refused connection is tried
    /// [`REFUSED_ATTEMPTS`] times and fails with [`Error::ConnectionRefused`].
    pub(crate) async fn send_with_retries(
        &self,
        req: Req,
        auth: Option<&str>,
    ) -> Result<Response, Error> {
        let config = &self.inner.config;
        let policy = &config.retry;
        let max = if req.retry { policy.max_retries } else { 0 };
        let limit = match req.wait {
            Wait::Whole | Wait::Stream => config.request_timeout,
            Wait::Within(d) => d,
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            // A deadline too far for the clock is none.
            let due = tokio::time::Instant::now().checked_add(limit);
            let sent = match due {
                Some(due) => {
                    tokio::time::timeout_at(due, self.send_following_redirects(&req, auth)).await
                }
                None => Ok(self.send_following_redirects(&req, auth).await),
            };
            let Ok(result) = sent else {
                warn!(method = %req.method, url = %strip_query(&req.url), attempt, limit_ms = limit.as_millis() as u64, "request deadline exceeded");
                return Err(Error::DeadlineExceeded {
                    method: req.method.to_string(),
                    url: strip_query(&req.url),
                    limit,
                    source: Error::timed_out(),
                });
            };
            // Without its URL: a redirect target may carry a signature in its query (object
            // storage), and the error is logged and shown; `url` below names the request.
            let (result, refused_by) = match result {
                Ok(resp) => (Ok(resp), None),
                Err(e) => {
                    let refused_by = refused_address(&e, &req.url);
                    (Err(e.without_url()), refused_by)
                }
            };
            let delay = match &result {
                Ok(resp) if retryable_status(resp.status()) && attempt <= max => {
                    let asked = retry_after(resp.headers());
                    match asked {
                        Some(d) if d > policy.max_retry_after => None,
                        Some(d) => Some(d),
                        None => Some(policy.backoff(attempt)),
                    }
                }
                Err(_) if refused_by.is_some() && attempt >= REFUSED_ATTEMPTS => None,
                Err(e) if attempt <= max && !e.is_builder() => Some(policy.backoff(attempt)),
                _ => None,
            };
            match (result, delay) {
                (Ok(resp), Some(d)) => {
                    warn!(method = %req.method, url = %strip_query(&req.url), status = resp.status().as_u16(), attempt, delay_ms = d.as_millis() as u64, "transient registry answer, retrying");
                    drop(resp);
                    tokio::time::sleep(d).await;
                }
                (Err(e), Some(d)) => {
                    warn!(method = %req.method, url = %strip_query(&req.url), error = %e, attempt, delay_ms = d.as_millis() as u64, "transport error, retrying");
                    tokio::time::sleep(d).await;
                }
                (Ok(mut resp), None) => {
                    if req.wait != Wait::Stream
                        && let Some(at) = due
                    {
                        resp.extensions_mut().insert(BodyDeadline { at, limit });
                    }
                    return Ok(resp);
                }
                (Err(e), None) => {
                    if let Some(address) = refused_by {
                        return Err(Error::ConnectionRefused {
                            method: req.method.to_string(),
                            url: strip_query(&req.url),
                            address,
                            attempts: attempt,
                            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e),
                        });
                    }
                    return Err(Error::Transport {
                        method: req.method.to_string(),
                        url: strip_query(&req.url),
                        attempts: attempt,
                        source: e,
                    });
                }
            }
        }
    }

    /// One attempt, following redirects by hand so that `Authorization` is only sent to the
    /// origin of the original request.
    async fn send_following_redirects(
        &self,
        req: &Req,
        auth: Option<&str>,
    ) -> Result<Response, reqwest::Error> {
        let mut method = req.method.clone();
        let mut url = req.url.clone();
        let mut body = req.body.clone();
        let mut hops = 0;
        loop {
            let mut rb = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .headers(req.headers.clone());
            if let Some(a) = auth
                && same_origin(&url, &req.url)
            {
                rb = rb.header(header::AUTHORIZATION, a);
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let resp = rb.send().await?;
            debug!(method = %method, url = %strip_query(&url), status = resp.status().as_u16(), version = ?resp.version(), "registry answer");
            let status = resp.status();
            if !status.is_redirection() || hops == MAX_REDIRECTS {
                // Too many redirects: the caller sees the last 3xx as an unexpected status.
                return Ok(resp);
            }
            hops += 1;
            let Some(next) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Ok(resp);
            };
            if req.secret_body && !same_origin(&next, &req.url) {
                // Not followed: the caller sees the 3xx as an unexpected status.
                warn!(method = %method, url = %strip_query(&url), to = %strip_query(&next), "not following a redirect to another origin with a secret body");
                return Ok(resp);
            }
            if status == StatusCode::SEE_OTHER
                || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            url = next;
        }
    }
}

/// When a token given now with `expires_in` seconds (the token service's word) is renewed:
/// the lifetime less a margin, capped at [`MAX_TOKEN_LIFETIME`] so that an absurd answer
/// cannot overflow the clock.
fn token_expiry(now: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .min(MAX_TOKEN_LIFETIME);
    now + lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN)
}

/// The `host:port` that refused the connection, when `e` is a refused connection (the URL of
/// the hop that failed, else `fallback`'s).
fn refused_address(e: &reqwest::Error, fallback: &Url) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut refused = false;
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            refused = true;
            break;
        }
        cur = err.source();
    }
    if !refused {
        return None;
    }
    let url = e.url().unwrap_or(fallback);
    let host = url.host_str().unwrap_or("?");
    Some(match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// A URL without its query (which may carry upload state or signatures).
pub(crate) fn strip_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
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

/// Reads an error body (bounded in size, and in time by the request's deadline and
/// [`ERROR_BODY_WAIT`]) into registry error entries.
pub(crate) async fn read_errors(mut resp: Response) -> RegistryErrors {
    let wait = tokio::time::Instant::now() + ERROR_BODY_WAIT;
    let due = match resp.extensions().get::<BodyDeadline>() {
        Some(d) => d.at.min(wait),
        None => wait,
    };
    let mut buf = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            let room = MAX_ERROR_BODY.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    if tokio::time::timeout_at(due, read).await.is_err() {
        debug!(
            received = buf.len(),
            "error body not complete in time; using what arrived"
        );
    }
    RegistryErrors::parse(&buf)
}

/// Returns the answer when its status is one of `ok`, else the registry error.
pub(crate) async fn expect(
    resp: Response,
    method: &Method,
    ok: &[StatusCode],
) -> Result<Response, Error> {
    if ok.contains(&resp.status()) {
        return Ok(resp);
    }
    Err(unexpected_status(resp, method, ok).await)
}

/// The error for an answer whose status the caller does not accept: the registry's error for
/// an error status, a protocol violation for any other.
pub(crate) async fn status_error(resp: Response, method: &Method) -> Error {
    unexpected_status(resp, method, &[]).await
}

/// [`status_error`], naming the statuses that were expected (`ok`, when known).
async fn unexpected_status(resp: Response, method: &Method, ok: &[StatusCode]) -> Error {
    let status = resp.status().as_u16();
    let url = strip_query(resp.url());
    if !resp.status().is_client_error() && !resp.status().is_server_error() {
        // Not an error answer (a 200 to a Range request, a redirect too many): its body has
        // no error details, and "registry answered 200" would say nothing.
        let expected: Vec<String> = ok.iter().map(ToString::to_string).collect();
        let what = if expected.is_empty() {
            format!("unexpected answer {}", resp.status())
        } else {
            format!(
                "answered {} where {} was expected",
                resp.status(),
                expected.join(" or ")
            )
        };
        return Error::Protocol {
            method: method.to_string(),
            url,
            what,
        };
    }
    let errors = read_errors(resp).await;
    if status == 401 || status == 403 {
        Error::Unauthorized {
            method: method.to_string(),
            url,
            status,
            errors,
        }
    } else {
        Error::Registry {
            method: method.to_string(),
            url,
            status,
            errors,
        }
    }
}

/// Reads a whole body of at most `limit` bytes, within the request's deadline.
pub(crate) async fn read_limited(
    resp: Response,
    method: &Method,
    limit: u64,
) -> Result<Bytes, Error> {
    let url = strip_query(resp.url());
    match resp.extensions().get::<BodyDeadline>().copied() {
        Some(d) => tokio::time::timeout_at(d.at, read_body(resp, method, limit, url.clone()))
            .await
            .unwrap_or_else(|_| {
                Err(Error::DeadlineExceeded {
                    method: method.to_string(),
                    url,
                    limit: d.limit,
                    source: Error::timed_out(),
                })
            }),
        None => read_body(resp, method, limit, url).await,
    }
}

async fn read_body(
    mut resp: Response,
    method: &Method,
    limit: u64,
    url: String,
) -> Result<Bytes, Error> {
    let mut buf = bytes::BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if (buf.len() + c.len()) as u64 > limit {
                    return Err(Error::Protocol {
                        method: method.to_string(),
                        url,
                        what: format!("answer larger than {limit} bytes"),
                    });
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(Error::Transport {
                    method: method.to_string(),
                    url,
                    attempts: 1,
                    source: e.without_url(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(30);
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn token_expiry_is_capped_and_never_overflows() {
        let now = Instant::now();
        // A token service answering `expires_in: u64::MAX` used to overflow `Instant + Duration`.
        assert_eq!(
            token_expiry(now, Some(u64::MAX)),
            now + MAX_TOKEN_LIFETIME - TOKEN_EXPIRY_MARGIN
        );
        assert_eq!(
            token_expiry(now, None),
            now + DEFAULT_TOKEN_LIFETIME - TOKEN_EXPIRY_MARGIN
        );
        assert_eq!(token_expiry(now, Some(300)), now + Duration::from_secs(295));
        assert_eq!(token_expiry(now, Some(2)), now);
    }

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

    #[test]
    fn which_answers_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [200, 201, 202, 400, 401, 403, 404, 405, 416, 501] {
            assert!(
                !retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn origins() {
        let a = Url::parse("https://r.example/v2/x").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://r.example:443/other").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("http://r.example/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://s3.example/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://r.example:8443/v2/x").unwrap()
        ));
    }
}
