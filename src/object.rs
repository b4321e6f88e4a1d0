//! The three object kinds — blob, tree, snapshot — and their canonical encoding.
//!
//! Bodies are encoded with postcard 1.x (serde; its wire format is specified
//! at <https://postcard.jamesmunns.com/wire-format>): integers as LEB128
//! varints, byte strings and strings as varint length + bytes, enums as a
//! varint variant index, `Option` as a 0/1 byte. Ids:
//!
//! * blob: `BLAKE3(bytes)` — the same digest `b3sum` prints;
//! * tree: `BLAKE3("tree " || decimal(len(body)) || 0x00 || body)`;
//! * snapshot: `BLAKE3("snapshot " || decimal(len(body)) || 0x00 || body)`.
//!
//! The tag follows git's object header so a tree can never collide with a
//! blob of the same bytes. See `store-format.md`, "Objects".

use crate::error::{Error, Result};
use crate::id::{BlobId, ObjectId, SnapshotId, TreeId};
use serde::{Deserialize, Serialize};

/// What a stored object is. The discriminant is the kind byte on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectKind {
    /// File bytes, or a symlink's target.
    Blob = 1,
    /// One directory: a sorted list of entries.
    Tree = 2,
    /// A sealed state of a plane: root tree plus metadata.
    Snapshot = 3,
}

impl ObjectKind {
    /// Decodes the on-disk kind byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(ObjectKind::Blob),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Snapshot),
            _ => None,
        }
    }

    /// Lower-case name, as used in messages and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Blob => "blob",
            ObjectKind::Tree => "tree",
            ObjectKind::Snapshot => "snapshot",
        }
    }
}

/// The kind of a tree entry. Postcard encodes it as its variant index (0..=3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file without the owner-execute bit.
    File,
    /// A regular file with the owner-execute bit (mode & 0o100).
    Executable,
    /// A symbolic link; its blob is the raw target bytes.
    Symlink,
    /// A directory; its id is a [`TreeId`].
    Dir,
}

impl EntryKind {
    /// The kind of a regular file with `st_mode` `mode`: executable when the
    /// owner-execute bit (0o100) is set.
    pub fn for_file_mode(mode: u32) -> Self {
        if mode & 0o100 != 0 {
            EntryKind::Executable
        } else {
            EntryKind::File
        }
    }

    /// Lower-case name used in output.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Executable => "executable",
            EntryKind::Symlink => "symlink",
            EntryKind::Dir => "directory",
        }
    }
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// File name as raw bytes: non-empty, no `/` or NUL, not `.` or `..`.
    pub name: Vec<u8>,
    /// What the entry is.
    pub kind: EntryKind,
    /// Blob id for files and symlinks, tree id for directories.
    pub id: ObjectId,
    /// Bytes: file length, symlink target length, or for a directory the
    /// total bytes of the files beneath it.
    pub size: u64,
    /// Owning spec or package id; empty until governance assigns one.
    pub owner: String,
}

impl TreeEntry {
    /// The entry's id as a blob id (meaningful for files and symlinks).
    pub fn blob_id(&self) -> BlobId {
        BlobId(self.id)
    }
    /// The entry's id as a tree id (meaningful for directories).
    pub fn tree_id(&self) -> TreeId {
        TreeId(self.id)
    }
}

/// A directory: entries sorted by `name` bytes, names unique.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// Must be and remain sorted by `name` (byte order) with no duplicates.
    pub entries: Vec<TreeEntry>,
}

/// Why a snapshot was sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// `cplane init` or `cplane plane add`: the first checkpoint.
    Init,
    /// `cplane snapshot`.
    Checkpoint,
    /// The state sealed by `cplane rollback` before it changed anything.
    Rescue,
    /// The state after `cplane rollback`; its root equals the target's root.
    Rollback {
        /// The snapshot rolled back to.
        target: SnapshotId,
    },
}

impl SnapshotKind {
    /// Short lower-case label for output.
    pub fn label(&self) -> &'static str {
        match self {
            SnapshotKind::Init => "init",
            SnapshotKind::Checkpoint => "checkpoint",
            SnapshotKind::Rescue => "rescue",
            SnapshotKind::Rollback { .. } => "rollback",
        }
    }
}

/// A sealed state of one plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Plane name.
    pub plane: String,
    /// Checkpoint name this snapshot was sealed under (`VER-YYYYMMDDHHMMSS`...).
    pub name: String,
    /// Merkle root: the plane's top directory.
    pub root: TreeId,
    /// The previous HEAD of the plane, if any.
    pub parent: Option<SnapshotId>,
    /// Why it was sealed.
    pub kind: SnapshotKind,
    /// Seal time, nanoseconds since the Unix epoch (UTC).
    pub time_unix_ns: i64,
    /// Free-form message (`-m`).
    pub message: String,
    /// Number of files and symlinks in the tree.
    pub files: u64,
    /// Total bytes of those files.
    pub bytes: u64,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encoding into a Vec cannot fail")
}

