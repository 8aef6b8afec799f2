//! An index of a tar file's members built once by reading its headers (never the data): each
//! member's data offset and size, or where a link points. Hostile archives are refused while
//! scanning, each with the member and the reason: a header whose checksum is wrong, a size
//! past the end of the file (a truncated archive, or a header that lies), a missing
//! end-of-archive marker, a name that is absolute or has `..`, a link pointing outside the
//! archive, a member twice, a special file, extension headers larger than a limit, more members
//! than a limit.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use tar::{EntryType, Header, PaxExtensions};

use super::errors::invalid;
use super::io::read_at;
use crate::error::{Result, StoreError};

/// Tar blocks are 512 bytes.
pub(crate) const BLOCK: u64 = 512;
/// Links followed in a row before giving up (a loop).
const MAX_LINK_HOPS: usize = 16;
/// Longest member name accepted.
const MAX_NAME: usize = 4096;

/// What a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file: its data.
    File {
        /// Offset of the first data byte in the (uncompressed) archive.
        offset: u64,
        /// Data bytes.
        size: u64,
    },
    /// A symbolic link, its target resolved to an archive path.
    Symlink(String),
    /// A hard link to another member (an archive path).
    Hardlink(String),
}

/// A regular file's data, found by [`TarIndex::file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Data {
    /// Offset of the first byte.
    pub(crate) offset: u64,
    /// Bytes.
    pub(crate) size: u64,
}

/// Limits applied while scanning.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanLimits {
    /// Members (files, links, directories) at most.
    pub(crate) max_members: usize,
    /// Bytes of one PAX or GNU extension header at most.
    pub(crate) max_extension: u64,
}

/// The members of a tar file, by normalised name (`./a//b` is `a/b`).
#[derive(Debug, Default)]
pub(crate) struct TarIndex {
    members: HashMap<String, Kind>,
    dirs: HashSet<String>,
    /// Names in archive order.
    order: Vec<String>,
}

/// Extension headers seen before the member they apply to.
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.link.is_none() && self.size.is_none()
    }
}

/// Normalises a member name: `.` components and empty ones dropped; `None` for the root
/// itself. Refused: not UTF-8, NUL, absolute, `..`, longer than [`MAX_NAME`].
pub(crate) fn normalize(raw: &[u8]) -> std::result::Result<Option<String>, &'static str> {
    let s = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8")?;
    if s.contains('\0') {
        return Err("the name has a NUL byte");
    }
    if s.len() > MAX_NAME {
        return Err("the name is longer than 4096 bytes");
    }
    if s.starts_with('/') {
        return Err("the name is an absolute path");
    }
    let mut parts = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err("the name has a `..` component"),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// `target` of a symbolic link in directory `dir` as an archive path, or `None` when it
