//! `cplane key generate|use|trust|revoke|list`.

use super::{CliError, CmdResult, Ctx, exit, output};
use cplane::keys::{self, PrivateKey, PublicKey, Role, Signer, UtcTime};
use cplane::path::RelPath;
use cplane::store::Store;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming the signing key (overrides `cplane key use`).
pub const SIGNING_KEY_ENV: &str = "CPLANE_SIGNING_KEY";
/// File in the store directory holding the path of the key `cplane key use` chose.
const SIGNING_KEY_FILE: &str = "signing-key";
/// Namespaces a newly trusted key may sign in, unless `--namespaces` says otherwise.
const DEFAULT_NAMESPACES: &str = "cplane-ledger,cplane-package";

/// SSH keys: sign the ledger, trust and revoke signers
///
/// Signatures are OpenSSH `sshsig` signatures (what `ssh-keygen -Y sign`
/// makes, as git's SSH commit signing does) with ed25519 keys. With a key
/// configured (`cplane key use FILE`, or CPLANE_SIGNING_KEY=FILE), every
/// ledger entry is signed and its actor is the key's fingerprint. The keys
/// a plane trusts live in its `registries/allowed_signers`, in OpenSSH's
/// allowed_signers format (stock `ssh-keygen -Y verify` reads it too), each
/// with a role: `admin` (everything, including trusting and revoking keys),
/// `maintainer` (every other change) or `auditor` (signs no change).
/// `cplane ledger verify` flags entries signed by unknown or revoked keys
/// or by a role that may not sign their operation.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    cmd: KeyCmd,
}

#[derive(clap::Subcommand, Debug)]
enum KeyCmd {
    /// Write a new ed25519 key pair, as `ssh-keygen -t ed25519 -N ''` does
    ///
    /// FILE (mode 0600, never overwritten) holds the private key in
    /// OpenSSH's format, FILE.pub the public key. The default FILE is
    /// ~/.ssh/cplane_ed25519, outside any plane.
    Generate {
        /// Where to write the private key (FILE.pub gets the public key)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The key's comment (default: USER@cplane)
        #[arg(long)]
        comment: Option<String>,
        /// Write it even inside a cplane store (where the next snapshot
        /// would store the private key for good)
        #[arg(long)]
        force: bool,
    },
    /// Sign with the key in FILE from now on (an existing ~/.ssh/id_ed25519
    /// works too); --none stops signing
    ///
    /// Recorded in the store (.cp/signing-key), not in the plane;
    /// CPLANE_SIGNING_KEY=FILE overrides it for one command.
    Use {
        /// The private key file (OpenSSH format, ed25519, not encrypted)
        #[arg(required_unless_present = "none")]
        file: Option<PathBuf>,
        /// Stop signing
        #[arg(long, conflicts_with = "file")]
        none: bool,
    },
    /// Trust a public key with a role: add it to registries/allowed_signers
    ///
    /// PUBKEY is a `.pub` file or the key text (`ssh-ed25519 AAAA… comment`).
    /// Once the registry has an admin key, only a configured admin key may
    /// trust or revoke keys. On a governed plane the registry is owned like
    /// the registries next to it and compiled. Snapshot to seal it.
    Trust {
        /// The public key: a file, or its text
        pubkey: String,
        /// admin, maintainer or auditor
        #[arg(long)]
        role: String,
        /// Who holds the key (default: the key's comment)
        #[arg(long)]
        principal: Option<String>,
        /// Comma-separated sshsig namespaces the key may sign
        #[arg(long, default_value = DEFAULT_NAMESPACES)]
        namespaces: String,
        /// The key signs nothing before this UTC time (OpenSSH's
        /// `valid-after`: YYYYMMDD[HHMM[SS]]Z)
        #[arg(long, value_name = "TIME")]
        valid_after: Option<String>,
        /// The key signs nothing after this UTC time (OpenSSH's
        /// `valid-before`: YYYYMMDD[HHMM[SS]]Z); writing commands refuse it
        /// once expired, and verify flags what it signed after
        #[arg(long, value_name = "TIME")]
        valid_before: Option<String>,
    },
    /// Revoke a trusted key (a `.pub` file, its text, or its SHA256:
    /// fingerprint)
    ///
    /// The registry line is kept, commented out with the revocation time:
    /// entries the key signed before stay valid, later ones are flagged, and
    /// `ssh-keygen -Y verify` no longer accepts it. A revoked key cannot be
    /// trusted again.
    Revoke {
        /// The key: a `.pub` file, its text, or `SHA256:…`
        key: String,
    },
    /// List the plane's trusted and revoked keys, and the key in use
    List,
}

