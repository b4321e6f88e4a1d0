//! `cplane pack`.

use super::{CliError, CmdResult, Ctx, exit, output};
use cplane::governance::{Model, OwnerKind};
use cplane::package::{self, BuildFile, FileMode, FileSource, PackageMeta};
use cplane::path::RelPath;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Build a signed package of a spec's files (package-format.md)
///
/// The files are those the spec owns in the plane, or every regular file
/// under --from DIR (their paths there are where they will be installed).
/// The spec's framework gates (secrets, sizes, allowed paths, …) run on
/// every file, and the framework must authorize every path: on any finding
/// nothing is written (exit 1). The archive — manifest, sshsig signature
/// (namespace cplane-package), in-toto attestation, files — is written
/// atomically, and reproducibly: with SOURCE_DATE_EPOCH set (the
/// attestation's time), the same files and key give the same bytes.
#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The spec the package implements (SPEC-…)
    #[arg(long, value_name = "SPEC_ID")]
    pub spec: String,
    /// Take the files from DIR instead of the spec's files in the plane
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Package id (default: PKG- and the spec id without SPEC-)
    #[arg(long)]
    pub id: Option<String>,
    /// Version, MAJOR.MINOR.PATCH
    #[arg(long, default_value = "0.1.0")]
    pub version: String,
    /// The tier it is meant for (default: the plane's tier, else `any`)
    #[arg(long)]
    pub tier: Option<String>,
    /// A package it needs, as ID:REQUIREMENT (e.g. `PKG-BASE:>=1.2.0, <2.0.0`); repeatable
    #[arg(long = "depends", value_name = "ID:REQ")]
    pub depends: Vec<String>,
    /// The signing key (default: the key `cplane key use` chose, or CPLANE_SIGNING_KEY)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Where to write the package
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Regular files under `dir`, as (package path, absolute path, mode).
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf, u32)>, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let list = std::fs::read_dir(&d).map_err(|e| CliError::Usage(format!("{}: {e}", d.display()), None))?;
        for e in list {
            let e = e.map_err(|e| CliError::Usage(format!("{}: {e}", d.display()), None))?;
            let p = e.path();
            let meta =
                std::fs::symlink_metadata(&p).map_err(|e| CliError::Usage(format!("{}: {e}", p.display()), None))?;
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned();
            if meta.is_dir() {
                if e.file_name() != ".cp" {
                    stack.push(p);
                }
            } else if meta.is_file() {
                out.push((rel, p, meta.permissions().mode()));
            } else {
                return Err(CliError::Usage(
                    format!(
                        "{}: packages hold regular files only (not symlinks or special files)",
                        p.display()
                    ),
                    None,
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A file's bytes and what the gates and the framework found in it.
type Checked = (package::Prepared, Vec<cplane::finding::Finding>);

fn mode_of(bits: u32) -> FileMode {
    // Packages carry 0644 or 0755: executable for anyone means 0755.
    FileMode::from_bits(if bits & 0o111 != 0 { 0o755 } else { 0o644 })
        .unwrap_or(FileMode::from_bits(0o644).expect("0644 is a package mode"))
}

pub fn cmd_pack(ctx: &mut Ctx, args: PackArgs) -> CmdResult {
    let (store, plane) = ctx.open()?;
    let control = ctx.control(&cplane::progress::NoProgress);
    let report = cplane::worktree::status(&store, &plane, control)?;
    let scope = cplane::scope::Scope::open(&plane)?;
    let view = cplane::governance::plane::worktree_view(&store, &scope, &report.scan)?;
    if !view.is_governed() {
        return Err(cplane::Error::NotGoverned {
            plane: plane.name.clone(),
        }
        .into());
    }
    let m = Model::load(&view)?;
    let spec = m.specs.get(&args.spec).ok_or_else(|| {
        CliError::Usage(
            format!("no spec {} in {}", args.spec, cplane::governance::SPECS),
            Some("give the id of a spec the plane's registries define".into()),
        )
    })?;
    let framework = m.frameworks.get(&spec.framework_id).ok_or_else(|| {
        CliError::Usage(
            format!(
                "spec {} names framework {}, which is not in {}",
                spec.id,
                spec.framework_id,
                cplane::governance::FRAMEWORKS
            ),
            None,
        )
    })?;
    let version = args
        .version
        .parse()
        .map_err(|e| CliError::Usage(format!("--version {:?}: {e}", args.version), None))?;
    let mut dependencies = Vec::new();
    for d in &args.depends {
        let (id, req) = d.split_once(':').ok_or_else(|| {
            CliError::Usage(
                format!("--depends {d:?} is not ID:REQUIREMENT"),
                Some("e.g. --depends 'PKG-BASE:>=1.2.0, <2.0.0'".into()),
            )
        })?;
        dependencies.push(package::Dependency {
            id: id.to_string(),
            requirement: req
                .parse()
                .map_err(|e| CliError::Usage(format!("--depends {d:?}: {e}"), None))?,
        });
    }
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("PKG-{}", spec.id.trim_start_matches("SPEC-")));
    // The files: (package path, where the bytes are, mode bits).
    let files: Vec<(String, PathBuf, u32)> = match &args.from {
        Some(dir) => files_under(&ctx.cwd.join(dir))?,
        None => cplane::governance::sorted::owned(&m.declared, &m.files)
            .filter(|(_, d, s)| {
                *d[0].owner_id == *spec.id
                    && d[0].owner_kind == OwnerKind::Spec
                    && s.kind == cplane::object::EntryKind::File
            })
            .map(|(p, _, s)| (p.display(), plane.root.join(p.display()), s.meta.mode))
            .collect(),
    };
    cplane::trace::phase("pack: model, files listed");
    if files.is_empty() {
        return Err(CliError::Usage(
            format!("spec {} has no files to pack", spec.id),
            Some("own files by the spec (cplane own PATH --by SPEC) or give --from DIR".into()),
        ));
    }
    // Gates and authorization, on the bytes that will be packed.
    let (gates, by_spec) = cplane::governance::spec_gates(&m);
    let engine = cplane::gate::Engine::new(gates).map_err(|e| CliError::Usage(e, None))?;
    let ids = by_spec.get(&spec.id).cloned().unwrap_or_default();
    // Read and checked in parallel; the bytes checked are the bytes packed.
    use rayon::prelude::*;
    let checked: Vec<Result<Checked, CliError>> = files
        .par_iter()
        .map(|(path, at, _)| {
            let rel = RelPath::parse(path.as_bytes())
                .ok_or_else(|| CliError::Usage(format!("{path:?} is not a plane path"), None))?;
            let mut findings = Vec::new();
            if framework.authorizing_glob(&rel).is_none() {
                findings.push(framework.not_authorized(&rel, &spec.id));
            }
            let bytes = std::fs::read(at).map_err(|e| CliError::Usage(format!("{}: {e}", at.display()), None))?;
            if !ids.is_empty() {
                let job = cplane::gate::FileJob {
                    path: rel,
                    owner: spec.id.clone(),
                    gates: ids.clone(),
                };
                let (found, _) = engine.check_bytes(&job, &bytes).map_err(|e| CliError::Usage(e, None))?;
                findings.extend(found);
            }
            // Hashed and compressed here, while the bytes are hot; the
            // build only writes.
            let prepared =
                package::prepare(&bytes).map_err(|e| CliError::Usage(format!("{}: {e}", at.display()), None))?;
            Ok((prepared, findings))
        })
        .collect();
    cplane::trace::phase("pack: read, gated, hashed, compressed");
    let mut findings = Vec::new();
    let mut contents = Vec::with_capacity(files.len());
    for c in checked {
        let (bytes, found) = c?;
        findings.extend(found);
        contents.push(bytes);
    }
    if !findings.is_empty() {
        return Err(cplane::Error::Refused {
            action: "pack",
            findings,
        }
        .into());
    }
    let key = match &args.key {
        Some(p) => cplane::keys::load_private(&ctx.cwd.join(p)).map_err(|e| CliError::Usage(e.to_string(), None))?,
        None => super::key::signing_key(&store)?.ok_or_else(|| {
            CliError::Usage(
                "a package must be signed, and no key is configured".into(),
                Some("give --key FILE, or `cplane key use FILE`".into()),
            )
        })?,
    };
    // Sign only with a key installers of this plane will accept.
    let fp = cplane::keys::fingerprint(key.public_key());
    let trust = cplane::ledger::Ledger::of(&store, &plane.name).trust()?;
    let accepted = trust.signers.iter().any(|s| {
        s.key.key_data() == key.public_key().key_data()
            && matches!(s.role, cplane::keys::Role::Admin | cplane::keys::Role::Maintainer)
            && s.allows_namespace(package::NAMESPACE)
    });
    if !accepted {
        if trust.signers.is_empty() && trust.admin_since.is_none() {
            eprintln!(
                "warning: plane {} trusts no keys yet: an installer must trust {fp} as maintainer or admin (cplane key trust)",
                plane.name
            );
        } else {
            return Err(CliError::Usage(
                format!(
                    "{fp} is not a key plane {} trusts as maintainer or admin for {}: no installer here would accept the package",
                    plane.name,
                    package::NAMESPACE
                ),
                Some("sign with a trusted key (--key FILE), or have an admin trust this one (cplane key trust)".into()),
            ));
        }
    }
    let meta = PackageMeta {
        id,
        version,
        spec_id: spec.id.clone(),
        framework_id: spec.framework_id.clone(),
        tier: args
            .tier
            .clone()
            .or_else(|| plane.tier.clone())
            .unwrap_or_else(|| "any".to_string()),
        dependencies,
    };
    let build: Vec<BuildFile<'_>> = files
        .iter()
        .zip(&contents)
        .map(|((path, _, mode), prepared)| BuildFile {
            path,
            mode: mode_of(*mode),
            source: FileSource::Prepared(prepared),
        })
        .collect();
    let out = ctx.cwd.join(&args.output);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".cplane-pack-")
        .tempfile_in(dir)
        .map_err(|e| CliError::Usage(format!("{}: {e}", dir.display()), None))?;
    // The attestation's time: SOURCE_DATE_EPOCH when set (the
    // reproducible-builds.org convention), so the same input, key and time
    // give the same bytes.
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => cplane::keys::UtcTime::from_unix(
            v.trim()
                .parse()
                .map_err(|_| CliError::Usage(format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"), None))?,
        ),
        Err(_) => cplane::keys::UtcTime::now(),
    };
    // (Its writeback starts while it is written: the fsync below waits for little.)
    let built = package::build(
        &meta,
        &build,
        &key,
        time,
        std::io::BufWriter::new(cplane::fsutil::WritebackWriter::new(tmp.as_file())),
    )
    .map_err(|e| CliError::Usage(e.to_string(), None))?;
    cplane::trace::phase("pack: written");
    // An ordinary output file (a temporary file is created 0600).
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| CliError::Usage(format!("{}: {e}", out.display()), None))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| CliError::Usage(format!("{}: {e}", out.display()), None))?;
    cplane::trace::phase("pack: flushed");
    tmp.persist(&out)
        .map_err(|e| CliError::Usage(format!("{}: {}", out.display(), e.error), None))?;
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "package": meta.id,
                "version": meta.version.to_string(),
                "spec": meta.spec_id,
                "framework": meta.framework_id,
                "files": built.manifest.files.len(),
                "manifest_digest": built.manifest_digest.to_hex(),
                "bytes": built.compressed_size,
                "output": out.display().to_string(),
                "signer": cplane::keys::fingerprint(key.public_key()),
            })
        )?;
    } else {
        writeln!(
            ctx.out,
            "packed {} {} ({}, spec {}): {}, manifest {} signed by {}",
            meta.id,
            meta.version,
            output::size(built.compressed_size),
            meta.spec_id,
            output::count(built.manifest.files.len() as u64, "file"),
            built.manifest_digest.short(12),
            cplane::keys::fingerprint(key.public_key())
        )?;
        writeln!(ctx.out, "wrote {}", out.display())?;
    }
    Ok(exit::CLEAN)
}
