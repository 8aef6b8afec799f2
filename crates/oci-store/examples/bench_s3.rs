//! The raw limits and the scale test of `scripts/bench-s3.sh` (issue 14), on the bucket the
//! `AWS_*` variables name (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_REGION`, ...):
//!
//! ```text
//! bench_s3 raw-put BUCKET PREFIX FILE...   multipart uploads of the files, all at once, each as
//!                                          object_store's WriteMultipart: 8 MiB parts, 4 in flight
//! bench_s3 raw-get BUCKET PREFIX DIR NAME... GETs of PREFIX/NAME to DIR/NAME, all at once,
//!                                          streamed through 1 MiB buffers, each file fsynced
//!                                          (as durable as a layout's blob); --no-sync: not fsynced
//! bench_s3 gc-fill BUCKET PREFIX IMAGES LAYERS GARBAGE
//!                                          an OCI layout under PREFIX written directly: IMAGES
//!                                          tagged images of LAYERS small layers (+ manifest and
//!                                          config each), and GARBAGE unreferenced small blobs
//! bench_s3 gc BUCKET PREFIX [--dry-run]    a BucketStore collection (min_age 0), timed, with the
//!                                          HTTP requests it made counted by kind
//! ```
//!
//! Built with `cargo build --release -p oci-store --features object-store --example bench_s3`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStoreExt, WriteMultipart};
use oci_store::{Backend, BucketOptions, BucketStore, GcOptions, ManagedStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

const PART: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = rt.block_on(run(&args)) {
        eprintln!("bench_s3: {}", oci_store::error_chain(&*e));
        std::process::exit(1);
    }
}

async fn run(args: &[String]) -> Result<(), Error> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["raw-put", bucket, prefix, files @ ..] if !files.is_empty() => {
            raw_put(&s3(bucket, None)?, prefix, files).await
        }
        ["raw-get", bucket, prefix, dir, rest @ ..] if !rest.is_empty() => {
            let sync = rest[0] != "--no-sync";
            let names = if sync { rest } else { &rest[1..] };
            raw_get(&s3(bucket, None)?, prefix, dir, names, sync).await
        }
        ["gc-fill", bucket, prefix, images, layers, garbage] => {
            gc_fill(
                &s3(bucket, None)?,
                prefix,
                images.parse()?,
                layers.parse()?,
                garbage.parse()?,
            )
            .await
        }
        ["gc", bucket, prefix, rest @ ..] => gc(bucket, prefix, rest == ["--dry-run"]).await,
        _ => Err("usage: see the documentation at the top of examples/bench_s3.rs".into()),
    }
}

/// The S3 client of the environment's configuration, its requests counted when `counts` is
/// given.
fn s3(bucket: &str, counts: Option<Counts>) -> Result<AmazonS3, Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if let Some(c) = counts {
        b = b.with_http_connector(Counting(c));
    }
    Ok(b.build()?)
}

