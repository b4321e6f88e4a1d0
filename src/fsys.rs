//! The filesystem seam: every read and write of a plane's working tree goes
//! through open directory descriptors, never through path strings.
//!
//! A [`Dir`] is a directory opened with `O_DIRECTORY | O_NOFOLLOW`; every
//! operation on a name is relative to it (`openat`, `fstatat`, `readlinkat`,
//! `renameat`, `unlinkat`, `mkdirat`, `fchmodat`, `fchownat`, `linkat`), with
//! `AT_SYMLINK_NOFOLLOW` or `O_NOFOLLOW` so that no symlink is ever followed
//! — not in the last component, and not in an intermediate one, because
//! multi-component paths are opened one directory at a time
//! ([`Dir::open_beneath`]; `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` in one call where the kernel has it). Two
//! consequences: paths of any length work (no call ever sees more than one
//! 255-byte name, so `PATH_MAX` does not apply), and a directory swapped for
//! a symlink while a command runs cannot redirect a read or a write outside
//! the plane: the open fails with `ELOOP`/`ENOTDIR` instead.
//!
//! System calls go through `rustix` (no `libc` in the library). Errors are
//! plain [`std::io::Error`]s; callers attach the plane-relative path.

use crate::path::RelPath;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub use rustix::fs::Stat;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A directory's names with their types, as `getdents` gives them
/// ([`Dir::list`]).
pub type Listing = Vec<(Vec<u8>, EntryType)>;

/// What a directory entry is, from `getdents` (or `fstatat` when the
/// filesystem does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// The filesystem did not say (`DT_UNKNOWN`); stat it.
    Unknown,
}

impl EntryType {
    fn from_file_type(t: FileType) -> Self {
        match t {
            FileType::RegularFile => EntryType::File,
            FileType::Directory => EntryType::Dir,
            FileType::Symlink => EntryType::Symlink,
            FileType::Fifo => EntryType::Fifo,
            FileType::Socket => EntryType::Socket,
            FileType::BlockDevice => EntryType::BlockDevice,
            FileType::CharacterDevice => EntryType::CharDevice,
            _ => EntryType::Unknown,
        }
    }

    /// The type recorded in an `st_mode`.
    pub fn from_mode(st_mode: u32) -> Self {
        Self::from_file_type(FileType::from_raw_mode(st_mode as _))
    }
}

/// An open directory; every operation is relative to it and follows no symlink.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// Refuses a name that is not one plain component (`..`, `.`, empty, a `/`
/// or NUL inside): defence in depth, since every caller passes validated names.
fn check(name: &[u8]) -> io::Result<()> {
    if crate::path::valid_name(name) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} is not a plain file name", String::from_utf8_lossy(name)),
        ))
    }
}

/// True for the errors that mean "this name is gone" (deleted, or a parent
/// directory replaced) — a path that vanished while a command ran.
pub fn is_vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || is_errno(e, rustix::io::Errno::NOTDIR)
}

/// True when `e` is the OS error `errno`.
pub fn is_errno(e: &io::Error, errno: rustix::io::Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// True for the error an `O_NOFOLLOW` open returns on a symlink.
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    is_errno(e, rustix::io::Errno::LOOP)
}

/// True when a component on the way is not a real directory: a symlink
/// (refused, `ELOOP`) or a file (`ENOTDIR`).
pub fn is_not_a_directory(e: &io::Error) -> bool {
    is_symlink_refusal(e) || is_errno(e, rustix::io::Errno::NOTDIR)
}

thread_local! {
    static DIRENT_BUF: RefCell<Vec<MaybeUninit<u8>>> = RefCell::new(vec![MaybeUninit::uninit(); 64 * 1024]);
}

/// Whether `openat2` works here; cleared after the first `ENOSYS`.
static OPENAT2: AtomicBool = AtomicBool::new(true);

impl Dir {
    /// Opens the directory at an absolute `path` (the store root). Symlinks in
    /// `path` itself are followed, except in its last component; everything
    /// below is opened relative to the result.
    ///
    /// # Errors
    /// The `openat` error (`ENOTDIR`, `ELOOP` for a final symlink, ...).
    pub fn open(path: &Path) -> io::Result<Dir> {
        rustix::fs::openat(rustix::fs::CWD, path, DIR_FLAGS, Mode::empty())
            .map(|fd| Dir { fd })
            .map_err(errno)
    }

