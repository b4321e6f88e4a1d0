//! cplane: a content-addressed (BLAKE3, Merkle-tree) store that keeps directory
//! trees ("planes") pristine: snapshot, verify, diff, rollback, restore and
//! fsck reduce to computing and comparing Merkle roots.
//!
//! The library owns every decision and every byte on disk; the `cplane`
//! binary parses arguments, calls one library function, renders the result
//! and picks the exit code from the error's class ([`error::ErrorClass`]). On-disk formats are specified in
//! `store-format.md` at the repository root.
//!
//! Entry points: [`store::Store`] (open/init, objects, refs), [`scope::Scope`]
//! (what a command may touch) and [`scan::scan`] (working tree → trees),
//! [`snapshot::seal`], [`worktree::status`], [`worktree::verify`],
//! [`diff::diff_trees`], [`rollback::rollback`], [`restore::restore`] (both
//! through the [`checkout`] engine), [`fsck::fsck`], [`gc::gc`], [`upgrade::upgrade`].
//! Long operations take a [`control::Control`]: a progress sink and a
//! cancellation token. Packages: [`package::build`] and [`package::read`]
//! (the format is specified in `package-format.md`).

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
// `struct stat` field types differ between architectures (`st_mode` is u16 on some,
// `st_dev` u32): the casts that are no-ops on x86_64 are needed elsewhere.
#![allow(clippy::unnecessary_cast)]

pub mod checkout;
pub mod control;
pub mod diff;
pub mod error;
pub mod exclude;
pub mod finding;
pub mod fsck;
pub mod fsutil;
pub mod fsys;
pub mod gate;
pub mod gc;
pub mod governance;
pub mod hash;
pub mod id;
pub mod keys;
pub mod ledger;
pub mod object;
pub mod package;
pub mod patch;
pub mod path;
pub mod plane;
pub mod progress;
pub mod remote;
pub mod renames;
pub mod restore;
pub mod retention;
pub mod revision;
pub mod rollback;
pub mod scan;
pub mod scope;
pub mod snapshot;
pub mod store;
pub mod timefmt;
pub mod trace;
pub mod upgrade;
pub mod worktree;

pub use control::Control;
pub use error::{Error, Result};
pub use id::{BlobId, ObjectId, SnapshotId, TreeId};
pub use path::RelPath;
