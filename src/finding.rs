//! Findings: problems in the user's tree, reported as data.
//!
//! Each finding has a stable [`Code`] (`CP0xx` ownership, `CP1xx` content,
//! `CP2xx` chain, `CP3xx` gates, `CP4xx` ledger — the pass numbers of `governance.md`; the
//! table is in the README), a plane-relative path, the owner when there is
//! one, and one plain sentence. [`Code::remedy`] says what to do.

use crate::path::RelPath;
use serde::Serialize;

/// Stable finding codes (README, "Finding codes"). Declaration order is pass order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// CP001: a file no registry row owns.
    Unmapped,
    /// CP002: a registry row names a path that is not a file of the plane.
    DeclaredMissing,
    /// CP003: a path is declared by more than one row.
    TwoOwners,
    /// CP004: a row names an owner that is not in the specs or packages registry.
    UnknownOwner,
    /// CP005: a registry file cannot be read as the strict CSV `governance.md` describes.
    BadRegistry,
    /// CP006: the compiled ownership registry is missing or does not match its sources.
    StaleCompiled,
    /// CP101: a file's bytes differ from HEAD.
    Modified,
    /// CP102: a path exists that HEAD does not record.
    Added,
    /// CP103: a path HEAD records is gone.
    Deleted,
    /// CP104: a path's kind changed (file, symlink, directory) with the same bytes.
    KindChanged,
    /// CP105: a file or directory cannot be read.
    Unreadable,
    /// CP106: a FIFO, socket or device file; cplane does not store these.
    SpecialFile,
    /// CP107: a file kept changing while it was hashed.
    ChangedWhileHashing,
    /// CP108: permission bits differ from HEAD.
    ModeChanged,
    /// CP109: owner or group differs from HEAD.
    OwnerChanged,
    /// CP110: which paths are hard links of each other differs from HEAD.
    LinksChanged,
    /// CP111: a checkout could not put back a path's owner or mode (not permitted).
    NotRestored,
    /// CP112: a package-owned file differs from its package's manifest.
    PackageFileChanged,
    /// CP113: a `.cpignore` file cannot be read or has a line that is not a valid pattern.
    BadIgnoreFile,
    /// CP201: a spec names a framework that does not exist.
    UnknownFramework,
    /// CP202: a spec's entity type is not one its framework allows.
    EntityTypeNotAllowed,
    /// CP203: a spec lacks metadata its framework requires.
    MetadataMissing,
    /// CP204: no glob of the owning framework authorizes the path.
    NotAuthorized,
    /// CP205: a package's spec is missing or bound to another framework than the package says.
    PackageChain,
    /// CP206: a package that owns files is not installed.
    PackageNotInstalled,
    /// CP207: a framework's or spec's artifact (its document) is missing.
    ArtifactMissing,
    /// CP208: a spec's required asset is missing.
    RequiredAssetMissing,
    /// CP209: a framework's rules file is missing or invalid.
    BadRules,
    /// CP210: a framework or spec names a gate its rules file does not define.
    UnknownGate,
    /// CP301: a file contains forbidden content (a secret, or a framework's pattern).
    ForbiddenContent,
    /// CP302: a file is larger than its gate allows.
    TooLarge,
    /// CP303: a file has more lines than its gate allows.
    TooManyLines,
    /// CP304: a README lacks a required section.
    SectionMissing,
    /// CP305: a file a spec must have is missing.
    RequiredFileMissing,
    /// CP306: a governed file lies outside the paths its framework allows.
    PathNotAllowed,
    /// CP401: the plane's ledger is broken (an entry edited, removed,
    /// inserted or reordered, or entries cut off its end).
    LedgerBroken,
    /// CP402: a ledger entry is signed by an unknown or revoked key, or by
    /// a role that may not sign its operation.
    LedgerSignature,
    /// CP403: the plane's HEAD is not the one the last ledger entry records.
    LedgerHeadUnrecorded,
}

