//! Keeping uploads inside the media roots.
//!
//! Upload paths come from the event log, which is input, not trust: a path is used only if
//! its real location (after `..` and every symlink) lies inside a configured root. The check
//! runs at upload time, right before the file is read, so a symlink swapped in after the
//! event was logged is still caught.
//!
//! There is no unconfined mode: with no roots every upload is refused. Only regular files are
//! uploaded, and only up to `Service.max_upload_bytes`; a FIFO, device, socket or directory is
//! refused without ever waiting on it.

use super::Failure;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// The real path of `path`, if it lies inside one of `roots`.
///
/// A file that no longer exists is [`Failure::Missing`] (EMS rotates old segments away); a
/// path outside every root, or a root that cannot be resolved, is [`Failure::Permanent`].
pub fn resolve_upload_path(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, Failure> {
    confine(path, &Roots::resolve(roots)?)
}

/// Media roots resolved once (symlinks and `..`), with the names they were given for messages.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    given: Vec<PathBuf>,
    real: Vec<PathBuf>,
}

impl Roots {
    /// A root that cannot be resolved is [`Failure::Permanent`].
    pub fn resolve(roots: &[PathBuf]) -> Result<Roots, Failure> {
        let real = roots
            .iter()
            .map(|root| {
                root.canonicalize().map_err(|e| {
                    Failure::Permanent(format!(
                        "media root {}: cannot resolve: {e}",
                        root.display()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Roots {
            given: roots.to_vec(),
            real,
        })
    }
}

/// [`resolve_upload_path`] with roots resolved beforehand (an executor resolves them once).
pub fn confine(path: &Path, roots: &Roots) -> Result<PathBuf, Failure> {
    locate(path, roots).map(|(_, real)| real)
}

/// The real root `path` lies in and its real path.
fn locate<'r>(path: &Path, roots: &'r Roots) -> Result<(&'r Path, PathBuf), Failure> {
    let real = path.canonicalize().map_err(|e| match e.kind() {
        ErrorKind::NotFound => Failure::Missing(format!("{}: no longer exists", path.display())),
        _ => Failure::Permanent(format!("{}: cannot resolve: {e}", path.display())),
    })?;
    if roots.given.is_empty() {
        return Err(Failure::Permanent(format!(
            "{}: no media root is configured, so nothing may be uploaded",
            path.display()
        )));
    }
    if let Some(root) = roots.real.iter().find(|root| real.starts_with(root)) {
        return Ok((root, real));
    }
    let listed: Vec<String> = roots
        .given
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    Err(Failure::Permanent(format!(
        "{} resolves to {}, outside the media roots [{}]",
        path.display(),
        real.display(),
        listed.join(", ")
    )))
}

/// A file about to be uploaded: opened once, checked through its descriptor.
#[derive(Debug)]
pub struct UploadFile {
    pub file: File,
    /// The size `fstat` gave when the file was opened; no more than this is sent.
    pub size: u64,
    /// The real path, for messages.
    pub real: PathBuf,
}

/// `path` confined to `roots` and opened for upload, once, beneath its root.
///
/// The path is resolved first only to learn which root it is in and where below it the file
/// really is. That place is then opened relative to the root's own descriptor without
/// following any symlink and without leaving the root (`openat2` with `RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS`, or, where the kernel lacks it, a walk of `O_NOFOLLOW` opens one
/// component at a time). A directory or file swapped for a symlink after the check is
/// refused, not followed; type and size are checked on the opened descriptor, and that
/// descriptor is what gets uploaded.
pub fn open_upload(path: &Path, roots: &Roots, max_bytes: u64) -> Result<UploadFile, Failure> {
    if let Some(opened) = open_plain(path, roots, max_bytes) {
        return opened;
    }
    let (root, real) = locate(path, roots)?;
    // A cheap look by name first, so that a device is not even opened (opening some has side
    // effects); the descriptor's own fstat below is what counts.
    let meta = std::fs::symlink_metadata(&real).map_err(|e| open_failure(&real, &e))?;
    if !meta.file_type().is_file() && !meta.file_type().is_symlink() {
        return Err(not_regular(&real, describe_std(&meta.file_type())));
    }
    let relative = real
        .strip_prefix(root)
        .map_err(|_| Failure::Permanent(format!("{}: not below its root", real.display())))?;
    let fd = open_beneath(root, relative).map_err(|e| beneath_failure(&real, &e))?;
    let (file, size) = check_opened(fd, &real, max_bytes)?;
    Ok(UploadFile { file, size, real })
}

/// The common case, opened without resolving the path by name first (which reads every
/// component as a link: nine `readlink`s for a segment nine levels deep): `path` is a root,
/// as given or real, then plain names with no symlink among them below the root. That is
/// opened beneath the root's descriptor with every symlink refused, after a look at its type
/// by name, so it is the file, and the real path, that resolving it would have given.
/// Anything else (a symlink or `..` below the root, a missing file, a file that is not
/// regular, an older kernel) gives `None`, and [`open_upload`] resolves the path and decides,
/// with its own messages.
fn open_plain(path: &Path, roots: &Roots, max_bytes: u64) -> Option<Result<UploadFile, Failure>> {
    let (root, relative) = roots
        .given
        .iter()
        .zip(&roots.real)
        .find_map(|(given, real)| {
            let relative = path
                .strip_prefix(real)
                .or_else(|_| path.strip_prefix(given))
                .ok()?;
            Some((real, relative))
        })?;
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain || relative.as_os_str().is_empty() {
        return None;
    }
    let dir = open_root(root).ok()?;
    let stat = rustix::fs::statat(&dir, relative, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return None;
    }
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = rustix::fs::openat2(&dir, relative, read_flags(), Mode::empty(), resolve).ok()?;
    let real = root.join(relative);
    Some(check_opened(fd, &real, max_bytes).map(|(file, size)| UploadFile { file, size, real }))
}

/// Flags of the final open: read only, never waiting (a FIFO without a writer would hang the
/// worker), never taking a terminal, never following a symlink.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens `relative` (plain names only: a real path below a real root) beneath `root`
/// without following a symlink anywhere below the root: `openat2`, or [`walk_beneath`]
/// where the kernel (before Linux 5.6) or a seccomp filter does not offer it.
fn open_beneath(root: &Path, relative: &Path) -> std::io::Result<OwnedFd> {
    use rustix::io::Errno;
    let dir = open_root(root)?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, relative, read_flags(), Mode::empty(), resolve) {
        Err(Errno::NOSYS | Errno::PERM) => walk_beneath(dir, relative),
        other => other.map_err(std::io::Error::from),
    }
}

fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// One `openat(…, O_NOFOLLOW)` per component of `relative`, each relative to the directory
/// opened before it, starting at `dir`.
fn walk_beneath(dir: OwnedFd, relative: &Path) -> std::io::Result<OwnedFd> {
    use rustix::io::Errno;
    let names: Vec<&std::ffi::OsStr> = relative
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(std::io::Error::other("not a plain path below the root")),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, parents)) = names.split_last() else {
        return Err(std::io::Error::other("the root itself is not a file"));
    };
    let mut dir = dir;
    for name in parents {
        let next = rustix::fs::openat(
            &dir,
            *name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // O_PATH|O_NOFOLLOW can give the symlink itself: make sure it is a directory.
        if FileType::from_raw_mode(rustix::fs::fstat(&next)?.st_mode) != FileType::Directory {
            return Err(Errno::LOOP.into());
        }
        dir = next;
    }
    Ok(rustix::fs::openat(
        &dir,
        *last,
        read_flags(),
        Mode::empty(),
    )?)
}

fn beneath_failure(path: &Path, e: &std::io::Error) -> Failure {
    use rustix::io::Errno;
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::LOOP | Errno::NOTDIR | Errno::XDEV) => Failure::Permanent(format!(
            "{}: a symlink below the media root, or a path leaving it, appeared after the \
             check; not followed",
            path.display()
        )),
        _ => open_failure(path, e),
    }
}

