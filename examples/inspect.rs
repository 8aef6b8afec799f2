//! Print the tree of an image in an OCI image layout: index -> manifests with platforms ->
//! config and layers, with media types, sizes and digests.
//!
//! ```text
//! cargo run --example inspect -- oci:PATH[:TAG] [--json]
//! ```
//!
//! Without `:TAG` the layout must hold exactly one image. Manifests are read from
//! `blobs/<alg>/<hex>` and checked against the digest and size that named them; configs and
//! layers are only checked to exist with the right size (they are not hashed).
//!
//! Exit status: 0 when the tree is complete and consistent; 1 when content is missing or does
//! not match its descriptor (the tree is still printed, problems marked); 2 on a bad command
//! line or reference (unknown tag, not a layout); 3 when the layout cannot be read.
//!
//! This reads the layout directly; it will move onto `oci-store` once that exists.
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use oci_examples::fail;
use oci_manifest::{Descriptor, Manifest, ParseOptions, annotations, media_types};
use serde::Serialize;
use serde_json::Value;

const PROGRAM: &str = "inspect";
const USAGE: &str = "usage: inspect oci:PATH[:TAG] [--json]";

/// Why inspection could not start or finish.
enum Failure {
    Usage(String),
    Io(String),
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
    let mut json_out = false;
    let mut reference = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json_out = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if reference.is_none() => reference = Some(arg),
            _ => return fail(PROGRAM, 2, format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    let Some(reference) = reference else {
        return fail(PROGRAM, 2, USAGE);
    };
    match run(&reference) {
        Ok(root) => {
            if json_out {
                let out = JsonOut {
                    reference: &reference,
                    root: to_json(&root),
                };
                match serde_json::to_string_pretty(&out) {
                    Ok(s) => println!("{s}"),
                    Err(e) => return fail(PROGRAM, 3, e),
                }
            } else {
                println!("{reference}");
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
        Err(Failure::Usage(m)) => fail(PROGRAM, 2, m),
        Err(Failure::Io(m)) => fail(PROGRAM, 3, m),
    }
}

/// Splits `oci:PATH[:TAG]`: the tag is what follows the last `:` when it has no `/`.
fn split_reference(reference: &str) -> Result<(PathBuf, Option<String>), Failure> {
    let Some(rest) = reference.strip_prefix("oci:") else {
        return Err(Failure::Usage(format!(
            "{reference:?} is not an oci:PATH[:TAG] reference\n{USAGE}"
        )));
    };
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => {
            if tag.is_empty() {
                return Err(Failure::Usage(format!("empty tag in {reference:?}")));
            }
            Ok((PathBuf::from(path), Some(tag.to_owned())))
        }
        _ if rest.is_empty() => Err(Failure::Usage(format!("empty path in {reference:?}"))),
        _ => Ok((PathBuf::from(rest), None)),
    }
}

fn run(reference: &str) -> Result<Node, Failure> {
    let (layout, tag) = split_reference(reference)?;
    let opts = ParseOptions::default();
    check_layout_marker(&layout)?;
    let index_path = layout.join("index.json");
    let raw = read_limited(&index_path, opts.max_size)
        .map_err(|e| Failure::Io(format!("{}: {e}", index_path.display())))?;
    let top = Manifest::parse_with(raw, Some(media_types::OCI_INDEX), &opts)
        .map_err(|e| Failure::Usage(format!("{}: {e}", index_path.display())))?;
    let tagged = |d: &&Descriptor| -> Option<String> {
        d.annotation(annotations::REF_NAME).map(str::to_owned)
    };
    let entry = match &tag {
        Some(t) => top
            .manifests()
            .iter()
            .find(|d| d.annotation(annotations::REF_NAME) == Some(t.as_str())),
        None if top.manifests().len() == 1 => top.manifests().first(),
        None => None,
    };
    let Some(entry) = entry else {
        let tags: Vec<String> = top.manifests().iter().filter_map(|d| tagged(&d)).collect();
        let what = match &tag {
            Some(t) => format!("no image tagged {t:?} in {}", layout.display()),
            None => format!(
                "{} holds {} images: name one with oci:PATH:TAG",
                layout.display(),
                top.manifests().len()
            ),
        };
        return Err(Failure::Usage(format!(
            "{what}; tags: {}",
            if tags.is_empty() {
                "none".to_owned()
            } else {
                tags.join(", ")
            }
        )));
    };
    Ok(walk(&layout, entry.clone(), entry_role(entry), 0, &opts))
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

fn check_layout_marker(layout: &Path) -> Result<(), Failure> {
    let marker = layout.join("oci-layout");
    let raw = read_limited(&marker, 4096).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Failure::Usage(format!(
            "{} is not an OCI image layout (no oci-layout file)",
            layout.display()
        )),
        _ => Failure::Io(format!("{}: {e}", marker.display())),
    })?;
    let v: Value = serde_json::from_slice(&raw)
        .map_err(|e| Failure::Usage(format!("{}: {e}", marker.display())))?;
    match v.get("imageLayoutVersion").and_then(Value::as_str) {
        Some("1.0.0") => Ok(()),
        other => Err(Failure::Usage(format!(
            "{}: unsupported imageLayoutVersion {other:?}",
            marker.display()
        ))),
    }
}

/// Reads a file of at most `limit` bytes (larger files are refused without being read whole).
fn read_limited(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the limit of {limit} bytes"),
        ));
    }
    Ok(buf)
}

