//! Manifests: resolve a tag or digest, fetch (size limit, digest verified), push exact bytes
//! (keeping the referrers fallback tag for registries without the referrers API), delete.

use bytes::Bytes;
use oci_digest::{Algorithm, Digest};
use oci_manifest::{Descriptor, Manifest, media_types};
use oci_reference::ReferenceError;
use reqwest::header;
use reqwest::{Method, StatusCode};
use tracing::debug;

use super::{Repository, header_str};
use crate::Error;
use crate::client::{Req, expect, read_limited, status_error};

/// A manifest as fetched: its exact bytes and the descriptor that names them.
///
/// ```
/// use bytes::Bytes;
/// use oci_distribution_client::{Algorithm, Descriptor, FetchedManifest, media_types};
/// let bytes = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#);
/// let fetched = FetchedManifest {
///     descriptor: Descriptor::new(media_types::OCI_INDEX, Algorithm::Sha256.hash(&bytes), bytes.len() as u64),
///     bytes,
/// };
/// assert!(fetched.parse()?.is_index());
/// # Ok::<(), oci_distribution_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type (from the answer's `Content-Type`, else the manifest's `mediaType`), digest
    /// and size of `bytes`.
    pub descriptor: Descriptor,
    /// The exact bytes served. `descriptor.digest` is their digest; it was checked against
    /// the pinned digest or the registry's `Docker-Content-Digest`. Fetched by tag from a
    /// registry that sends no (parsable) `Docker-Content-Digest`, there was nothing to check
    /// against: the digest is then only computed from the bytes (trust on first use).
    pub bytes: Bytes,
}

impl FetchedManifest {
    /// Parses the bytes.
    ///
    /// # Errors
    /// [`Error::Manifest`] when they are not a valid manifest or index.
    pub fn parse(&self) -> Result<Manifest, Error> {
        Manifest::parse_pinned(
            self.bytes.clone(),
            Some(&self.descriptor.media_type),
            &self.descriptor.digest,
            &Default::default(),
        )
        .map_err(|source| Error::Manifest {
            reference: self.descriptor.digest.to_string(),
            source,
        })
    }
}

fn accept_manifests() -> String {
    media_types::MANIFEST_MEDIA_TYPES.join(", ")
}

impl Repository {
    fn check_manifest_reference(reference: &str) -> Result<Option<Digest>, Error> {
        if reference.contains(':') {
            Digest::parse(reference)
                .map(Some)
                .map_err(|e| ReferenceError::invalid_digest(reference, e).into())
        } else {
            oci_reference::validate_tag(reference)?;
            Ok(None)
        }
    }

    /// Resolves a tag or digest to the manifest's descriptor: `HEAD` with an `Accept` for every
    /// manifest type; when HEAD gives no `Docker-Content-Digest` (or is refused), a `GET` that
    /// is verified and hashed.
    ///
    /// # Errors
    /// [`Error::Registry`] (404 when unknown), [`Error::Unauthorized`], [`Error::Transport`], and
    /// the errors of [`fetch_manifest`](Repository::fetch_manifest) for the fallback.
    pub async fn resolve(&self, reference: &str) -> Result<Descriptor, Error> {
        let pinned = Self::check_manifest_reference(reference)?;
        let url = self.url(&format!("manifests/{reference}"))?;
        let req = Req::new(Method::HEAD, url).header(header::ACCEPT, &accept_manifests());
        let resp = self.send(req, &self.pull_scope()).await?;
        if resp.status() == StatusCode::OK {
            let h = resp.headers();
            let digest = header_str(h, "docker-content-digest").and_then(|d| Digest::parse(d).ok());
            let size = header_str(h, "content-length").and_then(|s| s.parse::<u64>().ok());
            let media_type = header_str(h, "content-type").map(media_types::essence);
            if let (Some(digest), Some(size), Some(mt)) = (digest, size, media_type)
                && media_types::is_manifest(mt)
            {
                if let Some(p) = &pinned
                    && p != &digest
                {
                    return Err(Error::ManifestDigestMismatch {
                        reference: self.reference_name(reference),
                        expected: p.clone(),
                        source_of_expected: "pinned reference",
                        actual: digest,
                    });
                }
                if size > self.client.inner.config.max_manifest_size {
                    return Err(Error::ManifestTooLarge {
                        reference: self.reference_name(reference),
                        limit: self.client.inner.config.max_manifest_size,
                        size,
                    });
                }
                return Ok(Descriptor::new(mt, digest, size));
            }
            debug!(
                reference,
                "HEAD lacks digest, size or media type; falling back to GET"
            );
        } else if resp.status() == StatusCode::NOT_FOUND {
            return Err(status_error(resp, &Method::HEAD).await);
        }
        Ok(self.fetch_manifest(reference).await?.descriptor)
    }