/// True for `key list`, whose output is data (see `--quiet`).
pub fn prints_data(args: &KeyArgs) -> bool {
    matches!(args.cmd, KeyCmd::List)
}

/// The path of the configured signing key, if any: `CPLANE_SIGNING_KEY`,
/// else what `cplane key use` recorded in the store.
pub fn signing_key_path(store: &Store) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(SIGNING_KEY_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let text = std::fs::read_to_string(store.dir().join(SIGNING_KEY_FILE)).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| PathBuf::from(t))
}

/// The configured signing key, loaded; `None` when none is configured.
///
/// # Errors
/// A configured key that does not load (missing, encrypted, readable by
/// others, not ed25519): the command refuses rather than record unsigned.
pub fn signing_key(store: &Store) -> cplane::Result<Option<PrivateKey>> {
    let Some(path) = signing_key_path(store) else {
        return Ok(None);
    };
    keys::load_private(&path)
        .map(Some)
        .map_err(|e| cplane::Error::BadConfig {
            path: path.clone(),
            reason: format!(
                "is the signing key ({}), but {e}; {}",
                if std::env::var_os(SIGNING_KEY_ENV).is_some() {
                    SIGNING_KEY_ENV
                } else {
                    "cplane key use"
                },
                if std::env::var_os(SIGNING_KEY_ENV).is_some() {
                    format!("fix it, or unset {SIGNING_KEY_ENV}")
                } else {
                    "fix it, or stop signing with `cplane key use --none`".to_string()
                }
            ),
        })
}

fn registry_rel() -> RelPath {
    RelPath::parse(cplane::governance::ALLOWED_SIGNERS.as_bytes()).expect("constant path")
}

/// The registry's text and its signers (empty when the plane has none).
fn read_registry(scope: &cplane::scope::Scope) -> Result<(String, Vec<Signer>), CliError> {
    let rel = registry_rel();
    if !cplane::governance::plane::is_plane_file(scope, &rel) {
        // Absent is an empty registry; anything else there (a symlink, a
        // directory) is refused, never followed or read as empty.
        let there = scope
            .open_dir(&rel.parent().unwrap_or_else(RelPath::root))
            .and_then(|d| d.stat(rel.file_name().unwrap_or_default()));
        return match there {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || cplane::fsys::is_not_a_directory(&e) => {
                Ok((String::new(), Vec::new()))
            }
            _ => Err(CliError::Usage(
                format!(
                    "{} is not a regular file (a symlink or a directory?)",
                    scope.shown(&rel).display()
                ),
                Some("replace it with the registry file itself".into()),
            )),
        };
    }
    let bytes = cplane::governance::plane::read_file(scope, &rel)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{}: not UTF-8 text", cplane::governance::ALLOWED_SIGNERS), None))?;
    let signers = keys::parse_allowed_signers(&text, cplane::governance::ALLOWED_SIGNERS)
        .map_err(|e| CliError::Usage(e.to_string(), None))?;
    Ok((text, signers))
}

/// The plane's trusted keys (for `ledger verify`).
///
/// # Errors
/// The registry unreadable or malformed.
pub fn trusted(plane: &cplane::plane::Plane) -> Result<Vec<Signer>, CliError> {
    let scope = cplane::scope::Scope::open(plane)?;
    Ok(read_registry(&scope)?.1)
}

