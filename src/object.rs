//! The three object kinds — blob, tree, snapshot — and their canonical
//! encoding (store format 2).
//!
//! Bodies are encoded with postcard 1.x (serde; its wire format is specified
//! at <https://postcard.jamesmunns.com/wire-format>): integers as LEB128
//! varints, byte strings and strings as varint length + bytes, enums as a
//! varint variant index, `Option` as a 0/1 byte, structs as their fields in
//! order. Ids:
//!
//! * blob: `BLAKE3(bytes)` — the same digest `b3sum` prints;
//! * tree: `BLAKE3("tree2 " || decimal(len(body)) || 0x00 || body)`;
//! * snapshot: `BLAKE3("snapshot2 " || decimal(len(body)) || 0x00 || body)`.
//!
//! The tag follows git's object header so a tree can never collide with a
//! blob of the same bytes; the `2` is the encoding version, so an id also
//! says how its body decodes (format 1 used `tree`/`snapshot`; see
//! [`crate::upgrade`]). See `store-format.md`, "Objects".

use crate::error::{Error, Result};
use crate::id::{BlobId, ObjectId, SnapshotId, TreeId};
use crate::path::RelPath;
use serde::{Deserialize, Serialize};

pub use crate::path::valid_name;

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

/// The kind of a tree entry. Postcard encodes it as its variant index (0..=2).
/// Whether a file is executable is in its mode ([`Meta::mode`]), not its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link; its blob is the raw target bytes.
    Symlink,
    /// A directory; its id is a [`TreeId`].
    Dir,
}

impl EntryKind {
    /// Lower-case name used in output and `--json`: `file`, `symlink`, `directory`.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
            EntryKind::Dir => "directory",
        }
    }
}

/// Permission bits and numeric owner of an entry.
///
/// `mode` is `st_mode & 0o7777` (rwx for user, group and other, setuid,
/// setgid, sticky) for files and directories, and 0 for symlinks (Linux
/// ignores a symlink's mode). `uid`/`gid` are numeric, never names.
/// Entries converted from store format 1 by `cplane upgrade` did not record
/// these: their mode has [`Meta::LEGACY_MODE`] set (only the owner-execute
/// bit is known) and their owner is [`Meta::UNKNOWN_ID`]; unknown parts are
/// neither compared nor restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Meta {
    /// Permission bits, `st_mode & 0o7777`, possibly with [`Meta::LEGACY_MODE`].
    pub mode: u32,
    /// Numeric owner, or [`Meta::UNKNOWN_ID`].
    pub uid: u32,
    /// Numeric group, or [`Meta::UNKNOWN_ID`].
    pub gid: u32,
}

/// Which parts of two entries' [`Meta`] differ (unknown parts never do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaDiff {
    /// The permission bits differ.
    pub mode: bool,
    /// The owner or group differs.
    pub owner: bool,
}

impl Meta {
    /// Mode flag: the entry came from store format 1, where only the
    /// owner-execute bit (0o100) was recorded; the other bits are unknown.
    pub const LEGACY_MODE: u32 = 1 << 31;
    /// uid/gid value meaning "not recorded" (format 1); as `chown`'s -1, it means "leave as is".
    pub const UNKNOWN_ID: u32 = u32::MAX;
    /// The permission bits that are recorded.
    pub const PERM_MASK: u32 = 0o7777;

    /// Builds the meta of an `lstat`: mode bits (0 for a symlink), uid, gid.
    pub fn from_stat(st_mode: u32, uid: u32, gid: u32, kind: EntryKind) -> Self {
        Meta {
            mode: if kind == EntryKind::Symlink {
                0
            } else {
                st_mode & Self::PERM_MASK
            },
            uid,
            gid,
        }
    }

    /// The recorded permission bits (without the legacy flag).
    pub fn perm(&self) -> u32 {
        self.mode & Self::PERM_MASK
    }

    /// True when only the owner-execute bit of the mode is known.
    pub fn is_legacy_mode(&self) -> bool {
        self.mode & Self::LEGACY_MODE != 0
    }

    /// True when uid and gid were recorded.
    pub fn owner_known(&self) -> bool {
        self.uid != Self::UNKNOWN_ID && self.gid != Self::UNKNOWN_ID
    }

    /// True when the owner-execute bit is set.
    pub fn is_executable(&self) -> bool {
        self.mode & 0o100 != 0
    }

    /// What differs between `self` and `other`, ignoring what either does not know.
    pub fn diff(&self, other: &Meta) -> MetaDiff {
        let mode = if self.is_legacy_mode() || other.is_legacy_mode() {
            (self.mode & 0o100) != (other.mode & 0o100)
        } else {
            self.mode != other.mode
        };
        let owner = self.owner_known() && other.owner_known() && (self.uid != other.uid || self.gid != other.gid);
        MetaDiff { mode, owner }
    }

