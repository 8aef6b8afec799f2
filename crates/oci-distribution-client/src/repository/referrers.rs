//! Referrers (signatures, SBOMs, ... of a subject): the referrers API, and for registries
//! without it the OCI tag schema fallback, whose tag and index are those of `oci-store`
//! ([`oci_store::referrers_tag`], [`oci_store::referrers_index`]), the same a copy writes.

use std::collections::HashSet;

use bytes::Bytes;
use oci_digest::Digest;
use oci_manifest::{Descriptor, Manifest, media_types};
use reqwest::header;
use reqwest::{Method, StatusCode};
use tracing::debug;

use super::Repository;
use super::list::{link_next, not_seen};
use crate::Error;
use crate::client::{Req, expect, read_limited};

impl Repository {
    /// The manifests that refer to `subject` (signatures, SBOMs), optionally only those of one
    /// artifact type. Uses the referrers API, and when the registry does not have it (404),
    /// the tag schema fallback: an index under the tag [`oci_store::referrers_tag`] names
    /// (`sha256-<hex>`).
    ///
    /// # Errors
    /// Registry, transport and manifest errors.
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        let mut url = self.url(&format!("referrers/{subject}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut out = Vec::new();
        let mut next = Some(url);
        let mut first = true;
        let mut seen = HashSet::new();
        while let Some(u) = next.take() {
            not_seen(&mut seen, &u)?;
            let req =
                Req::new(Method::GET, u.clone()).header(header::ACCEPT, media_types::OCI_INDEX);
            let resp = self.send(req, &self.pull_scope()).await?;
            if first && resp.status() == StatusCode::NOT_FOUND {
                return self.referrers_by_tag(subject, artifact_type).await;
            }
            first = false;
            let resp = expect(resp, &Method::GET, &[StatusCode::OK]).await?;
            next = link_next(resp.headers(), &u);
            let bytes = read_limited(
                resp,
                &Method::GET,
                self.client.inner.config.max_manifest_size,
            )
            .await?;
            let m = Manifest::parse(bytes, Some(media_types::OCI_INDEX)).map_err(|source| {
                Error::Manifest {
                    reference: format!("{}/{}/referrers/{subject}", self.registry, self.name),
                    source,
                }
            })?;
            out.extend(m.manifests().iter().cloned());
        }
        if let Some(t) = artifact_type {
            out.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(out)
    }

    async fn referrers_by_tag(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        let tag = oci_store::referrers_tag(subject);
        let fetched = match self.fetch_manifest(&tag).await {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let m = fetched.parse()?;
        let mut out: Vec<Descriptor> = m.manifests().to_vec();
        if let Some(t) = artifact_type {
            out.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(out)
    }

    /// For a manifest with a `subject` pushed to a registry without the referrers API (no
    /// `OCI-Subject` answer): adds it to the index under the subject's fallback tag
    /// ([`oci_store::referrers_tag`]), creating the index when needed.
    pub(super) async fn maintain_referrers_tag(
        &self,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), Error> {
        let Ok(m) = Manifest::parse(bytes.clone(), Some(media_type)) else {
            return Ok(());
        };
        let Some(subject) = m.subject() else {
            return Ok(());
        };
        let tag = oci_store::referrers_tag(&subject.digest);
        let mut entries: Vec<Descriptor> = match self.fetch_manifest(&tag).await {
            Ok(f) => f.parse()?.manifests().to_vec(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let entry = m.referrer_descriptor();
        if entries.iter().any(|d| d.digest == entry.digest) {
            return Ok(());
        }
        entries.push(entry);
        let index = oci_store::referrers_index(&subject.digest, entries).map_err(|e| match e {
            oci_store::StoreError::InvalidManifest { source, .. } => Error::Manifest {
                reference: self.reference_name(&tag),
                source,
            },
            other => Error::InvalidArgument(format!(
                "cannot build the referrers index {}: {other}",
                self.reference_name(&tag)
            )),
        })?;
        debug!(subject = %subject.digest, %tag, "updating the referrers fallback tag");
        self.put_manifest(&tag, media_types::OCI_INDEX, index.raw(), index.digest())
            .await
            .map(drop)
    }
}
