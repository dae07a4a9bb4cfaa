//! What an install gives a user, through the built binary: the completion scripts and man
//! pages it prints (and the packages ship), and `emstail check` on the config a fresh install
//! holds, which enables nothing. The packages themselves are tested by
//! `scripts/package.sh --check`.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use support::emstail::{Emstail, Run, repo, utf8};

/// Every subcommand a user can run (`help` aside).
const SUBCOMMANDS: [&str; 9] = [
    "check",
    "parse",
    "replay",
    "run",
    "status",
    "rules",
    "dead-letters",
    "completions",
    "man",
];

fn emstail(args: &[&str]) -> Run {
    Emstail::new(args).log_level("warn").run()
}

/// What bash offers for `emstail WORD<TAB>` with the script `emstail completions bash` prints.
fn bash_offers(script: &Path, word: &str) -> Vec<String> {
    let out = Command::new("bash")
        .args([
            "--norc",
            "-c",
            r#". "$1"; COMP_WORDS=(emstail "$2"); COMP_CWORD=1; COMP_LINE="emstail $2"
               COMP_POINT=${#COMP_LINE}; _emstail emstail "$2" emstail
               printf '%s\n' "${COMPREPLY[@]}""#,
            "bash",
            utf8(script),
            word,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("completions are UTF-8")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_bash_completion_offers_every_subcommand() {
    let out = emstail(&["completions", "bash"]);
    out.assert_exit(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("emstail.bash");
    std::fs::write(&script, &out.stdout_bytes).expect("script is written");

    let offered = bash_offers(&script, "");
    for sub in SUBCOMMANDS {
        assert!(offered.iter().any(|o| o == sub), "{sub} not in {offered:?}");
    }
    assert_eq!(bash_offers(&script, "dea"), ["dead-letters"]);
}

#[test]
fn zsh_and_fish_completions_name_the_subcommands() {
    for (shell, marker) in [("zsh", "#compdef emstail"), ("fish", "complete -c emstail")] {
        let out = emstail(&["completions", shell]);
        out.assert_exit(0);
        assert!(out.stdout.contains(marker), "{shell}:\n{}", out.stdout);
        for sub in SUBCOMMANDS {
            assert!(out.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = emstail(&["completions", "tcsh"]);
    out.assert_exit(2);
    out.assert_stderr_has("bash");
}

/// `page` rendered as `man` shows it; groff must be installed (.ci/run installs it).
fn groff(page: &[u8]) -> (String, String) {
    let mut child = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .env("GROFF_NO_SGR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff is installed (.ci/run installs it with apt-get)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(page)
        .expect("groff reads the page");
    let out = child.wait_with_output().expect("groff finishes");
    assert!(out.status.success(), "groff failed");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The words of the text, one space apart (groff justifies lines with more), without its
/// overstriking (bold as `X\bX`, underline as `_\bX`).
fn plain(rendered: &str) -> String {
    let mut text = String::new();
    for c in rendered.chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_man_page_renders_without_warnings_and_lists_every_subcommand() {
    let out = emstail(&["man"]);
    out.assert_exit(0);
    let (rendered, warnings) = groff(&out.stdout_bytes);
    assert_eq!(warnings, "", "groff warns");
    let text = plain(&rendered);
    assert!(text.contains("emstail(1)"), "{text}");
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(&format!("emstail-{sub}(1)")),
            "{sub}:\n{text}"
        );
    }
    assert!(text.contains("/etc/emstail/config.ini"), "{text}");
}

#[test]
fn every_subcommand_has_a_man_page_that_renders_without_warnings() {
    for sub in SUBCOMMANDS {
        let out = emstail(&["man", sub]);
        out.assert_exit(0);
        let (rendered, warnings) = groff(&out.stdout_bytes);
        assert_eq!(warnings, "", "groff warns on emstail-{sub}(1)");
        let text = plain(&rendered);
        assert!(text.contains(&format!("emstail-{sub}(1)")), "{text}");
        assert!(text.contains(&format!("emstail {sub}")), "{text}");
    }
    // The options are there as --help has them.
    let out = emstail(&["man", "run"]);
    let text = plain(&groff(&out.stdout_bytes).0);
    assert!(text.contains("--metrics-file"), "{text}");
}

#[test]
fn man_of_an_unknown_subcommand_is_a_usage_error_naming_the_known_ones() {
    let out = emstail(&["man", "stop"]);
    out.assert_exit(2);
    out.assert_stderr_has("\"stop\"");
    out.assert_stderr_has("dead-letters");
    assert!(out.stdout.is_empty());
}

/// The config a package installs, as `scripts/package.sh` makes it from config.ini.sample.
fn packaged_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("config.ini");
    let status = Command::new(repo().join("scripts/package.sh"))
        .args(["--config", utf8(&config)])
        .stdin(Stdio::null())
        .status()
        .expect("scripts/package.sh runs");
    assert!(status.success(), "package.sh --config failed");
    config
}

#[test]
fn check_on_the_packaged_config_warns_that_emstail_would_do_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = packaged_config(dir.path());
    let out = emstail(&["check", "--config", utf8(&config)]);
    out.assert_exit(0);
    assert!(
        out.stderr
            .contains("no plugin and no rule is enabled: emstail would do nothing"),
        "{}",
        out.stderr
    );
    let summary = out.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        summary,
        format!(
            "# {}: valid, no plugin enabled: emstail would do nothing",
            config.display()
        )
    );
    // Paths of a real host, not the repository's fixtures.
    assert!(
        out.stdout
            .contains("Service.event_log = \"/var/evostreamms/logs/events*.txt\""),
        "{}",
        out.stdout
    );
}

#[test]
fn the_packaged_config_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = packaged_config(dir.path());
    let mode = std::fs::metadata(&config)
        .expect("config exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn check_with_plugins_enabled_counts_them_and_does_not_warn() {
    let out = emstail(&["check", "--config", "config.ini.sample"]);
    out.assert_exit(0);
    assert!(!out.stderr.contains("would do nothing"), "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().last(),
        Some("# config.ini.sample: valid, 6 plugins enabled")
    );
}

#[test]
fn check_names_the_unknown_blocks_it_ignored_in_its_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.ini");
    std::fs::write(
        &config,
        r#"{
            "StreamRecordr": { "plugin_switch": "enabled" },
            "StreamRecorder": { "plugin_switch": "enabled",
                                "parameters": { "file_location": "/var/media" } },
            "Extras": {}
        }"#,
    )
    .expect("config is written");
    let out = emstail(&["check", "--config", utf8(&config)]);
    out.assert_exit(0);
    assert!(!out.stderr.contains("would do nothing"), "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().last().unwrap_or_default(),
        format!(
            "# {}: valid, 1 plugin enabled; unknown blocks ignored: Extras, StreamRecordr",
            config.display()
        )
    );
}
