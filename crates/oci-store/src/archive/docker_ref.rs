//! The names of images in a `docker-archive` (`RepoTags` of `manifest.json`, keys of
//! `repositories`): Docker references `NAME:TAG`, normalised as Docker normalises them
//! (`busybox` is `docker.io/library/busybox:latest`), so that `busybox:latest`,
//! `docker.io/library/busybox` and `docker.io/library/busybox:latest` name the same image.

/// A normalised `name:tag` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoTag {
    /// `docker.io/library/busybox`.
    pub(crate) name: String,
    /// `latest`.
    pub(crate) tag: String,
}

impl RepoTag {
    /// Parses and normalises `s` (`[registry/]path[:tag]`, no digest). `None` when `s` is not
    /// such a reference.
    pub(crate) fn parse(s: &str) -> Option<RepoTag> {
        if s.is_empty() || s.len() > 512 || s.contains('@') {
            return None;
        }
        let (name, tag) = match s.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => (s, "latest"),
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
            });
        if !tag_ok || name.is_empty() {
            return None;
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let first = parts[0];
        let has_registry =
            parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
        let registry = if has_registry {
            let r = parts.remove(0);
            if r == "index.docker.io" {
                "docker.io"
            } else {
                r
            }
        } else {
            "docker.io"
        };
        if !registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return None;
        }
        let path_ok = parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && p.as_bytes()[0].is_ascii_alphanumeric()
                && p.as_bytes()[p.len() - 1].is_ascii_alphanumeric()
        });
        if !path_ok {
            return None;
        }
        let mut path = parts.join("/");
        if registry == "docker.io" && parts.len() == 1 {
            path = format!("library/{path}");
        }
        Some(RepoTag {
            name: format!("{registry}/{path}"),
            tag: tag.to_owned(),
        })
    }
}

impl std::fmt::Display for RepoTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_as_docker_does() {
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("team/app:v1", "docker.io/team/app:v1"),
            ("index.docker.io/team/app:v1", "docker.io/team/app:v1"),
            ("localhost/app", "localhost/app:latest"),
            ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"),
        ] {
            assert_eq!(RepoTag::parse(input).unwrap().to_string(), want, "{input}");
        }
        for bad in [
            "",
            "Upper/x",
            "a@sha256:00",
            "a:",
            "a:-x",
            "a//b",
            "-a",
            "a:b/c:",
        ] {
            assert!(RepoTag::parse(bad).is_none(), "{bad}");
        }
    }
}
