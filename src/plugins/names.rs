//! Stream names come from whoever can publish a stream. A plugin that puts a name into a
//! file path, a URI or an EMS parameter first checks it here: a name that could climb out of
//! a folder, split a URI path or carry a control character is refused, not sanitised.

use super::Refusal;
use crate::action::{ControlEscaped, PluginId};
use std::fmt;

/// The longest name a plugin sends: EMS takes a command of at most 16 KiB, so a longer name
/// can never be acted on, whichever plugin sends it. Sent anyway, each of its failures was a
/// dead letter holding the name up to four times (parameters, pull URI, lane, stream), per
/// destination and per publish: a name near the log's 1 MiB line cap wrote some 4 MiB to the
/// state directory each time it was published.
pub const MAX_NAME_BYTES: usize = crate::exec::ems::MAX_COMMAND_BYTES;

/// Why a name over [`MAX_NAME_BYTES`] is refused (a test holds the two alike).
const TOO_LONG: &str = "it is longer than 16384 bytes, more than a whole EMS command";

/// How much of a refused name a refusal shows.
const SHOWN_CHARS: usize = 120;

/// Why `name` must not reach a path, a URI or an EMS parameter, or `None` if it may.
pub fn unsafe_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(TOO_LONG);
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
/// control characters escaped so that the report is one readable line, and clipped so that
/// it is a short one.
pub fn check(plugin: PluginId, name: &str) -> Result<(), Refusal> {
    match unsafe_reason(name) {
        None => Ok(()),
        Some(why) => Err(Refusal {
            plugin,
            reason: format!("stream name {} refused: {why}", shown(name)),
        }),
    }
}

/// `name` for a message: at most [`SHOWN_CHARS`] of it, as [`Clipped`] shows text.
pub(crate) fn shown(name: &str) -> String {
    Clipped(name, SHOWN_CHARS).to_string()
}

/// Text from the log for a message: escaped as [`ControlEscaped`] shows text everywhere, and
/// at most this many characters of it, followed by its length when it is longer.
pub(crate) struct Clipped<'a>(pub &'a str, pub usize);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match head(self.0, self.1) {
            None => fmt::Display::fmt(&ControlEscaped(self.0), f),
            Some(head) => write!(f, "{}… ({} bytes)", ControlEscaped(head), self.0.len()),
        }
    }
}

/// The first `chars` characters of `text`, or `None` when it has no more than that.
pub(crate) fn head(text: &str, chars: usize) -> Option<&str> {
    text.char_indices().nth(chars).map(|(end, _)| &text[..end])
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

    /// A name no EMS command can hold is refused, on one short line, instead of being sent to
    /// fail and be written to the dead-letter file four times over, per destination.
    #[test]
    fn a_name_longer_than_an_ems_command_can_hold_is_refused_shortly() {
        let longest = "n".repeat(MAX_NAME_BYTES);
        assert_eq!(check(PluginId::StreamLoadBalancer, &longest), Ok(()));
        for long in [
            "n".repeat(MAX_NAME_BYTES + 1),
            "é".repeat(500_000),
            format!("{}\n2026-12-05 forged", "x".repeat(200)),
        ] {
            let refusal = check(PluginId::StreamLoadBalancer, &long).expect_err("too long");
            assert!(
                long.len() <= MAX_NAME_BYTES
                    || refusal
                        .reason
                        .contains(&format!("longer than {MAX_NAME_BYTES} bytes")),
                "{refusal}"
            );
            assert!(refusal.reason.len() < 400, "{}", refusal.reason.len());
            assert!(!refusal.reason.contains('\n'), "{refusal}");
            assert!(
                refusal
                    .reason
                    .contains(&format!("… ({} bytes) refused", long.len())),
                "{refusal}"
            );
        }
    }

    /// A refusal shows a name as every other line shows text: control characters, the
    /// bidirectional overrides and invisible fillers escaped; accents, quotes and backslashes
    /// as they are.
    #[test]
    fn a_refused_name_is_shown_as_every_line_shows_text() {
        for (name, shown) in [
            (
                "cafe\u{301} \"2\"\u{1b}[2J\u{202e}",
                "cafe\u{301} \"2\"\\u{1b}[2J\\u{202e}",
            ),
            ("cam\u{3164}/1", "cam\\u{3164}/1"),
        ] {
            let refusal = check(PluginId::StreamRecorder, name).expect_err(name);
            assert!(
                refusal
                    .reason
                    .starts_with(&format!("stream name {shown} refused: ")),
                "{}",
                refusal.reason
            );
        }
    }
}