/// leads out of the archive (absolute, or more `..` than directories above it).
fn resolve_link(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn parent(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(d, _)| d)
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl TarIndex {
    /// Scans the headers of the tar data in `file` (`len` bytes); `path` names it in errors.
    pub(crate) fn scan(file: &File, len: u64, path: &Path, limits: ScanLimits) -> Result<TarIndex> {
        let mut index = TarIndex::default();
        let mut pending = Pending::default();
        let mut pos = 0u64;
        let mut block = [0u8; BLOCK as usize];
        loop {
            if pos == len {
                return Err(invalid(
                    path,
                    "-",
                    "the archive ends without the end-of-archive marker (truncated)",
                ));
            }
            if len - pos < BLOCK {
                return Err(invalid(
                    path,
                    "-",
                    format!("a header at offset {pos} is cut short (truncated)"),
                ));
            }
            read_at(file, &mut block, pos).map_err(|e| StoreError::io("read", path, e))?;
            if block.iter().all(|&b| b == 0) {
                if !pending.is_empty() {
                    return Err(invalid(
                        path,
                        "-",
                        "an extension header is followed by the end of the archive",
                    ));
                }
                return Ok(index);
            }
            let header = Header::from_byte_slice(&block);
            let raw_name = header.path_bytes().into_owned();
            let shown = lossy(&raw_name);
            let bad = |reason: String| invalid(path, &shown, reason);
            check_checksum(&block).map_err(|r| bad(r.to_owned()))?;
            let header_size = header
                .entry_size()
                .map_err(|_| bad("the size field is not a number".to_owned()))?;
            let ty = header.entry_type();
            let is_extension = matches!(
                ty,
                EntryType::XHeader
                    | EntryType::XGlobalHeader
                    | EntryType::GNULongName
                    | EntryType::GNULongLink
            );
            // A PAX size applies to the member after it, not to extension headers.
            let size = match (is_extension, pending.size) {
                (false, Some(s)) => s,
                _ => header_size,
            };
            let data = pos + BLOCK;
            if data.checked_add(size).is_none_or(|e| e > len) {
                return Err(bad(format!(
                    "declares {size} bytes of data at offset {data}, but the archive has {len} bytes \
                     (truncated, or the header lies)"
                )));
            }
            let padded = size.div_ceil(BLOCK) * BLOCK;
            let next = data + padded;
            if next > len {
                return Err(bad(format!(
                    "the padding of its {size} bytes goes past the end of the archive (truncated)"
                )));
            }
            if is_extension {
                if size > limits.max_extension {
                    return Err(bad(format!(
                        "an extension header of {size} bytes, more than the limit of {}",
                        limits.max_extension
                    )));
                }
                // Bounded by the limit just checked.
                let mut buf = vec![0u8; size as usize];
                read_at(file, &mut buf, data).map_err(|e| StoreError::io("read", path, e))?;
                match ty {
                    EntryType::XHeader => read_pax(&buf, &mut pending).map_err(bad)?,
                    EntryType::GNULongName => pending.name = Some(cut_nul(buf)),
                    EntryType::GNULongLink => pending.link = Some(cut_nul(buf)),
                    _ => {} // global PAX headers: nothing this index needs
                }
                pos = next;
                continue;
            }
            let name_bytes = pending.name.take().unwrap_or(raw_name);
            let link_bytes = pending
                .link
                .take()
                .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
            pending.size = None;
            let shown = lossy(&name_bytes);
            let bad = |reason: String| invalid(path, &shown, reason);
            let name = normalize(&name_bytes).map_err(|r| bad(r.to_owned()))?;
            let kind = match ty {
                EntryType::Regular | EntryType::Continuous => Kind::File { offset: data, size },
                EntryType::Directory => {
                    if let Some(n) = name {
                        if index.members.contains_key(&n) {
                            return Err(bad("is both a file and a directory".to_owned()));
                        }
                        if index.members.len() + index.dirs.len() >= limits.max_members {
                            return Err(bad(format!(
                                "the archive has more than {} members",
                                limits.max_members
                            )));
                        }
                        index.dirs.insert(n);
                    }
                    pos = next;
                    continue;
                }
                EntryType::Symlink | EntryType::Link => {
                    let target = link_bytes.unwrap_or_default();
                    let t = std::str::from_utf8(&target)
                        .map_err(|_| bad("the link target is not UTF-8".to_owned()))?;
                    let n = name.as_deref().unwrap_or("");
                    let resolved = if ty == EntryType::Symlink {
                        resolve_link(parent(n), t)
                    } else {
                        normalize(t.as_bytes()).ok().flatten()
                    };
                    let Some(resolved) = resolved else {
                        return Err(bad(format!("links to {:?}, outside the archive", t)));
                    };
                    if ty == EntryType::Symlink {
                        Kind::Symlink(resolved)
                    } else {
                        Kind::Hardlink(resolved)
                    }
                }
                EntryType::GNUSparse => {
                    return Err(bad("sparse files are not supported".to_owned()));
                }
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    return Err(bad(
                        "is a special file (device or FIFO), which no image archive holds"
                            .to_owned(),
                    ));
                }
                other => {
                    return Err(bad(format!(
                        "has the unknown member type {:?}",
                        other.as_byte() as char
                    )));
                }
            };
            let Some(name) = name else {
                return Err(bad("a file or link without a name".to_owned()));
            };
            if index.members.contains_key(&name) {
                return Err(bad(
                    "appears twice in the archive (duplicate member)".to_owned()
                ));
            }
            if index.dirs.contains(&name) {
                return Err(bad("is both a file and a directory".to_owned()));
            }
            if index.members.len() + index.dirs.len() >= limits.max_members {
                return Err(bad(format!(
                    "the archive has more than {} members",
                    limits.max_members
                )));
            }
            index.order.push(name.clone());
            index.members.insert(name, kind);
            pos = next;
        }
    }

    /// The data of regular file `name`, following links inside the archive.
    ///
    /// # Errors
    /// `Ok(None)` when there is no such member; [`StoreError::InvalidArchive`] for a link that
    /// leads nowhere, to a directory, or in a loop.
    pub(crate) fn file(&self, archive: &Path, name: &str) -> Result<Option<Data>> {
        let Ok(Some(mut cur)) = normalize(name.as_bytes()) else {
            return Ok(None);
        };
        for _ in 0..MAX_LINK_HOPS {
            match self.members.get(&cur) {
                None if cur == name => return Ok(None),
                None => {
                    return Err(invalid(
                        archive,
                        name,
                        format!("is a link to {cur:?}, which the archive does not hold"),
                    ));
                }
                Some(Kind::File { offset, size }) => {
                    return Ok(Some(Data {
                        offset: *offset,
                        size: *size,
                    }));
                }
                Some(Kind::Symlink(t)) | Some(Kind::Hardlink(t)) => cur = t.clone(),
            }
        }
        Err(invalid(
            archive,
            name,
            "links in a loop (or more than 16 in a row)",
        ))
    }

    /// Names of regular files and links, in archive order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// How many files and links.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }
}