    /// Another descriptor for the same directory.
    ///
    /// # Errors
    /// `EMFILE` and friends.
    pub fn try_clone(&self) -> io::Result<Dir> {
        rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
            .map(|fd| Dir { fd })
            .map_err(errno)
    }

    /// The extended attribute `name` of this directory (`fgetxattr`):
    /// `None` when it has none of that name or the filesystem keeps none.
    ///
    /// # Errors
    /// `EACCES`, ...
    pub fn xattr(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        use rustix::io::Errno;
        let absent = |e: Errno| e == Errno::NODATA || e == Errno::NOTSUP;
        let len = match rustix::fs::fgetxattr_query(&self.fd, name) {
            Ok(n) => n,
            Err(e) if absent(e) => return Ok(None),
            Err(e) => return Err(errno(e)),
        };
        let mut buf = vec![0u8; len];
        match rustix::fs::fgetxattr(&self.fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e) if absent(e) => Ok(None),
            Err(e) => Err(errno(e)),
        }
    }

    /// The directory's descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Opens the subdirectory `name` (never through a symlink).
    ///
    /// # Errors
    /// `ENOENT`, `ENOTDIR` (not a directory), `ELOOP` (a symlink), `EACCES`, ...
    pub fn open_dir(&self, name: &[u8]) -> io::Result<Dir> {
        check(name)?;
        rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map(|fd| Dir { fd })
            .map_err(errno)
    }

    /// Opens the directory at `rel` below this one, following no symlink in
    /// any component and never leaving this directory: `openat2` with
    /// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it (and
    /// the path fits in one call), otherwise one `openat(O_NOFOLLOW)` per component.
    ///
    /// # Errors
    /// As [`Dir::open_dir`] for the first component that fails.
    pub fn open_beneath(&self, rel: &RelPath) -> io::Result<Dir> {
        if rel.is_root() {
            return self.try_clone();
        }
        if rel.depth() > 1 && rel.as_bytes().len() < 4000 && OPENAT2.load(Ordering::Relaxed) {
            match rustix::fs::openat2(
                &self.fd,
                rel.as_bytes(),
                DIR_FLAGS,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => return Ok(Dir { fd }),
                Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
                    // No openat2 (old kernel, or a seccomp filter that refuses it).
                    OPENAT2.store(false, Ordering::Relaxed);
                }
                // A concurrent rename made the kernel give up: resolve one component at a time.
                Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        let mut parts = rel.components();
        let first = parts.next().expect("a non-root path has a component");
        let mut cur = self.open_dir(first)?;
        for part in parts {
            cur = cur.open_dir(part)?;
        }
        Ok(cur)
    }

    /// True when this directory is on a filesystem known to stamp a
    /// directory's mtime and ctime whenever a name is created, removed or
    /// renamed in it, with the local clock (what a cached listing relies
    /// on, [`crate::store::index::DirListing`]): ext2/3/4, XFS, Btrfs,
    /// tmpfs, F2FS, ZFS, bcachefs (`f_type` of `fstatfs`; magic numbers
    /// from `linux/magic.h` and ZFS's `zfs_vfsops`). Network and FUSE
    /// filesystems are not on the list: their stamps may be cached or
    /// missing, and their clock is the server's.
    pub fn keeps_dir_stamps(&self) -> bool {
        const KNOWN: [u64; 7] = [
            0xEF53,      // ext2, ext3, ext4
            0x5846_5342, // XFS
            0x9123_683E, // Btrfs
            0x0102_1994, // tmpfs
            0xF2F5_2010, // F2FS
            0x2FC1_2FC1, // ZFS
            0xCA45_1A4E, // bcachefs
        ];
        rustix::fs::fstatfs(&self.fd).is_ok_and(|s| KNOWN.contains(&(s.f_type as u64)))
    }

    /// `fstat` of this directory.
    ///
    /// # Errors
    /// Rare (`EIO`).
    pub fn stat_self(&self) -> io::Result<Stat> {
        rustix::fs::fstat(&self.fd).map_err(errno)
    }

    /// `lstat` of `name`: a symlink is described, not followed.
    ///
    /// # Errors
    /// `ENOENT`, `EACCES`, ...
    pub fn stat(&self, name: &[u8]) -> io::Result<Stat> {
        check(name)?;
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
    }

    /// Opens the regular file `name` for reading: `O_NOFOLLOW` (a symlink is
    /// refused with `ELOOP`) and `O_NONBLOCK` (a FIFO swapped in does not hang
    /// the open; the caller checks the type with `fstat`).
    ///
    /// # Errors
    /// `ENOENT`, `ELOOP`, `EACCES`, ...
    pub fn open_file(&self, name: &[u8]) -> io::Result<File> {
        check(name)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        rustix::fs::openat(&self.fd, name, flags, Mode::empty())
            .map(File::from)
            .map_err(errno)
    }

    /// The target of the symlink `name`, as raw bytes.
    ///
    /// # Errors
    /// `EINVAL` when `name` is not a symlink, `ENOENT`, ...
    pub fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        check(name)?;
        rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map(|c| c.into_bytes())
            .map_err(errno)
    }

    /// Every entry except `.` and `..`, in directory order, with the type
    /// `getdents` reports ([`EntryType::Unknown`] when the filesystem does not say).
    ///
    /// # Errors
    /// The `getdents` error.
    pub fn list(&self) -> io::Result<Listing> {
        // getdents reads from the descriptor's offset: rewind in case it was read before.
        rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Start(0)).map_err(errno)?;
        self.list_fresh()
    }

    /// [`Dir::list`] for a descriptor never read before (just opened): no
    /// rewind, one system call fewer per directory of a scan.
    ///
    /// # Errors
    /// As [`Dir::list`].
    pub fn list_fresh(&self) -> io::Result<Listing> {
        DIRENT_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            let mut out = Vec::new();
            let mut raw = rustix::fs::RawDir::new(&self.fd, &mut buf[..]);
            while let Some(entry) = raw.next() {
                let entry = entry.map_err(errno)?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                out.push((name.to_vec(), EntryType::from_file_type(entry.file_type())));
            }
            Ok(out)
        })
    }

    /// Creates the directory `name` with `mode` (minus the umask).
    ///
    /// # Errors
    /// `EEXIST`, `ENOSPC`, ...
    pub fn mkdir(&self, name: &[u8], mode: u32) -> io::Result<()> {
        check(name)?;
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode as _)).map_err(errno)
    }

    /// Removes the file or symlink `name`.
    ///
    /// # Errors
    /// `ENOENT`, `EISDIR`, ...
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        check(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(errno)
    }

    /// Removes the empty directory `name`.
    ///
    /// # Errors
    /// `ENOTEMPTY`, `ENOENT`, ...
    pub fn rmdir(&self, name: &[u8]) -> io::Result<()> {
        check(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).map_err(errno)
    }

    /// Renames `from` (in this directory) to `to` in `to_dir`, replacing a
    /// file or an empty directory there atomically.
    ///
    /// # Errors
    /// `EXDEV`, `EISDIR`, `ENOTEMPTY`, ...
    pub fn rename(&self, from: &[u8], to_dir: &Dir, to: &[u8]) -> io::Result<()> {
        check(from)?;
        check(to)?;
        rustix::fs::renameat(&self.fd, from, &to_dir.fd, to).map_err(errno)
    }

    /// Renames `from` to `to` in `to_dir` only when nothing is named `to`
    /// there (`renameat2(RENAME_NOREPLACE)`; on a filesystem without it, a
    /// hard link then an unlink, which fails the same way).
    ///
    /// # Errors
    /// `EEXIST` when `to` exists, ...
    pub fn rename_noreplace(&self, from: &[u8], to_dir: &Dir, to: &[u8]) -> io::Result<()> {
        check(from)?;
        check(to)?;
        match rustix::fs::renameat_with(&self.fd, from, &to_dir.fd, to, rustix::fs::RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                rustix::fs::linkat(&self.fd, from, &to_dir.fd, to, AtFlags::empty()).map_err(errno)?;
                rustix::fs::unlinkat(&self.fd, from, AtFlags::empty()).map_err(errno)
            }
            Err(e) => Err(errno(e)),
        }
    }

    /// Creates the symlink `name` pointing at `target` (raw bytes, not checked).
    ///
    /// # Errors
    /// `EEXIST`, ...
    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        check(name)?;
        rustix::fs::symlinkat(target, &self.fd, name).map_err(errno)
    }

    /// Creates `name` as another hard link to the existing file `existing` of `from_dir`.
    ///
    /// # Errors
    /// `EEXIST`, `EXDEV`, `EMLINK`, ...
    pub fn hard_link(&self, from_dir: &Dir, existing: &[u8], name: &[u8]) -> io::Result<()> {
        check(existing)?;
        check(name)?;
        rustix::fs::linkat(&from_dir.fd, existing, &self.fd, name, AtFlags::empty()).map_err(errno)
    }

    /// An unnamed regular file on this directory's filesystem (`O_TMPFILE`),
    /// open for reading and writing; nothing is left behind if the process
    /// dies before [`Dir::link_tmpfile`] names it.
    ///
    /// # Errors
    /// `EOPNOTSUPP`/`EISDIR`/`EINVAL` when the filesystem has no `O_TMPFILE`, `ENOSPC`, ...
    pub fn tmpfile(&self, mode: u32) -> io::Result<File> {
        rustix::fs::openat(
            &self.fd,
            c".",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode as _),
        )
        .map(File::from)
        .map_err(errno)
    }

    /// Gives the unnamed file `file` (from [`Dir::tmpfile`]) the name `name`
    /// here: `linkat(AT_EMPTY_PATH)`, or through `/proc/self/fd` when the
    /// process lacks `CAP_DAC_READ_SEARCH`.
    ///
    /// # Errors
    /// `EEXIST` when `name` exists, ...
    pub fn link_tmpfile(&self, file: &File, name: &[u8]) -> io::Result<()> {
        check(name)?;
        match rustix::fs::linkat(file, c"", &self.fd, name, AtFlags::EMPTY_PATH) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::PERM) | Err(rustix::io::Errno::ACCESS) => {
                use std::os::fd::AsRawFd;
                let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    proc_path.as_str(),
                    &self.fd,
                    name,
                    AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(errno)
            }
            Err(e) => Err(errno(e)),
        }
    }

    /// Creates the regular file `name`, which must not exist (`O_EXCL`, and
    /// `O_NOFOLLOW` so a symlink planted there is refused).
    ///
    /// # Errors
    /// `EEXIST`, `ENOSPC`, ...
    pub fn create_new(&self, name: &[u8], mode: u32) -> io::Result<File> {
        check(name)?;
        rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode as _),
        )
        .map(File::from)
        .map_err(errno)
    }

    /// Sets the permission bits of `name`, a file or directory, never through
    /// a symlink: `name` is opened `O_PATH | O_NOFOLLOW`, its type checked to be
    /// `expect` (a symlink or anything else swapped in is refused with
    /// `ELOOP`/`EINVAL`), and the mode set on that very inode through
    /// `/proc/self/fd` (an `O_PATH` descriptor cannot be `fchmod`ed; the
    /// magic link names the opened inode, not a path). Without `/proc`, a
    /// read-only `O_NOFOLLOW` descriptor and `fchmod`.
    ///
    /// # Errors
    /// `ELOOP` for a symlink, `EINVAL` for another type than `expect`, `EPERM`, `ENOENT`, ...
    pub fn chmod(&self, name: &[u8], mode: u32, expect: EntryType) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        check(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        match EntryType::from_mode(st.st_mode as u32) {
            EntryType::Symlink => return Err(errno(rustix::io::Errno::LOOP)),
            t if t != expect => return Err(errno(rustix::io::Errno::INVAL)),
            _ => {}
        }
        let mode = Mode::from_raw_mode(mode as _);
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match rustix::fs::chmodat(rustix::fs::CWD, proc_path.as_str(), mode, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
                let f = rustix::fs::openat(&self.fd, name, flags, Mode::empty()).map_err(errno)?;
                let again = rustix::fs::fstat(&f).map_err(errno)?;
                if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(errno(rustix::io::Errno::INVAL));
                }
                rustix::fs::fchmod(&f, mode).map_err(errno)
            }
            Err(e) => Err(errno(e)),
        }
    }

    /// True when the process may create and remove entries in this directory
    /// (`faccessat(".", W_OK | X_OK)` with the effective ids).
    pub fn writable(&self) -> bool {
        rustix::fs::accessat(
            &self.fd,
            c".",
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
            AtFlags::EACCESS,
        )
        .is_ok()
    }

    /// Sets the owner and group of `name` without following a symlink (a
    /// symlink's own owner is changed).
    ///
    /// # Errors
    /// `EPERM` when the process may not, `ENOENT`, ...
    pub fn chown(&self, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
        check(name)?;
        // u32::MAX (-1) means "unchanged" to the kernel.
        let (u, g) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
        rustix::fs::chownat(&self.fd, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
    }

    /// Flushes this directory's entries (new names, renames, removals) to disk.
    ///
    /// # Errors
    /// `EIO`, ...
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(errno)
    }

    /// `syncfs(2)`: flushes the whole filesystem holding this directory.
    ///
    /// # Errors
    /// `EIO`, ...
    pub fn syncfs(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(errno)
    }
}

