//! The genesis framework and spec that `cplane init --governed` lays down:
//! FMWK-000 governs the governance files themselves (registries, every
//! `.file_registry.csv`, framework and spec documents, rules files) and
//! SPEC-000 owns them, so a new governed plane verifies clean at once. The
//! example plane (`examples/control-plane/`) uses the same genesis; its two
//! documents are embedded from there.

use super::{COMPILED, FILE_REGISTRY, FRAMEWORKS, PACKAGES, SPECS};
use crate::error::{Error, IoResultExt, Result};
use std::io::Write;
use std::path::Path;

const FRAMEWORK_DOC: &str = "frameworks/FMWK-000/framework.md";
const RULES: &str = "frameworks/FMWK-000/rules.json";
const SPEC_DOC: &str = "specs/SPEC-000/spec.md";

/// The files of the genesis, as (plane-relative path, bytes).
pub fn files() -> Vec<(&'static str, String)> {
    let frameworks = format!(
        "id,name,version,purpose,artifact_path,allowed_spec_types,required_gates,required_metadata,authorizes,rules_path\n\
         FMWK-000,Genesis,1.0,Governs the registries and the framework and spec documents themselves,{FRAMEWORK_DOC},governance,no-secrets,,registries/*.csv;registries/allowed_signers;**/.file_registry.csv;frameworks/**;specs/**,{RULES}\n"
    );
    let specs = format!(
        "id,framework_id,entity_type,artifact_path,required_assets,gates,metadata\n\
         SPEC-000,FMWK-000,governance,{SPEC_DOC},{FRAMEWORKS};{SPECS};{PACKAGES},,\n"
    );
    let mut owned = vec![
        FILE_REGISTRY,
        FRAMEWORKS,
        SPECS,
        PACKAGES,
        COMPILED,
        FRAMEWORK_DOC,
        RULES,
        SPEC_DOC,
    ];
    owned.sort_unstable();
    let mut registry = String::from("file_path,owner_id,owner_kind\n");
    for p in owned {
        registry.push_str(&format!("{p},SPEC-000,spec\n"));
    }
    vec![
        (FRAMEWORKS, frameworks),
        (SPECS, specs),
        (
            PACKAGES,
            "id,version,spec_id,framework_id,manifest_digest,status\n".into(),
        ),
        (FILE_REGISTRY, registry),
        (
            FRAMEWORK_DOC,
            include_str!("../../examples/control-plane/frameworks/FMWK-000/framework.md").into(),
        ),
        (
            RULES,
            include_str!("../../examples/control-plane/frameworks/FMWK-000/rules.json").into(),
        ),
        (
            SPEC_DOC,
            include_str!("../../examples/control-plane/specs/SPEC-000/spec.md").into(),
        ),
    ]
}

/// Writes the genesis files into `dir` (creating `registries/`,
/// `frameworks/FMWK-000/`, `specs/SPEC-000/`). Nothing is overwritten: if
/// any of the files exists, nothing is written.
///
/// # Errors
/// [`Error::BadConfig`] naming an existing file or a directory on the way
/// that is a symlink or not a directory; I/O errors.
pub fn lay_down(dir: &Path) -> Result<Vec<&'static str>> {
    let files = files();
    for (rel, _) in &files {
        let at = dir.join(rel);
        if at.symlink_metadata().is_ok() {
            return Err(Error::BadConfig {
                path: at,
                reason: "exists already; init --governed writes the genesis registries only into a tree that has none (remove it, or write registries/frameworks_registry.csv yourself and run plain `cplane init` to adopt them)".into(),
            });
        }
        let mut d = dir.to_path_buf();
        for part in Path::new(rel).parent().into_iter().flat_map(|p| p.components()) {
            d.push(part);
            if let Ok(m) = d.symlink_metadata()
                && !m.is_dir()
            {
                return Err(Error::BadConfig {
                    path: d,
                    reason: "is not a directory (a symlink or a file); the genesis files go below it".into(),
                });
            }
        }
    }
    let mut written = Vec::new();
    for (rel, bytes) in &files {
        let at = dir.join(rel);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&at)
            .at(&at)?;
        f.write_all(bytes.as_bytes()).and_then(|()| f.sync_all()).at(&at)?;
        written.push(*rel);
    }
    Ok(written)
}
