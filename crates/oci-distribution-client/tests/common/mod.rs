//! Shared test harness: the real docker-registry, an in-process fault-injecting registry, and
//! small helpers.
#![allow(dead_code)]

pub mod capture;
pub mod fault;
pub mod registry;

use oci_distribution_client::ClientConfig;

/// A client configuration for a test registry on `addr`: plain HTTP, no Docker config, no
/// proxies from the environment.
pub fn test_config(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::default().with_plain_http(addr);
    c.docker_config = false;
    c.proxy_from_env = false;
    c
}

/// `n` deterministic pseudo-random bytes.
pub fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// Ends a "process" abruptly, as SIGKILL does: the writer is leaked (its request is never
/// ended cleanly) and its runtime shut down, which drops its connections mid-request.
pub fn kill(rt: tokio::runtime::Runtime, writer: Box<dyn oci_store::BlobWriter>) {
    std::mem::forget(writer);
    rt.shutdown_background();
}

/// A multi-threaded runtime (two workers) for a test that plays several processes.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
