//! The object-store seam under a remote: Apache Arrow's `object_store`
//! (S3 through `AmazonS3`, directories through `LocalFileSystem`), driven
//! from synchronous code on a small tokio runtime owned by the [`Backend`].
//!
//! Everything a remote holds is written once under a content-derived name
//! (packs, indexes, ledgers), except refs, which move only by
//! compare-and-swap ([`Backend::swap_ref`]):
//!
//! * on S3, a conditional PUT: `If-Match: <ETag read>` to replace a ref,
//!   `If-None-Match: *` to create one (`PutMode::Update` / `PutMode::Create`);
//!   a server that answers 412 (or 409) has moved;
//! * on an S3 server that ignores those headers (Garage 2.5 answers 200
//!   and overwrites: found by a probe, [`Backend::swap_ref`]), under a lock
//!   object, restic-style (`Backend::swap_ref_locked`);
//! * on a directory, `LocalFileSystem` has no `PutMode::Update`, so a ref is
//!   replaced under an exclusive `flock` of `<root>/refs.lock`: read and
//!   compare the current bytes, write a temporary file in `<root>/tmp/`,
//!   fsync, rename, fsync the directory. Every cplane that writes refs of
//!   that directory takes the lock, so two pushes on one machine (or on a
//!   filesystem with working `flock`, which NFSv4 has) never both win.

use crate::error::{Error, IoResultExt, Result};
use crate::progress::Progress;
use futures::TryStreamExt;
use object_store::path::Path as OsPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::url::RemoteUrl;

/// Files of this size and more are uploaded in parts (S3 multipart upload).
pub const MULTIPART_FROM_BYTES: u64 = 16 << 20;
/// Size of one part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_BYTES: usize = 8 << 20;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Largest ref (or `FORMAT`) object read: a HEAD is two lines of 64 hex.
pub const MAX_REF_BYTES: u64 = 1024;

/// Tries at taking the remote lock on a server without conditional writes.
const LOCK_ATTEMPTS: u32 = 8;
/// A remote lock this old is a killed push's, and ignored.
pub const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(600);

/// A name no other process picks: time, pid and a counter, hashed.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{t}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    blake3::hash(seed.as_bytes()).to_hex()[..16].to_string()
}

/// How a ref looked when it was read: its bytes, and what the next
/// [`Backend::swap_ref`] compares against (the ETag and version on S3, the
/// bytes on a directory).
#[derive(Debug, Clone)]
pub struct RefRead {
    /// The ref's contents.
    pub bytes: Vec<u8>,
    version: Option<UpdateVersion>,
}

/// Connection settings besides the URL.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// S3 endpoint (`--endpoint`, else `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// S3 region (`--region`, else `AWS_REGION` / `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// Create a directory remote that does not exist yet (a push); readers
    /// (pull, clone, fsck) refuse a missing directory instead.
    pub create_dir: bool,
}

/// One opened remote.
pub struct Backend {
    name: String,
    rt: tokio::runtime::Runtime,
    os: Arc<dyn ObjectStore>,
    /// Key prefix, empty or ending in `/`.
    prefix: String,
    /// The directory of a `file://` remote.
    dir: Option<PathBuf>,
    /// Whether the S3 server refuses a conditional PUT that does not hold
    /// (probed once, at the first ref write: Garage 2.5 does not).
    conditional: std::sync::OnceLock<bool>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("store", &self.os.to_string())
            .finish()
    }
}