fn blob_path(layout: &Path, d: &Descriptor) -> PathBuf {
    // Digest is validated by its parser: algorithm and hex only, safe as path components.
    layout
        .join("blobs")
        .join(d.digest.algorithm().as_str())
        .join(d.digest.encoded())
}

fn walk(
    layout: &Path,
    d: Descriptor,
    role: &'static str,
    depth: usize,
    opts: &ParseOptions,
) -> Node {
    let mut node = Node {
        role,
        descriptor: d,
        problems: Vec::new(),
        children: Vec::new(),
    };
    let d = &node.descriptor;
    let path = blob_path(layout, d);
    if !d.is_manifest() {
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == d.size => {}
            Ok(m) => node.problems.push(format!(
                "size mismatch: descriptor says {}, file has {}",
                d.size,
                m.len()
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let reason = if media_types::is_non_distributable(&d.media_type) {
                    "not present (non-distributable layer)"
                } else {
                    "missing"
                };
                node.problems.push(reason.to_owned());
            }
            Err(e) => node.problems.push(format!("{}: {e}", path.display())),
        }
        return node;
    }
    if let Err(e) = opts.check_depth(depth, &d.digest) {
        node.problems.push(e.to_string());
        return node;
    }
    let raw = match read_limited(&path, opts.max_size) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            node.problems.push("missing".to_owned());
            return node;
        }
        Err(e) => {
            node.problems.push(format!("{}: {e}", path.display()));
            return node;
        }
    };
    let m = match Manifest::parse_verified(raw, None, d, opts) {
        Ok(m) => m,
        Err(e) => {
            node.problems.push(e.to_string());
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
        children.push(walk(layout, c.clone(), "config", depth + 1, opts));
    }
    for l in m.layers() {
        children.push(walk(layout, l.clone(), "layer", depth + 1, opts));
    }
    for e in m.manifests() {
        children.push(walk(layout, e.clone(), entry_role(e), depth + 1, opts));
    }
    node.children = children;
    node
}

fn has_problems(n: &Node) -> bool {
    !n.problems.is_empty() || n.children.iter().any(has_problems)
}

fn human(size: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = size as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{size} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_tree(n: &Node, prefix: &str, last: bool, root: bool) {
    let d = &n.descriptor;
    let mut line = String::new();
    line.push_str(n.role);
    if let Some(p) = &d.platform {
        line.push_str(&format!(" {p}"));
    }
    if let Some(a) = &d.artifact_type {
        line.push_str(&format!(" [{a}]"));
    }
    if let Some(t) = d.annotation(annotations::REF_NAME) {
        line.push_str(&format!(" tag={t}"));
    }
    if let Some(t) = d.annotation(annotations::DOCKER_REFERENCE_TYPE) {
        line.push_str(&format!(" ({t})"));
    }
    line.push_str(&format!(
        "  {}  {}  {}",
        d.digest,
        d.media_type,
        human(d.size)
    ));
    for p in &n.problems {
        line.push_str(&format!("  !! {p}"));
    }
    let (branch, next) = match (root, last) {
        (true, _) => ("", String::new()),
        (false, true) => ("└── ", format!("{prefix}    ")),
        (false, false) => ("├── ", format!("{prefix}│   ")),
    };
    println!("{prefix}{branch}{line}");
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
