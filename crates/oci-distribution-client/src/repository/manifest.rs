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

/// Every manifest type, for `Accept`: the four this crate parses, then Docker schema 1 (signed
/// and not), which registries still serve for old images and which a copy converts.
fn accept_manifests() -> String {
    let mut all = media_types::MANIFEST_MEDIA_TYPES.to_vec();
    all.extend([
        media_types::DOCKER_MANIFEST_V1_SIGNED,
        media_types::DOCKER_MANIFEST_V1,
    ]);
    all.join(", ")
}

/// Whether `media_type` is a manifest this client fetches: a manifest or index, or Docker
/// schema 1.
fn is_fetchable(media_type: &str) -> bool {
    media_types::is_manifest(media_type) || media_types::is_schema1(media_type)
}

/// The digest `bytes` have under `algorithm` as a registry names them: for a Docker schema 1
/// manifest, the SHA-256 of its JWS payload (a registry signs a schema 1 manifest again on
/// every GET, so only the payload, without `signatures`, keeps its digest); else the digest of
/// the bytes.
fn manifest_digest(
    bytes: &Bytes,
    schema1: bool,
    algorithm: Algorithm,
    reference: &str,
) -> Result<Digest, Error> {
    if schema1 {
        oci_manifest::schema1::payload_digest(bytes).map_err(|source| Error::Manifest {
            reference: reference.to_owned(),
            source,
        })
    } else {
        Ok(algorithm.hash(bytes))
    }
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
    /// manifest type (Docker schema 1 included); when HEAD gives no `Docker-Content-Digest` (or
    /// is refused), a `GET` that is verified and hashed. The size of a signed schema 1 manifest
    /// is that of one signing: the registry signs it again on each GET.
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
                && is_fetchable(mt)
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
    /// A Docker schema 1 manifest (served as `application/vnd.docker.distribution.manifest.v1+prettyjws`
    /// or `...v1+json`, or recognised in bytes served as plain JSON) is verified by its JWS
    /// payload's digest ([`oci_manifest::schema1::payload_digest`]), which is how registries
    /// name it: the signatures change on every GET. Its [`FetchedManifest::parse`] fails
    /// ([`oci_manifest::ManifestError::Schema1`]); read it with [`oci_manifest::schema1::Schema1`].
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
        // The media type: the answer's, else (registries may serve application/json) the
        // manifest's own, schema 1 recognised by its shape. Bytes that are no manifest at all
        // are reported after the digest check (a digest mismatch says more).
        let media_type = match content_type.filter(|c| is_fetchable(c)) {
            Some(c) => Ok(c),
            None => match Manifest::parse(bytes.clone(), None) {
                Ok(m) => Ok(m.media_type().to_owned()),
                Err(oci_manifest::ManifestError::Schema1 { signed: true, .. }) => {
                    Ok(media_types::DOCKER_MANIFEST_V1_SIGNED.to_owned())
                }
                Err(oci_manifest::ManifestError::Schema1 { signed: false, .. }) => {
                    Ok(media_types::DOCKER_MANIFEST_V1.to_owned())
                }
                Err(source) => Err(source),
            },
        };
        let schema1 = matches!(&media_type, Ok(mt) if media_types::is_schema1(mt));
        let (expected, source) = match (&pinned, &header_digest) {
            (Some(p), _) => (Some(p.clone()), "pinned reference"),
            (None, Some(h)) => (Some(h.clone()), "Docker-Content-Digest"),
            (None, None) => (None, ""),
        };
        let digest = match expected {
            Some(exp) => {
                let actual = manifest_digest(&bytes, schema1, exp.algorithm(), &refname)?;
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
                    let a = manifest_digest(&bytes, schema1, h.algorithm(), &refname)?;
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
            None => manifest_digest(&bytes, schema1, Algorithm::Sha256, &refname)?,
        };
        let media_type = media_type.map_err(|source| Error::Manifest {
            reference: refname.clone(),
            source,
        })?;
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
