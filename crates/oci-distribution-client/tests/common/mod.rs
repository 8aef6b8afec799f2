//! Shared test harness: the real docker-registry and an in-process fault-injecting registry.
#![allow(dead_code)]

pub mod fault;
pub mod registry;