    /// The mode as four octal digits (`0644`), or `?..x`/`?..-` for a legacy
    /// mode that only knows the execute bit.
    pub fn mode_string(&self) -> String {
        if self.is_legacy_mode() {
            if self.is_executable() {
                "?exec".into()
            } else {
                "?noexec".into()
            }
        } else {
            format!("{:04o}", self.perm())
        }
    }

    /// `uid:gid`, or `?` when unknown.
    pub fn owner_string(&self) -> String {
        if self.owner_known() {
            format!("{}:{}", self.uid, self.gid)
        } else {
            "?".into()
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
    /// Permission bits and owner.
    pub meta: Meta,
    /// Blob id for files and symlinks, tree id for directories.
    pub id: ObjectId,
    /// Bytes: file length, symlink target length, or for a directory the
    /// total bytes of the files beneath it.
    pub size: u64,
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
    /// `file`, `executable` (a file with the owner-execute bit), `symlink` or `directory`.
    pub fn kind_label(&self) -> &'static str {
        if self.kind == EntryKind::File && self.meta.is_executable() {
            "executable"
        } else {
            self.kind.name()
        }
    }
}

/// A directory: entries sorted by `name` bytes, names unique. An empty tree
/// is an empty directory.
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
    /// The state sealed by `cplane rollback` or `restore` before it changed anything.
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

/// A group of paths that are hard links to one inode: at least two
/// plane-relative paths, sorted; the first is the one written from the blob,
/// the others are linked to it.
pub type LinkGroup = Vec<RelPath>;

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
    /// Number of files and symlinks in the tree (directories not counted).
    pub files: u64,
    /// Total bytes of those files.
    pub bytes: u64,
    /// Hard-link groups among the plane's regular files, sorted by first path.
    pub links: Vec<LinkGroup>,
    /// Reserved for governance: the object recording every file's owner
    /// (spec or package). `None` in planes without registries. See
    /// `store-format.md`, "Where owners live".
    pub ownership: Option<ObjectId>,
    /// The plane's ledger head when the snapshot was sealed (before the
    /// entry of the command that sealed it): a ledger cut below `size`
    /// entries, or rewritten within them, no longer matches the snapshot
    /// HEAD names. `None` in snapshots sealed before ledgers (their bodies
    /// end before this field, see `store-format.md`).
    pub ledger: Option<LedgerRef>,
}

/// A ledger head as a snapshot records it ([`Snapshot::ledger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRef {
    /// Entries in the ledger.
    pub size: u64,
    /// Its RFC 6962 Merkle root (`crate::ledger::merkle`).
    pub root: [u8; 32],
}

