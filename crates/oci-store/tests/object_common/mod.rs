//! The object-storage tests' S3 server (`seaweed.rs`, shared with the examples' tests) and a
//! store backend for its buckets.
#![allow(dead_code)]

mod seaweed;

pub use seaweed::*;

use oci_store::Backend;
use oci_store::object_store::aws::AmazonS3Builder;

impl Seaweed {
    /// A backend for `bucket`.
    pub fn backend(&self, bucket: &str) -> Backend {
        let (key, secret) = self.keys();
        Backend::s3(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(key)
                .with_secret_access_key(secret),
        )
        .expect("S3 backend")
    }
}