/// Opens `path` for reading if it is a regular file of at most `max_bytes`.
///
/// The open never waits (`O_NONBLOCK`: a FIFO without a writer would otherwise hang the
/// worker) and never follows a symlink in the last component; the type and size are then
/// taken from the descriptor itself (`fstat`), so what is checked is what is read. A type
/// that is not a regular file, or a size over the limit, is [`Failure::Permanent`]: trying
/// again would give the same answer.
pub fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, u64), Failure> {
    // A cheap look by name first, so that a device is not even opened (opening some has side
    // effects); the descriptor's own fstat below is what counts.
    let meta = std::fs::symlink_metadata(path).map_err(|e| open_failure(path, &e))?;
    if !meta.file_type().is_file() && !meta.file_type().is_symlink() {
        return Err(not_regular(path, describe_std(&meta.file_type())));
    }
    let fd = rustix::fs::open(path, read_flags(), Mode::empty())
        .map_err(|e| open_failure(path, &std::io::Error::from(e)))?;
    check_opened(fd, path, max_bytes)
}

/// The opened file if `fstat` on its descriptor shows a regular file of at most `max_bytes`.
fn check_opened(fd: OwnedFd, path: &Path, max_bytes: u64) -> Result<(File, u64), Failure> {
    let stat = rustix::fs::fstat(&fd).map_err(|e| open_failure(path, &std::io::Error::from(e)))?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::RegularFile {
        return Err(not_regular(path, describe(file_type)));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > max_bytes {
        return Err(Failure::Permanent(format!(
            "{}: {size} bytes, more than Service.max_upload_bytes ({max_bytes})",
            path.display()
        )));
    }
    Ok((File::from(fd), size))
}

fn not_regular(path: &Path, what: &str) -> Failure {
    Failure::Permanent(format!(
        "{} is not a regular file ({what}); only regular files are uploaded",
        path.display()
    ))
}

fn open_failure(path: &Path, e: &std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::NotFound => Failure::Missing(format!("{}: no longer exists", path.display())),
        // ELOOP: the last component became a symlink after the confinement check.
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            Failure::Permanent(format!(
                "{}: became a symlink after it was checked; not followed",
                path.display()
            ))
        }
        _ => Failure::Retryable(format!("{}: cannot read: {e}", path.display())),
    }
}

fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

fn describe_std(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "of an unknown type"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Layout {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    impl Layout {
        /// `path` resolved with `root` as the only media root.
        fn resolve(&self, path: &Path) -> Result<PathBuf, Failure> {
            resolve_upload_path(path, std::slice::from_ref(&self.root))
        }
        /// A symlink at `root/name` to `target`.
        #[cfg(unix)]
        fn link_in_root(&self, name: &str, target: &Path) -> PathBuf {
            let link = self.root.join(name);
            std::os::unix::fs::symlink(target, &link).expect("symlink");
            link
        }
    }

    /// `root/hls/seg1.ts` inside the media root, `outside/secret.txt` beside it.
    fn layout() -> Layout {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let root = dir.path().join("media");
        let outside = dir.path().join("outside");
        fs::create_dir_all(root.join("hls")).expect("create media/hls");
        fs::create_dir_all(&outside).expect("create outside");
        fs::write(root.join("hls/seg1.ts"), b"ts").expect("write segment");
        fs::write(outside.join("secret.txt"), b"secret").expect("write outside file");
        Layout {
            _dir: dir,
            root,
            outside,
        }
    }

    #[test]
    fn a_file_inside_the_root_resolves_to_its_real_path() {
        let l = layout();
        let got = l.resolve(&l.root.join("hls/seg1.ts"));
        let want = l.root.join("hls/seg1.ts").canonicalize().expect("exists");
        assert_eq!(got, Ok(want));
    }

    #[test]
    fn dot_dot_out_of_the_root_is_refused() {
        let l = layout();
        let sneaky = l.root.join("hls/../../outside/secret.txt");
        match l.resolve(&sneaky) {
            Err(Failure::Permanent(m)) => {
                assert!(m.contains("outside the media roots"), "{m}");
                assert!(m.contains("secret.txt"), "{m}");
            }
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_pointing_outside_is_refused() {
        let l = layout();
        let link = l.link_in_root("hls/seg2.ts", &l.outside.join("secret.txt"));
        assert!(matches!(l.resolve(&link), Err(Failure::Permanent(_))));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_staying_inside_is_allowed() {
        let l = layout();
        let link = l.link_in_root("latest.ts", &l.root.join("hls/seg1.ts"));
        let want = l.root.join("hls/seg1.ts").canonicalize().expect("exists");
        assert_eq!(l.resolve(&link), Ok(want));
    }

    #[cfg(unix)]
    #[test]
    fn a_root_reached_through_a_symlink_still_confines() {
        let l = layout();
        let root_link = l.outside.join("media-link");
        std::os::unix::fs::symlink(&l.root, &root_link).expect("symlink");
        assert!(
            resolve_upload_path(
                &l.root.join("hls/seg1.ts"),
                std::slice::from_ref(&root_link)
            )
            .is_ok()
        );
        assert!(matches!(
            resolve_upload_path(&l.outside.join("secret.txt"), &[root_link]),
            Err(Failure::Permanent(_))
        ));
    }

    #[test]
    fn a_missing_file_is_missing_not_permanent() {
        let l = layout();
        let gone = l.root.join("hls/seg9.ts");
        assert_eq!(
            l.resolve(&gone),
            Err(Failure::Missing(format!(
                "{}: no longer exists",
                gone.display()
            )))
        );
    }

    #[test]
    fn a_root_that_does_not_exist_is_permanent() {
        let l = layout();
        let no_root = l.root.join("nope");
        match resolve_upload_path(&l.root.join("hls/seg1.ts"), &[no_root]) {
            Err(Failure::Permanent(m)) => assert!(m.contains("media root"), "{m}"),
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[test]
    fn a_second_root_can_admit_the_file() {
        let l = layout();
        let roots = [l.outside.clone(), l.root.clone()];
        assert!(resolve_upload_path(&l.root.join("hls/seg1.ts"), &roots).is_ok());
    }

    #[test]
    fn no_roots_refuse_every_upload() {
        let l = layout();
        match resolve_upload_path(&l.outside.join("secret.txt"), &[]) {
            Err(Failure::Permanent(m)) => assert!(m.contains("no media root"), "{m}"),
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    fn roots(l: &Layout) -> Roots {
        Roots::resolve(std::slice::from_ref(&l.root)).expect("the root exists")
    }

    /// `open_upload` on another thread: a call that blocks fails the test instead of hanging it.
    fn open_bounded(path: PathBuf, roots: Roots, max: u64) -> Result<(Vec<u8>, u64), Failure> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let opened = open_upload(&path, &roots, max).map(|mut upload| {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut upload.file, &mut body).expect("readable");
                (body, upload.size)
            });
            let _ = tx.send(opened);
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("open_upload must not block")
    }

    #[test]
    fn a_regular_file_is_opened_with_its_size() {
        let l = layout();
        let got = open_bounded(l.root.join("hls/seg1.ts"), roots(&l), 2);
        assert_eq!(got, Ok((b"ts".to_vec(), 2)));
    }

    #[test]
    fn a_file_larger_than_the_limit_is_refused_permanently() {
        let l = layout();
        match open_bounded(l.root.join("hls/seg1.ts"), roots(&l), 1) {
            Err(Failure::Permanent(m)) => {
                assert!(m.contains("seg1.ts"), "{m}");
                assert!(m.contains("max_upload_bytes"), "{m}");
            }
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_the_root_is_refused_at_once_without_blocking() {
        let l = layout();
        let fifo = l.root.join("hls/seg3.ts");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        match open_bounded(fifo, roots(&l), 1 << 30) {
            Err(Failure::Permanent(m)) => {
                assert!(m.contains("not a regular file"), "{m}");
                assert!(m.contains("FIFO"), "{m}");
            }
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    /// A directory below the root swapped, atomically and over and over, with a symlink to a
    /// directory outside (RENAME_EXCHANGE), while uploads of a file in it are opened: no open
    /// may ever read the outside file. Bounded in count and time; the assertion holds on
    /// every iteration, so it cannot fail by load.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_directory_swapped_for_a_symlink_during_the_open_is_never_followed() {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let l = layout();
        fs::create_dir_all(l.outside.join("hls")).expect("outside/hls");
        fs::write(l.outside.join("hls/seg1.ts"), b"SECRET").expect("outside file");
        let link = l.root.join("hls-link");
        std::os::unix::fs::symlink(l.outside.join("hls"), &link).expect("symlink");
        let real_hls = l.root.join("hls");
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = Arc::clone(&stop);
            let (a, b) = (real_hls.clone(), link.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) && swaps < 50_000_000 {
                    renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).expect("exchange");
                    swaps += 1;
                }
                // Leave the real directory in place.
                if swaps % 2 == 1 {
                    renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).expect("exchange");
                }
            })
        };
        let roots = roots(&l);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let (mut opened, mut leaked) = (0u32, 0u32);
        for _ in 0..20_000 {
            if std::time::Instant::now() > deadline {
                break;
            }
            if let Ok(mut upload) = open_upload(&real_hls.join("seg1.ts"), &roots, 1 << 20) {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut upload.file, &mut body).expect("readable");
                opened += 1;
                if body != b"ts" {
                    leaked += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().expect("the swapper does not panic");
        assert_eq!(
            leaked, 0,
            "{leaked} of {opened} opens read the file outside the root"
        );
    }

    #[test]
    fn both_ways_of_opening_beneath_refuse_every_symlink_and_open_plain_files() {
        let l = layout();
        let root = l.root.canonicalize().expect("root exists");
        std::os::unix::fs::symlink(&l.outside, root.join("out")).expect("dir symlink");
        std::os::unix::fs::symlink(root.join("hls/seg1.ts"), root.join("latest.ts"))
            .expect("file symlink");
        let walk = |rel: &str| walk_beneath(open_root(&root).expect("root opens"), Path::new(rel));
        for rel in ["out/secret.txt", "latest.ts"] {
            assert!(
                open_beneath(&root, Path::new(rel)).is_err(),
                "openat2 {rel}"
            );
            assert!(walk(rel).is_err(), "walk {rel}");
        }
        for opened in [
            open_beneath(&root, Path::new("hls/seg1.ts")),
            walk("hls/seg1.ts"),
        ] {
            let mut body = Vec::new();
            let mut file = File::from(opened.expect("a plain file opens"));
            std::io::Read::read_to_end(&mut file, &mut body).expect("readable");
            assert_eq!(body, b"ts");
        }
    }

    /// What opening a plain path beneath the root skips (resolving it by name) still decides
    /// every other path: a symlink staying inside opens its target, one leading out and a
    /// `..` leading out are refused, a `..` staying inside opens, and each upload's real path
    /// is the resolved one.
    #[cfg(unix)]
    #[test]
    fn uploads_through_symlinks_and_dot_dot_open_what_resolving_them_gives() {
        let l = layout();
        let real_root = l.root.canonicalize().expect("root exists");
        l.link_in_root("inside.ts", &l.root.join("hls/seg1.ts"));
        l.link_in_root("hls-dir", Path::new("hls"));
        l.link_in_root("out-dir", &l.outside);
        let open = |path: PathBuf| {
            open_upload(&path, &roots(&l), 1 << 20).map(|mut upload| {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut upload.file, &mut body).expect("readable");
                (body, upload.real)
            })
        };
        let seg1 = (b"ts".to_vec(), real_root.join("hls/seg1.ts"));
        assert_eq!(open(l.root.join("hls/seg1.ts")), Ok(seg1.clone()));
        assert_eq!(open(l.root.join("inside.ts")), Ok(seg1.clone()));
        assert_eq!(open(l.root.join("hls-dir/seg1.ts")), Ok(seg1.clone()));
        assert_eq!(open(l.root.join("hls/../hls/seg1.ts")), Ok(seg1));
        for escaping in [
            l.root.join("out-dir/secret.txt"),
            l.root.join("../outside/secret.txt"),
        ] {
            match open(escaping.clone()) {
                Err(Failure::Permanent(m)) => assert!(m.contains("outside the media roots"), "{m}"),
                other => panic!("{}: expected Permanent, got {other:?}", escaping.display()),
            }
        }
        match open(l.root.join("hls/gone.ts")) {
            Err(Failure::Missing(m)) => assert!(m.contains("no longer exists"), "{m}"),
            other => panic!("expected Missing, got {other:?}"),
        }
    }

    /// A root given through a symlink: a path written with the given name and one written
    /// with the real name open the same file, under its real path.
    #[cfg(unix)]
    #[test]
    fn a_root_given_through_a_symlink_opens_paths_written_either_way() {
        let l = layout();
        let alias = l.outside.join("media-alias");
        std::os::unix::fs::symlink(&l.root, &alias).expect("root symlink");
        let roots = Roots::resolve(std::slice::from_ref(&alias)).expect("resolves");
        let real = l
            .root
            .canonicalize()
            .expect("root exists")
            .join("hls/seg1.ts");
        for path in [alias.join("hls/seg1.ts"), l.root.join("hls/seg1.ts")] {
            let upload = open_upload(&path, &roots, 1 << 20).expect("opens");
            assert_eq!(upload.real, real, "{}", path.display());
            assert_eq!(upload.size, 2);
        }
    }

    #[test]
    fn a_directory_in_the_root_is_refused() {
        let l = layout();
        match open_bounded(l.root.join("hls"), roots(&l), 1 << 30) {
            Err(Failure::Permanent(m)) => assert!(m.contains("a directory"), "{m}"),
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_refused_even_inside_a_root() {
        // /dev as the media root: the confinement admits /dev/zero, the file type does not.
        let roots = Roots::resolve(&[PathBuf::from("/dev")]).expect("/dev exists");
        match open_bounded(PathBuf::from("/dev/zero"), roots, 1 << 30) {
            Err(Failure::Permanent(m)) => assert!(m.contains("a character device"), "{m}"),
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[test]
    fn a_root_prefix_is_not_a_parent() {
        let l = layout();
        let sibling = l.root.with_file_name("media-other");
        fs::create_dir_all(&sibling).expect("create sibling");
        fs::write(sibling.join("x.ts"), b"x").expect("write");
        assert!(matches!(
            l.resolve(&sibling.join("x.ts")),
            Err(Failure::Permanent(_))
        ));
    }
}
