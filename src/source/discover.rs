//! Which files, in which order. EMS names its event files `<base>[_IIII][_YYYYMMDD_HHMMSS|_NNNN]<ext>`
//! (instance, then timestamp, or a part number when chunking without timestamps); one log is
//! split across them, so they are read oldest first.

use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The sort key EMS's file name gives: its timestamp (`YYYYMMDDHHMMSS`) or part number.
pub fn order_key(path: &Path) -> Option<String> {
    static TS: OnceLock<Regex> = OnceLock::new();
    static PART: OnceLock<Regex> = OnceLock::new();
    let name = path.file_name()?.to_string_lossy();
    let ts = TS.get_or_init(|| {
        Regex::new(r"_(\d{8})_(\d{6})(?:\.[^.]*)*$").expect("the timestamp pattern is valid")
    });
    if let Some(c) = ts.captures(&name) {
        return Some(format!("t{}{}", &c[1], &c[2]));
    }
    let part = PART
        .get_or_init(|| Regex::new(r"_(\d{4})(?:\.[^.]*)*$").expect("the part pattern is valid"));
    part.captures(&name).map(|c| format!("p{}", &c[1]))
}

/// Expands directories into the regular files they hold and glob patterns into the regular
/// files they match, then orders everything oldest first: by the names' timestamps or part
/// numbers (a `.gz` or other suffix after them does not matter), then by modification time,
/// then by path. Files without a timestamp or part number in their name come first. The
/// same file reached twice (a directory and a glob) is read once.
///
/// An input that does not exist and is not a glob, or a glob that matches no file, is a
/// `NotFound` error naming it.
pub fn ordered_files(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let inside = std::fs::read_dir(input)
                .map_err(crate::fsutil::naming(input))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file());
            files.extend(inside);
        } else if input.exists() || !is_glob(&input.to_string_lossy()) {
            if !input.exists() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{}: no such file or directory", input.display()),
                ));
            }
            files.push(input.clone());
        } else {
            let pattern = input.to_string_lossy();
            let before = files.len();
            let matches = glob::glob(&pattern).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("bad pattern {pattern:?}: {e}"),
                )
            })?;
            files.extend(matches.filter_map(Result::ok).filter(|p| p.is_file()));
            if files.len() == before {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{pattern}: the pattern matches no file"),
                ));
            }
        }
    }
    files.sort_by_cached_key(|p| {
        let mtime = std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (order_key(p), mtime, p.clone())
    });
    files.dedup();
    Ok(files)
}

/// When the file named `path` began, as the `_YYYYMMDD_HHMMSS` in its name says (EMS writes
/// it in the server's local time), in unix seconds read as UTC: `None` for names without one.
pub fn name_time(path: &Path) -> Option<i64> {
    let key = order_key(path)?;
    let digits = key.strip_prefix('t')?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", digits).ok()?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .ok()
        .map(|t| t.as_second())
}

/// Whether `log` is a glob pattern rather than a plain path.
pub fn is_glob(log: &str) -> bool {
    log.contains(['*', '?', '['])
}

/// The regular files the live log consists of right now, each with its metadata: the file
/// itself, the regular files of a directory, or the matches of a glob (symlinks followed). A
/// path that does not exist (yet) gives no files rather than an error: the log may appear
/// later. Unordered. Each file is looked at once (one `stat`), which the caller reuses: a
/// rescan of thousands of files costs one system call per file.
pub fn live_files(log: &str) -> std::io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let regular = |p: PathBuf| {
        std::fs::metadata(&p)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|meta| (p, meta))
    };
    if is_glob(log) {
        let matches = glob::glob(log).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad log pattern {log:?}: {e}"),
            )
        })?;
        // An unreadable directory on the way is skipped, not fatal: the rest is still followed.
        return Ok(matches.filter_map(Result::ok).filter_map(regular).collect());
    }
    let path = Path::new(log);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mut inside = Vec::new();
            for entry in std::fs::read_dir(path)? {
                let Ok(entry) = entry else { continue };
                inside.extend(regular(entry.path()));
            }
            Ok(inside)
        }
        Ok(meta) if meta.is_file() => Ok(vec![(path.to_path_buf(), meta)]),
        Ok(_) => Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The directory to watch for changes to the live log, and whether to watch below it: the
