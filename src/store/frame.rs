//! The framing shared by small self-checking files (stat cache, rollback
//! journal): magic (4 bytes), version (1), three zero bytes, a postcard body,
//! and a BLAKE3 trailer (32 bytes) over everything before it.
//! See `store-format.md`, "Stat cache" and "Rollback journal".

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes before the body: magic 4, version 1, reserved 3.
const HEADER_LEN: usize = 8;
/// Bytes of the BLAKE3 trailer.
const TRAILER_LEN: usize = 32;

/// Why framed bytes were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Too short, or another file's magic.
    NotThisFile,
    /// Written by a newer cplane (its version byte).
    Newer(u8),
    /// The BLAKE3 trailer does not match.
    Checksum,
    /// The body does not decode.
    Decode,
}

impl FrameError {
    /// A phrase for messages: "… has the wrong magic or is truncated".
    pub fn describe(self) -> String {
        match self {
            FrameError::NotThisFile => "has the wrong magic or is truncated".into(),
            FrameError::Newer(v) => format!("was written by a newer cplane (version {v})"),
            FrameError::Checksum => "fails its BLAKE3 checksum".into(),
            FrameError::Decode => "does not decode".into(),
        }
    }
}

/// Frames `value` with `magic` and `version`.
pub fn encode<T: Serialize>(magic: &[u8; 4], version: u8, value: &T) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4096);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&[version, 0, 0, 0]);
    bytes = postcard::to_extend(value, bytes).expect("postcard encoding into a Vec cannot fail");
    let trailer = blake3::hash(&bytes);
    bytes.extend_from_slice(trailer.as_bytes());
    bytes
}

/// Checks magic, version and trailer, then decodes the body.
///
/// # Errors
/// A [`FrameError`] saying which check failed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], magic: &[u8; 4], version: u8) -> Result<T, FrameError> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN || &bytes[..4] != magic {
        return Err(FrameError::NotThisFile);
    }
    if bytes[4] > version {
        return Err(FrameError::Newer(bytes[4]));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    if blake3::hash(body).as_bytes() != trailer {
        return Err(FrameError::Checksum);
    }
    postcard::from_bytes(&body[HEADER_LEN..]).map_err(|_| FrameError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_each_rejection() {
        let v = (7u32, "x".to_string());
        let bytes = encode(b"TEST", 1, &v);
        assert_eq!(decode::<(u32, String)>(&bytes, b"TEST", 1), Ok(v));
        assert_eq!(
            decode::<(u32, String)>(&bytes, b"ELSE", 1),
            Err(FrameError::NotThisFile)
        );
        assert_eq!(
            decode::<(u32, String)>(&bytes[..10], b"TEST", 1),
            Err(FrameError::NotThisFile)
        );
        let mut newer = bytes.clone();
        newer[4] = 2;
        assert_eq!(decode::<(u32, String)>(&newer, b"TEST", 1), Err(FrameError::Newer(2)));
        let mut flipped = bytes.clone();
        flipped[9] ^= 1;
        assert_eq!(decode::<(u32, String)>(&flipped, b"TEST", 1), Err(FrameError::Checksum));
    }
}