/// True when an object-store error means "not there".
fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Backend {
    /// Opens remote `name` at `url`. S3 credentials, and the endpoint and
    /// region when `settings` has none, come from the `AWS_*` environment
    /// (`AmazonS3Builder::from_env`); an `http://` endpoint is allowed
    /// without TLS. Transient failures are retried with exponential backoff
    /// (object_store's `RetryConfig`: up to 5 retries within 60 s).
    ///
    /// # Errors
    /// [`Error::BadRemote`] when the client cannot be built (a bad endpoint),
    /// or a directory remote is missing (and not to be created);
    /// [`Error::Io`] when a directory remote cannot be created.
    pub fn open(name: &str, url: &RemoteUrl, settings: &Settings) -> Result<Backend> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Remote {
                remote: name.to_string(),
                op: "start the I/O runtime".into(),
                reason: e.to_string(),
            })?;
        let bad = |reason: String| Error::BadRemote {
            url: url.to_url(),
            reason,
        };
        let (os, prefix, dir): (Arc<dyn ObjectStore>, String, Option<PathBuf>) = match url {
            RemoteUrl::S3 { bucket, prefix } => {
                use object_store::aws::AmazonS3Builder;
                let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
                let endpoint = settings
                    .endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
                if let Some(ep) = &endpoint {
                    b = b.with_endpoint(ep);
                    if ep.starts_with("http://") {
                        b = b.with_allow_http(true);
                    }
                }
                let region = settings.region.clone().or_else(|| {
                    std::env::var("AWS_REGION")
                        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                        .ok()
                });
                if let Some(r) = region {
                    b = b.with_region(r);
                }
                let retry = object_store::RetryConfig {
                    max_retries: 5,
                    retry_timeout: std::time::Duration::from_secs(60),
                    ..Default::default()
                };
                b = b
                    .with_retry(retry)
                    .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                let s3 = b.build().map_err(|e| bad(e.to_string()))?;
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                (Arc::new(s3), prefix, None)
            }
            RemoteUrl::Dir { path } => {
                if settings.create_dir {
                    std::fs::create_dir_all(path).at(path)?;
                } else if !path.is_dir() {
                    return Err(bad(format!("{} is not a directory", path.display())));
                }
                let fs = object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| bad(e.to_string()))?
                    .with_fsync(true);
                (Arc::new(fs), String::new(), Some(path.clone()))
            }
        };
        Ok(Backend {
            name: name.to_string(),
            rt,
            os,
            prefix,
            dir,
            conditional: std::sync::OnceLock::new(),
        })
    }

    /// The remote's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn key(&self, rel: &str) -> OsPath {
        OsPath::from(format!("{}{rel}", self.prefix))
    }

    fn fail(&self, op: String, e: impl std::fmt::Display) -> Error {
        Error::Remote {
            remote: self.name.clone(),
            op,
            reason: e.to_string(),
        }
    }

    /// The bytes of `rel`, `None` when absent: a ledger copy, of any size.
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(rel);
        self.rt.block_on(async {
            match self.os.get(&key).await {
                Ok(r) => {
                    let bytes = r.bytes().await.map_err(|e| self.fail(format!("read {rel}"), e))?;
                    Ok(Some(bytes.to_vec()))
                }
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(self.fail(format!("read {rel}"), e)),
            }
        })
    }

    /// A ref's (or `FORMAT`'s) bytes and version, `None` when absent. At
    /// most [`MAX_REF_BYTES`] are read: a remote is untrusted, and a larger
    /// object where a ref should be is damage, never held in memory whole.
    ///
    /// # Errors
    /// [`Error::Remote`]; [`Error::DamagedFile`] (`remote NAME: KEY`) for
    /// an object larger than a ref.
    pub fn get_ref(&self, rel: &str) -> Result<Option<RefRead>> {
        let key = self.key(rel);
        let too_large = || Error::DamagedFile {
            path: PathBuf::from(format!("remote {}: {rel}", self.name)),
            reason: format!("is larger than a ref (at most {MAX_REF_BYTES} bytes): not a cplane ref"),
        };
        self.rt.block_on(async {
            match self.os.get(&key).await {
                Ok(r) => {
                    let version = UpdateVersion {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    if r.meta.size > MAX_REF_BYTES {
                        return Err(too_large());
                    }
                    let mut stream = r.into_stream();
                    let mut bytes = Vec::new();
                    while let Some(chunk) = stream
                        .try_next()
                        .await
                        .map_err(|e| self.fail(format!("read {rel}"), e))?
                    {
                        if (bytes.len() + chunk.len()) as u64 > MAX_REF_BYTES {
                            return Err(too_large());
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Ok(Some(RefRead {
                        bytes,
                        version: Some(version),
                    }))
                }
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(self.fail(format!("read {rel}"), e)),
            }
        })
    }

    /// Bytes `range` of `rel`.
    ///
    /// # Errors
    /// [`Error::Remote`] (also when `rel` is absent).
    pub fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let key = self.key(rel);
        self.rt.block_on(async {
            self.os
                .get_range(&key, range)
                .await
                .map(|b| b.to_vec())
                .map_err(|e| self.fail(format!("read {rel}"), e))
        })
    }

    /// Every object under `dir` (a `/`-terminated prefix relative to the
    /// remote, or `""`), as (path relative to the remote, size in bytes), sorted.
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub fn list(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        let key = self.key(dir.trim_end_matches('/'));
        let strip = self.prefix.clone();
        let mut out: Vec<(String, u64)> = self
            .rt
            .block_on(async {
                let listed: std::result::Result<Vec<object_store::ObjectMeta>, _> =
                    self.os.list(Some(&key)).try_collect().await;
                match listed {
                    Ok(v) => Ok(v),
                    Err(e) if not_found(&e) => Ok(Vec::new()),
                    Err(e) => Err(self.fail(format!("list {dir}"), e)),
                }
            })?
            .into_iter()
            .filter_map(|m| {
                let full = m.location.to_string();
                full.strip_prefix(&strip).map(|r| (r.to_string(), m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Writes `bytes` to `rel`, replacing whatever is there: only for names
    /// derived from the content (a pack index, a ledger copy).
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let key = self.key(rel);
        self.rt.block_on(async {
            self.os
                .put(&key, PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| self.fail(format!("upload {rel}"), e))
        })
    }

    /// Uploads the file `src` to `rel` (a content-named object), in parts
    /// when it is [`MULTIPART_FROM_BYTES`] or larger; `progress` gets the
    /// bytes as they go.
    ///
    /// # Errors
    /// [`Error::Io`] reading `src`; [`Error::Remote`] (a failed multipart
    /// upload is aborted, leaving nothing under `rel`).
    pub fn upload_file(&self, rel: &str, src: &Path, progress: &dyn Progress) -> Result<u64> {
        let mut f = std::fs::File::open(src).at(src)?;
        let len = f.metadata().at(src)?.len();
        let key = self.key(rel);
        if len < MULTIPART_FROM_BYTES {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf).at(src)?;
            self.put(rel, buf)?;
            progress.inc(0, len);
            return Ok(len);
        }
        self.rt.block_on(async {
            let upload = self
                .os
                .put_multipart(&key)
                .await
                .map_err(|e| self.fail(format!("start the upload of {rel}"), e))?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0u8; 1 << 20];
            let mut sent = 0u64;
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(e).at(src);
                    }
                };
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    return Err(self.fail(format!("upload {rel}"), e));
                }
                w.write(&buf[..n]);
                sent += n as u64;
                progress.inc(0, n as u64);
            }
            w.finish().await.map_err(|e| self.fail(format!("upload {rel}"), e))?;
            Ok(sent)
        })
    }

    /// Downloads `rel` into the new file `dest` (not fsynced: the caller
    /// verifies and then copies what it keeps); `progress` gets the bytes.
    /// Returns the bytes written, or `None` when `rel` is absent.
    ///
    /// # Errors
    /// [`Error::Remote`]; [`Error::Io`] naming `dest`.
    pub fn download_to(&self, rel: &str, dest: &Path, progress: &dyn Progress) -> Result<Option<u64>> {
        let key = self.key(rel);
        self.rt.block_on(async {
            let r = match self.os.get(&key).await {
                Ok(r) => r,
                Err(e) if not_found(&e) => return Ok(None),
                Err(e) => return Err(self.fail(format!("download {rel}"), e)),
            };
            let mut out = std::io::BufWriter::new(std::fs::File::create(dest).at(dest)?);
            let mut stream = r.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| self.fail(format!("download {rel}"), e))?
            {
                out.write_all(&chunk).at(dest)?;
                n += chunk.len() as u64;
                progress.inc(0, chunk.len() as u64);
            }
            out.flush().at(dest)?;
            Ok(Some(n))
        })
    }

    /// Moves the ref `rel` from `expected` (as [`Backend::get_ref`] read
    /// it; `None`: the ref must not exist) to `new`, atomically: returns
    /// `false`, changing nothing, when the ref is no longer as read.
    ///
    /// # Errors
    /// [`Error::Remote`]; [`Error::Io`] on a directory remote.
    pub fn swap_ref(&self, rel: &str, expected: Option<&RefRead>, new: &[u8]) -> Result<bool> {
        if let Some(dir) = &self.dir {
            return self.swap_ref_in_dir(dir, rel, expected, new);
        }
        if !self.conditional_writes()? {
            return self.swap_ref_locked(rel, expected, new);
        }
        let key = self.key(rel);
        let mode = match expected {
            None => PutMode::Create,
            Some(r) => PutMode::Update(r.version.clone().unwrap_or(UpdateVersion {
                e_tag: None,
                version: None,
            })),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        self.rt.block_on(async {
            match self.os.put_opts(&key, PutPayload::from(new.to_vec()), opts).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
                Err(e) => Err(self.fail(format!("move ref {rel}"), e)),
            }
        })
    }

    /// Whether the server honours `If-None-Match: *` on PUT: a probe object
    /// is created twice with `PutMode::Create`; a server that lets the
    /// second one through (Garage 2.5 answers 200 and overwrites) has no
    /// conditional writes. Probed once per [`Backend`].
    fn conditional_writes(&self) -> Result<bool> {
        if let Some(c) = self.conditional.get() {
            return Ok(*c);
        }
        let probe = format!("locks/probe-{}", unique());
        let key = self.key(&probe);
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let c = self.rt.block_on(async {
            self.os
                .put_opts(&key, PutPayload::from_static(b"probe"), create())
                .await
                .map_err(|e| self.fail("probe conditional writes".into(), e))?;
            let second = self
                .os
                .put_opts(&key, PutPayload::from_static(b"probe"), create())
                .await;
            let _ = self.os.delete(&key).await;
            match second {
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(true),
                Ok(_) => Ok(false),
                Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => Ok(false),
                Err(e) => Err(self.fail("probe conditional writes".into(), e)),
            }
        })?;
        let _ = self.conditional.set(c);
        Ok(c)
    }

    /// [`Backend::swap_ref`] on a server without conditional writes: under
    /// a lock object, as restic locks a repository. Write
    /// `locks/<time ns>-<unique>`, then list `locks/`: a pusher that sees
    /// another live lock removes its own and backs off (with jitter); one
    /// that sees only its own compares the ref and writes it, then removes
    /// its lock. Two pushers cannot both see only their own lock, since each
    /// lists after its own write completed and the listing is
    /// read-after-write consistent (Garage: quorum reads and writes).
    ///
    /// A lock [`STALE_LOCK`] older than this pusher's own (a killed push's)
    /// is ignored. Both ages are the server's last-modified times of the two
    /// lock objects, never a client's clock: a pusher whose clock is behind
    /// would otherwise have its live lock taken for stale by the others
    /// (two winners), and one whose clock is ahead would leave a lock that
    /// blocks everyone far longer.
    fn swap_ref_locked(&self, rel: &str, expected: Option<&RefRead>, new: &[u8]) -> Result<bool> {
        let now_ns = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        };
        let stale_ms = i64::try_from(STALE_LOCK.as_millis()).unwrap_or(i64::MAX);
        let mut blocked_by = String::new();
        for attempt in 0..LOCK_ATTEMPTS {
            let me = format!("locks/{:020}-{}", now_ns(), unique());
            let who = format!("cplane push, pid {}\n", std::process::id());
            self.put(&me, who.into_bytes())?;
            let listed = self.list_modified("locks/")?;
            let others: Vec<String> = match listed.iter().find(|(k, _)| *k == me) {
                Some(&(_, mine)) => listed
                    .into_iter()
                    .filter(|(k, t)| *k != me && !k.starts_with("locks/probe-") && mine.saturating_sub(*t) < stale_ms)
                    .map(|(k, _)| k)
                    .collect(),
                // Its own lock not listed yet: it cannot know it is alone.
                None => vec![format!("{me} (not listed yet)")],
            };
            if others.is_empty() {
                let r = (|| {
                    let current = self.get_ref(rel)?;
                    if current.as_ref().map(|r| r.bytes.as_slice()) != expected.map(|r| r.bytes.as_slice()) {
                        return Ok(false);
                    }
                    self.put(rel, new.to_vec())?;
                    Ok(true)
                })();
                let _ = self.delete(&me);
                return r;
            }
            self.delete(&me)?;
            blocked_by = others.join(", ");
            let jitter = u64::from(blake3::hash(me.as_bytes()).as_bytes()[0]);
            std::thread::sleep(std::time::Duration::from_millis((50u64 << attempt.min(5)) + jitter));
        }
        Err(Error::Remote {
            remote: self.name.clone(),
            op: format!("move ref {rel}"),
            reason: format!(
                "another push holds the remote's lock ({blocked_by}); try again, or delete the lock object if no push is running"
            ),
        })
    }

    /// Every object under `dir` with the server's last-modified time (Unix
    /// milliseconds), unsorted.
    fn list_modified(&self, dir: &str) -> Result<Vec<(String, i64)>> {
        let key = self.key(dir.trim_end_matches('/'));
        let listed: Vec<object_store::ObjectMeta> = self.rt.block_on(async {
            match self.os.list(Some(&key)).try_collect().await {
                Ok(v) => Ok(v),
                Err(e) if not_found(&e) => Ok(Vec::new()),
                Err(e) => Err(self.fail(format!("list {dir}"), e)),
            }
        })?;
        Ok(listed
            .into_iter()
            .filter_map(|m| {
                let t = m.last_modified.timestamp_millis();
                m.location
                    .as_ref()
                    .strip_prefix(self.prefix.as_str())
                    .map(|r| (r.to_string(), t))
            })
            .collect())
    }

    /// [`Backend::swap_ref`] for a directory remote: compare and replace
    /// under `flock(<root>/refs.lock)`, durably.
    fn swap_ref_in_dir(&self, root: &Path, rel: &str, expected: Option<&RefRead>, new: &[u8]) -> Result<bool> {
        let lock_path = root.join("refs.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(std::io::Error::from)
            .at(&lock_path)?;
        let path = root.join(rel);
        let current = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).at(&path),
        };
        if current.as_deref() != expected.map(|r| r.bytes.as_slice()) {
            return Ok(false);
        }
        let tmp = root.join("tmp");
        crate::fsutil::ensure_dir(&tmp)?;
        if let Some(parent) = path.parent() {
            crate::fsutil::ensure_dir(parent)?;
        }
        crate::fsutil::write_atomic(&path, new, &tmp)?;
        drop(lock);
        Ok(true)
    }

    /// Deletes `rel` (a ref a push created and must take back); absent is fine.
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub fn delete(&self, rel: &str) -> Result<()> {
        let key = self.key(rel);
        self.rt.block_on(async {
            match self.os.delete(&key).await {
                Ok(()) => Ok(()),
                Err(e) if not_found(&e) => Ok(()),
                Err(e) => Err(self.fail(format!("delete {rel}"), e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, Settings};
    use crate::progress::NoProgress;
    use crate::remote::RemoteUrl;

    fn dir_backend(root: &std::path::Path) -> Backend {
        let url = RemoteUrl::Dir { path: root.join("r") };
        let settings = Settings {
            create_dir: true,
            ..Settings::default()
        };
        Backend::open("t", &url, &settings).unwrap()
    }

    /// An in-memory remote that, like Garage 2.5, is treated as having no
    /// conditional writes: its refs move under the lock object.
    fn lock_backend() -> Backend {
        let b = Backend {
            name: "t".into(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            os: std::sync::Arc::new(object_store::memory::InMemory::new()),
            prefix: "p/".into(),
            dir: None,
            conditional: std::sync::OnceLock::new(),
        };
        b.conditional.set(false).unwrap();
        b
    }

    #[test]
    fn a_live_lock_is_judged_by_the_server_clock_not_by_its_name() {
        let b = lock_backend();
        assert!(b.swap_ref("planes/p/HEAD", None, b"one\n").unwrap(), "alone: moves");
        assert!(b.list("locks/").unwrap().is_empty(), "its lock is gone");
        // Another pusher's lock, just written, whose name carries a time
        // from a clock far behind: it is live, and the ref does not move.
        b.put("locks/00000000000000000001-0123456789abcdef", b"other".to_vec())
            .unwrap();
        let read = b.get_ref("planes/p/HEAD").unwrap();
        let r = b.swap_ref("planes/p/HEAD", read.as_ref(), b"two\n");
        assert!(r.is_err(), "{r:?}");
        assert_eq!(b.get("planes/p/HEAD").unwrap().unwrap(), b"one\n");
    }

    #[test]
    fn a_directory_ref_moves_only_from_what_was_read() {
        let t = tempfile::tempdir().unwrap();
        let b = dir_backend(t.path());
        assert!(b.get_ref("planes/p/HEAD").unwrap().is_none());
        assert!(b.swap_ref("planes/p/HEAD", None, b"one\n").unwrap(), "created");
        assert!(!b.swap_ref("planes/p/HEAD", None, b"two\n").unwrap(), "create-only");
        let read = b.get_ref("planes/p/HEAD").unwrap().unwrap();
        assert_eq!(read.bytes, b"one\n");
        assert!(b.swap_ref("planes/p/HEAD", Some(&read), b"two\n").unwrap());
        assert!(
            !b.swap_ref("planes/p/HEAD", Some(&read), b"three\n").unwrap(),
            "stale read"
        );
        assert_eq!(b.get("planes/p/HEAD").unwrap().unwrap(), b"two\n");
    }

    #[test]
    fn files_round_trip_and_list_under_a_prefix() {
        let t = tempfile::tempdir().unwrap();
        let b = dir_backend(t.path());
        let src = t.path().join("src");
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &body).unwrap();
        assert_eq!(b.upload_file("packs/x.pack", &src, &NoProgress).unwrap(), 100_000);
        b.put("packs/x.idx", b"idx".to_vec()).unwrap();
        let dest = t.path().join("dest");
        assert_eq!(
            b.download_to("packs/x.pack", &dest, &NoProgress).unwrap(),
            Some(100_000)
        );
        assert_eq!(std::fs::read(&dest).unwrap(), body);
        assert_eq!(b.get_range("packs/x.pack", 10..14).unwrap(), &body[10..14]);
        assert_eq!(
            b.list("packs/").unwrap(),
            vec![("packs/x.idx".to_string(), 3), ("packs/x.pack".to_string(), 100_000)]
        );
        assert!(b.list("planes/").unwrap().is_empty());
        assert!(b.download_to("packs/none", &dest, &NoProgress).unwrap().is_none());
        // A reader does not create a missing directory remote.
        let missing = RemoteUrl::Dir {
            path: t.path().join("missing"),
        };
        assert!(Backend::open("t", &missing, &Settings::default()).is_err());
        assert!(!t.path().join("missing").exists());
    }
}