/// Checks a header's checksum (the unsigned sum, or the signed one old tars wrote).
fn check_checksum(block: &[u8; BLOCK as usize]) -> std::result::Result<(), &'static str> {
    let header = Header::from_byte_slice(block);
    let want = header
        .cksum()
        .map_err(|_| "the checksum field is not a number (not a tar header)")?;
    let (mut unsigned, mut signed) = (0u32, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i64::from(b as i8);
    }
    if want == unsigned || i64::from(want) == signed {
        Ok(())
    } else {
        Err("the header checksum does not match (not a tar header, or corrupt)")
    }
}

fn cut_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Reads the records of a PAX extension header that the index needs: `path`, `linkpath`,
/// `size`.
fn read_pax(data: &[u8], pending: &mut Pending) -> std::result::Result<(), String> {
    for ext in PaxExtensions::new(data) {
        let ext = ext.map_err(|_| "a malformed PAX record".to_owned())?;
        match ext.key_bytes() {
            b"path" => pending.name = Some(ext.value_bytes().to_vec()),
            b"linkpath" => pending.link = Some(ext.value_bytes().to_vec()),
            b"size" => {
                let v = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| "a PAX size that is not a number".to_owned())?;
                pending.size = Some(v);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_or_refused() {
        assert_eq!(normalize(b"./a//b/./c").unwrap().as_deref(), Some("a/b/c"));
        assert_eq!(normalize(b"./").unwrap(), None);
        assert!(normalize(b"/etc/passwd").is_err());
        assert!(normalize(b"a/../../b").is_err());
        assert!(normalize(b"a\0b").is_err());
        assert!(normalize(&[0xff, b'a']).is_err());
    }

    #[test]
    fn links_resolve_inside_or_not_at_all() {
        assert_eq!(resolve_link("abc", "../x.tar").as_deref(), Some("x.tar"));
        assert_eq!(resolve_link("a/b", "../../x").as_deref(), Some("x"));
        assert_eq!(resolve_link("", "../x"), None);
        assert_eq!(resolve_link("a", "../../x"), None);
        assert_eq!(resolve_link("a", "/etc/passwd"), None);
    }
}
