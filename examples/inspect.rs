//! Print the tree of an image in an OCI image layout: index -> manifests with platforms ->
//! config and layers, with media types, sizes and digests.
//!
//! ```text
//! cargo run --example inspect -- oci:PATH[:TAG|@DIGEST] [--json]
//! cargo run --example inspect -- s3://BUCKET/PREFIX[:TAG|@DIGEST]    # AWS_* variables: see copy
//! cargo run --example inspect -- docker-archive:PATH[:REFERENCE]   # or oci-archive:PATH[:TAG]
//! cargo run --example inspect -- --help
//! ```
//!
//! Without `:TAG`: the layout's only tag (with several, the one named `latest`), as for copy;
//! `@DIGEST` names any stored manifest or index (an untagged `index.json` entry, say). As with
//! skopeo, PATH ends at the first ':'. Manifests are fetched verified
//! against the digest, size and media type that named them; configs and layers are only
//! checked to exist with the right size (they are not hashed).
//!
//! Exit status: 0 when the tree is complete and consistent; 1 when content is missing or does
//! not match its descriptor (the tree is still printed, problems marked); 2 on a bad command
//! line or reference (unknown tag, not a layout); 3 when the layout cannot be read.
//!
//! Tags, media types, platforms and annotations come from the layout: they are printed with
//! their control characters escaped (in `--json`, as JSON `\u` escapes). A closed output
//! (`inspect … | head -1`) ends the printing quietly; the exit status stays the one above.
//! `--log-level` (or `RUST_LOG`) enables the library's logs on standard error.
//!
//! This reads through `oci-store` (`LayoutStore` opened read-only: tags, `stat`, verified
//! manifest fetches), the same code `copy`, `gc` and `fsck` use; nothing in the layout changes.
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use clap::Parser;
use oci_examples::cli::{self, LogArgs};
use oci_examples::size::Size;
use oci_examples::transport::{self, Endpoint, NoDefaultTag, Source};
use oci_examples::{Escaped, escape, fail, outln};
use oci_manifest::{Descriptor, ParseOptions, annotations};
use oci_store::{StoreError, resolve_reference};
use serde::Serialize;

const PROGRAM: &str = "inspect";

/// Print the tree of an image in an OCI image layout: index -> manifests with platforms ->
/// config and layers, with media types, sizes and digests
#[derive(Parser)]
#[command(
    name = "inspect",
    bin_name = "inspect",
    after_help = "Exit status: 0 the tree is complete and consistent; 1 content missing or not \
matching its descriptor (the tree is still printed, problems marked); 2 bad usage or reference \
(unknown tag, not a layout); 3 the layout cannot be read."
)]
struct Cli {
    /// The image: oci:PATH[:TAG|@DIGEST]
    ///
    /// oci:PATH ends at the first ':' (as with skopeo). Without TAG: the layout's only tag
    /// (with several, the one named "latest"), as for copy; @DIGEST names any stored manifest
    /// or index (an untagged index.json entry, say).
    #[arg(value_name = "IMAGE", value_parser = cli::stored_image)]
    image: Endpoint,
    /// Print the tree as JSON (text from the layout as JSON escapes)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: LogArgs,
}

/// Why inspection could not start or finish; each kind has its exit status.
enum Failure {
    /// The image named by digest does not match it (status 1).
    Content(String),
    /// Bad command line or reference (status 2).
    Usage(String),
    /// The layout cannot be read (status 3).
    Io(String),
}

impl Failure {
    /// Classifies a store error met while opening the layout or resolving the reference.
    fn from_store(e: &StoreError) -> Failure {
        let message = oci_examples::chain(e);
        match e {
            StoreError::NotALayout { .. }
            | StoreError::CorruptLayout { .. }
            | StoreError::InvalidTag { .. }
            | StoreError::InvalidDigest { .. }
            | StoreError::TagNotFound { .. }
            | StoreError::NotFound { .. }
            | StoreError::InvalidManifest { .. }
            | StoreError::NoMatchingPlatform { .. }
            | StoreError::PlatformMissing { .. }
            | StoreError::ManifestTooLarge { .. }
            | StoreError::InvalidArchive { .. } => Failure::Usage(message),
            StoreError::Verify(_) | StoreError::SizeMismatch { .. } => Failure::Content(message),
            _ => Failure::Io(message),
        }
    }
}

