//! Authorizing requests: credentials (from code, Docker's `config.json` and its helpers),
//! the registry's challenges, bearer tokens (cached per scope set with their lifetime, one
//! request at a time per key), and [`Client::send`], which answers a 401 by one re-challenge.

use std::time::{Duration, Instant};

use bytes::Bytes;
use oci_reference::Reference;
use reqwest::header;
use reqwest::{Method, Response, StatusCode, Url};
use tracing::debug;

use super::answer::{read_errors, read_limited};
use super::transport::{Req, same_origin, strip_query};
use crate::auth::{
    CachedToken, Challenge, Credential, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME,
    TOKEN_EXPIRY_MARGIN, TokenResponse, merge_scopes,
};
use crate::{Client, Error};

impl Client {
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
                let (errors, body) = read_errors(resp).await;
                return Err(Error::Unauthorized {
                    method: req.method.to_string(),
                    url,
                    status,
                    errors,
                    body,
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
    pub(crate) async fn authorization(
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

    pub(crate) fn invalidate_token(&self, registry: &str, scopes: &[String]) {
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
            return Err(Error::protocol(
                "GET",
                &url,
                "the token realm is not HTTPS and not a registry named in plain_http; \
                       credentials are not sent to it",
            ));
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
            let (errors, body) = read_errors(resp).await;
            return Err(Error::Unauthorized {
                method: method.to_string(),
                url,
                status: status.as_u16(),
                errors,
                body,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