/// directory itself, a file's parent, or a glob's literal prefix (recursively when a
/// wildcard is in a directory part). When that directory does not exist yet, its nearest
/// existing ancestor (not recursively) so that its creation is noticed.
pub fn watch_root(log: &str) -> Option<(PathBuf, bool)> {
    let path = Path::new(log);
    let (dir, recursive) = if is_glob(log) {
        let mut prefix = PathBuf::new();
        let mut parts = path.components().peekable();
        while let Some(c) = parts.next() {
            if is_glob(&c.as_os_str().to_string_lossy()) {
                break;
            }
            if parts.peek().is_none() {
                break;
            }
            prefix.push(c);
        }
        let wild_dirs = path.parent().is_some_and(|p| is_glob(&p.to_string_lossy()));
        (prefix, wild_dirs)
    } else if path.is_dir() {
        (path.to_path_buf(), false)
    } else {
        (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            false,
        )
    };
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    if dir.is_dir() {
        return Some((dir, recursive));
    }
    dir.ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.is_dir())
        .map(|a| (a.to_path_buf(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ordered_files` on names only (they need not exist).
    fn sorted_names(given: &[PathBuf]) -> Vec<PathBuf> {
        let dir = tempfile::tempdir().expect("temp dir");
        let real: Vec<PathBuf> = given
            .iter()
            .map(|p| {
                let path = dir.path().join(p.file_name().expect("a file name"));
                std::fs::write(&path, b"x\n").expect("write");
                path
            })
            .collect();
        ordered_files(&real)
            .expect("files exist")
            .iter()
            .map(|p| {
                let name = p.file_name().expect("a file name");
                given
                    .iter()
                    .find(|g| g.file_name() == Some(name))
                    .expect("one of the given")
                    .clone()
            })
            .collect()
    }

    #[test]
    fn gz_suffix_keeps_the_order_and_a_glob_orders_like_its_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let names = [
            "events_20261127_000000.txt.gz",
            "events_20261126_120000.txt.gz",
            "events_20261127_060000.txt",
            "events_20261128_000000.txt",
        ];
        for name in names {
            std::fs::write(d.join(name), b"x\n").expect("write");
        }
        let by_dir = ordered_files(&[d.to_path_buf()]).expect("dir");
        let names_of = |v: &[PathBuf]| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names_of(&by_dir),
            [
                "events_20261126_120000.txt.gz",
                "events_20261127_000000.txt.gz",
                "events_20261127_060000.txt",
                "events_20261128_000000.txt",
            ]
        );
        let by_glob = ordered_files(&[d.join("events_*")]).expect("glob");
        assert_eq!(by_glob, by_dir);
        // Given twice, read once.
        let both = ordered_files(&[d.join("events_*"), d.to_path_buf()]).expect("both");
        assert_eq!(both, by_dir);
        let none = ordered_files(&[d.join("nothing_*")]).expect_err("no match");
        assert!(none.to_string().contains("matches no file"), "{none}");
        assert_eq!(
            name_time(&d.join("events_20261127_000000.txt.gz")),
            Some(1_795_737_600)
        );
    }

    #[test]
    fn names_without_a_time_go_by_modification_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for (name, age) in [("b.log", 100), ("a.log", 50), ("c.log", 200)] {
            let path = d.join(name);
            std::fs::write(&path, b"x\n").expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age))
                .expect("set mtime");
        }
        let ordered = ordered_files(&[d.to_path_buf()]).expect("dir");
        let names: Vec<_> = ordered
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["c.log", "b.log", "a.log"]);
    }

    #[test]
    fn ems_names_sort_oldest_first() {
        let given: Vec<PathBuf> = [
            "logs/events_20261129_101500.txt",
            "logs/events_20261128_235959.txt",
            "logs/events_0237_20261129_090000.txt",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let ordered = sorted_names(&given);
        assert_eq!(
            ordered,
            vec![
                PathBuf::from("logs/events_20261128_235959.txt"),
                PathBuf::from("logs/events_0237_20261129_090000.txt"),
                PathBuf::from("logs/events_20261129_101500.txt"),
            ]
        );
    }

    #[test]
    fn part_numbers_and_plain_names() {
        assert_eq!(
            order_key(Path::new("events_0002.txt")).as_deref(),
            Some("p0002")
        );
        assert_eq!(order_key(Path::new("events.txt")), None);
        assert_eq!(
            order_key(Path::new("ev_20140311_183046.log.txt")).as_deref(),
            Some("t20140311183046")
        );
    }

    #[test]
    fn live_files_of_a_file_a_directory_and_a_glob() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for name in [
            "events_20260101_000000.txt",
            "events_20260102_000000.txt",
            "other.log",
        ] {
            std::fs::write(d.join(name), b"x\n").expect("write");
        }
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        let paths = |log: &str| -> Vec<PathBuf> {
            let mut found: Vec<PathBuf> = live_files(log)
                .expect("lists")
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            found.sort();
            found
        };
        let by_dir = paths(&d.to_string_lossy());
        assert_eq!(
            by_dir.len(),
            3,
            "the subdirectory is not a file: {by_dir:?}"
        );
        let pattern = format!("{}/events_*.txt", d.display());
        assert_eq!(paths(&pattern).len(), 2);
        let one = d.join("other.log");
        assert_eq!(paths(&one.to_string_lossy()), vec![one]);
        let missing = d.join("later/events.txt");
        assert!(
            live_files(&missing.to_string_lossy())
                .expect("missing")
                .is_empty()
        );
        assert_eq!(
            watch_root(&missing.to_string_lossy()),
            Some((d.to_path_buf(), false)),
            "a missing directory is watched through its parent"
        );
        assert_eq!(watch_root(&pattern), Some((d.to_path_buf(), false)));
        let deep = format!("{}/*/events.txt", d.display());
        assert_eq!(watch_root(&deep), Some((d.to_path_buf(), true)));
    }
}