fn parse_pubkey(arg: &str) -> Result<PublicKey, CliError> {
    let text = match std::fs::read_to_string(arg) {
        Ok(t) => t,
        Err(_) if arg.starts_with("ssh-") => arg.to_string(),
        Err(e) => {
            return Err(CliError::Usage(
                format!("{arg}: {e}"),
                Some("give a .pub file or the key text (ssh-ed25519 AAAA… comment)".into()),
            ));
        }
    };
    PublicKey::from_openssh(text.trim()).map_err(|e| {
        CliError::Usage(
            format!("{arg}: not an OpenSSH public key ({e})"),
            Some("give a .pub file or the key text (ssh-ed25519 AAAA… comment)".into()),
        )
    })
}

/// Refuses to change the trusted keys unless the ledger never trusted an
/// admin key (trust on first use) or the configured signing key is one of
/// the admin keys it trusts now.
fn require_admin(store: &Store, trust: &cplane::ledger::Trust, what: &str) -> Result<(), CliError> {
    let admins: Vec<&Signer> = trust.signers.iter().filter(|s| s.role == Role::Admin).collect();
    if trust.admin_since.is_none() {
        return Ok(());
    }
    let key = signing_key(store)?;
    let ok = key
        .as_ref()
        .is_some_and(|k| admins.iter().any(|a| a.key.key_data() == k.public_key().key_data()));
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(
            format!(
                "only an admin key may {what}: the ledger trusts {} admin key{} and {}",
                admins.len(),
                if admins.len() == 1 { "" } else { "s" },
                match &key {
                    Some(k) => format!("the signing key {} is not one", keys::fingerprint(k.public_key())),
                    None => "no signing key is configured".to_string(),
                }
            ),
            Some("sign with an admin key: `cplane key use FILE` or CPLANE_SIGNING_KEY=FILE".into()),
        ))
    }
}

pub fn cmd_key(ctx: &mut Ctx, args: KeyArgs) -> CmdResult {
    match args.cmd {
        KeyCmd::Generate { out, comment, force } => generate(ctx, out, comment, force),
        KeyCmd::Use { file, none } => use_key(ctx, file, none),
        KeyCmd::Trust {
            pubkey,
            role,
            principal,
            namespaces,
            valid_after,
            valid_before,
        } => {
            let when = |flag: &str, t: Option<String>| -> Result<Option<keys::UtcTime>, CliError> {
                t.map(|t| {
                    keys::UtcTime::parse_openssh(&t).ok_or_else(|| {
                        CliError::Usage(
                            format!("{flag} {t:?} is not a UTC time"),
                            Some("write it as OpenSSH does: YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, then Z (e.g. 20270101Z)".into()),
                        )
                    })
                })
                .transpose()
            };
            let window = (
                when("--valid-after", valid_after)?,
                when("--valid-before", valid_before)?,
            );
            if let (Some(a), Some(b)) = window
                && a >= b
            {
                return Err(CliError::Usage(
                    format!("--valid-after {a} is not before --valid-before {b}"),
                    None,
                ));
            }
            trust(ctx, &pubkey, &role, principal, &namespaces, window)
        }
        KeyCmd::Revoke { key } => revoke(ctx, &key),
        KeyCmd::List => list(ctx),
    }
}

fn generate(ctx: &mut Ctx, out: Option<PathBuf>, comment: Option<String>, force: bool) -> CmdResult {
    let out = match out {
        Some(p) => ctx.cwd.join(p),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| CliError::Usage("HOME is not set".into(), Some("give --out FILE".into())))?;
            let dir = Path::new(&home).join(".ssh");
            // As ssh makes it: only its owner may look inside.
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                .create(&dir)
                .map_err(|e| CliError::Usage(format!("{}: {e}", dir.display()), None))?;
            dir.join("cplane_ed25519")
        }
    };
    let comment = comment.unwrap_or_else(|| {
        let user = cplane::ledger::os_actor();
        format!("{}@cplane", user.trim_start_matches("user:"))
    });
    if !force
        && let Some(parent) = out.parent().filter(|p| p.is_dir())
        && let Ok(root) = cplane::store::Store::find_root(parent)
    {
        return Err(CliError::Usage(
            format!(
                "{} is inside the cplane store at {}: the next snapshot would keep the private key for good",
                out.display(),
                root.display()
            ),
            Some("write it outside any plane (the default is ~/.ssh/cplane_ed25519), or pass --force".into()),
        ));
    }
    let public = keys::generate(&out, &comment).map_err(|e| CliError::Usage(e.to_string(), None))?;
    writeln!(
        ctx.out,
        "wrote {} (private, mode 0600) and {}.pub\n{}  {}",
        out.display(),
        out.display(),
        keys::fingerprint(&public),
        comment
    )?;
    eprintln!(
        "next: `cplane key use {}`, then `cplane key trust {}.pub --role admin` (from then on every change is signed)",
        out.display(),
        out.display()
    );
    Ok(exit::CLEAN)
}

