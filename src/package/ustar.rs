//! The POSIX ustar headers of a package, written byte for byte as GNU tar
//! `--format=ustar` writes them (package-format.md, "Member headers") and
//! parsed strictly: magic, checksum and the numeric fields the reader uses.

use super::PackageError;
use super::manifest::ustar_split;

/// Bytes in a tar block (headers, data padding, end marker).
pub const BLOCK: usize = 512;

/// Offset and length of the checksum field.
const CKSUM: std::ops::Range<usize> = 148..156;

/// The 512-byte header of a regular-file member: `member` (split into
/// prefix and name by [`ustar_split`]; the caller has checked it fits),
/// `mode`, `size`; uid, gid and mtime 0 as octal, uname and gname empty,
/// devmajor and devminor 0 as octal, checksum as six octal digits, NUL,
/// space.
pub fn encode(member: &str, mode: u32, size: u64) -> [u8; BLOCK] {
    let mut header = tar::Header::new_ustar();
    let h = header.as_ustar_mut().expect("a ustar header");
    let (prefix, name) = ustar_split(member.as_bytes()).expect("the member name fits a ustar header");
    h.name[..name.len()].copy_from_slice(name);
    h.prefix[..prefix.len()].copy_from_slice(prefix);
    octal(&mut h.mode, u64::from(mode));
    octal(&mut h.uid, 0);
    octal(&mut h.gid, 0);
    octal(&mut h.size, size);
    octal(&mut h.mtime, 0);
    h.typeflag = [b'0'];
    octal(&mut h.dev_major, 0);
    octal(&mut h.dev_minor, 0);
    let mut bytes = *header.as_bytes();
    let sum = checksum(&bytes);
    bytes[CKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    bytes
}

/// `value` as zero-padded octal digits filling all but the last byte of
/// `field`, then NUL (`0000644\0`).
fn octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    debug_assert_eq!(digits.len(), field.len() - 1, "{value} fits its field");
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[field.len() - 1] = 0;
}

/// The header checksum: the unsigned sum of the 512 bytes with the checksum
/// field counted as eight spaces.
fn checksum(block: &[u8; BLOCK]) -> u64 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if CKSUM.contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// Reads an octal numeric field: optional leading spaces, at least one
/// octal digit, then only NULs and spaces. The base-256 extension (high bit
/// of the first byte) is refused: format 1 does not use it.
fn parse_octal(field: &[u8], what: &str) -> Result<u64, String> {
    let text = field.iter().skip_while(|&&b| b == b' ');
    let digits: Vec<u8> = text.clone().take_while(|b| b.is_ascii_digit()).copied().collect();
    let rest_ok = text.skip(digits.len()).all(|&b| b == 0 || b == b' ');
    let octal_ok = !digits.is_empty() && digits.iter().all(|&b| b < b'8');
    if !rest_ok || !octal_ok || digits.len() > 21 {
        return Err(format!(
            "its {what} field {:?} is not an octal number",
            String::from_utf8_lossy(field)
        ));
    }
    Ok(digits.iter().fold(0u64, |acc, &d| (acc << 3) | u64::from(d - b'0')))
}

/// The bytes of a NUL-padded text field, up to its first NUL.
fn text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// What a reader needs from a member header.
#[derive(Debug)]
pub struct Member {
    /// `prefix/name`, or `name` when the prefix is empty.
    pub name: String,
    /// The type flag byte.
    pub typeflag: u8,
    /// The mode field.
    pub mode: u32,
    /// The size field.
    pub size: u64,
    /// The link name (for link members; lossy UTF-8).
    pub linkname: String,
}

