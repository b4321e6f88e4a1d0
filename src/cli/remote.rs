//! `cplane remote add|list|remove`, `cplane push`, `cplane pull`,
//! `cplane clone` (the library side is `cplane::remote`).

use super::{CliError, CmdResult, Ctx, exit, output};
use cplane::remote::{self, RemoteUrl};
use cplane::store::RemoteConfig;
use serde_json::json;
use std::io::Write;

/// Manage remotes: S3 buckets and directories planes are pushed to and pulled from
///
/// A remote is `s3://BUCKET/PREFIX` (AWS S3 or an S3-compatible server such
/// as Garage, MinIO or Ceph) or `file:///ABSOLUTE/PATH` (a directory, for
/// air-gapped copies). Credentials are never stored: they come from
/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) at each
/// use, as the AWS CLI and restic take them; the endpoint and region from
/// --endpoint/--region (stored) or AWS_ENDPOINT_URL and AWS_REGION. Objects
/// on a remote are NOT encrypted: anyone who can read the bucket can read
/// every pushed file.
#[derive(clap::Args, Debug)]
pub struct RemoteArgs {
    #[command(subcommand)]
    cmd: RemoteCmd,
}

#[derive(clap::Subcommand, Debug)]
enum RemoteCmd {
    /// Add remote NAME at URL (s3://BUCKET/PREFIX or file:///PATH); nothing is contacted
    Add {
        /// Name for the remote (`origin` is the default of push and pull)
        name: String,
        /// s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH
        url: String,
        /// S3 endpoint URL, for S3-compatible servers (else AWS_ENDPOINT_URL, else AWS)
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// S3 region (else AWS_REGION or AWS_DEFAULT_REGION)
        #[arg(long)]
        region: Option<String>,
    },
    /// List the remotes
    List,
    /// Remove remote NAME and what this store tracked of it (its remote-tracking refs)
    Remove {
        /// The remote
        name: String,
    },
}

pub fn prints_data(args: &RemoteArgs) -> bool {
    matches!(args.cmd, RemoteCmd::List)
}

/// Checks an `--endpoint` value: an http(s) URL without credentials in it.
fn check_endpoint(e: &str) -> Result<(), CliError> {
    let rest = e.strip_prefix("https://").or_else(|| e.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.split('/').next().unwrap_or("").contains('@') => Ok(()),
        Some(_) => Err(CliError::Usage(
            format!("--endpoint {e}: credentials do not go into the endpoint"),
            Some("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment".into()),
        )),
        None => Err(CliError::Usage(
            format!("--endpoint {e}: not an http:// or https:// URL"),
            Some("for example --endpoint http://127.0.0.1:3900".into()),
        )),
    }
}

pub fn cmd_remote(ctx: &mut Ctx, args: RemoteArgs) -> CmdResult {
    match args.cmd {
        RemoteCmd::Add {
            name,
            url,
            endpoint,
            region,
        } => {
            let parsed = RemoteUrl::parse(&url)?;
            if !cplane::store::refs::valid_name(&name) {
                return Err(CliError::Usage(
                    format!("invalid remote name `{name}`"),
                    Some("use letters, digits, `.`, `_` and `-`, not starting with `.` or `-`".into()),
                ));
            }
            if let Some(e) = &endpoint {
                check_endpoint(e)?;
            }
            if matches!(parsed, RemoteUrl::Dir { .. }) && (endpoint.is_some() || region.is_some()) {
                return Err(CliError::Usage(
                    "--endpoint and --region apply to s3:// remotes only".into(),
                    None,
                ));
            }
            let mut store = ctx.store()?;
            let _lock = store.lock(super::interrupt_flag())?;
            let mut config = store.config().clone();
            if config.remotes.iter().any(|r| r.name == name) {
                return Err(CliError::Usage(
                    format!("remote `{name}` already exists"),
                    Some(format!("`cplane remote remove {name}` first, or choose another name")),
                ));
            }
            config.remotes.push(RemoteConfig {
                name: name.clone(),
                url: parsed.to_url(),
                endpoint,
                region,
            });
            store.save_config(config)?;
            if ctx.json {
                writeln!(ctx.out, "{}", json!({"added": name, "url": parsed.to_url()}))?;
            } else {
                writeln!(ctx.out, "added remote {name}: {}", parsed.to_url())?;
            }
            Ok(exit::CLEAN)
        }
        RemoteCmd::List => {
            let store = ctx.store()?;
            let list = &store.config().remotes;
            if ctx.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|r| json!({"name": r.name, "url": r.url, "endpoint": r.endpoint, "region": r.region}))
                    .collect();
                writeln!(ctx.out, "{}", serde_json::Value::Array(v))?;
            } else {
                for r in list {
                    let mut extra = Vec::new();
                    if let Some(e) = &r.endpoint {
                        extra.push(format!("endpoint {e}"));
                    }
                    if let Some(g) = &r.region {
                        extra.push(format!("region {g}"));
                    }
                    if extra.is_empty() {
                        writeln!(ctx.out, "{}\t{}", r.name, r.url)?;
                    } else {
                        writeln!(ctx.out, "{}\t{}\t({})", r.name, r.url, extra.join(", "))?;
                    }
                }
            }
            Ok(exit::CLEAN)
        }
        RemoteCmd::Remove { name } => {
            let mut store = ctx.store()?;
            let _lock = store.lock(super::interrupt_flag())?;
            remote::config(&store, &name)?;
            let mut config = store.config().clone();
            config.remotes.retain(|r| r.name != name);
            // The tracking refs go first (moved into tmp/, removed here or by
            // the next writer), then the config: a crash between leaves a
            // remote that tracks nothing, which the next pull fills again.
            let dir = store.remote_dir(&name);
            if dir.exists() {
                let gone = store.tmp_dir().join(format!("remote-removed-{name}"));
                let _ = std::fs::remove_dir_all(&gone);
                std::fs::rename(&dir, &gone).map_err(|e| cplane::Error::Io {
                    path: dir.clone(),
                    source: e,
                })?;
                let _ = std::fs::remove_dir_all(&gone);
            }
            store.save_config(config)?;
            if ctx.json {
                writeln!(ctx.out, "{}", json!({"removed": name}))?;
            } else {
                writeln!(ctx.out, "removed remote {name}")?;
            }
            Ok(exit::CLEAN)
        }
    }
}