fn use_key(ctx: &mut Ctx, file: Option<PathBuf>, none: bool) -> CmdResult {
    let store = ctx.store()?;
    let setting = store.dir().join(SIGNING_KEY_FILE);
    if none {
        match std::fs::remove_file(&setting) {
            Ok(()) => writeln!(ctx.out, "ledger entries are no longer signed")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => writeln!(ctx.out, "no signing key was configured")?,
            Err(e) => return Err(CliError::Usage(format!("{}: {e}", setting.display()), None)),
        }
        return Ok(exit::CLEAN);
    }
    let file = file.unwrap_or_default();
    let path = std::path::absolute(ctx.cwd.join(&file)).unwrap_or_else(|_| ctx.cwd.join(&file));
    let key = keys::load_private(&path).map_err(|e| CliError::Usage(e.to_string(), None))?;
    cplane::fsutil::write_atomic(&setting, format!("{}\n", path.display()).as_bytes(), &store.tmp_dir())?;
    writeln!(
        ctx.out,
        "signing ledger entries with {} ({})",
        keys::fingerprint(key.public_key()),
        path.display()
    )?;
    Ok(exit::CLEAN)
}

/// Writes the registry, has it owned and compiled on a governed plane, and
/// records `ev` in the ledger.
fn write_registry(
    ctx: &mut Ctx,
    store: &Store,
    lock: &cplane::store::lock::StoreLock,
    plane: &cplane::plane::Plane,
    scope: &cplane::scope::Scope,
    text: &str,
    mut ev: cplane::ledger::Event,
) -> Result<(), CliError> {
    let rel = registry_rel();
    ctx.intend(store, lock, plane, ev.op, ev.message.clone())?;
    // `registries/` (an ungoverned plane has none), made through the plane's
    // root handle: never through a symlink.
    match scope.root().mkdir(b"registries", 0o755) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(scope.io_error(&rel, e).into()),
    }
    cplane::governance::plane::write_file(scope, &rel, text.as_bytes())?;
    let like = RelPath::parse(cplane::governance::FRAMEWORKS.as_bytes()).expect("constant path");
    if cplane::governance::plane::is_governed(scope) {
        cplane::governance::edit::own_like(store, plane, &rel, &like, ctx.control(&cplane::progress::NoProgress))?;
    }
    ev.paths = vec![cplane::governance::ALLOWED_SIGNERS.to_string()];
    ctx.record(store, lock, plane, ev)?;
    Ok(())
}