async fn raw_put(store: &AmazonS3, prefix: &str, files: &[&str]) -> Result<(), Error> {
    let started = Instant::now();
    let uploads = files.iter().map(|f| async move {
        let name = std::path::Path::new(f)
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("a file name")?;
        let upload = store
            .put_multipart(&Path::from(format!("{prefix}/{name}")))
            .await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut file = tokio::fs::File::open(f).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            w.write(&buf[..n]);
        }
        w.finish().await?;
        Ok::<(), Error>(())
    });
    futures_util::future::try_join_all(uploads).await?;
    eprintln!("raw-put: {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn raw_get(
    store: &AmazonS3,
    prefix: &str,
    dir: &str,
    names: &[&str],
    sync: bool,
) -> Result<(), Error> {
    let started = Instant::now();
    let gets = names.iter().map(|name| async move {
        let got = store.get(&Path::from(format!("{prefix}/{name}"))).await?;
        let file = tokio::fs::File::create(format!("{dir}/{name}")).await?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut body = got.into_stream();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        if sync {
            out.into_inner().sync_all().await?;
        }
        Ok::<(), Error>(())
    });
    futures_util::future::try_join_all(gets).await?;
    eprintln!("raw-get: {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A small blob with a body of its own: its key, digest and bytes.
fn blob(prefix: &str, body: Vec<u8>) -> (Path, String, usize, Bytes) {
    let d = oci_store::Algorithm::Sha256.hash(&body);
    let key = Path::from(format!("{prefix}/blobs/sha256/{}", d.encoded()));
    (key, d.to_string(), body.len(), Bytes::from(body))
}

async fn gc_fill(
    store: &AmazonS3,
    prefix: &str,
    images: usize,
    layers: usize,
    garbage: usize,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut objects: Vec<(Path, Bytes)> = Vec::new();
    let mut manifests = Vec::new();
    for i in 0..images {
        let mut layer_descs = Vec::new();
        for l in 0..layers {
            let (key, digest, size, body) =
                blob(prefix, format!("layer {l} of image {i}\n").into_bytes());
            objects.push((key, body));
            layer_descs.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size,
            }));
        }
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"comment":"image {i}"}}"#
        );
        let (key, cdigest, csize, body) = blob(prefix, config.into_bytes());
        objects.push((key, body));
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
            "layers": layer_descs,
        }))?;
        let (key, mdigest, msize, body) = blob(prefix, manifest);
        objects.push((key, body));
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": format!("image-{i}")},
        }));
    }
    let live = objects.len();
    for g in 0..garbage {
        let (key, _, _, body) = blob(prefix, format!("unreferenced blob {g}\n").into_bytes());
        objects.push((key, body));
    }
    let index =
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))?;
    objects.push((
        Path::from(format!("{prefix}/index.json")),
        Bytes::from(index),
    ));
    objects.push((
        Path::from(format!("{prefix}/oci-layout")),
        Bytes::from_static(br#"{"imageLayoutVersion":"1.0.0"}"#),
    ));
    let total = objects.len();
    futures_util::stream::iter(
        objects
            .into_iter()
            .map(|(key, body)| async move { store.put(&key, body.into()).await.map(|_| ()) }),
    )
    .buffer_unordered(64)
    .try_collect::<Vec<()>>()
    .await?;
    eprintln!(
        "gc-fill: {total} objects ({live} live blobs, {garbage} unreferenced) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn gc(bucket: &str, prefix: &str, dry_run: bool) -> Result<(), Error> {
    let counts = Counts::default();
    let s3 = Arc::new(s3(bucket, Some(counts.clone()))?);
    // The collection makes no multipart uploads, so a plain custom backend over the counted
    // client collects exactly as `Backend::s3` does.
    let backend = Backend::custom(s3.clone(), s3, format!("s3://{bucket}"));
    let t = Instant::now();
    let store = BucketStore::open(&backend, prefix, &BucketOptions::default()).await?;
    let open_s = t.elapsed().as_secs_f64();
    let opened = counts.take();
    let mut options = if dry_run {
        GcOptions::dry_run()
    } else {
        GcOptions::default()
    };
    options = options.with_min_age(std::time::Duration::ZERO);
    let t = Instant::now();
    let report = store.gc(&options).await?;
    let gc_s = t.elapsed().as_secs_f64();
    let used = counts.take();
    println!(
        "open: {open_s:.2} s, {} requests {}",
        opened.values().sum::<u64>(),
        fmt_counts(&opened)
    );
    println!(
        "gc{}: {gc_s:.2} s, {} blobs listed, {} live, {} removed; {} requests {}",
        if dry_run { " --dry-run" } else { "" },
        report.blobs,
        report.live,
        report.removed.len(),
        used.values().sum::<u64>(),
        fmt_counts(&used)
    );
    Ok(())
}

fn fmt_counts(c: &BTreeMap<&'static str, u64>) -> String {
    let parts: Vec<String> = c.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("({})", parts.join(", "))
}

/// HTTP requests by kind.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<BTreeMap<&'static str, Arc<AtomicU64>>>>);

impl Counts {
    fn add(&self, kind: &'static str) {
        let c = match self.0.lock() {
            Ok(mut m) => m.entry(kind).or_default().clone(),
            Err(_) => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far, set back to zero.
    fn take(&self) -> BTreeMap<&'static str, u64> {
        match self.0.lock() {
            Ok(m) => m
                .iter()
                .map(|(k, v)| (*k, v.swap(0, Ordering::Relaxed)))
                .filter(|(_, v)| *v > 0)
                .collect(),
            Err(_) => BTreeMap::new(),
        }
    }
}

fn kind(req: &HttpRequest) -> &'static str {
    let q = req.uri().query().unwrap_or("");
    let has = |k: &str| {
        q.split('&')
            .any(|kv| kv == k || kv.starts_with(&format!("{k}=")))
    };
    match *req.method() {
        http::Method::GET if has("list-type") => "LIST",
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::PUT if req.headers().contains_key("x-amz-copy-source") => "COPY",
        http::Method::PUT => "PUT",
        http::Method::POST if has("delete") => "DELETE-BATCH",
        http::Method::POST => "POST",
        http::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

#[derive(Debug)]
struct Counting(Counts);

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counts")
    }
}

impl HttpConnector for Counting {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService(inner, self.0.clone())))
    }
}

#[derive(Debug)]
struct CountingService(HttpClient, Counts);

#[async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.1.add(kind(&req));
        self.0.execute(req).await
    }
}
