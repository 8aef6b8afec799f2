//! Content-addressed OCI stores.
#![forbid(unsafe_code)]