fn trust(
    ctx: &mut Ctx,
    pubkey: &str,
    role: &str,
    principal: Option<String>,
    namespaces: &str,
    (valid_after, valid_before): (Option<keys::UtcTime>, Option<keys::UtcTime>),
) -> CmdResult {
    let role = Role::from_name(role).ok_or_else(|| {
        CliError::Usage(
            format!("unknown role {role:?}"),
            Some("the roles are admin, maintainer and auditor".into()),
        )
    })?;
    let key = parse_pubkey(pubkey)?;
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let scope = cplane::scope::Scope::open(&plane)?;
    let (mut text, signers) = read_registry(&scope)?;
    let trust = cplane::ledger::Ledger::of(&store, &plane.name).trust()?;
    require_admin(&store, &trust, "trust keys")?;
    let fp = keys::fingerprint(&key);
    if let Some((_, n)) = trust.revoked.iter().find(|(r, _)| *r == fp) {
        return Err(CliError::Usage(
            format!("{fp} was revoked by ledger entry {n}: a revoked key is never trusted again"),
            Some("generate a new key (cplane key generate) and trust that".into()),
        ));
    }
    if let Some(s) = trust.signers.iter().find(|s| s.key.key_data() == key.key_data()) {
        return Err(CliError::Usage(
            format!("{fp} is trusted already, as {}", s.role.as_str()),
            None,
        ));
    }
    if let Some(s) = signers.iter().find(|s| s.key.key_data() == key.key_data()) {
        return Err(CliError::Usage(
            format!(
                "{fp} is already in {} (line {}, {}{})",
                cplane::governance::ALLOWED_SIGNERS,
                s.line,
                s.role.as_str(),
                if s.revoked.is_some() { ", revoked" } else { "" }
            ),
            (s.revoked.is_some()).then(|| "a revoked key cannot be trusted again: generate a new one".to_string()),
        ));
    }
    let principal = principal
        .or_else(|| Some(key.comment().to_string()).filter(|c| !c.is_empty() && !c.contains([' ', ','])))
        .unwrap_or_else(|| format!("key-{}", fp.trim_start_matches("SHA256:").get(..12).unwrap_or("cplane")));
    let mut bare = key.clone();
    bare.set_comment("");
    let signer = Signer {
        principals: vec![principal.clone()],
        role,
        namespaces: namespaces.split(',').map(str::to_string).collect(),
        valid_after,
        valid_before,
        key: bare,
        comment: String::new(),
        revoked: None,
        line: 0,
    };
    let line = keys::format_signer(&signer).map_err(|e| CliError::Usage(e.to_string(), None))?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if text.is_empty() {
        text.push_str("# Trusted signing keys (OpenSSH allowed_signers; the role is the comment's cplane-role=).\n# Managed with `cplane key trust` and `cplane key revoke`.\n");
    }
    text.push_str(&line);
    text.push('\n');
    keys::parse_allowed_signers(&text, cplane::governance::ALLOWED_SIGNERS)
        .map_err(|e| CliError::Usage(e.to_string(), None))?;
    let mut ev = cplane::ledger::Event::new(
        cplane::ledger::Op::KeyTrust,
        format!("trusted {fp} ({principal}) as {}", role.as_str()),
    );
    ev.key = Some(line.clone());
    write_registry(ctx, &store, &lock, &plane, &scope, &text, ev)?;
    writeln!(
        ctx.out,
        "trusted {fp} ({principal}) as {} for {namespaces} in {}; snapshot to seal it",
        role.as_str(),
        cplane::governance::ALLOWED_SIGNERS
    )?;
    Ok(exit::CLEAN)
}

fn revoke(ctx: &mut Ctx, which: &str) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let scope = cplane::scope::Scope::open(&plane)?;
    let (text, signers) = read_registry(&scope)?;
    let trust = cplane::ledger::Ledger::of(&store, &plane.name).trust()?;
    // The key, its role and whether it is revoked come from the ledger; the
    // file is only rewritten to match.
    let wanted = if which.starts_with("SHA256:") {
        which.to_string()
    } else {
        keys::fingerprint(&parse_pubkey(which)?)
    };
    if let Some((_, n)) = trust.revoked.iter().find(|(r, _)| *r == wanted) {
        writeln!(ctx.out, "{wanted} is revoked already (ledger entry {n})")?;
        return Ok(exit::CLEAN);
    }
    let Some(target) = trust.signers.iter().find(|s| s.fingerprint() == wanted) else {
        return Err(CliError::Usage(
            format!("{wanted} is not a key the ledger of plane {} trusts", plane.name),
            Some("`cplane key list` shows the trusted keys".into()),
        ));
    };
    require_admin(&store, &trust, "revoke keys")?;
    let fp = target.fingerprint();
    let admins_left = trust
        .signers
        .iter()
        .filter(|s| s.role == Role::Admin && s.fingerprint() != fp)
        .count();
    if target.role == Role::Admin && admins_left == 0 && trust.admin_since.is_some() {
        return Err(CliError::Usage(
            format!("{fp} is the plane's last admin key: revoking it would leave nobody to trust or revoke keys"),
            Some("trust another admin key first (cplane key trust PUBKEY --role admin)".into()),
        ));
    }
    let who = target.principals.join(",");
    // The file follows the ledger: the line is revoked when it is there.
    let new = if signers
        .iter()
        .any(|s| s.key.key_data() == target.key.key_data() && s.revoked.is_none())
    {
        keys::revoke(&text, cplane::governance::ALLOWED_SIGNERS, &target.key, UtcTime::now())
            .map_err(|e| CliError::Usage(e.to_string(), None))?
    } else {
        text.clone()
    };
    let mut ev = cplane::ledger::Event::new(cplane::ledger::Op::KeyRevoke, format!("revoked {fp} ({who})"));
    ev.key = Some(fp.clone());
    write_registry(ctx, &store, &lock, &plane, &scope, &new, ev)?;
    writeln!(
        ctx.out,
        "revoked {fp} ({who}); what it signed before stays valid; snapshot to seal it"
    )?;
    Ok(exit::CLEAN)
}