/// A snapshot body as written before ledgers: every field of [`Snapshot`]
/// but the last.
#[derive(Deserialize)]
struct SnapshotBeforeLedger {
    plane: String,
    name: String,
    root: TreeId,
    parent: Option<SnapshotId>,
    kind: SnapshotKind,
    time_unix_ns: i64,
    message: String,
    files: u64,
    bytes: u64,
    links: Vec<LinkGroup>,
    ownership: Option<ObjectId>,
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

/// Record version of objects written in this format (the byte after a record's magic).
pub const ENCODING_VERSION: u8 = 2;

/// Id of a blob: the plain BLAKE3 hash of its bytes (the BLAKE3 spec's
/// default hash, 32 bytes; what `b3sum` prints).
pub fn blob_id(bytes: &[u8]) -> ObjectId {
    ObjectId(*blake3::hash(bytes).as_bytes())
}

/// Id of an object of `kind` whose body, in encoding `version` (1 or 2), is `body`.
/// Blob ids do not depend on the version.
pub fn object_id_v(kind: ObjectKind, version: u8, body: &[u8]) -> ObjectId {
    match (kind, version) {
        (ObjectKind::Blob, _) => blob_id(body),
        (ObjectKind::Tree, 1) => tagged_id("tree", body),
        (ObjectKind::Snapshot, 1) => tagged_id("snapshot", body),
        (ObjectKind::Tree, _) => tagged_id("tree2", body),
        (ObjectKind::Snapshot, _) => tagged_id("snapshot2", body),
    }
}

/// Id of an object of `kind` whose canonical (format 2) body is `body`.
pub fn object_id(kind: ObjectKind, body: &[u8]) -> ObjectId {
    object_id_v(kind, ENCODING_VERSION, body)
}

fn corrupt(id: ObjectId, what: &str, reason: String) -> Error {
    Error::CorruptObject {
        id: id.to_hex(),
        location: format!("{what} body"),
        reason,
    }
}

/// Appends `v` as a postcard varint (unsigned LEB128: 7 bits a byte, low first).
fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Tree {
    /// Canonical body bytes: exactly what postcard writes for this struct
    /// (`store-format.md`, "Tree"), written directly — a scan encodes every
    /// directory, and serde's byte-by-byte path was a fifth of a `status`.
    pub fn encode(&self) -> Vec<u8> {
        let names: usize = self.entries.iter().map(|e| e.name.len()).sum();
        let mut out = Vec::with_capacity(10 + names + self.entries.len() * 56);
        push_varint(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            push_varint(&mut out, e.name.len() as u64);
            out.extend_from_slice(&e.name);
            let kind = match e.kind {
                EntryKind::File => 0,
                EntryKind::Symlink => 1,
                EntryKind::Dir => 2,
            };
            push_varint(&mut out, kind);
            push_varint(&mut out, e.meta.mode.into());
            push_varint(&mut out, e.meta.uid.into());
            push_varint(&mut out, e.meta.gid.into());
            out.extend_from_slice(&e.id.0);
            push_varint(&mut out, e.size);
        }
        out
    }

    /// Encodes and computes the id in one step.
    pub fn encode_with_id(&self) -> (TreeId, Vec<u8>) {
        let body = self.encode();
        (TreeId(object_id(ObjectKind::Tree, &body)), body)
    }

    /// The id of the empty tree (an empty directory), computed once.
    pub fn empty_id() -> TreeId {
        static EMPTY: std::sync::OnceLock<TreeId> = std::sync::OnceLock::new();
        *EMPTY.get_or_init(|| Tree::default().encode_with_id().0)
    }

    /// Decodes a body and checks the tree invariants (sorted, unique, valid
    /// names, mode bits within `0o7777` plus the legacy flag).
    ///
    /// # Errors
    /// [`Error::CorruptObject`] naming `id` when the body does not decode or breaks an invariant.
    pub fn decode(id: ObjectId, body: &[u8]) -> Result<Self> {
        let tree: Tree =
            postcard::from_bytes(body).map_err(|e| corrupt(id, "tree", format!("does not decode: {e}")))?;
        tree.check(id)?;
        Ok(tree)
    }

    /// Checks the invariants [`Tree::decode`] promises.
    pub(crate) fn check(&self, id: ObjectId) -> Result<()> {
        for (i, e) in self.entries.iter().enumerate() {
            if !valid_name(&e.name) {
                return Err(corrupt(id, "tree", format!("entry {i} has an invalid name")));
            }
            if i > 0 && self.entries[i - 1].name >= e.name {
                return Err(corrupt(id, "tree", format!("entry {i} is out of order or duplicated")));
            }
            if e.meta.mode & !(Meta::PERM_MASK | Meta::LEGACY_MODE) != 0 {
                return Err(corrupt(
                    id,
                    "tree",
                    format!("entry {i} has mode {:#o}, outside 0o7777", e.meta.mode),
                ));
            }
        }
        Ok(())
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
        // The whole body must decode: as a snapshot with its ledger head, or
        // (written before ledgers) as one whose body ends before it.
        let s: Snapshot = match postcard::take_from_bytes::<Snapshot>(body) {
            Ok((s, [])) => s,
            first => match postcard::take_from_bytes::<SnapshotBeforeLedger>(body) {
                Ok((s, [])) => Snapshot {
                    plane: s.plane,
                    name: s.name,
                    root: s.root,
                    parent: s.parent,
                    kind: s.kind,
                    time_unix_ns: s.time_unix_ns,
                    message: s.message,
                    files: s.files,
                    bytes: s.bytes,
                    links: s.links,
                    ownership: s.ownership,
                    ledger: None,
                },
                _ => {
                    let why = match first {
                        Err(e) => e.to_string(),
                        Ok(_) => "bytes left over after the snapshot".to_string(),
                    };
                    return Err(corrupt(id, "snapshot", format!("does not decode: {why}")));
                }
            },
        };
        // Link groups: two or more paths each (paths are validated as they decode), sorted.
        for (i, g) in s.links.iter().enumerate() {
            if g.len() < 2 || g.windows(2).any(|w| w[0] >= w[1]) {
                return Err(corrupt(
                    id,
                    "snapshot",
                    format!("hard-link group {i} has fewer than two paths or is not sorted"),
                ));
            }
            if g.iter().any(RelPath::is_root) {
                return Err(corrupt(
                    id,
                    "snapshot",
                    format!("hard-link group {i} names the plane root"),
                ));
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![Just(EntryKind::File), Just(EntryKind::Symlink), Just(EntryKind::Dir)]
    }

    proptest! {
        #[test]
        fn tree_round_trip(entries in proptest::collection::btree_map(
            proptest::collection::vec(1u8..=255, 1..140).prop_filter("valid", |n| valid_name(n)),
            (arb_kind(), any::<[u8; 32]>(), any::<u64>(), prop_oneof![0u32..0o10000, Just(Meta::LEGACY_MODE | 0o100)], any::<u32>(), any::<u32>()), 0..20)) {
            let tree = Tree { entries: entries.into_iter().map(|(name, (kind, id, size, mode, uid, gid))|
                TreeEntry { name, kind, meta: Meta { mode, uid, gid }, id: ObjectId(id), size }).collect() };
            let (id, body) = tree.encode_with_id();
            // The hand-written encoder writes exactly postcard's bytes: ids never change.
            prop_assert_eq!(&body, &postcard::to_allocvec(&tree).unwrap());
            prop_assert_eq!(Tree::decode(id.0, &body).unwrap(), tree);
            prop_assert_eq!(object_id(ObjectKind::Tree, &body), id.0);
        }

        #[test]
        fn snapshot_round_trip(name in "[A-Za-z0-9-]{1,20}", msg in ".*", t in any::<i64>(),
                               files in any::<u64>(), parent in any::<Option<[u8; 32]>>(), root in any::<[u8; 32]>(),
                               ledger in any::<Option<(u64, [u8; 32])>>()) {
            let mut s = Snapshot { plane: "main".into(), name, root: TreeId(ObjectId(root)),
                parent: parent.map(|p| SnapshotId(ObjectId(p))), kind: SnapshotKind::Checkpoint,
                time_unix_ns: t, message: msg, files, bytes: files / 2,
                links: vec![vec![RelPath::parse(b"a").unwrap(), RelPath::parse(b"b/c").unwrap()]], ownership: None,
                ledger: ledger.map(|(size, root)| LedgerRef { size, root }) };
            let (id, body) = s.encode_with_id();
            prop_assert_eq!(Snapshot::decode(id.0, &body).unwrap(), s.clone());
            // A body one byte short is corrupt, never read as something else.
            prop_assert!(Snapshot::decode(id.0, &body[..body.len() - 1]).is_err() || s.ledger.is_none());
            // A body written before ledgers (it ends where `ledger` begins)
            // reads back with no ledger head.
            s.ledger = None;
            let (_, body) = s.encode_with_id();
            let before = &body[..body.len() - 1];
            prop_assert_eq!(Snapshot::decode(id.0, before).unwrap(), s);
        }
    }

    fn entry(n: &[u8]) -> TreeEntry {
        TreeEntry {
            name: n.to_vec(),
            kind: EntryKind::File,
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            id: ObjectId([0; 32]),
            size: 0,
        }
    }

    #[test]
    fn unsorted_tree_and_bad_modes_are_corrupt() {
        let bad = Tree {
            entries: vec![entry(b"b"), entry(b"a")],
        };
        let (id, body) = bad.encode_with_id();
        assert!(matches!(Tree::decode(id.0, &body), Err(Error::CorruptObject { .. })));
        let mut e = entry(b"a");
        e.meta.mode = 0o170644;
        let bad = Tree { entries: vec![e] };
        let (id, body) = bad.encode_with_id();
        assert!(matches!(Tree::decode(id.0, &body), Err(Error::CorruptObject { .. })));
    }

    #[test]
    fn ids_depend_on_kind_and_encoding_version() {
        let body = Tree::default().encode();
        assert_ne!(object_id(ObjectKind::Tree, &body), object_id(ObjectKind::Blob, &body));
        assert_ne!(
            object_id_v(ObjectKind::Tree, 1, &body),
            object_id_v(ObjectKind::Tree, 2, &body),
            "the empty tree of format 1 and format 2 are different objects"
        );
    }

    #[test]
    fn legacy_meta_compares_only_what_it_knows() {
        let legacy = Meta {
            mode: Meta::LEGACY_MODE | 0o100,
            uid: Meta::UNKNOWN_ID,
            gid: Meta::UNKNOWN_ID,
        };
        let full = Meta {
            mode: 0o750,
            uid: 7,
            gid: 8,
        };
        assert_eq!(legacy.diff(&full), MetaDiff::default());
        let noexec = Meta { mode: 0o640, ..full };
        assert_eq!(
            legacy.diff(&noexec),
            MetaDiff {
                mode: true,
                owner: false
            }
        );
        assert_eq!(
            full.diff(&Meta { uid: 9, ..full }),
            MetaDiff {
                mode: false,
                owner: true
            }
        );
    }
}
