//! Object ids: 32-byte BLAKE3 digests, typed by what they name.
//!
//! A [`BlobId`] is the plain BLAKE3 hash of a file's bytes, so it equals what
//! `b3sum` prints. [`TreeId`] and [`SnapshotId`] are BLAKE3 over a kind-tagged
//! canonical encoding (see `store-format.md`, "Object ids"). All of them are
//! an [`ObjectId`] in the store, which is how packs index them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Length of every id in bytes (BLAKE3's default output length).
pub const ID_LEN_BYTES: usize = 32;

/// Shortest hex prefix accepted when a user names an object by prefix.
pub const MIN_PREFIX_LEN_HEX: usize = 8;

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(bytes, &mut s);
    s
}

/// Appends the lower-case hex form of `bytes` to `out` (no allocation
/// beyond `out`'s growth).
pub fn push_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// True when `s` is non-empty and made only of hex digits.
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| hex_val(c).is_some())
}

/// A store key: the 32-byte id of a blob, tree or snapshot object.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; ID_LEN_BYTES]);

impl ObjectId {
    /// Parses exactly 64 hex digits; `None` otherwise.
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != ID_LEN_BYTES * 2 {
            return None;
        }
        let mut out = [0u8; ID_LEN_BYTES];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(ObjectId(out))
    }

    /// Parses exactly 64 lower-case hex digits (the canonical form, as
    /// manifests and attestations must spell digests); `None` otherwise.
    /// One table lookup per digit: a 10,000-file manifest holds 20,000.
    pub fn from_lower_hex(s: &str) -> Option<Self> {
        const BAD: u8 = 0xff;
        const LOWER: [u8; 256] = {
            let mut t = [BAD; 256];
            let mut i = 0;
            while i < 10 {
                t[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                t[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            t
        };
        let b = s.as_bytes();
        if b.len() != ID_LEN_BYTES * 2 {
            return None;
        }
        let mut out = [0u8; ID_LEN_BYTES];
        let mut bad = 0u8;
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            let (hi, lo) = (LOWER[usize::from(pair[0])], LOWER[usize::from(pair[1])]);
            bad |= hi | lo;
            *o = (hi << 4) | (lo & 0x0f);
        }
        (bad & 0xf0 == 0).then_some(ObjectId(out))
    }

    /// The 64-digit lower-case hex form.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// The first `len_in_hex` hex digits (at most 64).
    pub fn short(&self, len_in_hex: usize) -> String {
        let mut h = self.to_hex();
        h.truncate(len_in_hex.min(ID_LEN_BYTES * 2));
        h
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short(16))
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub ObjectId);

        impl $name {
            /// The untyped store key.
            pub fn object(&self) -> ObjectId {
                self.0
            }
            /// The 64-digit lower-case hex form.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
            /// The first `len_in_hex` hex digits.
            pub fn short(&self, len_in_hex: usize) -> String {
                self.0.short(len_in_hex)
            }
            /// Parses exactly 64 hex digits.
            pub fn from_hex(s: &str) -> Option<Self> {
                ObjectId::from_hex(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short(16))
            }
        }
    };
}

typed_id!(
    /// Id of a blob: BLAKE3 of the file's (or symlink target's) bytes, equal to `b3sum`'s output.
    BlobId
);
typed_id!(
    /// Id of a tree object: BLAKE3 of `"tree " + decimal length + NUL + postcard body`.
    TreeId
);
typed_id!(
    /// Id of a snapshot object: BLAKE3 of `"snapshot " + decimal length + NUL + postcard body`.
    SnapshotId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ObjectId(*blake3::hash(b"abc").as_bytes());
        assert_eq!(ObjectId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.to_hex(), blake3::hash(b"abc").to_hex().as_str());
        assert_eq!(ObjectId::from_hex("zz"), None);
        assert_eq!(ObjectId::from_hex(&"g".repeat(64)), None);
    }

    /// Every ASCII character at the first, a middle and the last digit: read
    /// as `from_hex` reads it when it is a lower-case hex digit, else refused.
    #[test]
    fn lower_hex_takes_exactly_the_lower_case_digits() {
        let hex = ObjectId(*blake3::hash(b"abc").as_bytes()).to_hex();
        assert_eq!(ObjectId::from_lower_hex(&hex), ObjectId::from_hex(&hex));
        for at in [0, 31, 63] {
            for c in 0u8..128 {
                let mut t = hex.clone().into_bytes();
                t[at] = c;
                let t = String::from_utf8(t).expect("ascii");
                let lower = c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
                let want = if lower { ObjectId::from_hex(&t) } else { None };
                assert_eq!(ObjectId::from_lower_hex(&t), want, "{:?} at {at}", char::from(c));
            }
        }
        assert_eq!(ObjectId::from_lower_hex(&hex[1..]), None);
        assert_eq!(ObjectId::from_lower_hex(&format!("{hex}0")), None);
    }
}
