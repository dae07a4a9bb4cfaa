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
}