/// Id of a tagged body: `BLAKE3(tag || " " || decimal(len) || NUL || body)`.
pub fn tagged_id(tag: &str, body: &[u8]) -> ObjectId {
    let mut h = blake3::Hasher::new();
    h.update(tag.as_bytes());
    h.update(b" ");
    h.update(body.len().to_string().as_bytes());
    h.update(b"\0");
    h.update(body);
    ObjectId(*h.finalize().as_bytes())
}

/// Id of an object of `kind` whose canonical body is `body`.
pub fn object_id(kind: ObjectKind, body: &[u8]) -> ObjectId {
    match kind {
        ObjectKind::Blob => ObjectId(*blake3::hash(body).as_bytes()),
        ObjectKind::Tree | ObjectKind::Snapshot => tagged_id(kind.name(), body),
    }
}

/// `dir/name` as plane-relative path bytes (`name` alone when `dir` is the root, `""`).
pub fn join_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        p.extend_from_slice(dir);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// True when plane-relative `path` is `dir` or inside it (`dir` = `""` is the root).
pub fn is_under(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// Checks that `name` is a valid entry name.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    /// Canonical body bytes (postcard).
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Encodes and computes the id in one step.
    pub fn encode_with_id(&self) -> (TreeId, Vec<u8>) {
        let body = self.encode();
        (TreeId(object_id(ObjectKind::Tree, &body)), body)
    }

    /// Decodes a body and checks the tree invariants (sorted, unique, valid names).
    ///
    /// # Errors
    /// [`Error::CorruptObject`] naming `id` when the body does not decode or breaks an invariant.
    pub fn decode(id: ObjectId, body: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptObject {
            id: id.to_hex(),
            location: "tree body".into(),
            reason,
        };
        let tree: Tree = postcard::from_bytes(body).map_err(|e| corrupt(format!("does not decode: {e}")))?;
        for (i, e) in tree.entries.iter().enumerate() {
            if !valid_name(&e.name) {
                return Err(corrupt(format!("entry {i} has an invalid name")));
            }
            if i > 0 && tree.entries[i - 1].name >= e.name {
                return Err(corrupt(format!("entry {i} is out of order or duplicated")));
            }
        }
        Ok(tree)
    }

    /// The entry called `name`, by binary search.
    pub fn get(&self, name: &[u8]) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

impl Snapshot {
    /// Canonical body bytes (postcard).
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Encodes and computes the id in one step.
    pub fn encode_with_id(&self) -> (SnapshotId, Vec<u8>) {
        let body = self.encode();
        (SnapshotId(object_id(ObjectKind::Snapshot, &body)), body)
    }

    /// Decodes a body.
    ///
    /// # Errors
    /// [`Error::CorruptObject`] naming `id` when the body does not decode.
    pub fn decode(id: ObjectId, body: &[u8]) -> Result<Self> {
        postcard::from_bytes(body).map_err(|e| Error::CorruptObject {
            id: id.to_hex(),
            location: "snapshot body".into(),
            reason: format!("does not decode: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            Just(EntryKind::File),
            Just(EntryKind::Executable),
            Just(EntryKind::Symlink),
            Just(EntryKind::Dir)
        ]
    }

    proptest! {
        #[test]
        fn tree_round_trip(entries in proptest::collection::btree_map(
            proptest::collection::vec(1u8..=255, 1..12).prop_filter("valid", |n| valid_name(n)),
            (arb_kind(), any::<[u8; 32]>(), any::<u64>(), "[A-Z0-9-]{0,12}"), 0..20)) {
            let tree = Tree { entries: entries.into_iter().map(|(name, (kind, id, size, owner))|
                TreeEntry { name, kind, id: ObjectId(id), size, owner }).collect() };
            let (id, body) = tree.encode_with_id();
            prop_assert_eq!(Tree::decode(id.0, &body).unwrap(), tree);
            prop_assert_eq!(object_id(ObjectKind::Tree, &body), id.0);
        }

        #[test]
        fn snapshot_round_trip(name in "[A-Za-z0-9-]{1,20}", msg in ".*", t in any::<i64>(),
                               files in any::<u64>(), parent in any::<Option<[u8; 32]>>(), root in any::<[u8; 32]>()) {
            let s = Snapshot { plane: "main".into(), name, root: TreeId(ObjectId(root)),
                parent: parent.map(|p| SnapshotId(ObjectId(p))), kind: SnapshotKind::Checkpoint,
                time_unix_ns: t, message: msg, files, bytes: files / 2 };
            let (id, body) = s.encode_with_id();
            prop_assert_eq!(Snapshot::decode(id.0, &body).unwrap(), s);
        }
    }

    #[test]
    fn unsorted_tree_is_corrupt() {
        let e = |n: &[u8]| TreeEntry {
            name: n.to_vec(),
            kind: EntryKind::File,
            id: ObjectId([0; 32]),
            size: 0,
            owner: String::new(),
        };
        let bad = Tree {
            entries: vec![e(b"b"), e(b"a")],
        };
        let (id, body) = bad.encode_with_id();
        assert!(matches!(Tree::decode(id.0, &body), Err(Error::CorruptObject { .. })));
    }

    #[test]
    fn tree_and_blob_ids_differ_for_same_bytes() {
        let body = Tree::default().encode();
        assert_ne!(object_id(ObjectKind::Tree, &body), object_id(ObjectKind::Blob, &body));
    }
}