/// Sets owner and group of an open file.
///
/// # Errors
/// `EPERM` when the process may not.
pub fn fchown(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    rustix::fs::fchown(file, Some(u), Some(g)).map_err(errno)
}

/// Sets the permission bits of an open file.
///
/// # Errors
/// `EPERM`, ...
pub fn fchmod(file: &File, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(file, Mode::from_raw_mode(mode as _)).map_err(errno)
}

/// `fstat` of an open file.
///
/// # Errors
/// Rare (`EIO`).
pub fn fstat(file: &File) -> io::Result<Stat> {
    rustix::fs::fstat(file).map_err(errno)
}

/// Modification and status-change times of `st`, in nanoseconds since the epoch.
pub fn times_ns(st: &Stat) -> (i64, i64) {
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    (
        ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
    )
}

/// The coarse clock's resolution in nanoseconds (the tick the kernel stamps file times with).
pub fn coarse_clock_tick_ns() -> i64 {
    let ts = rustix::time::clock_getres(rustix::time::ClockId::RealtimeCoarse);
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// Raises the soft limit on open descriptors to the hard limit (a deep scan
/// or a large checkout holds many), once; returns the soft limit now.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    static RAISED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RAISED.get_or_init(|| {
        let mut lim = getrlimit(Resource::Nofile);
        if let (Some(cur), Some(max)) = (lim.current, lim.maximum)
            && cur < max
        {
            lim.current = Some(max.min(1 << 20));
            let _ = setrlimit(Resource::Nofile, lim);
            lim = getrlimit(Resource::Nofile);
        }
        lim.current.unwrap_or(1 << 20)
    })
}

