//! From a file path in an event to an S3 object key: normalisation, media-root confinement,
//! key derivation and the HTTP headers of the object. Lexical only: the engine never touches
//! the file system, so symlinks are resolved when the upload runs.

use std::fmt;
use std::path::{Path, PathBuf};

/// A path with `\` read as `/`, `//` collapsed and `.`/`..` resolved without the file system.
/// A relative path keeps its leading `..`: there is nothing to resolve them against.
///
/// Kept as its normalised text (the prefix, then the components joined by `/`): one string
/// per path instead of one per component, since every upload builds a few of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPath {
    /// The prefix (`""` for a relative path, `/`, or a Windows drive such as `C:/`) followed
    /// by the components, each non-empty and without `/`, joined by `/`.
    text: String,
    prefix_len: usize,
}

impl MediaPath {
    /// A path written either way: `\` separates components, as on Windows.
    pub fn parse(raw: &str) -> MediaPath {
        MediaPath::parse_with(raw, Separators::Both)
    }

    /// A path read with `separators`: on a Unix host `\` is part of a name, and a stream
    /// named `a\..\b` writes into a folder of that name, not into `b`.
    pub fn parse_with(raw: &str, separators: Separators) -> MediaPath {
        // Most paths neither start nor end with white space: only the first and last bytes
        // are looked at then (a byte that may begin white space leaves it to `trim`).
        let plain = |b: Option<&u8>| b.is_some_and(|&b| b > b' ' && b < 0x80);
        let raw = if plain(raw.as_bytes().first()) && plain(raw.as_bytes().last()) {
            raw
        } else {
            raw.trim()
        };
        let (prefix, rest) = match separators {
            Separators::Both => split_prefix(raw),
            Separators::Slash => match raw.strip_prefix('/') {
                Some(rest) => ("/", rest),
                None => ("", raw),
            },
        };
        let mut text = String::with_capacity(raw.len());
        text.push_str(prefix);
        let mut path = MediaPath {
            prefix_len: text.len(),
            text,
        };
        // Split at `/` (and `\`) found with memchr: the hot path of every upload.
        let mut from = 0;
        let mut part = |at: usize| {
            let part = &rest[from..at];
            from = at + 1;
            part
        };
        let end = std::iter::once(rest.len());
        match separators {
            Separators::Both => path.push_parts(
                memchr::memchr2_iter(b'/', b'\\', rest.as_bytes())
                    .chain(end)
                    .map(&mut part),
            ),
            Separators::Slash => path.push_parts(
                memchr::memchr_iter(b'/', rest.as_bytes())
                    .chain(end)
                    .map(&mut part),
            ),
        }
        path
    }

    /// A Windows path: one that starts with a drive (`C:/`).
    fn has_drive(&self) -> bool {
        self.prefix_len == 3
    }

    /// The components as one `/`-joined text.
    fn components_text(&self) -> &str {
        &self.text[self.prefix_len..]
    }

    #[cfg(test)]
    fn components(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.components_text()
            .split('/')
            .filter(|part| !part.is_empty())
    }

    fn component_count(&self) -> usize {
        let text = self.components_text();
        if text.is_empty() {
            0
        } else {
            memchr::memchr_iter(b'/', text.as_bytes()).count() + 1
        }
    }

    /// Where the last component starts in `text`, if there is one.
    fn last_start(&self) -> Option<usize> {
        let text = self.components_text();
        if text.is_empty() {
            return None;
        }
        Some(self.prefix_len + memchr::memrchr(b'/', text.as_bytes()).map_or(0, |i| i + 1))
    }

    fn pop(&mut self) {
        if let Some(start) = self.last_start() {
            // Drop the separator before it too, unless it was the first component.
            self.text
                .truncate(start.saturating_sub(1).max(self.prefix_len));
        }
    }

    fn push(&mut self, name: &str) {
        if self.text.len() > self.prefix_len {
            self.text.push('/');
        }
        self.text.push_str(name);
    }

    /// Appends the `/`-separated components of `rest`.
    fn push_components(&mut self, rest: &str) {
        self.push_parts(rest.split('/'));
    }

