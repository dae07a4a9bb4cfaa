//! File operations done one way everywhere: replacing a file so that it survives a crash
//! whole (checkpoints, status, dead letters, the metrics textfile), creating the state
//! directory and its files with modes set explicitly, and reading at a position.
//!
//! The state directory and the files in it (checkpoints, dead letters, status, lock) are
//! emstail's alone: dead letters hold stream names and EMS parameters, the lock a pid. The
//! directory is created 0700 and every file 0600, set explicitly, so that neither the umask
//! nor a file left with wider modes by an older version decides who may read them.
//!
//! Owns the operations themselves, never what is written or where: callers name the path and
//! add it to their error messages.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of state files: they name the files and streams EMS handles, for its user only.
pub const PRIVATE: u32 = 0o600;

/// The mode of a state directory emstail creates.
const PRIVATE_DIR: u32 = 0o700;

/// Creates `dir` (and missing parents) 0700. A directory that already exists keeps its mode:
/// it may be shared (a state_dir of `/tmp`) or set up on purpose by the service manager.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR))
}

/// Opens `path` with `options`, creating it 0600, and sets 0600 on it whatever it had (a
/// regular file only: a device put there on purpose, such as `/dev/full` for a test, keeps
/// its mode). A file created so is given to the directory's owner (see [`owned_like_dir`]).
/// Opened non-blocking, which changes nothing for a regular file: a FIFO in its place fails
/// a write once its buffer is full rather than hang the writer (and the lock it holds) until
/// some process reads.
pub fn open_private(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options
        .mode(PRIVATE)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if file.metadata()?.is_file() {
        file.set_permissions(Permissions::from_mode(PRIVATE))?;
        owned_like_dir(&file, path);
    }
    Ok(file)
}

/// Gives `file`, at `path`, the owner and group of its directory when they differ and this
/// process may (it runs as root). A command an operator runs with sudo beside the daemon
/// (`dead-letters --retry` or `--drop`, `replay` into its state directory) would otherwise
/// leave a 0600 file of root's there, which the daemon, running as its own user (the packaged
/// unit's DynamicUser), could no longer append to or lock. Without the right to, nothing is
/// changed: the file is whoever wrote it's, as before.
fn owned_like_dir(file: &File, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    // Only root may give a file away: the daemon, its own user, does not look (it replaces
    // its status file every second).
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let (Ok(dir), Ok(own)) = (std::fs::metadata(dir_of(path)), file.metadata()) else {
        return;
    };
    if (own.uid(), own.gid()) == (dir.uid(), dir.gid()) {
        return;
    }
    if let Err(e) = std::os::unix::fs::fchown(file, Some(dir.uid()), Some(dir.gid())) {
        log::debug!(
            "{}: left owned by {}:{}, not its directory's {}:{}: {e}",
            path.display(),
            own.uid(),
            own.gid(),
            dir.uid(),
            dir.gid()
        );
    }
}

/// Opens (creating it 0600 if need be) the lock file `path` for reading and writing, its
/// content kept: until the lock is taken, what is in it belongs to the holder.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    open_private(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
}

/// Turns an I/O error about `path` into one that names it (`PATH: error`), of the same kind.
pub fn naming(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `path` opened for reading, `None` when there is none. Opened without waiting, and refused
/// (an error naming it) when it is not a regular file: a FIFO would hang the reader until some
/// process wrote to it, and a device (a link to `/dev/null`) holds nothing of what was written
/// to it. For the state directory's files that commands read beside the daemon.
pub fn open_regular(path: &Path) -> io::Result<Option<File>> {
    let with_path = naming(path);
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(with_path(e)),
    };
    if !file.metadata().map_err(&with_path)?.is_file() {
        return Err(with_path(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file, left as it is",
        )));
    }
    Ok(Some(file))
}

/// Replaces `path` with `bytes` so that a crash or power loss at any point leaves either the
/// old content or the new, never a mix. The file gets mode 0600.
///
/// Writes `<path>.tmp` beside it, fsyncs it, renames it over `path`, then fsyncs the
/// directory so that the rename itself is on disk.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, PRIVATE, true, |mut file| file.write_all(bytes))
}

/// [`write_atomic`] for content written a piece at a time: `write` fills the temp file
/// through a buffer, so that a file of any size is replaced in constant memory. Should
/// `write` fail, `path` is left as it was.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<T> {
    replace_with(path, PRIVATE, true, |file| {
        let mut out = BufWriter::with_capacity(64 << 10, file);
        let value = write(&mut out)?;
        out.flush()?;
        Ok(value)
    })
}

/// Replaces `path` with `bytes` as [`write_atomic`] does, with `mode`, without the fsyncs: a
/// reader sees the old content or the new, never a mix, but a power loss may lose either. For
/// files that only show what a running process is doing (the status, the metrics textfile),
/// which it writes again within seconds: their two fsyncs a second cost more than the rest of
/// following a quiet log.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace_with(path, mode, false, |mut file| file.write_all(bytes))
}

