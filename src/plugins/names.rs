//! Stream names come from whoever can publish a stream. A plugin that puts a name into a
//! file path, a URI or an EMS parameter first checks it here: a name that could climb out of
//! a folder, split a URI path or carry a control character is refused, not sanitised.

use super::Refusal;
use crate::action::PluginId;

/// Why `name` must not reach a path, a URI or an EMS parameter, or `None` if it may.
pub fn unsafe_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.contains('/') {
        return Some("it contains '/'");
    }
    if name.contains('\\') {
        return Some("it contains '\\'");
    }
    if name.contains('\0') {
        return Some("it contains NUL");
    }
    // C0, DEL and C1 (U+0080–U+009F, NEL among them), as rule templates refuse them.
    if name.chars().any(char::is_control) {
        return Some("it contains a control character");
    }
    if name == ".." || name == "." {
        return Some("it is a '.' or '..' path segment");
    }
    None
}

/// `Ok` for a name `plugin` may use; otherwise the refusal, naming the stream with its
/// control characters escaped so that the report is one readable line.
pub fn check(plugin: PluginId, name: &str) -> Result<(), Refusal> {
    match unsafe_reason(name) {
        None => Ok(()),
        Some(why) => Err(Refusal {
            plugin,
            reason: format!("stream name {} refused: {why}", name.escape_debug()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_split_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "../../../../etc/cron.d/evil",
            "a/b",
            "a\\b",
            "..\\..\\x",
            "a\0b",
            "a\nb",
            "a\rb",
            "tab\there",
            "\x1b[31m",
            "del\x7f",
            "next\u{85}line",
            "\u{9b}31m",
        ] {
            let refusal = check(PluginId::StreamRecorder, name).expect_err(name);
            assert_eq!(refusal.plugin, PluginId::StreamRecorder);
            assert!(refusal.reason.contains("refused"), "{refusal}");
            assert!(!refusal.reason.contains('\n'), "{refusal}");
        }
    }

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "cam1",
            "my stream, with=signs \"q\" ü",
            "..cam",
            "cam..",
            "a..b",
            "...",
            "live_2026-01-01",
        ] {
            assert_eq!(check(PluginId::StreamRecorder, name), Ok(()), "{name}");
        }
    }
}