/// Upload the planes' new snapshots to a remote and move its refs
///
/// Finds what REMOTE lacks by walking each plane's HEAD and new
/// checkpoints against the remote's HEAD as last pulled, descending only
/// where trees differ (the cost grows with the change, not the tree),
/// uploads it as one pack (in parts when large) with its index and the
/// plane's ledger, then moves the remote HEAD by a conditional write and
/// creates the new checkpoint refs. If another store pushed since the last
/// pull, nothing is moved: "the remote moved; pull first" (exit 2). A push
/// killed at any point leaves the remote's refs as they were or as pushed.
/// --plane pushes one plane (default: all). Objects are stored unencrypted.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The remote (default: the only one, or `origin`)
    pub remote: Option<String>,
}

pub fn cmd_push(ctx: &mut Ctx, args: PushArgs) -> CmdResult {
    let mut store = ctx.store()?;
    let lock = store.lock(super::interrupt_flag())?;
    let name = match args.remote {
        Some(n) => n,
        None => remote::default_name(&store)?,
    };
    let backend = remote::open_for_push(&store, &name)?;
    let planes: Vec<String> = ctx.plane.iter().cloned().collect();
    let bar = ctx.bar("push");
    let hooks = super::hooks::remote_hooks(&store);
    let r = remote::push::push(&store, &lock, &backend, &planes, hooks.as_ref(), ctx.control(&bar))?;
    drop(bar);
    if ctx.json {
        let mut v = serde_json::to_value(&r).expect("report serialises");
        v["up_to_date"] = r.up_to_date().into();
        writeln!(ctx.out, "{v}")?;
        return Ok(exit::CLEAN);
    }
    if r.up_to_date() {
        writeln!(ctx.out, "{name} is up to date")?;
        return Ok(exit::CLEAN);
    }
    for p in &r.planes {
        let head = match &p.head_before {
            Some(b) if *b == p.head_after => format!("HEAD {} (unchanged)", &p.head_after[..12]),
            Some(b) => format!("HEAD {} -> {}", &b[..12], &p.head_after[..12]),
            None => format!("HEAD {} (new)", &p.head_after[..12]),
        };
        writeln!(
            ctx.out,
            "{name}/{}: {head}, {}",
            p.plane,
            output::count(p.checkpoints_created.len() as u64, "new checkpoint")
        )?;
    }
    writeln!(
        ctx.out,
        "pushed {} ({}) in {:.2} s",
        output::count(r.objects, "object"),
        output::size(r.bytes),
        r.seconds
    )?;
    Ok(exit::CLEAN)
}