/// Writes `<path>.tmp` with `write`, sets `mode` on it whatever the umask (and whatever a
/// temp file left by a crash had), renames it over `path`; with `sync`, fsyncs the file
/// before the rename and the directory after it.
fn replace_with<T>(
    path: &Path,
    mode: u32,
    sync: bool,
    write: impl FnOnce(&File) -> io::Result<T>,
) -> io::Result<T> {
    let tmp = temp_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    owned_like_dir(&file, &tmp);
    let written = file
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| write(&file))
        .and_then(|value| {
            if sync {
                file.sync_all()?;
            }
            Ok(value)
        });
    drop(file);
    let value = match written {
        Ok(value) => value,
        Err(e) => {
            // On a full disk the partial temp file holds space the next attempt needs.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path)?;
    if !sync {
        return Ok(value);
    }
    File::open(dir_of(path))?.sync_all()?;
    Ok(value)
}

/// The directory `path` is in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Where [`write_atomic`] writes before the rename: `<path>.tmp`. A crash can leave it behind;
/// the next write replaces it, and readers of `path` never look at it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
/// Reads at a position, so the file's cursor does not move.
pub fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn writes_the_content_with_mode_0600_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"first").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        assert_eq!(mode_of(&path), 0o600);

        // Replacing a longer file whole; an existing file's wider mode does not survive.
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        write_atomic(&path, b"2nd").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"2nd");
        assert_eq!(mode_of(&path), 0o600);

        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    /// An operator running `dead-letters --retry` or `--drop` with sudo beside the daemon: the
    /// files root writes in the daemon's state directory stay the daemon's, so that it can
    /// still append to and lock them. Without root (the directory cannot be given away), files
    /// are the writer's, and written all the same.
    #[test]
    fn files_written_as_root_in_another_users_directory_are_that_users() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let owner = |p: &Path| {
            let m = std::fs::metadata(p).expect("stat");
            (m.uid(), m.gid())
        };
        let daemon = (65534, 65534);
        let given = std::os::unix::fs::chown(dir.path(), Some(daemon.0), Some(daemon.1)).is_ok();
        let expected = if given { daemon } else { owner(dir.path()) };
        let letters = dir.path().join("dead-letter.jsonl");
        std::fs::write(&letters, b"{}\n").expect("write");
        if given {
            std::os::unix::fs::chown(&letters, Some(daemon.0), Some(daemon.1)).expect("chown");
        }
        write_atomic_with(&letters, |out| out.write_all(b"{}\n")).expect("rewrite");
        assert_eq!(owner(&letters), expected, "the rewritten file");
        assert_eq!(mode_of(&letters), 0o600);
        let lock = dir.path().join("dead-letter.lock");
        drop(open_lock_file(&lock).expect("lock file"));
        assert_eq!(owner(&lock), expected, "a lock file created");
        write_atomic(&dir.path().join("replay-x.json"), b"{}").expect("write");
        assert_eq!(owner(&dir.path().join("replay-x.json")), expected);
    }

    #[test]
    fn a_temp_file_left_by_a_crash_is_replaced_and_its_mode_not_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("status.json");
        let stale = temp_path(&path);
        assert_eq!(stale, dir.path().join("status.json.tmp"));
        std::fs::write(&stale, b"torn content from before the crash, longer").expect("write");
        std::fs::set_permissions(&stale, Permissions::from_mode(0o666)).expect("chmod");
        write_atomic(&path, b"{}").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{}");
        assert_eq!(mode_of(&path), 0o600);
        assert!(!stale.exists());
    }

    #[test]
    fn another_mode_is_set_whatever_the_umask_and_a_stale_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("emstail.prom");
        std::fs::write(temp_path(&path), b"torn content from before the crash").expect("write");
        std::fs::set_permissions(temp_path(&path), Permissions::from_mode(0o600)).expect("chmod");
        replace(&path, b"x 1\n", 0o644).expect("write");
        assert_eq!(mode_of(&path), 0o644);
        assert_eq!(std::fs::read(&path).expect("read"), b"x 1\n");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_file_opened_private_is_narrowed_to_0600() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dead-letter.jsonl");
        std::fs::write(&path, b"x\n").expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(0o666)).expect("chmod");
        open_private(&path, OpenOptions::new().append(true)).expect("opens");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn a_new_directory_is_0700_and_an_existing_one_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("a/state");
        create_private_dir(&state).expect("creates");
        assert_eq!(mode_of(&state), 0o700);
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).expect("chmod");
        create_private_dir(dir.path()).expect("exists");
        assert_eq!(mode_of(dir.path()), 0o755);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing").join("status.json");
        let err = write_atomic(&path, b"{}").expect_err("no such directory");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!path.exists());
    }
}