fn list(ctx: &mut Ctx) -> CmdResult {
    let json = ctx.json;
    let (store, plane) = ctx.open()?;
    let scope = cplane::scope::Scope::open(&plane)?;
    // What the ledger trusts (the registry file is only a view of it).
    let (_, file) = read_registry(&scope)?;
    let trust = cplane::ledger::Ledger::of(&store, &plane.name).trust()?;
    let differs = {
        let mut a: Vec<String> = trust.signers.iter().map(|s| s.fingerprint()).collect();
        let mut b: Vec<String> = file
            .iter()
            .filter(|s| s.revoked.is_none())
            .map(|s| s.fingerprint())
            .collect();
        a.sort();
        b.sort();
        a != b
    };
    let mut signers = trust.signers.clone();
    for s in file.iter().filter(|s| s.revoked.is_some()) {
        if trust.revoked.iter().any(|(r, _)| *r == s.fingerprint()) {
            signers.push(s.clone());
        }
    }
    let using = signing_key_path(&store);
    let using_fp = signing_key(&store)?.map(|k| keys::fingerprint(k.public_key()));
    if json {
        let list: Vec<_> = signers
            .iter()
            .map(|s| {
                json!({
                    "fingerprint": s.fingerprint(),
                    "role": s.role.as_str(),
                    "principals": s.principals,
                    "namespaces": s.namespaces,
                    "revoked": s.revoked.map(|t| t.to_string()),
                    "line": s.line,
                })
            })
            .collect();
        writeln!(
            ctx.out,
            "{}",
            json!({"plane": plane.name, "keys": list, "signing_key": using_fp, "signing_key_path": using.map(|p| p.display().to_string())})
        )?;
        return Ok(exit::CLEAN);
    }
    if signers.is_empty() {
        writeln!(
            ctx.out,
            "no trusted keys in {} of plane {}",
            cplane::governance::ALLOWED_SIGNERS,
            plane.name
        )?;
    }
    for s in &signers {
        writeln!(
            ctx.out,
            "{}  {:<10}  {:<24}  {}{}",
            s.fingerprint(),
            s.role.as_str(),
            s.principals.join(","),
            s.namespaces.join(","),
            s.revoked.map(|t| format!("  revoked {t}")).unwrap_or_default()
        )?;
    }
    match (&using_fp, &using) {
        (Some(fp), Some(p)) => writeln!(
            ctx.out,
            "signing with {fp} ({}){}",
            p.display(),
            if signers.iter().any(|s| s.fingerprint() == *fp && s.revoked.is_none()) {
                ""
            } else {
                ": NOT a trusted key of this plane"
            }
        )?,
        _ => writeln!(ctx.out, "not signing (no key configured: `cplane key use FILE`)")?,
    }
    if differs {
        writeln!(
            ctx.out,
            "note: {} differs from the keys the ledger trusts (listed above); `cplane ledger verify` shows how",
            cplane::governance::ALLOWED_SIGNERS
        )?;
    }
    let _ = output::count(0, "key");
    Ok(exit::CLEAN)
}