impl Code {
    /// `CP` + three digits.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unmapped => "CP001",
            Code::DeclaredMissing => "CP002",
            Code::TwoOwners => "CP003",
            Code::UnknownOwner => "CP004",
            Code::BadRegistry => "CP005",
            Code::StaleCompiled => "CP006",
            Code::Modified => "CP101",
            Code::Added => "CP102",
            Code::Deleted => "CP103",
            Code::KindChanged => "CP104",
            Code::Unreadable => "CP105",
            Code::SpecialFile => "CP106",
            Code::ChangedWhileHashing => "CP107",
            Code::ModeChanged => "CP108",
            Code::OwnerChanged => "CP109",
            Code::LinksChanged => "CP110",
            Code::NotRestored => "CP111",
            Code::PackageFileChanged => "CP112",
            Code::BadIgnoreFile => "CP113",
            Code::UnknownFramework => "CP201",
            Code::EntityTypeNotAllowed => "CP202",
            Code::MetadataMissing => "CP203",
            Code::NotAuthorized => "CP204",
            Code::PackageChain => "CP205",
            Code::PackageNotInstalled => "CP206",
            Code::ArtifactMissing => "CP207",
            Code::RequiredAssetMissing => "CP208",
            Code::BadRules => "CP209",
            Code::UnknownGate => "CP210",
            Code::ForbiddenContent => "CP301",
            Code::TooLarge => "CP302",
            Code::TooManyLines => "CP303",
            Code::SectionMissing => "CP304",
            Code::RequiredFileMissing => "CP305",
            Code::PathNotAllowed => "CP306",
            Code::LedgerBroken => "CP401",
            Code::LedgerSignature => "CP402",
            Code::LedgerHeadUnrecorded => "CP403",
        }
    }

    /// The pass that reports this code: 0 ownership, 1 content, 2 chain,
    /// 3 gates; 4 for the ledger check that follows them.
    pub fn pass(self) -> u8 {
        match self.as_str().as_bytes()[2] {
            b'0' => 0,
            b'1' => 1,
            b'2' => 2,
            b'3' => 3,
            _ => 4,
        }
    }

    /// What to do about a finding with this code, in one sentence.
    pub fn remedy(self) -> &'static str {
        match self {
            Code::Unmapped => {
                "give it an owner (cplane own PATH --by SPEC-ID), move it out (cplane quarantine), or delete it"
            }
            Code::DeclaredMissing => {
                "put the file back (cplane restore REF PATH from a checkpoint that has it), or drop its row: cplane disown PATH"
            }
            Code::TwoOwners => "keep exactly one row for the path across the .file_registry.csv files",
            Code::UnknownOwner => {
                "add the owner to registries/specs_registry.csv or packages_registry.csv, or fix the owner_id"
            }
            Code::BadRegistry => "fix the named line (governance.md gives the exact CSV rules)",
            Code::StaleCompiled => "run cplane compile",
            Code::Modified | Code::Added | Code::Deleted | Code::KindChanged | Code::ModeChanged => {
                "seal the change (cplane snapshot) or put HEAD back (cplane restore HEAD PATH)"
            }
            Code::OwnerChanged | Code::LinksChanged => {
                "seal the change (cplane snapshot) or put HEAD back (cplane restore HEAD PATH)"
            }
            Code::Unreadable => "make it readable for this user, or run as a user that can read it",
            Code::SpecialFile => {
                "remove the FIFO, socket or device, move it out of the plane, or exclude it (add it to .cpignore, or pass --exclude to init or plane add)"
            }
            Code::BadIgnoreFile => {
                "fix the named line (gitignore syntax, UTF-8) or make the .cpignore a readable regular file"
            }
            Code::ChangedWhileHashing => "stop the process writing it, then run the command again",
            Code::NotRestored => "run the command as root (or with CAP_CHOWN/CAP_FOWNER) to put it back",
            Code::PackageFileChanged => {
                "files a package installed change only through the package: reinstall or upgrade it, or put the file back (cplane restore REF PATH)"
            }
            Code::UnknownFramework => {
                "add the framework to registries/frameworks_registry.csv or fix the spec's framework_id"
            }
            Code::EntityTypeNotAllowed => {
                "change the spec's entity_type or add it to the framework's allowed_spec_types"
            }
            Code::MetadataMissing => "add the key to the spec's metadata cell (key=value;...)",
            Code::NotAuthorized => {
                "own the file by a spec whose framework authorizes it, or add a glob to the framework's authorizes"
            }
            Code::PackageChain => "fix the package's spec_id or framework_id in registries/packages_registry.csv",
            Code::PackageNotInstalled => "install the package, or give its files another owner",
            Code::ArtifactMissing => "create the document or fix artifact_path",
            Code::RequiredAssetMissing => "create the asset or remove it from required_assets",
            Code::BadRules => "fix the rules file at the named line and column (the README shows its shape)",
            Code::UnknownGate => "define the gate in the framework's rules file or remove its id",
            Code::ForbiddenContent => "remove the secret (rotate it if it was real) and snapshot again",
            Code::TooLarge | Code::TooManyLines => "split the file, or raise the limit in the framework's rules",
            Code::SectionMissing => "add the section as a Markdown heading",
            Code::RequiredFileMissing => "create the file next to the spec's document",
            Code::PathNotAllowed => "move the file under an allowed path, or extend the gate's globs",
            Code::LedgerBroken => {
                "the ledger was changed outside cplane: put it back from a backup (`cplane ledger verify` names the entry)"
            }
            Code::LedgerSignature => {
                "an entry not signed as the ledger's trusted keys require, or a registries/allowed_signers that differs from the ledger's key entries: find out who wrote it; keys are trusted with `cplane key trust` (signed by an admin), never by editing the file"
            }
            Code::LedgerHeadUnrecorded => {
                "run any command that writes (it records the missing snapshots), or put back the ledger's removed entries"
            }
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem in a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code.
    pub code: Code,
    /// Plane-relative path (may be non-UTF-8).
    #[serde(skip)]
    pub path: RelPath,
    /// The path's owner (spec or package id), when governance knows it.
    pub owner: Option<String>,
    /// One plain sentence: what is wrong.
    pub message: String,
}

impl Finding {
    /// Builds a finding.
    pub fn new(code: Code, path: RelPath, message: impl Into<String>) -> Self {
        Finding {
            code,
            path,
            owner: None,
            message: message.into(),
        }
    }

    /// The same finding, naming the path's owner.
    pub fn owned_by(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }
}
