//! Manifest parsing: never panics; whatever parses kept its exact bytes and their digest, has
//! consistent graph edges, and survives selection, reduction and conversion without panics.
//! The first byte picks the Content-Type, the rest is the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_manifest::convert::{Flavor, convert};
use oci_manifest::platform::{self, host, parse};
use oci_manifest::{Algorithm, Manifest, media_types as mt, reduce};

const CONTENT_TYPES: &[&str] = &[
    mt::OCI_MANIFEST,
    mt::OCI_INDEX,
    mt::DOCKER_MANIFEST,
    mt::DOCKER_MANIFEST_LIST,
    mt::DOCKER_MANIFEST_V1_SIGNED,
    "application/json",
];

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.split_first() {
        Some((&b, rest)) => (CONTENT_TYPES.get(usize::from(b) % 8).copied(), rest),
        None => (None, data),
    };
    if let Ok(m) = Manifest::parse(body.to_vec(), ct) {
        assert_eq!(m.raw().as_ref(), body);
        assert_eq!(m.digest(), &Algorithm::Sha256.hash(body));
        assert!(mt::is_manifest(m.media_type()));
        let edges = usize::from(m.subject().is_some())
            + usize::from(m.config().is_some())
            + m.layers().len()
            + m.manifests().len();
        assert_eq!(edges, m.children().len());
        assert_eq!(m.is_index(), m.config().is_none());
        if m.is_index() {
            let _ = platform::select(&m, &host());
            if let Ok(r) = reduce(&m, &[host()]) {
                assert_eq!(r.references, r.index.children());
                assert_eq!(r.index.manifests().len() + r.dropped.len(), m.manifests().len());
            }
        } else {
            for to in [Flavor::Oci, Flavor::Docker] {
                if let Ok(c) = convert(&m, to) {
                    assert_eq!(c.manifest.layers().len(), m.layers().len());
                }
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(body) {
        if let Ok(p) = parse(s) {
            assert!(parse(&p.to_string()).is_ok());
        }
    }
});