/// Parses a header block (which is not all zeros) of the member at
/// `index`: checksum, `ustar\0` magic and `00` version, nothing hidden
/// (text fields NUL-padded, numbers octal, the last 12 bytes zero), then
/// name, type, mode and size.
///
/// # Errors
/// [`PackageError::BadHeader`] saying which check failed;
/// [`PackageError::HiddenData`] for bytes in a field's padding.
pub fn parse(block: &[u8; BLOCK], index: usize) -> Result<Member, PackageError> {
    let bad = |reason: String| PackageError::BadHeader { index, reason };
    let header = tar::Header::from_byte_slice(block);
    let stored = parse_octal(&block[CKSUM], "checksum").map_err(bad)?;
    let computed = checksum(block);
    if stored != computed {
        return Err(bad(format!(
            "its checksum field says {stored:o} but the header sums to {computed:o} (octal)"
        )));
    }
    let Some(h) = header.as_ustar() else {
        return Err(bad(
            "it is not a POSIX ustar header (magic \"ustar\\0\", version \"00\"); GNU and v7 headers are refused"
                .to_string(),
        ));
    };
    // Nothing hidden in the header: each text field NUL-padded after its
    // text, each number octal (or all NUL), the last 12 bytes zero.
    let hidden = |what: &str| PackageError::HiddenData {
        at: format!("in the {what} field of the header of member {index}"),
    };
    for (field, what) in [
        (&h.name[..], "name"),
        (&h.linkname[..], "link name"),
        (&h.uname[..], "user name"),
        (&h.gname[..], "group name"),
        (&h.prefix[..], "prefix"),
    ] {
        if field[text(field).len()..].iter().any(|&b| b != 0) {
            return Err(hidden(what));
        }
    }
    if h.pad.iter().any(|&b| b != 0) {
        return Err(hidden("unused last 12 bytes"));
    }
    for (field, what) in [
        (&h.uid[..], "uid"),
        (&h.gid[..], "gid"),
        (&h.mtime[..], "mtime"),
        (&h.dev_major[..], "device major"),
        (&h.dev_minor[..], "device minor"),
    ] {
        if field.iter().any(|&b| b != 0) {
            parse_octal(field, what).map_err(bad)?;
        }
    }
    let name = String::from_utf8(h.path_bytes().into_owned()).map_err(|e| {
        bad(format!(
            "its name is not UTF-8: {:?}",
            String::from_utf8_lossy(e.as_bytes())
        ))
    })?;
    let mode = parse_octal(&h.mode, "mode").map_err(bad)?;
    let size = parse_octal(&h.size, "size").map_err(bad)?;
    Ok(Member {
        name,
        typeflag: h.typeflag[0],
        mode: u32::try_from(mode).map_err(|_| bad(format!("its mode {mode:o} is out of range")))?,
        size,
        linkname: String::from_utf8_lossy(text(&h.linkname)).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parses_back() {
        let block = encode("files/a/b.txt", 0o755, 6);
        let m = parse(&block, 3).unwrap();
        assert_eq!(
            (m.name.as_str(), m.typeflag, m.mode, m.size),
            ("files/a/b.txt", b'0', 0o755, 6)
        );
        // GNU tar's checksum spelling: six digits, NUL, space.
        assert_eq!(&block[154..156], b"\0 ");
        assert_eq!(&block[329..337], b"0000000\0");
    }

    #[test]
    fn long_names_use_the_prefix() {
        let member = format!("files/{}/{}", "d".repeat(120), "f".repeat(90));
        let m = parse(&encode(&member, 0o644, 0), 0).unwrap();
        assert_eq!(m.name, member);
    }

    #[test]
    fn bad_checksum_and_numbers_are_refused() {
        let mut block = encode("files/x", 0o644, 1);
        block[0] = b'y';
        assert!(matches!(parse(&block, 0), Err(PackageError::BadHeader { .. })));
        assert_eq!(parse_octal(b"0000644\0", "m"), Ok(0o644));
        assert_eq!(parse_octal(b"  644 \0\0", "m"), Ok(0o644));
        assert!(parse_octal(b"0000648\0", "m").is_err());
        assert!(parse_octal(b"\x80\0\0\0\0\0\0\x01", "m").is_err());
        assert!(parse_octal(b"\0\0\0\0\0\0\0\0", "m").is_err());
    }
}
