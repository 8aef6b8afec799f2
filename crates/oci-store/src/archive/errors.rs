//! The errors of the archive stores: text taken from an archive (member names, JSON values)
//! has its control characters escaped before it goes into an error, so a hostile name cannot
//! rewrite a terminal or forge log lines.

use std::path::Path;

use crate::error::StoreError;
use crate::util::OneLine;

/// `s` with control characters as Rust escapes (`\n`, `\u{1b}`), cut to 200 characters.
pub(crate) fn escape(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", OneLine(&s[..cut])),
        None => OneLine(s).to_string(),
    }
}

/// [`StoreError::InvalidArchive`] for `member` of the archive at `path`.
pub(crate) fn invalid(path: &Path, member: &str, reason: impl AsRef<str>) -> StoreError {
    StoreError::InvalidArchive {
        path: path.to_path_buf(),
        member: escape(member),
        reason: escape(reason.as_ref()),
    }
}

/// [`StoreError::Unsupported`] for what an archive cannot do.
pub(crate) fn unsupported(operation: &'static str) -> StoreError {
    StoreError::Unsupported { operation }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(escape("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
        assert_eq!(escape(&"x".repeat(500)).chars().count(), 201);
        let e = invalid(Path::new("/a.tar"), "evil\rname", "bad\tthing");
        let text = e.to_string();
        assert!(!text.contains('\r') && !text.contains('\t'), "{text}");
    }
}
