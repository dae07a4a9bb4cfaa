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

/// Expands directories into the regular files they hold, then orders everything oldest first
/// by the names' timestamps or part numbers. Files without either keep the order given,
/// ahead of the others.
pub fn ordered_files(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(input)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(input.clone());
        }
    }
    files.sort_by_cached_key(|p| order_key(p));
    Ok(files)
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
        let ordered = ordered_files(&given).expect("no directories to read");
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
