//! A `tracing` subscriber that writes every event's fields (`name=value`, one event a line)
//! into a string, for tests that check what the client logs (and never logs). Installed with
//! `tracing::subscriber::set_default`, it sees the events of the current thread.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

/// The subscriber: events appended to the shared string.
pub struct Capture(pub Arc<Mutex<String>>);

impl Capture {
    /// A subscriber and the string it fills.
    pub fn new() -> (Capture, Arc<Mutex<String>>) {
        let log = Arc::new(Mutex::new(String::new()));
        (Capture(log.clone()), log)
    }
}

/// What was logged so far.
pub fn text(log: &Arc<Mutex<String>>) -> String {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        span.record(&mut Fields(&mut s));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values.record(&mut Fields(&mut s));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        event.record(&mut Fields(&mut s));
        s.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
