//! OCI and Docker image manifests and indexes kept as exact bytes.
#![forbid(unsafe_code)]