    fn push_parts<'r>(&mut self, parts: impl Iterator<Item = &'r str>) {
        for part in parts {
            match part {
                "" | "." => {}
                ".." => match self.file_component() {
                    Some(last) if last != ".." => self.pop(),
                    // Above the root of an absolute path there is only the root.
                    _ if self.is_absolute() => {}
                    _ => self.push(".."),
                },
                name => self.push(name),
            }
        }
    }

    /// The last component, `..` included.
    fn file_component(&self) -> Option<&str> {
        self.last_start().map(|start| &self.text[start..])
    }

    pub fn is_absolute(&self) -> bool {
        self.prefix_len > 0
    }

    /// `rel` resolved against `self`; an absolute `rel` stays as it is.
    pub fn join(&self, rel: &MediaPath) -> MediaPath {
        if rel.is_absolute() {
            return rel.clone();
        }
        let mut joined = MediaPath {
            text: String::with_capacity(self.text.len() + 1 + rel.text.len()),
            prefix_len: self.prefix_len,
        };
        joined.text.push_str(&self.text);
        joined.push_components(rel.components_text());
        joined
    }

    /// The file `name` in the same directory.
    pub fn sibling(&self, name: &str) -> MediaPath {
        let mut sibling = MediaPath {
            text: String::with_capacity(self.text.len() + name.len()),
            prefix_len: self.prefix_len,
        };
        sibling.text.push_str(&self.text);
        sibling.pop();
        sibling.push_components(name);
        sibling
    }

    pub fn file_name(&self) -> Option<&str> {
        self.file_component().filter(|name| *name != "..")
    }

    /// The directory part, as text (used to remember per-directory facts).
    pub fn parent_text(&self) -> String {
        self.parent_str().to_string()
    }

    pub(crate) fn parent_str(&self) -> &str {
        match self.last_start() {
            Some(start) => &self.text[..start.saturating_sub(1).max(self.prefix_len)],
            None => &self.text,
        }
    }

    /// The components below `root`, as `/`-joined text, if this path lies strictly inside it.
    fn strip_root(&self, root: &MediaPath) -> Option<&str> {
        if !self.text[..self.prefix_len].eq_ignore_ascii_case(&root.text[..root.prefix_len]) {
            return None;
        }
        let (own, base) = (self.components_text(), root.components_text());
        if base.is_empty() {
            return (!own.is_empty()).then_some(own);
        }
        own.strip_prefix(base)?
            .strip_prefix('/')
            .filter(|tail| !tail.is_empty())
    }

    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf::from(self.text.clone())
    }
}

/// The most of a path a refusal shows: more than any file's path holds.
pub(crate) const SHOWN_PATH_CHARS: usize = 1024;

/// The path as text, its control characters escaped: it is shown in refusals, which go to the
/// log as one line each. Of a longer path (a log line holds up to 1 MiB of one) only the
/// start is shown, and its length.
impl fmt::Display for MediaPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&super::names::Clipped(&self.text, SHOWN_PATH_CHARS), f)
    }
}

/// Which characters separate the components of an event's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separators {
    /// `/` and `\`: paths of a Windows EMS (and of logs read without a media root).
    Both,
    /// `/` only: paths of an EMS on a Unix host, where `\` is part of a name.
    Slash,
}

/// Splits `/`, a drive such as `C:/`, or nothing off the front of a path, `\` read as `/`.
fn split_prefix(path: &str) -> (&'static str, &str) {
    let bytes = path.as_bytes();
    let slash = |b: u8| b == b'/' || b == b'\\';
    if bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && slash(bytes[2]) {
        // A drive letter: the prefix is the letter as written, `:` and `/`.
        return (drive_prefix(bytes[0]), &path[3..]);
    }
    if bytes.first().copied().is_some_and(slash) {
        return ("/", &path[1..]);
    }
    ("", path)
}

/// `X:/` for an ASCII letter `X`, as a static string.
fn drive_prefix(letter: u8) -> &'static str {
    const DRIVES: &str = "A:/B:/C:/D:/E:/F:/G:/H:/I:/J:/K:/L:/M:/N:/O:/P:/Q:/R:/S:/T:/U:/V:/W:/X:/Y:/Z:/\
                          a:/b:/c:/d:/e:/f:/g:/h:/i:/j:/k:/l:/m:/n:/o:/p:/q:/r:/s:/t:/u:/v:/w:/x:/y:/z:/";
    let index = if letter.is_ascii_uppercase() {
        letter - b'A'
    } else {
        26 + letter - b'a'
    };
    let at = 3 * index as usize;
    &DRIVES[at..at + 3]
}

