//! Async client for the OCI distribution spec.
#![forbid(unsafe_code)]
