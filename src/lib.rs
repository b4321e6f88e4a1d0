//! cplane: a content-addressed (BLAKE3, Merkle-tree) store that keeps directory
//! trees ("planes") pristine: snapshot, verify, diff, rollback and fsck reduce
//! to computing and comparing Merkle roots.
//!
//! The library owns every decision and every byte on disk; the `cplane`
//! binary parses arguments, calls one library function, renders the result
//! and picks the exit code ([`error::exit`]). On-disk formats are specified in
//! `store-format.md` at the repository root.
//!
//! Entry points: [`store::Store`] (open/init, objects, refs), [`scan::scan`]
//! (working tree → trees), [`snapshot::seal`], [`worktree::status`],
//! [`worktree::verify`], [`diff::diff_trees`], [`rollback::rollback`],
//! [`fsck::fsck`].

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod diff;
pub mod error;
pub mod finding;
pub mod fsck;
pub mod fsutil;
pub mod hash;
pub mod id;
pub mod interrupt;
pub mod object;
pub mod plane;
pub mod progress;
pub mod revision;
pub mod rollback;
pub mod scan;
pub mod snapshot;
pub mod store;
pub mod timefmt;
pub mod worktree;

pub use error::{Error, Result};
pub use id::{BlobId, ObjectId, SnapshotId, TreeId};