/// One node of the printed tree.
struct Node {
    role: &'static str,
    descriptor: Descriptor,
    /// Problems found with this node's content (missing, size or digest mismatch, invalid).
    problems: Vec<String>,
    children: Vec<Node>,
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse();
    cli.log.init(PROGRAM);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(PROGRAM, 3, e),
    };
    // The image as typed (JSON escapes it; the tree prints it escaped).
    let reference = cli.image.as_typed();
    match rt.block_on(run(&cli.image)) {
        Ok(root) => {
            if cli.json {
                let out = JsonOut {
                    reference: &reference,
                    root: to_json(&root),
                };
                match serde_json::to_string_pretty(&out) {
                    Ok(s) => {
                        outln!("{}", oci_examples::escape_json(&s));
                    }
                    Err(e) => return fail(PROGRAM, 3, e),
                }
            } else if outln!("{}", escape(&reference)) {
                print_tree(&root, "", true, true);
            }
            if has_problems(&root) {
                return fail(
                    PROGRAM,
                    1,
                    "the image is incomplete or inconsistent (see above)",
                );
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Content(m)) => fail(PROGRAM, 1, m),
        Err(Failure::Usage(m)) => fail(PROGRAM, 2, m),
        Err(Failure::Io(m)) => fail(PROGRAM, 3, m),
    }
}

async fn run(image: &Endpoint) -> Result<Node, Failure> {
    // cli::stored_image admits no registry; a layout is opened read-only, an archive read.
    let opened = transport::open_local(image, false)
        .await
        .map_err(|e| Failure::from_store(&e))?;
    let store = opened.source();
    let place = image.place();
    let name = image.reference();
    let root = match name {
        Some(name) => match resolve_reference(store, &name).await {
            Ok(d) => d,
            Err(StoreError::TagNotFound { tag }) => {
                return Err(Failure::Usage(format!(
                    "no image tagged \"{}\" in {}; tags: {}",
                    escape(&tag),
                    Escaped(&place),
                    tag_list(store).await
                )));
            }
            Err(StoreError::NotFound { digest }) => {
                return Err(Failure::Usage(format!(
                    "no content {digest} in {}",
                    Escaped(&place)
                )));
            }
            Err(e) => return Err(Failure::from_store(&e)),
        },
        None => {
            let tag = transport::source_reference(image, &opened)
                .await
                .map_err(|e| match e {
                    NoDefaultTag::Store(e) => Failure::from_store(&e),
                    NoDefaultTag::Ambiguous(m) => Failure::Usage(m),
                })?;
            resolve_reference(store, &tag)
                .await
                .map_err(|e| Failure::from_store(&e))?
        }
    };
    let role = entry_role(&root);
    Ok(walk(store, root, role, 0).await)
}

/// The layout's tags for an error message.
async fn tag_list(store: &dyn Source) -> String {
    match store.tags().await {
        Ok(tags) if tags.is_empty() => "none".to_owned(),
        Ok(tags) => escape(&tags.join(", ")).into_owned(),
        Err(e) => format!("(cannot list them: {})", oci_examples::chain(&e)),
    }
}

fn entry_role(d: &Descriptor) -> &'static str {
    if d.is_index() {
        "index"
    } else if d.is_manifest() {
        "manifest"
    } else {
        "blob"
    }
}

/// What is wrong with content the store could not serve as described.
fn problem(d: &Descriptor, e: &StoreError) -> String {
    match e {
        StoreError::NotFound { .. } => missing(d),
        StoreError::SizeMismatch {
            expected, actual, ..
        } => size_mismatch(*expected, *actual),
        // The store's verification of the bytes against the descriptor that named them.
        StoreError::Verify(v) => format!("{} {}", entry_role(d), Escaped(v)),
        other => oci_examples::chain(other),
    }
}

fn missing(d: &Descriptor) -> String {
    if d.is_non_distributable() {
        "not present (non-distributable layer)".to_owned()
    } else {
        "missing".to_owned()
    }
}