/// Fetch a remote's snapshots and refs, verifying every object
///
/// Downloads the packs of REMOTE this store has not imported, re-hashes
/// every object before it enters the store (a remote is untrusted: a
/// flipped byte or a swapped object is refused and named, exit 3, and
/// nothing of it is kept), checks that everything the remote's refs reach
/// is here and that a governed plane's ledger chains and is signed by the
/// keys it trusts, then updates the remote-tracking refs: REMOTE/PLANE/HEAD
/// and REMOTE/PLANE/CHECKPOINT, which every command that takes a ref
/// accepts (`cplane diff origin/main/HEAD HEAD`, `cplane rollback
/// origin/main/HEAD`). The working tree is not touched. --plane pulls one plane.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// The remote (default: the only one, or `origin`)
    pub remote: Option<String>,
}

pub fn cmd_pull(ctx: &mut Ctx, args: PullArgs) -> CmdResult {
    let mut store = ctx.store()?;
    let lock = store.lock(super::interrupt_flag())?;
    let name = match args.remote {
        Some(n) => n,
        None => remote::default_name(&store)?,
    };
    let backend = remote::open(&store, &name)?;
    let bar = ctx.bar("pull");
    let hooks = super::hooks::remote_hooks(&store);
    let r = remote::pull::pull(
        &mut store,
        &lock,
        &backend,
        ctx.plane.as_deref(),
        hooks.as_ref(),
        ctx.control(&bar),
    )?;
    drop(bar);
    print_pull(ctx, &name, &r)?;
    Ok(exit::CLEAN)
}

fn print_pull(ctx: &mut Ctx, name: &str, r: &remote::pull::PullReport) -> std::io::Result<()> {
    if ctx.json {
        writeln!(ctx.out, "{}", serde_json::to_value(r).expect("report serialises"))?;
        return Ok(());
    }
    for p in &r.planes {
        let head = match (&p.head_before, &p.head) {
            (_, None) => "no HEAD".to_string(),
            (Some(b), Some(h)) if b == h => format!("HEAD {} (unchanged)", &h[..12]),
            (Some(b), Some(h)) => format!("HEAD {} -> {}", &b[..12], &h[..12]),
            (None, Some(h)) => format!("HEAD {} (new)", &h[..12]),
        };
        let ledger = if p.ledger_entries > 0 {
            format!(", ledger of {} verified", output::count(p.ledger_entries, "entry"))
        } else {
            String::new()
        };
        writeln!(
            ctx.out,
            "{name}/{}: {head}, {}{ledger}",
            p.plane,
            output::count(p.checkpoints, "checkpoint")
        )?;
    }
    writeln!(
        ctx.out,
        "pulled {} ({} verified, {} new, {}) in {:.2} s",
        output::count(r.packs, "pack"),
        r.objects_verified,
        r.objects_new,
        output::size(r.bytes),
        r.seconds
    )
}

/// Make a new store in DIR from a remote's plane and check it out
///
/// Creates DIR (which must be absent or empty), makes a store there with
/// the remote as `origin` (--origin NAME), pulls (verifying every object),
/// adopts the remote plane's HEAD, checkpoints and ledger as the local
/// plane's, and writes its files with the checkout engine. --plane picks
/// the remote plane (default: `main`, or the remote's only plane); it
/// becomes a plane of the same name rooted at DIR.
#[derive(clap::Args, Debug)]
pub struct CloneArgs {
    /// s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH
    pub url: String,
    /// The directory to create
    #[arg(value_name = "DIR")]
    pub directory: std::path::PathBuf,
    /// Name of the remote in the new store
    #[arg(long, default_value = "origin", value_name = "NAME")]
    pub origin: String,
    /// S3 endpoint URL (stored with the remote)
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// S3 region (stored with the remote)
    #[arg(long)]
    pub region: Option<String>,
}

pub fn cmd_clone(ctx: &mut Ctx, args: CloneArgs) -> CmdResult {
    if let Some(e) = &args.endpoint {
        check_endpoint(e)?;
    }
    let dir = ctx.cwd.join(&args.directory);
    let bar = ctx.bar("clone");
    let hooks = super::hooks::NoRemote;
    let opts = remote::pull::CloneOptions {
        url: args.url.clone(),
        origin: args.origin.clone(),
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        plane: ctx.plane.clone(),
    };
    let (store, r) = remote::pull::clone(&dir, &opts, &hooks, ctx.control(&bar))?;
    drop(bar);
    if ctx.json {
        let mut v = serde_json::to_value(&r.pull).expect("report serialises");
        v["dir"] = store.root().display().to_string().into();
        v["plane"] = r.plane.clone().into();
        v["head"] = r.head.to_hex().into();
        v["files_written"] = r.written.into();
        writeln!(ctx.out, "{v}")?;
    } else {
        writeln!(
            ctx.out,
            "cloned {}/{} into {}: HEAD {}, {} written",
            args.origin,
            r.plane,
            store.root().display(),
            r.head.short(12),
            output::count(r.written, "file")
        )?;
    }
    Ok(exit::CLEAN)
}