/// How many trailing components make the key when no media root is set (`G/file`,
/// `G/S/file`, `G/S/video|audio/<bw>/file`). They also name the group and the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Group = 2,
    Stream = 3,
    DashMedia = 5,
}

impl Depth {
    fn components(self) -> usize {
        self as usize
    }
}

/// The rules that turn an event's file path into its object key for one uploader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    roots: Vec<MediaPath>,
    working_dir: Option<MediaPath>,
    key_prefix: String,
    /// How the events' paths are read: `/` only when every media root is a Unix path.
    separators: Separators,
}

impl Placement {
    /// `roots` empty means uploads are not confined; keys then come from the path's tail.
    /// A relative root is read against EMS's working directory, like the event paths.
    pub fn new(roots: &[PathBuf], working_dir: Option<&Path>, key_prefix: &str) -> Placement {
        let working_dir = working_dir.map(|dir| MediaPath::parse(&dir.to_string_lossy()));
        let roots = roots
            .iter()
            .map(|root| {
                let root = MediaPath::parse(&root.to_string_lossy());
                match &working_dir {
                    Some(dir) => dir.join(&root),
                    None => root,
                }
            })
            .collect::<Vec<MediaPath>>();
        // The roots say where EMS writes: below Unix roots, EMS runs on a Unix host and a
        // `\` in a stream's folder is part of its name. Read as a separator there, a stream
        // named `x\..\victim` would have its chunks' deletes remove `victim`'s objects.
        let separators = if roots.is_empty() || roots.iter().any(MediaPath::has_drive) {
            Separators::Both
        } else {
            Separators::Slash
        };
        Placement {
            roots,
            working_dir,
            key_prefix: key_prefix.to_string(),
            separators,
        }
    }

    /// The event's `file`, normalised and made absolute against EMS's working directory.
    pub fn resolve(&self, raw: &str) -> MediaPath {
        let path = MediaPath::parse_with(raw, self.separators);
        match &self.working_dir {
            Some(dir) if !path.is_absolute() => dir.join(&path),
            _ => path,
        }
    }

    /// The key for an already resolved path (then the group and stream names borrowed from
    /// the path), or why there must be no upload.
    pub(crate) fn key_of<'p>(
        &self,
        path: &'p MediaPath,
        depth: Depth,
    ) -> Result<(String, Option<&'p str>, Option<&'p str>), String> {
        let key_components = if self.roots.is_empty() {
            self.tail_key(path, depth)?
        } else {
            self.confined_key(path)?
        };
        // A stream's folder is named after the stream: whoever publishes chooses it.
        if key_components.chars().any(char::is_control) {
            return Err(format!(
                "{path} holds a control character, which no object key gets"
            ));
        }
        let (group, stream) = names(path, depth);
        let mut key = String::with_capacity(self.key_prefix.len() + key_components.len());
        key.push_str(&self.key_prefix);
        key.push_str(key_components);
        Ok((key, group, stream))
    }

    fn confined_key<'p>(&self, path: &'p MediaPath) -> Result<&'p str, String> {
        if !path.is_absolute() {
            return Err(format!(
                "{path} is a relative path and cannot be checked against the media roots; \
                 set Service.ems_working_dir to EMS's working directory"
            ));
        }
        self.roots
            .iter()
            .find_map(|root| path.strip_root(root))
            .ok_or_else(|| {
                let roots: Vec<String> = self.roots.iter().map(ToString::to_string).collect();
                format!("{path} is outside the media roots [{}]", roots.join(", "))
            })
    }

    fn tail_key<'p>(&self, path: &'p MediaPath, depth: Depth) -> Result<&'p str, String> {
        let needed = depth.components();
        let count = path.component_count();
        if count < needed {
            return Err(format!(
                "{path} has too few path components for an S3 key (need {needed}); \
                 set a media_root to derive keys from it"
            ));
        }
        let text = path.components_text();
        // The tail starts after the `needed`-th separator from the end, or at the start.
        let start = if count == needed {
            0
        } else {
            memchr::memrchr_iter(b'/', text.as_bytes())
                .nth(needed - 1)
                .map_or(0, |i| i + 1)
        };
        let tail = &text[start..];
        if tail.split('/').any(|c| c == "..") {
            return Err(format!(
                "{path} climbs above its own directory; set Service.ems_working_dir or a media_root"
            ));
        }
        Ok(tail)
    }
}

