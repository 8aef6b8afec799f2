//! Recipes: the jobs users of these crates do most, each as a complete program.
//!
//! Every recipe here is compiled as a doc test; the ones that need no registry also run. The
//! others are marked `no_run` and expect a registry at `127.0.0.1:5000` (for example
//! `docker-registry` or `docker run -p 5000:5000 registry:2`), reached over plain HTTP.
//!
//! | recipe | crates |
//! |---|---|
//! | [Pull one platform of an image into a layout](#pull-one-platform-of-an-image-into-a-layout) | client, store |
//! | [Push a layout to a registry](#push-a-layout-to-a-registry) | client, store |
//! | [Copy with referrers](#copy-with-referrers) | client, store |
//! | [Check a registry that may lie](#check-a-registry-that-may-lie) | client, store |
//! | [GC and fsck a store](#gc-and-fsck-a-store) | store |
//! | [Parse and verify a manifest held as oci-spec types](#parse-and-verify-a-manifest-held-as-oci-spec-types) | manifest (feature `oci-spec`) |
//!
//! # Pull one platform of an image into a layout
//!
//! A [`Repository`](crate::Repository) is a store like any other, so a pull is
//! [`oci_store::copy_leased`] from the repository into a
//! [`LayoutStore`](oci_store::LayoutStore). `with_platform` reduces an index to the platforms
//! asked for: the layout gets a new, smaller index (its digest differs from the registry's;
//! the report's `dropped` lists what was left out), and only that platform's blobs move. Every
//! blob is verified against its digest before it becomes visible in the layout, and the lease
//! keeps a garbage collection running beside the pull from removing what it has written.
//!
//! ```no_run
//! use oci_distribution_client::{Client, ClientConfig, Reference};
//! use oci_manifest::platform;
//! use oci_store::{CopyOptions, LayoutOptions, LayoutStore, copy_leased};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientConfig::default().with_plain_http("127.0.0.1:5000"))?;
//! let reference: Reference = "127.0.0.1:5000/library/busybox:latest".parse()?;
//! let repository = client.repository(&reference)?;
//! let layout = LayoutStore::open_with("./busybox-arm64", &LayoutOptions::create()).await?;
//!
//! let options = CopyOptions::default().with_platform(platform::parse("linux/arm64/v8")?);
//! let report = copy_leased(
//!     &repository,
//!     &reference.manifest_reference(),
//!     &layout,
//!     Some("latest"),
//!     &options,
//! )
//! .await?;
//! println!(
//!     "{} blobs copied ({} bytes), {} already there, result {}",
//!     report.copied,
//!     report.bytes_copied,
//!     report.skipped,
//!     report.result.map(|d| d.digest.to_string()).unwrap_or_default(),
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Push a layout to a registry
//!
//! The same copy in the other direction. Blobs the registry has are skipped, blobs another
//! repository of the same registry has are mounted, and the rest are uploaded, children first,
//! so the registry never holds a manifest whose layers are missing; the tag is written last.
//! With [`ClientConfig::with_upload_state_dir`](crate::ClientConfig::with_upload_state_dir),
//! an upload interrupted by a crash continues where it stopped when the same copy runs again.
//!
//! ```no_run
//! use oci_distribution_client::{Client, ClientConfig, Reference};
//! use oci_store::{CopyOptions, LayoutOptions, LayoutStore, copy};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let layout = LayoutStore::open_with("./app", &LayoutOptions::read_only()).await?;
//! let client = Client::new(
//!     ClientConfig::default()
//!         .with_plain_http("127.0.0.1:5000")
//!         .with_upload_state_dir("./.upload-state"),
//! )?;
//! let target: Reference = "127.0.0.1:5000/team/app:v1".parse()?;
//! let repository = client.repository(&target)?;
//!
//! let report = copy(&layout, "v1", &repository, Some("v1"), &CopyOptions::default().with_jobs(4))
//!     .await?;
//! println!("pushed {} blobs, mounted {}, skipped {}", report.copied, report.mounted, report.skipped);
//! # Ok(())
//! # }
//! ```
//!
//! # Copy with referrers
//!
//! Signatures, SBOMs and attestations refer to an image through their `subject`; they are found
//! through the registry's referrers API, or the tag-schema fallback
//! ([`oci_store::referrers_tag`]) on registries without it. `with_referrers(true)` copies them
//! with the image (for every manifest that is copied unchanged), and the destination gets them
//! the same way: through its referrers API or the fallback tag.
//!
//! ```no_run
//! use oci_distribution_client::{Client, ClientConfig, Reference};
//! use oci_store::{CopyOptions, copy};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientConfig::default().with_plain_http("127.0.0.1:5000"))?;
//! let from: Reference = "127.0.0.1:5000/team/app:v1".parse()?;
//! let to: Reference = "127.0.0.1:5000/mirror/app:v1".parse()?;
//! let (source, destination) = (client.repository(&from)?, client.repository(&to)?);
//!
//! let report = copy(
//!     &source,
//!     &from.manifest_reference(),
//!     &destination,
//!     Some("v1"),
//!     &CopyOptions::default().with_referrers(true),
//! )
//! .await?;
//! for referrer in &report.referrers {
//!     println!("referrer {} ({})", referrer.digest, referrer.media_type);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Check a registry that may lie
//!
//! A registry behind a cache can answer `HEAD` with 200 for a blob its storage lost after a
//! garbage collection, and a push that trusts that answer skips the blob and leaves an image
//! that cannot be pulled. [`oci_store::checked_exists`] asks and then proves it: it reads the
//! blob's last byte, which a registry that lost the data cannot send. A copy does the same for
//! everything it would skip with [`VerifyMode::Range`](oci_store::VerifyMode::Range) and stores
//! again what the registry claims but does not serve (counted in the report's `repaired`);
//! [`VerifyMode::Full`](oci_store::VerifyMode::Full) reads everything back and verifies it.
//!
//! ```no_run
//! use oci_distribution_client::{Client, ClientConfig, Reference};
//! use oci_store::{CopyOptions, LayoutStore, TagStore, VerifyMode, checked_exists, copy};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientConfig::default().with_plain_http("127.0.0.1:5000"))?;
//! let target: Reference = "127.0.0.1:5000/team/app:v1".parse()?;
//! let repository = client.repository(&target)?;
//! let layout = LayoutStore::open("./app").await?;
//!
//! // One descriptor: does the registry really serve it?
//! let manifest = layout.resolve("v1").await?;
//! if !checked_exists(&repository, &manifest).await? {
//!     println!("{} is claimed or missing, not served", manifest.digest);
//! }
//!
//! // A whole push that checks every answer and repairs what is missing.
//! let options = CopyOptions::default().with_verify(VerifyMode::Range);
//! let report = copy(&layout, "v1", &repository, Some("v1"), &options).await?;
//! println!("{} blobs stored again after the registry claimed them", report.repaired);
//! # Ok(())
//! # }
//! ```
//!
//! # GC and fsck a store
//!
//! Content lives while a tag, an untagged `index.json` entry, a lease or an active ingest
//! reaches it: deleting one image ([`untag`](oci_store::TagStore::untag)) never removes what
//! another still uses. [`gc`](oci_store::ManagedStore::gc) removes the rest (a dry run lists
//! exactly what a real run would remove), online, beside copies in this and other processes.
//! [`fsck`](oci_store::ManagedStore::fsck) hashes every blob again and reports corrupt,
//! missing and wrongly sized content; with [`FsckOptions::repair`](oci_store::FsckOptions::repair)
//! it removes corrupt blobs so that the next copy fetches them again.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use oci_manifest::{Descriptor, build::ImageManifestBuilder, media_types};
//! use oci_store::{
//!     FsckOptions, GcOptions, LayoutOptions, LayoutStore, ManagedStore, ReadStore, TagStore, WriteStore,
//! };
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let dir = std::env::temp_dir().join(format!("oci-rs-cookbook-gc-{}", std::process::id()));
//! let store = LayoutStore::open_with(&dir, &LayoutOptions::create()).await?;
//!
//! // Two images sharing one layer.
//! let shared = Bytes::from_static(b"shared layer");
//! let shared_desc = Descriptor::of(media_types::OCI_LAYER_TAR, &shared);
//! store.push_bytes(&shared_desc, shared).await?;
//! for (tag, config) in [("a", &b"{\"a\":1}"[..]), ("b", &b"{\"b\":1}"[..])] {
//!     let config = Bytes::copy_from_slice(config);
//!     let config_desc = Descriptor::of(media_types::OCI_CONFIG, &config);
//!     store.push_bytes(&config_desc, config).await?;
//!     let manifest = ImageManifestBuilder::oci(config_desc).layer(shared_desc.clone()).build()?;
//!     store.push_bytes(&manifest.descriptor(), manifest.raw().clone()).await?;
//!     store.tag(&manifest.descriptor(), tag).await?;
//! }
//! assert_eq!(store.refcount(&shared_desc.digest).await?, 2);
//!
//! // Delete image "a": its manifest and config go, the shared layer stays for "b".
//! store.untag("a").await?;
//! let now = GcOptions::default().with_min_age(Duration::ZERO);
//! let plan = store.gc(&now.clone().with_dry_run(true)).await?;
//! let report = store.gc(&now).await?;
//! assert_eq!(plan.removed, report.removed); // the dry run listed exactly what went
//! assert_eq!(report.removed.len(), 2);
//! assert!(store.exists(&shared_desc.digest).await?);
//!
//! // Every remaining blob hashes to its name.
//! let fsck = store.fsck(&FsckOptions::default()).await?;
//! assert!(fsck.is_clean());
//! assert_eq!(fsck.checked, 3);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Parse and verify a manifest held as oci-spec types
//!
//! A tool that already holds [`oci_spec`](https://docs.rs/oci-spec) values converts them with
//! the `oci-spec` feature of `oci-manifest` (and of `oci-digest`). An oci-spec manifest has no
//! bytes of its own: the conversion serialises it once, canonically, validates the result like
//! anything received, and keeps those bytes, so the digest is what a push of it produces.
//! Bytes received from elsewhere are checked against the descriptor that named them with
//! [`Manifest::parse_verified`](oci_manifest::Manifest::parse_verified), and a parsed manifest
//! converts to oci-spec's type to be read or edited (keep [`Manifest::raw`](oci_manifest::Manifest::raw)
//! for storing and pushing: oci-spec's serialisation would be new bytes with a new digest).
//!
//! ```
//! use oci_manifest::{Descriptor, Manifest};
//! use oci_spec::image::{DescriptorBuilder, ImageManifest, ImageManifestBuilder, MediaType};
//!
//! let config = DescriptorBuilder::default()
//!     .media_type(MediaType::ImageConfig)
//!     .digest(oci_spec::image::Digest::try_from(
//!         "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
//!     )?)
//!     .size(2u64)
//!     .build()?;
//! let theirs: ImageManifest = ImageManifestBuilder::default()
//!     .schema_version(2u32)
//!     .media_type(MediaType::ImageManifest)
//!     .config(config)
//!     .layers(vec![])
//!     .build()?;
//!
//! // oci-spec -> ours: canonical bytes, validated, kept.
//! let ours = Manifest::try_from(&theirs)?;
//! let pushed_as: Descriptor = ours.descriptor();
//!
//! // Later, the same bytes come back from a registry: verify them against the descriptor.
//! let received = ours.raw().clone();
//! let checked = Manifest::parse_verified(received, None, &pushed_as, &Default::default())?;
//! assert_eq!(checked.digest(), &pushed_as.digest);
//!
//! // Tampered bytes are refused, naming the expected and actual digests.
//! let mut tampered = ours.raw().to_vec();
//! tampered.push(b' ');
//! assert!(Manifest::parse_verified(tampered, None, &pushed_as, &Default::default()).is_err());
//!
//! // Ours -> oci-spec, to read or edit with oci-spec's API.
//! let back = ImageManifest::try_from(&checked)?;
//! assert_eq!(back.config().digest().to_string(), theirs.config().digest().to_string());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
