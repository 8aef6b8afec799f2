//! The summary the `copy` example prints at the end of a copy: what was done, counted in blobs
//! (manifests, configs and layers alike: every piece of content is a blob of the store) and in
//! bytes ([`ExactSize`]), every line escaped.

use oci_manifest::Descriptor;
use oci_store::{CopyReport, MapTrust, MapUse, NodeOutcome};

use crate::escape;
use crate::size::{Count, ExactSize, Rate};

/// The summary of `report`, one line per fact, text from peers escaped:
///
/// ```text
/// oci:./src:v1: sha256:… -> sha256:…
///   copied 3 blobs, repaired 0: sent 1.2 GiB (1288490188 bytes) at 286.5 MiB/s
///   skipped 8 blobs the destination had: 4.0 KiB (4096 bytes); mounted 0 from other repositories: 0 bytes; resumed 0 bytes of interrupted transfers
///   retries: 0 used of a budget of 3; failed: 0 blobs; 4.29 s
///   platforms left out: linux/arm/v7
///   read back to verify: 11 blobs
/// ```
///
/// ```
/// let mut report = oci_store::CopyReport::default();
/// report.reference = "v1\u{1b}[2J".into();
/// report.copied = 1;
/// report.bytes_copied = 1536;
/// report.verified = 2;
/// let s = oci_examples::summary::copy_summary(&report);
/// assert!(s.starts_with("v1\\u{1b}[2J: - -> -\n"), "{s}");
/// assert!(s.contains("copied 1 blob, repaired 0: sent 1.5 KiB (1536 bytes) at "), "{s}");
/// assert!(s.contains("read back to verify: 2 blobs"), "{s}");
/// ```
pub fn copy_summary(report: &CopyReport) -> String {
    let digest = |d: &Option<Descriptor>| {
        d.as_ref()
            .map_or_else(|| "-".to_owned(), |d| d.digest.to_string())
    };
    let seconds = report.elapsed.as_secs_f64();
    let mut lines = vec![
        format!(
            "{}: {} -> {}",
            escape(&report.reference),
            digest(&report.source),
            digest(&report.result)
        ),
        format!(
            "  copied {}, repaired {}: sent {} at {}",
            Count(report.copied, "blob"),
            report.repaired,
            ExactSize(report.bytes_copied),
            Rate {
                bytes: report.bytes_copied,
                seconds
            }
        ),
        format!(
            "  skipped {} the destination had: {}; mounted {} from other repositories: {}; \
resumed {} of interrupted transfers",
            Count(report.skipped, "blob"),
            ExactSize(report.bytes_skipped),
            report.mounted,
            ExactSize(report.bytes_mounted),
            ExactSize(report.bytes_resumed)
        ),
        format!(
            "  retries: {} used of a budget of {}{}; failed: {}; {seconds:.2} s",
            report.retried,
            report.retry_budget,
            if report.retry_budget_spent {
                " (spent)"
            } else {
                ""
            },
            Count(report.failed, "blob")
        ),
    ];
    let list = |label: &str, items: &[Descriptor], show: &dyn Fn(&Descriptor) -> String| {
        (!items.is_empty()).then(|| {
            let shown: Vec<String> = items.iter().map(show).collect();
            format!("  {label}: {}", shown.join(", "))
        })
    };
    let platform = |d: &Descriptor| match &d.platform {
        Some(p) => escape(&p.to_string()).into_owned(),
        None => d.digest.to_string(),
    };
    lines.extend(list("platforms left out", &report.dropped, &platform));
    lines.extend(list(
        "foreign layers left out (not held by the source)",
        &report.foreign,
        &|d| d.digest.to_string(),
    ));
    if !report.referrers.is_empty() {
        lines.push(format!("  referrers copied: {}", report.referrers.len()));
    }
    if report.verified > 0 {
        lines.push(format!(
            "  read back to verify: {}",
            Count(report.verified, "blob")
        ));
    }
    lines.extend(pieces_lines(report));
    for n in report
        .nodes
        .iter()
        .filter(|n| n.outcome == NodeOutcome::Failed)
    {
        lines.push(format!(
            "  FAILED {} after {}: {}",
            n.desc.digest,
            Count(n.attempts as usize, "attempt"),
            escape(n.error.as_deref().unwrap_or(""))
        ));
    }
    lines.join("\n")
}

/// The lines about piece maps: those found for the blobs fetched in pieces (trusted or
/// advisory, and the artifact they came from), artifacts ignored and why, artifacts pushed.
///
/// ```
/// let report = oci_store::CopyReport::default();
/// assert!(oci_examples::summary::piece_map_lines(&report).is_empty());
/// ```
pub fn piece_map_lines(report: &CopyReport) -> Vec<String> {
    let pm = &report.piece_maps;
    let mut lines = Vec::new();
    for (blob, trust, from) in &pm.found {
        let how = match trust {
            MapTrust::Trusted => "trusted",
            _ => "advisory",
        };
        let from = from.as_ref().map_or_else(
            || "the source store".to_owned(),
            |a| format!("artifact {a}"),
        );
        lines.push(format!("  piece map of {blob}: {how}, from {from}"));
    }
    for f in &report.fetches {
        if let MapUse::Rejected { reason } = &f.map {
            lines.push(format!(
                "  piece map of {} dropped during the fetch: {}",
                f.digest,
                escape(reason)
            ));
        }
    }
    for (artifact, why) in &pm.ignored {
        lines.push(format!(
            "  piece-map artifact {artifact} ignored: {}",
            escape(why)
        ));
    }
    for (subject, artifact) in &pm.pushed {
        lines.push(format!(
            "  piece maps pushed: artifact {} for {}",
            artifact.digest, subject.digest
        ));
    }
    for subject in &pm.present {
        lines.push(format!(
            "  piece maps of {} already in the destination",
            subject.digest
        ));
    }
    lines
}

/// The lines about blobs fetched in pieces from several sources (`--mirror`,
/// `--registries-conf`): bytes per source, every bad piece with its source, bytes fetched twice.
///
/// ```
/// let report = oci_store::CopyReport::default();
/// assert!(oci_examples::summary::pieces_lines(&report).is_empty());
/// ```
pub fn pieces_lines(report: &CopyReport) -> Vec<String> {
    let mut lines = piece_map_lines(report);
    if report.fetches.is_empty() {
        return lines;
    }
    lines.extend([format!(
        "  fetched in pieces from {} sources: {}; fetched twice: {}; of those, taken over from slower sources: {}; read ahead by stopped requests: {}",
        report.source_totals().len(),
        Count(report.fetches.len(), "blob"),
        ExactSize(report.bytes_refetched()),
        ExactSize(report.bytes_taken_over()),
        ExactSize(report.bytes_read_ahead())
    )]);
    for t in report.source_totals() {
        lines.push(format!(
            "    {}: {} kept ({} pieces), {} received{}",
            escape(&t.name),
            ExactSize(t.bytes),
            t.pieces,
            ExactSize(t.bytes_fetched),
            if t.bad_pieces > 0 {
                format!(", BAD SOURCE: {} bad pieces", t.bad_pieces)
            } else {
                String::new()
            }
        ));
    }
    for f in &report.fetches {
        for b in &f.bad_pieces {
            lines.push(format!(
                "  bad piece {} (bytes {}..{}) of {} from {}: fetched again elsewhere",
                b.index,
                b.range.start,
                b.range.end,
                f.digest,
                escape(&b.source_name)
            ));
        }
    }
    lines
}