/// Group and stream names from the path's tail, as EMS lays the folders out.
fn names(path: &MediaPath, depth: Depth) -> (Option<&str>, Option<&str>) {
    // The last `depth` components, last first, cut at the separators memrchr finds (the
    // components of a MediaPath are never empty).
    let text = path.components_text();
    let mut tail = [""; Depth::DashMedia as usize];
    let mut found = 0;
    if !text.is_empty() {
        let mut end = text.len();
        for at in memchr::memrchr_iter(b'/', text.as_bytes()) {
            if found == depth.components() {
                break;
            }
            tail[found] = &text[at + 1..end];
            end = at;
            found += 1;
        }
        if found < depth.components() {
            tail[found] = &text[..end];
            found += 1;
        }
    }
    let from_end = |n: usize| (n <= found).then(|| tail[n - 1]).filter(|c| *c != "..");
    match depth {
        Depth::Group => (from_end(2), None),
        Depth::Stream => (from_end(3), from_end(2)),
        Depth::DashMedia => (from_end(5), from_end(4)),
    }
}

/// The Content-Type players expect, by extension.
pub fn content_type(file_name: &str) -> &'static str {
    let Some((_, extension)) = file_name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    let is = |name: &str| extension.eq_ignore_ascii_case(name);
    if is("m3u8") {
        "application/vnd.apple.mpegurl"
    } else if is("ts") {
        "video/mp2t"
    } else if is("mpd") {
        "application/dash+xml"
    } else if is("f4m") {
        "application/f4m"
    } else if is("mp4") || is("fmp4") || is("m4s") {
        "video/mp4"
    } else {
        "application/octet-stream"
    }
}

/// Playlists, manifests and bootstraps are rewritten while a stream runs; segments never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Changing,
    Fixed,
}