/// True for "too many open files" (the process or the system ran out of descriptors).
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    is_errno(e, rustix::io::Errno::NFILE) || is_errno(e, rustix::io::Errno::MFILE)
}

/// True when a process with this pid exists (for telling a live writer's
/// leftovers from a dead one's).
pub fn process_alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => !matches!(rustix::process::test_kill_process(p), Err(rustix::io::Errno::SRCH)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_noreplace_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("a"), b"new").unwrap();
        std::fs::write(dir.path().join("b"), b"there first").unwrap();
        let e = root.rename_noreplace(b"a", &root, b"b").unwrap_err();
        assert!(is_errno(&e, rustix::io::Errno::EXIST), "{e}");
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"there first");
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"new");
        root.rename_noreplace(b"a", &root, b"c").unwrap();
        assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"new");
        assert!(!dir.path().join("a").exists());
    }

    #[test]
    fn long_paths_work_and_symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open(dir.path()).unwrap();
        // 24 components of 200 bytes: 4.8 KB, past PATH_MAX.
        let name = vec![b'n'; 200];
        let mut cur = root.try_clone().unwrap();
        let mut rel = RelPath::root();
        for _ in 0..24 {
            cur.mkdir(&name, 0o755).unwrap();
            cur = cur.open_dir(&name).unwrap();
            rel = rel.join(&name);
        }
        cur.create_new(b"f", 0o644).unwrap();
        let deep = root.open_beneath(&rel).unwrap();
        assert!(deep.stat(b"f").is_ok());
        assert!(rel.as_bytes().len() > 4096);

        std::os::unix::fs::symlink("/", dir.path().join("out")).unwrap();
        let e = root.open_dir(b"out").unwrap_err();
        assert!(is_not_a_directory(&e), "{e}");
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("a/b")).unwrap();
        assert!(root.open_beneath(&RelPath::parse(b"a/b").unwrap()).is_err());
        let e = root.open_file(b"out").unwrap_err();
        assert!(is_symlink_refusal(&e), "{e}");
    }

    #[test]
    fn tmpfile_is_invisible_until_linked() {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open(dir.path()).unwrap();
        let f = match root.tmpfile(0o600) {
            Ok(f) => f,
            Err(e) => panic!("O_TMPFILE unsupported on the test filesystem: {e}"),
        };
        use std::io::Write;
        (&f).write_all(b"hi").unwrap();
        assert_eq!(root.list().unwrap().len(), 0);
        root.link_tmpfile(&f, b"named").unwrap();
        assert_eq!(std::fs::read(dir.path().join("named")).unwrap(), b"hi");
    }
}
