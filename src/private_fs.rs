//! The state directory and the files in it (checkpoints, dead letters, status, lock) are
//! emstail's alone: dead letters hold stream names and EMS parameters, the lock a pid. The
//! directory is created 0700 and every file 0600, set explicitly, so that neither the umask
//! nor a file left with wider modes by an older version decides who may read them.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) 0700. A directory that already exists keeps its mode:
/// it may be shared (a state_dir of `/tmp`) or set up on purpose by the service manager.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Opens `path` with `options`, creating it 0600, and sets 0600 on it whatever it had.
pub fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options.mode(FILE_MODE).open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Creates (or truncates) `path` for writing, 0600.
pub fn create(path: &Path) -> io::Result<File> {
    open(
        path,
        OpenOptions::new().write(true).create(true).truncate(true),
    )
}

/// Writes `contents` to `path` atomically and 0600: a temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_file_left_with_wider_modes_is_narrowed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dead-letter.jsonl");
        std::fs::write(&path, b"x\n").expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(0o666)).expect("chmod");
        open(&path, OpenOptions::new().append(true)).expect("opens");
        assert_eq!(mode(&path), 0o600);
        write_atomic(&dir.path().join("status.json"), b"{}").expect("writes");
        assert_eq!(mode(&dir.path().join("status.json")), 0o600);
    }

    #[test]
    fn a_new_directory_is_0700_and_an_existing_one_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("a/state");
        create_dir(&state).expect("creates");
        assert_eq!(mode(&state), 0o700);
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).expect("chmod");
        create_dir(dir.path()).expect("exists");
        assert_eq!(mode(dir.path()), 0o755);
    }
}