impl Freshness {
    pub fn cache_control(self) -> &'static str {
        match self {
            Freshness::Changing => "max-age=2",
            Freshness::Fixed => "max-age=86400",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parsing_agree_with_plain_splitting() {
        let raws = [
            "/var/evostreamms/evo-webroot/hls/cam1/segment_1.ts",
            "..\\evo-webroot\\g\\s\\segment_1_1_14.ts",
            "/w/dash/cam102/video/2000/seg_1.m4s",
            "a/b",
            "b",
            "",
            "/",
            "//x//y/./z/../w/",
            "../../etc/shadow",
            "C:\\media\\hls\\lobby cam ☃\\playlist.m3u8",
            "/a/../../b/c/d/e/f/g",
            " /spaced/out /name.ts ",
            "\t/tabbed/name.ts\r\n",
            "\u{a0}/no-break/space.ts\u{3000}",
            "\u{1f}/control/bytes.ts\u{1f}",
            "/é/ü.ts",
        ];
        for raw in raws {
            let path = MediaPath::parse(raw);
            // The normal form, built component by component.
            let (prefix, rest) = split_prefix(raw.trim());
            let mut expected = MediaPath {
                text: prefix.to_string(),
                prefix_len: prefix.len(),
            };
            expected.push_parts(rest.split(['/', '\\']));
            assert_eq!(path, expected, "{raw}");
            for depth in [Depth::Group, Depth::Stream, Depth::DashMedia] {
                let from_end = |n: usize| path.components().rev().nth(n - 1).filter(|c| *c != "..");
                let expected = match depth {
                    Depth::Group => (from_end(2), None),
                    Depth::Stream => (from_end(3), from_end(2)),
                    Depth::DashMedia => (from_end(5), from_end(4)),
                };
                assert_eq!(names(&path, depth), expected, "{raw} {depth:?}");
            }
        }
    }

    fn unconfined() -> Placement {
        Placement::new(&[], None, "")
    }

    fn key(placement: &Placement, raw: &str, depth: Depth) -> Result<String, String> {
        placement
            .key_of(&placement.resolve(raw), depth)
            .map(|(key, _, _)| key)
    }

    #[test]
    fn normalises_separators_dots_and_double_slashes() {
        assert_eq!(
            MediaPath::parse("/var//www/./G/x/../S/a.ts").to_string(),
            "/var/www/G/S/a.ts"
        );
        assert_eq!(
            MediaPath::parse(r"C:\EvoStream\media\\G\S\a.ts").to_string(),
            "C:/EvoStream/media/G/S/a.ts"
        );
        assert_eq!(MediaPath::parse("/../../etc").to_string(), "/etc");
        assert_eq!(
            MediaPath::parse("../evo-webroot/./G/../G/S").to_string(),
            "../evo-webroot/G/S"
        );
        assert_eq!(MediaPath::parse("../../x").to_string(), "../../x");
    }

    #[test]
    fn sibling_replaces_the_file_name() {
        let chunk = MediaPath::parse("/w/G/S/seg_1.ts");
        assert_eq!(chunk.sibling("index.m3u8").to_string(), "/w/G/S/index.m3u8");
        assert_eq!(chunk.parent_text(), "/w/G/S");
    }

    #[test]
    fn keys_without_roots_come_from_the_tail() {
        let p = unconfined();
        assert_eq!(
            key(&p, "/var/www/G/playlist.m3u8", Depth::Group).as_deref(),
            Ok("G/playlist.m3u8")
        );
        assert_eq!(
            key(&p, "/var/www/G/S/seg_1.ts", Depth::Stream).as_deref(),
            Ok("G/S/seg_1.ts")
        );
        assert_eq!(
            key(&p, "/var/www/G/S/video/229376/1.fmp4", Depth::DashMedia).as_deref(),
            Ok("G/S/video/229376/1.fmp4")
        );
    }

    #[test]
    fn keys_with_too_few_components_are_refused() {
        let refusal = key(&unconfined(), "/S/seg_1.ts", Depth::Stream).unwrap_err();
        assert!(refusal.contains("too few path components"), "{refusal}");
        assert!(key(&unconfined(), "seg_1.ts", Depth::Stream).is_err());
    }

    #[test]
    fn a_key_never_contains_dot_dot() {
        let refusal = key(&unconfined(), "../S/seg_1.ts", Depth::Stream).unwrap_err();
        assert!(refusal.contains("climbs above"), "{refusal}");
    }

    #[test]
    fn relative_dash_path_keeps_group_and_stream_without_working_dir() {
        let p = unconfined();
        let path = p.resolve("../evo-webroot/G/S/video/229376/x.fmp4");
        let (key, group, stream) = p
            .key_of(&path, Depth::DashMedia)
            .expect("five trailing components are present");
        assert_eq!(key, "G/S/video/229376/x.fmp4");
        assert_eq!((group, stream), (Some("G"), Some("S")));
    }

    #[test]
    fn relative_dash_path_resolves_against_working_dir() {
        let p = Placement::new(&[], Some(Path::new("/usr/bin")), "");
        let path = p.resolve("../evo-webroot/G/S/video/229376/x.fmp4");
        assert_eq!(path.to_string(), "/usr/evo-webroot/G/S/video/229376/x.fmp4");
        let (key, _, _) = p
            .key_of(&path, Depth::DashMedia)
            .expect("five trailing components are present");
        assert_eq!(key, "G/S/video/229376/x.fmp4");
    }

    #[test]
    fn keys_with_roots_are_relative_to_the_root() {
        let p = Placement::new(&[PathBuf::from("/var/www/")], None, "live/");
        assert_eq!(
            key(&p, "/var/www/G/S/seg_1.ts", Depth::Stream).as_deref(),
            Ok("live/G/S/seg_1.ts")
        );
        assert_eq!(
            key(&p, "/var//www/G/playlist.m3u8", Depth::Group).as_deref(),
            Ok("live/G/playlist.m3u8")
        );
    }

    #[test]
    fn second_root_is_used_when_the_first_does_not_contain_the_file() {
        let roots = [PathBuf::from("/a"), PathBuf::from("/b/webroot")];
        let p = Placement::new(&roots, None, "");
        assert_eq!(
            key(&p, "/b/webroot/G/S/1.ts", Depth::Stream).as_deref(),
            Ok("G/S/1.ts")
        );
    }

    #[test]
    fn dot_dot_escaping_the_root_is_refused() {
        let p = Placement::new(&[PathBuf::from("/var/www")], None, "");
        let refusal = key(&p, "/var/www/G/../../../etc/passwd", Depth::Stream).unwrap_err();
        assert_eq!(refusal, "/etc/passwd is outside the media roots [/var/www]");
    }

    /// The log's lines are up to 1 MiB, and EMS writes control bytes raw: a refusal showed
    /// such a path whole, each control byte as five characters, some 5 MiB of log per event.
    #[test]
    fn a_refusal_shows_the_start_of_a_long_path_and_its_length() {
        let p = Placement::new(&[PathBuf::from("/var/www")], None, "");
        let raw = format!("/etc/{}/x.ts", "\u{1}".repeat(1 << 20));
        let refusal = key(&p, &raw, Depth::Stream).unwrap_err();
        assert!(refusal.len() < 8 * 1024, "{} bytes", refusal.len());
        assert!(
            refusal.starts_with("/etc/\\u{1}\\u{1}"),
            "{}",
            &refusal[..40]
        );
        assert!(
            refusal.contains(&format!(
                "… ({} bytes) is outside the media roots",
                raw.len()
            )),
            "{}",
            &refusal[refusal.len() - 200..]
        );
        // Paths of the lengths files have are shown whole.
        let long = format!("/etc/{}/x.ts", "d".repeat(1000));
        assert_eq!(
            key(&p, &long, Depth::Stream).unwrap_err(),
            format!("{long} is outside the media roots [/var/www]")
        );
    }

    #[test]
    fn a_root_lookalike_prefix_is_outside() {
        let p = Placement::new(&[PathBuf::from("/var/www")], None, "");
        assert!(key(&p, "/var/www2/G/S/1.ts", Depth::Stream).is_err());
        assert!(key(&p, "/var/www", Depth::Group).is_err());
    }

    #[test]
    fn relative_path_with_roots_needs_the_working_dir() {
        let p = Placement::new(&[PathBuf::from("/var/www")], None, "");
        let refusal = key(&p, "../evo-webroot/G/S/1.ts", Depth::Stream).unwrap_err();
        assert!(refusal.contains("Service.ems_working_dir"), "{refusal}");

        let p = Placement::new(
            &[PathBuf::from("/opt/evo-webroot")],
            Some(Path::new("/opt/bin")),
            "",
        );
        assert_eq!(
            key(&p, "../evo-webroot/G/S/1.ts", Depth::Stream).as_deref(),
            Ok("G/S/1.ts")
        );
    }

    #[test]
    fn windows_paths_are_confined_like_any_other() {
        let p = Placement::new(&[PathBuf::from(r"C:\EvoStream\webroot")], None, "");
        assert_eq!(
            key(&p, r"C:\EvoStream\webroot\G\S\1.ts", Depth::Stream).as_deref(),
            Ok("G/S/1.ts")
        );
        assert!(key(&p, r"D:\EvoStream\webroot\G\S\1.ts", Depth::Stream).is_err());
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("playlist.m3u8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type("seg_1.TS"), "video/mp2t");
        assert_eq!(content_type("manifest.mpd"), "application/dash+xml");
        assert_eq!(content_type("manifest.f4m"), "application/f4m");
        assert_eq!(content_type("seg_init.mp4"), "video/mp4");
        assert_eq!(content_type("1416464032000.fmp4"), "video/mp4");
        assert_eq!(content_type("1.m4s"), "video/mp4");
        assert_eq!(content_type("f4vSeg1-Frag3"), "application/octet-stream");
        assert_eq!(content_type("bootstrap"), "application/octet-stream");
    }

    #[test]
    fn cache_control_is_short_for_changing_files() {
        assert_eq!(Freshness::Changing.cache_control(), "max-age=2");
        assert_eq!(Freshness::Fixed.cache_control(), "max-age=86400");
    }
}
