//! Collects problems with their context and converts JSON values into typed settings.
//!
//! Every message has the same shape, `FILE: Block.key = VALUE: what is allowed`, so that a user
//! can find the line and knows what to write instead. Secret values are shown as `***`.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

/// Where a value sits and what a problem with it costs.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    /// `Service`, `StreamRecorder`, `Rules["name"]`, …
    pub block: Cow<'static, str>,
    /// False in a disabled plugin (or a disabled destination): problems are only warnings.
    pub fatal: bool,
    /// Appended to a problem that is only a warning.
    pub why_only_a_warning: String,
}

impl Scope {
    pub fn fatal(block: &'static str) -> Scope {
        Scope::named(Cow::Borrowed(block))
    }

    /// A scope whose problems are always fatal, with a name made at run time (a rule's).
    pub fn named(block: Cow<'static, str>) -> Scope {
        Scope {
            block,
            fatal: true,
            why_only_a_warning: String::new(),
        }
    }

    pub fn plugin(block: &'static str, enabled: bool) -> Scope {
        Scope {
            block: Cow::Borrowed(block),
            fatal: enabled,
            why_only_a_warning: format!("{block} is disabled, so this is only a warning"),
        }
    }
}

/// How a value is shown in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    Value,
    Secret,
}

pub(super) struct Checker {
    /// The config file as named in messages.
    pub file: String,
    /// Relative paths in `Service` and `media_root` are resolved against this directory.
    pub base_dir: PathBuf,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Checker {
    pub fn new(path: &Path) -> Checker {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Checker {
            file: path.display().to_string(),
            base_dir: absolute.parent().map(Path::to_path_buf).unwrap_or_default(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, message: impl std::fmt::Display) {
        self.warnings
            .push(redact_urls_in(&format!("{}: {message}", self.file)));
    }

    /// Reports `Block.key = shown: allowed` as an error, or as a warning in a disabled scope.
    pub fn invalid(&mut self, scope: &Scope, key: &str, shown: &str, allowed: &str) {
        let dot = if key.is_empty() { "" } else { "." };
        let message = redact_urls_in(&format!(
            "{}: {}{dot}{key} = {shown}: {allowed}",
            self.file, scope.block
        ));
        if scope.fatal {
            self.errors.push(message);
        } else {
            self.warnings
                .push(format!("{message} ({})", scope.why_only_a_warning));
        }
    }

    /// Converts `value` with `convert`, which returns what is allowed on failure. A missing value
    /// gives `None` (the caller keeps its default) and so does an invalid one, once reported.
    pub fn get<T>(
        &mut self,
        scope: &Scope,
        key: &str,
        value: Option<&Value>,
        show: Show,
        convert: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = value?;
        match convert(value) {
            Ok(v) => Some(v),
            Err(allowed) => {
                self.invalid(scope, key, &shown(value, show), &allowed);
                None
            }
        }
    }

    /// Warns about keys of `map` not in `known`, suggesting the closest known one.
    pub fn unknown_keys(&mut self, prefix: &str, map: &Map<String, Value>, known: &[&str]) {
        for key in map.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let what = if prefix.is_empty() { "block" } else { "key" };
            match closest(key, known) {
                Some(suggestion) => self.warn(format_args!(
                    "unknown {what} {name} (did you mean {suggestion}?)"
                )),
                None => self.warn(format_args!(
                    "unknown {what} {name} (known: {})",
                    known.join(", ")
                )),
            }
        }
    }

    /// A path from the config: relative ones are taken from the config file's directory, so a
    /// sample config works from wherever it is run.
    pub fn resolve(&self, path: &str) -> PathBuf {
        normalize(&self.base_dir.join(path))
    }
}

/// The known name most like `key`, if any is close enough to be a plausible typo.
pub(super) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| {
            (
                k,
                strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()),
            )
        })
        .filter(|&(k, d)| d <= 3.max(k.len() / 4))
        .min_by_key(|&(_, d)| d)
        .map(|(k, _)| *k)
}

/// `value` as a message shows it: compact JSON, shortened; secrets as `***`, also inside a
/// list or object and in URLs.
pub(super) fn shown(value: &Value, show: Show) -> String {
    if show == Show::Secret {
        return "***".to_string();
    }
    let text = redacted(value).to_string();
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: [&str; 2] = ["aws_secret_key", "password"];

fn redacted(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact_url(s)),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if SECRET_KEYS.contains(&k.as_str()) {
                        Value::String("***".to_string())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `.` and `..` removed without touching the file system (the path may not exist yet).
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

pub(super) fn string(value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "must be a string".to_string())
}

/// A whole number in `min..=max`; a numeric string is accepted, as hand-edited files have them.
pub(super) fn whole(value: &Value, min: u64, max: u64, unit: &str) -> Result<u64, String> {
    let allowed = || format!("must be a whole number{unit} from {min} to {max}");
    let n = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n)).ok_or_else(allowed)
}

pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err("must be true or false".to_string()),
    }
}

/// One string or a list of strings.
pub(super) fn string_list(value: &Value) -> Result<Vec<String>, String> {
    let allowed = || "must be a string or a list of strings".to_string();
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(allowed))
            .collect(),
        _ => Err(allowed()),
    }
}

/// Why a setting with a control character is refused: most often a `\t` from `C:\temp`.
pub(super) const NO_CONTROL: &str =
    "must not contain control characters (in JSON, write \\\\ for a backslash)";

/// A local path that must not be empty or hold control characters (a `\t` from `C:\temp`).
pub(super) fn local_path(s: &str) -> Result<&str, String> {
    if s.trim().is_empty() {
        return Err("must be a non-empty path".to_string());
    }
    if s.chars().any(char::is_control) {
        return Err(NO_CONTROL.to_string());
    }
    Ok(s)
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address: `(host, port)`.
pub(super) fn host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let allowed = || "must be a host name or IP address, optionally with :port".to_string();
    let s = s.trim();
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || "/@?#\\".contains(c)) {
        return Err(allowed());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(allowed)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(allowed)?)),
        }
    } else if s.matches(':').count() > 1 {
        (s, None)
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:%".contains(c));
    if !valid_host {
        return Err(allowed());
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(allowed)?,
        ),
    };
    Ok((host.to_string(), port))
}

/// `host` as it goes into a URL (IPv6 in brackets).
pub(super) fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The parts of an `http(s)://[user[:pass]@]host[:port][/path]` URL.
pub(super) struct HttpUrl {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
}

pub(super) fn http_url(s: &str) -> Result<HttpUrl, String> {
    let allowed = || "must be an http:// or https:// URL such as http://127.0.0.1:7777".to_string();
    let s = s.trim();
    let (scheme, rest) = s.split_once("://").ok_or_else(allowed)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(allowed());
    }
    if rest.contains(['?', '#']) {
        return Err(allowed());
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = host_port(hostport).map_err(|_| allowed())?;
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(user.to_string()), Some(pass.to_string())),
            None => (Some(u.to_string()), None),
        },
    };
    Ok(HttpUrl {
        scheme,
        user: user.filter(|u| !u.is_empty()),
        password,
        host,
        port,
        path: path.to_string(),
    })
}

/// A value as a message may show it: the password of a URL's user info replaced by `***`
/// (see [`redact_urls_in`]); a value without a scheme that still reads `user:pass@host` is
/// treated the same.
pub(super) fn redact_url(s: &str) -> String {
    if s.contains("://") {
        redact_urls_in(s)
    } else {
        redact_userinfo(s)
    }
}

/// A message as it may be shown: in every URL in it (`scheme://…`), the password of the user
/// info replaced by `***`. The user info is taken up to the *last* `@` of the URL, so a
/// password holding `/`, `@`, `:`, `#` or `%` is hidden whole.
pub(super) fn redact_urls_in(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = url_end(tail);
        out.push_str(&redact_userinfo(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Where a URL starting at `tail[0]` (just after `://`) ends in a message: at whitespace, at
/// an unescaped `"` (messages show values as JSON strings), or at the next URL.
fn url_end(tail: &str) -> usize {
    let bytes = tail.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' | b' ' | b'\t' | b'\n' | b'\r' => return i,
            // The next URL's scheme belongs to it: back up to the last separator (ASCII, so
            // the index is a character boundary).
            b':' if bytes[i..].starts_with(b"://") => {
                return bytes[..i]
                    .iter()
                    .rposition(|&b| !b.is_ascii_alphanumeric() && !b"+-.".contains(&b))
                    .map_or(0, |n| n + 1);
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `user:pass@host…` → `user:***@host…`, splitting at the last `@`; without a `:` before it
/// (`user@host`) there is no password and nothing changes.
fn redact_userinfo(url: &str) -> String {
    let Some(last) = url.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &url[..last];
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***{}", &url[last..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_in_a_message_loses_its_password() {
        assert_eq!(
            redact_urls_in("a \"http://u:p/w@h:1/x\" then rtmp://v:q@r@k/live and http://h/ ü"),
            "a \"http://u:***@h:1/x\" then rtmp://v:***@k/live and http://h/ ü"
        );
        assert_eq!(
            redact_urls_in("x=http://u:a\\\"b@h/,https://w:c#d%e@i/"),
            "x=http://u:***@h/,https://w:***@i/"
        );
        assert_eq!(redact_urls_in("http://user@h/ ü://"), "http://user@h/ ü://");
        assert_eq!(redact_url("admin:p@ss@h:7777"), "admin:***@h:7777");
        assert_eq!(redact_url("cam@example"), "cam@example");
    }
}