fn size_mismatch(expected: u64, actual: u64) -> String {
    format!("size mismatch: descriptor says {expected} bytes, store has {actual} bytes")
}

/// The tree below `d`: manifests are fetched (verified) and walked; other content is only
/// checked to be stored with the described size.
fn walk<'a>(
    store: &'a dyn Source,
    d: Descriptor,
    role: &'static str,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Node> + 'a>> {
    Box::pin(async move {
        let mut node = Node {
            role,
            descriptor: d,
            problems: Vec::new(),
            children: Vec::new(),
        };
        let d = &node.descriptor;
        if !d.is_manifest() {
            match store.stat(&d.digest).await {
                Ok(Some(size)) if size == d.size => {}
                Ok(Some(size)) => node.problems.push(size_mismatch(d.size, size)),
                Ok(None) => node.problems.push(missing(d)),
                Err(e) => node.problems.push(problem(d, &e)),
            }
            return node;
        }
        if let Err(e) = ParseOptions::default().check_depth(depth, &d.digest) {
            node.problems.push(escape(&e.to_string()).into_owned());
            return node;
        }
        let m = match store.fetch_manifest(d).await {
            Ok(m) => m,
            Err(e) => {
                node.problems.push(problem(d, &e));
                return node;
            }
        };
        let mut children = Vec::new();
        if let Some(s) = m.subject() {
            // The subject is another image: named, not walked.
            children.push(Node {
                role: "subject",
                descriptor: s.clone(),
                problems: Vec::new(),
                children: Vec::new(),
            });
        }
        if let Some(c) = m.config() {
            children.push(walk(store, c.clone(), "config", depth + 1).await);
        }
        for l in m.layers() {
            children.push(walk(store, l.clone(), "layer", depth + 1).await);
        }
        for e in m.manifests() {
            children.push(walk(store, e.clone(), entry_role(e), depth + 1).await);
        }
        node.children = children;
        node
    })
}

fn has_problems(n: &Node) -> bool {
    !n.problems.is_empty() || n.children.iter().any(has_problems)
}

/// Prints the tree below `n`; stops once standard output is closed.
fn print_tree(n: &Node, prefix: &str, last: bool, root: bool) {
    let d = &n.descriptor;
    let mut line = String::new();
    line.push_str(n.role);
    // Everything but the role, the digest and the size comes from the layout: escaped.
    if let Some(p) = &d.platform {
        line.push_str(&format!(" {}", Escaped(p)));
    }
    if let Some(a) = &d.artifact_type {
        line.push_str(&format!(" [{}]", escape(a)));
    }
    if let Some(t) = d.annotation(annotations::REF_NAME) {
        line.push_str(&format!(" tag={}", escape(t)));
    }
    if let Some(t) = d.annotation(annotations::DOCKER_REFERENCE_TYPE) {
        line.push_str(&format!(" ({})", escape(t)));
    }
    line.push_str(&format!(
        "  {}  {}  {}",
        d.digest,
        escape(&d.media_type),
        Size(d.size)
    ));
    for p in &n.problems {
        line.push_str(&format!("  !! {p}"));
    }
    let (branch, next) = match (root, last) {
        (true, _) => ("", String::new()),
        (false, true) => ("└── ", format!("{prefix}    ")),
        (false, false) => ("├── ", format!("{prefix}│   ")),
    };
    if !outln!("{prefix}{branch}{line}") {
        return;
    }
    for (i, c) in n.children.iter().enumerate() {
        print_tree(c, &next, i + 1 == n.children.len(), false);
    }
}

/// The JSON form of a [`Node`], fields in reading order.
#[derive(Serialize)]
struct JsonNode<'a> {
    role: &'static str,
    descriptor: &'a Descriptor,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    problems: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    children: Vec<JsonNode<'a>>,
}

fn to_json(n: &Node) -> JsonNode<'_> {
    JsonNode {
        role: n.role,
        descriptor: &n.descriptor,
        problems: &n.problems,
        children: n.children.iter().map(to_json).collect(),
    }
}

/// The whole `--json` document.
#[derive(Serialize)]
struct JsonOut<'a> {
    reference: &'a str,
    root: JsonNode<'a>,
}