    /// Fetches a manifest by tag or digest, with the size limit, verified against the pinned
    /// digest or else the `Docker-Content-Digest` header (by tag without that header, the
    /// digest is computed from the bytes; see [`FetchedManifest::bytes`]).
    ///
    /// # Errors
    /// [`Error::ManifestTooLarge`], [`Error::ManifestDigestMismatch`] naming the reference and
    /// both digests, [`Error::Registry`] (404 `MANIFEST_UNKNOWN`), [`Error::Protocol`] when the
    /// answer has no manifest media type.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<FetchedManifest, Error> {
        let pinned = Self::check_manifest_reference(reference)?;
        let url = self.url(&format!("manifests/{reference}"))?;
        let req = Req::new(Method::GET, url.clone()).header(header::ACCEPT, &accept_manifests());
        let resp = self.send(req, &self.pull_scope()).await?;
        let resp = expect(resp, &Method::GET, &[StatusCode::OK]).await?;
        let limit = self.client.inner.config.max_manifest_size;
        let refname = self.reference_name(reference);
        if let Some(len) = resp.content_length()
            && len > limit
        {
            return Err(Error::ManifestTooLarge {
                reference: refname,
                limit,
                size: len,
            });
        }
        let header_digest =
            header_str(resp.headers(), "docker-content-digest").and_then(|d| Digest::parse(d).ok());
        let content_type =
            header_str(resp.headers(), "content-type").map(|c| media_types::essence(c).to_owned());
        let bytes = read_limited(resp, &Method::GET, limit)
            .await
            .map_err(|e| match e {
                Error::Protocol { .. } => Error::ManifestTooLarge {
                    reference: refname.clone(),
                    limit,
                    size: limit + 1,
                },
                other => other,
            })?;
        let (expected, source) = match (&pinned, &header_digest) {
            (Some(p), _) => (Some(p.clone()), "pinned reference"),
            (None, Some(h)) => (Some(h.clone()), "Docker-Content-Digest"),
            (None, None) => (None, ""),
        };
        let digest = match expected {
            Some(exp) => {
                let actual = exp.algorithm().hash(&bytes);
                if actual != exp {
                    return Err(Error::ManifestDigestMismatch {
                        reference: refname,
                        expected: exp,
                        source_of_expected: source,
                        actual,
                    });
                }
                // A pinned fetch whose header names another digest of the same bytes is fine
                // only when that header matches too.
                if let (Some(_), Some(h)) = (&pinned, &header_digest) {
                    let a = h.algorithm().hash(&bytes);
                    if &a != h {
                        return Err(Error::ManifestDigestMismatch {
                            reference: refname,
                            expected: h.clone(),
                            source_of_expected: "Docker-Content-Digest",
                            actual: a,
                        });
                    }
                }
                actual
            }
            None => Algorithm::Sha256.hash(&bytes),
        };
        let media_type = match content_type.filter(|c| media_types::is_manifest(c)) {
            Some(c) => c,
            None => {
                // Registries may serve application/json; take the manifest's own mediaType.
                let m = Manifest::parse(bytes.clone(), None).map_err(|source| Error::Manifest {
                    reference: refname.clone(),
                    source,
                })?;
                m.media_type().to_owned()
            }
        };
        let size = bytes.len() as u64;
        Ok(FetchedManifest {
            descriptor: Descriptor::new(media_type, digest, size),
            bytes,
        })
    }

    /// Pushes manifest bytes exactly as given under `reference` (a tag or the digest) and
    /// checks the digest the registry returns. A manifest with a `subject` pushed to a registry
    /// without the referrers API is added to the subject's fallback tag
    /// (`oci_store::referrers_tag`). The registry's acceptance is reported, not checked: a copy
    /// reads the manifest back with [`oci_store::VerifyMode`].
    ///
    /// # Errors
    /// [`Error::DigestHeaderMismatch`], [`Error::ManifestDigestMismatch`] when `reference` is a
    /// digest the bytes do not have, registry and transport errors.
    pub async fn push_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, Error> {
        Self::check_manifest_reference(reference)?;
        if reqwest::header::HeaderValue::from_str(media_type).is_err() {
            // Req::header would drop it and the manifest would go without a Content-Type.
            return Err(Error::InvalidArgument(format!(
                "manifest {}: media type {media_type:?} cannot be sent as Content-Type",
                self.reference_name(reference)
            )));
        }
        let digest = match Digest::parse(reference) {
            Ok(d) => {
                let actual = d.algorithm().hash(&bytes);
                if actual != d {
                    return Err(Error::ManifestDigestMismatch {
                        reference: self.reference_name(reference),
                        expected: d,
                        source_of_expected: "pinned reference",
                        actual,
                    });
                }
                d
            }
            Err(_) => Algorithm::Sha256.hash(&bytes),
        };
        let subject_handled = self
            .put_manifest(reference, media_type, &bytes, &digest)
            .await?;
        if !subject_handled {
            self.maintain_referrers_tag(media_type, &bytes).await?;
        }
        Ok(digest)
    }

    /// PUTs manifest bytes; returns whether the registry said it handled the manifest's
    /// subject (`OCI-Subject` header, referrers API).
    pub(super) async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
        digest: &Digest,
    ) -> Result<bool, Error> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let req = Req::new(Method::PUT, url)
            .header(header::CONTENT_TYPE, media_type)
            .uploading(&self.client.inner.config, bytes.len() as u64)
            .body(bytes.clone());
        let resp = self.send(req, &self.push_scope()).await?;
        let resp = expect(resp, &Method::PUT, &[StatusCode::CREATED, StatusCode::OK]).await?;
        if let Some(d) = header_str(resp.headers(), "docker-content-digest")
            && d != digest.as_str()
        {
            return Err(Error::DigestHeaderMismatch {
                what: "manifest",
                repository: self.name.clone(),
                expected: digest.clone(),
                actual: d.to_owned(),
            });
        }
        Ok(resp.headers().contains_key("oci-subject"))
    }

    /// Deletes a manifest by digest (the registry removes every tag pointing at it).
    ///
    /// # Errors
    /// Registry errors (404, 405 `UNSUPPORTED` when deletion is disabled) and transport errors.
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<(), Error> {
        self.delete(&format!("manifests/{digest}")).await
    }
}
