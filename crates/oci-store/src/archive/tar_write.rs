//! Tar headers as the archive writers write them: ustar, mode 0644 (0755 for directories),
//! owner 0, time 0 (so the same content makes the same archive), a PAX `path` record before
//! a name longer than the 100 bytes of the ustar name field.

use tar::{EntryType, Header};

use super::tar_index::BLOCK;

/// The bytes (one or more blocks) that introduce member `name` of `size` bytes of type `ty`
/// (`link` for a symbolic link).
pub(crate) fn header_bytes(name: &str, size: u64, ty: EntryType, link: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK as usize);
    let long = name.len() > 100 || link.is_some_and(|l| l.len() > 100);
    if long {
        let mut records = Vec::new();
        if name.len() > 100 {
            records.extend(pax_record("path", name));
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            records.extend(pax_record("linkpath", l));
        }
        let pax = plain(
            "PaxHeaders/entry",
            records.len() as u64,
            EntryType::XHeader,
            None,
        );
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(&records);
        pad(&mut out);
    }
    out.extend_from_slice(plain(name, size, ty, link).as_bytes());
    out
}

/// Zero bytes that pad `n` bytes of data to a whole block.
pub(crate) fn padding(n: u64) -> usize {
    ((BLOCK - n % BLOCK) % BLOCK) as usize
}

fn pad(v: &mut Vec<u8>) {
    let n = padding(v.len() as u64);
    v.resize(v.len() + n, 0);
}

/// A ustar header with the fields cut to their sizes (the full name is in a PAX record).
fn plain(name: &str, size: u64, ty: EntryType, link: Option<&str>) -> Header {
    let mut h = Header::new_ustar();
    {
        let b = h.as_old_mut();
        let n = name.as_bytes();
        let k = n.len().min(b.name.len());
        b.name[..k].copy_from_slice(&n[..k]);
        if let Some(l) = link {
            let l = l.as_bytes();
            let k = l.len().min(b.linkname.len());
            b.linkname[..k].copy_from_slice(&l[..k]);
        }
    }
    h.set_size(size);
    h.set_entry_type(ty);
    h.set_mode(if ty == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    h
}

/// One PAX record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    loop {
        let total = len.to_string().len() + body.len();
        if total == len {
            break;
        }
        len = total;
    }
    format!("{len}{body}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        let r = pax_record("path", "x");
        assert_eq!(r, b"9 path=x\n");
        let long = "y".repeat(95);
        let r = pax_record("path", &long);
        let text = String::from_utf8(r.clone()).unwrap();
        let (n, _) = text.split_once(' ').unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), r.len());
    }

    #[test]
    fn long_names_get_a_pax_header_that_the_tar_crate_reads() {
        let name = format!("blobs/sha512/{}", "a".repeat(128));
        let mut bytes = header_bytes(&name, 3, EntryType::Regular, None);
        bytes.extend_from_slice(b"abc");
        bytes.resize(bytes.len() + padding(3), 0);
        bytes.extend_from_slice(&[0u8; 1024]);
        let mut a = tar::Archive::new(&bytes[..]);
        let mut entries = a.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str().unwrap(), name);
        assert_eq!(e.size(), 3);
        assert!(entries.next().is_none());
    }
}
