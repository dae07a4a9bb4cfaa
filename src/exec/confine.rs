//! Keeping uploads inside the media roots.
//!
//! Upload paths come from the event log, which is input, not trust: a path is used only if
//! its real location (after `..` and every symlink) lies inside a configured root. The check
//! runs at upload time, right before the file is read, so a symlink swapped in after the
//! event was logged is still caught.

use super::Failure;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The real path of `path`, if it lies inside one of `roots` (any path when `roots` is empty).
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
    let real = path.canonicalize().map_err(|e| match e.kind() {
        ErrorKind::NotFound => Failure::Missing(format!("{}: no longer exists", path.display())),
        _ => Failure::Permanent(format!("{}: cannot resolve: {e}", path.display())),
    })?;
    if roots.given.is_empty() || roots.real.iter().any(|root| real.starts_with(root)) {
        return Ok(real);
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
    fn no_roots_means_not_confined() {
        let l = layout();
        assert!(resolve_upload_path(&l.outside.join("secret.txt"), &[]).is_ok());
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
