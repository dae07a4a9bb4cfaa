//! `emstail dead-letters` choosing letters: the selectors (--plugin, --rule, --stream,
//! --before, --unrunnable) on the listing, on --retry (against the fake EMS) and on --drop,
//! which removes exactly the letters chosen and leaves every other byte of the file as it was.

mod support;

use serde_json::json;
use std::fs::File;
use std::io::Write;
use std::time::Duration;
use support::emstail::{Emstail, Run, Setup, utf8};
use support::fake_ems::FakeEms;

/// 2026-01-01 00:00:00 UTC.
const JANUARY: u64 = 1_767_225_600;
/// 2026-06-01 00:00:00 UTC.
const JUNE: u64 = 1_780_272_000;

/// A letter of `plugin` (with `rule`) for `stream`, written at `time`: a `removeConfig` of
/// config id `id` to the fake EMS, one JSON line as the daemon writes it. (Not a
/// `shutdownStream`: StreamRecorder's, written without a rotation guard, is never run again.)
fn letter(ems: &str, plugin: &str, rule: Option<&str>, stream: &str, time: u64, id: u32) -> String {
    let mut letter = json!({
        "time": time,
        "plugin": plugin,
        "lane": stream,
        "stream": stream,
        "action": {
            "kind": "ems_call", "target": ems, "target_base": ems,
            "command": "removeConfig", "params": [["id", id.to_string()]],
        },
        "error": "EMS answered FAIL",
        "attempts": 3,
        "source": {"file": "events.txt", "line": id},
    });
    if let Some(rule) = rule {
        letter["rule"] = json!(rule);
    }
    letter.to_string()
}

/// A dead-letter file of five lines, one for each selector to tell apart.
struct Letters {
    setup: Setup,
    config: String,
    lines: Vec<String>,
    ems: FakeEms,
}

impl Letters {
    /// Line 1: StreamRecorder's of cam1 (January); 2: StreamAutoRouter's of cam2 (June);
    /// 3: the rule r1's of cam1 (June); 4: a plugin this version does not know, of cam1
    /// (January); 5: an unreadable line (a write cut short).
    fn new() -> Letters {
        let ems = FakeEms::start();
        let base = ems.base_url();
        let setup = Setup::new(&base).recorder().auto_router();
        let config = utf8(&setup.write()).to_string();
        let lines = vec![
            letter(&base, "StreamRecorder", None, "cam1", JANUARY, 1),
            letter(&base, "StreamAutoRouter", None, "cam2", JUNE, 2),
            letter(&base, "Rules", Some("r1"), "cam1", JUNE, 3),
            letter(&base, "StreamTranscoder", None, "cam1", JANUARY, 4),
            r#"{"time":1,"plugin":"Stre"#.to_string(),
        ];
        std::fs::create_dir_all(setup.state_dir()).expect("create the state dir");
        let letters = Letters {
            setup,
            config,
            lines,
            ems,
        };
        std::fs::write(letters.path(), letters.file_of(&[1, 2, 3, 4, 5]))
            .expect("write the dead letters");
        letters
    }

    fn path(&self) -> std::path::PathBuf {
        self.setup.dead_letter_path()
    }

    /// The file's content with only these lines (1-based), as written.
    fn file_of(&self, lines: &[usize]) -> String {
        lines
            .iter()
            .map(|&n| format!("{}\n", self.lines[n - 1]))
            .collect()
    }

    fn content(&self) -> String {
        std::fs::read_to_string(self.path()).expect("the dead-letter file")
    }

    fn run(&self, args: &[&str]) -> Run {
        Emstail::new(["dead-letters", "--config", &self.config])
            .args(args)
            .run()
    }

    /// The stream ids of the letters a listing printed, in its order ("?" for a line that is
    /// not a readable letter's).
    fn listed(&self, args: &[&str]) -> Vec<String> {
        let run = self.run(args);
        run.assert_exit(0);
        run.stdout
            .lines()
            .map(|l| {
                if l.contains("unreadable") {
                    return "?".to_string();
                }
                let (_, id) = l.split_once("removeConfig id=").expect("a call's summary");
                id.split(':').next().unwrap_or_default().to_string()
            })
            .collect()
    }
}

#[test]
fn a_listing_shows_only_the_letters_that_match_every_selector() {
    let letters = Letters::new();
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["1", "2", "3", "4", "?"]),
        (&["--plugin", "StreamRecorder"], &["1"]),
        (
            &["--plugin", "StreamRecorder", "--plugin", "Rules"],
            &["1", "3"],
        ),
        (&["--rule", "r1"], &["3"]),
        (&["--stream", "cam1"], &["1", "3", "4"]),
        (&["--before", "2026-03-01 00:00"], &["1", "4"]),
        (&["--before", "2026-01-01T00:00:00Z"], &[]),
        (&["--before", &(JANUARY + 1).to_string()], &["1", "4"]),
        (&["--unrunnable"], &["4", "?"]),
        (
            &["--stream", "cam1", "--before", "2026-03-01 00:00"],
            &["1", "4"],
        ),
        (&["--stream", "cam1", "--plugin", "StreamAutoRouter"], &[]),
        (&["--stream", "cam"], &[]),
    ];
    for (args, expected) in cases {
        assert_eq!(&letters.listed(args), expected, "{args:?}");
    }
    let run = letters.run(&["--stream", "cam1"]);
    run.assert_stderr_has("3 of 5 dead letters selected in");
    let status = Emstail::new(["status", "--state-dir", utf8(&letters.setup.state_dir())]).run();
    status.assert_exit(0);
    let size = std::fs::metadata(letters.path()).expect("stat").len();
    assert!(
        status.stdout.contains(&format!(
            "dead letters: 5 ({}, {:.1} KiB)",
            letters.path().display(),
            size as f64 / 1024.0
        )),
        "{}",
        status.stdout
    );
    let typo = letters.run(&["--plugin", "StreamRecoder"]);
    typo.assert_exit(2);
    typo.assert_stderr_has("no plugin \"StreamRecoder\"");
    assert_eq!(letters.content(), letters.file_of(&[1, 2, 3, 4, 5]));
}

#[test]
fn drop_with_a_selector_removes_exactly_those_letters_and_keeps_the_rest_byte_for_byte() {
    let letters = Letters::new();
    let run = letters.run(&["--drop", "--stream", "cam1", "--before", "2026-03-01 00:00"]);
    run.assert_exit(0);
    run.assert_stderr_has("2 dropped, 3 left in");
    run.assert_stderr_has("dropped: StreamRecorder ems http://");
    assert_eq!(letters.content(), letters.file_of(&[2, 3, 5]));

    let run = letters.run(&["--drop", "--unrunnable"]);
    run.assert_exit(0);
    run.assert_stderr_has("1 dropped, 2 left in");
    assert_eq!(letters.content(), letters.file_of(&[2, 3]));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(letters.path())
            .expect("stat")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(letters.ems.calls().len(), 0, "dropping sends nothing");
}

#[test]
fn a_bare_drop_or_drop_with_retry_is_refused_and_drop_all_empties_the_file() {
    let letters = Letters::new();
    let whole = letters.file_of(&[1, 2, 3, 4, 5]);
    let bare = letters.run(&["--drop"]);
    bare.assert_exit(2);
    bare.assert_stderr_has("--drop needs a selector");
    bare.assert_stderr_has("--all");
    assert_eq!(letters.content(), whole);

    let both = letters.run(&["--drop", "--retry", "--plugin", "StreamRecorder"]);
    both.assert_exit(2);
    both.assert_stderr_has("'--drop' cannot be used with '--retry'");
    assert_eq!(letters.content(), whole);
    assert_eq!(letters.ems.calls().len(), 0);

    let all = letters.run(&["--drop", "--all"]);
    all.assert_exit(0);
    all.assert_stderr_has("5 dropped, 0 left in");
    assert_eq!(letters.content(), "");
}

#[test]
fn retry_with_a_selector_runs_only_the_letters_chosen() {
    let letters = Letters::new();
    let run = letters.run(&["--retry", "--plugin", "StreamRecorder"]);
    run.assert_exit(0);
    run.assert_stderr_has("1 done and removed, 0 still failing");
    let sent: Vec<(String, Option<String>)> = letters
        .ems
        .calls()
        .into_iter()
        .map(|c| (c.command.clone(), c.param("id").map(str::to_string)))
        .collect();
    assert_eq!(sent, [("removeConfig".to_string(), Some("1".to_string()))]);
    assert_eq!(letters.content(), letters.file_of(&[2, 3, 4, 5]));
}

/// The daemon holds the lock to append while `--drop` starts: the drop waits, and the letter
/// appended meanwhile is in the file afterwards, unchanged.
#[test]
fn a_letter_appended_while_drop_waits_for_the_lock_is_kept() {
    let letters = Letters::new();
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(letters.setup.state_dir().join("dead-letter.lock"))
        .expect("open the lock file");
    lock.lock().expect("take the lock");
    let running = Emstail::new(["dead-letters", "--config", &letters.config])
        .args(["--drop", "--plugin", "StreamRecorder"])
        .spawn();
    assert!(
        running.wait_for_stderr("waiting for the lock", Duration::from_secs(20)),
        "the drop did not wait for the lock"
    );
    let appended = letter(
        &letters.ems.base_url(),
        "StreamAutoRouter",
        None,
        "cam9",
        JUNE,
        9,
    );
    let mut file = File::options()
        .append(true)
        .open(letters.path())
        .expect("open the dead-letter file");
    writeln!(file, "{appended}").expect("append a letter");
    drop(file);
    lock.unlock().expect("release the lock");

    let run = running.finish();
    run.assert_exit(0);
    run.assert_stderr_has("1 dropped, 5 left in");
    let expected = format!("{}{appended}\n", letters.file_of(&[2, 3, 4, 5]));
    assert_eq!(letters.content(), expected);
}

/// A StreamRecorder `shutdownStream` written without its rotation guard (by a build before
/// it) names a stream id EMS may have handed out again since: `--retry` keeps it and sends
/// nothing, and `--unrunnable` chooses it.
#[test]
fn an_unguarded_recorder_shutdown_is_kept_by_retry_and_chosen_as_unrunnable() {
    let letters = Letters::new();
    let unguarded = letter(
        &letters.ems.base_url(),
        "StreamRecorder",
        None,
        "cam1",
        JUNE,
        7,
    )
    .replace("removeConfig", "shutdownStream");
    std::fs::write(letters.path(), format!("{unguarded}\n")).expect("write the letter");
    let run = letters.run(&["--retry"]);
    run.assert_exit(1);
    run.assert_stderr_has("0 done and removed, 1 still failing");
    assert_eq!(letters.ems.calls().len(), 0, "nothing sent");
    assert_eq!(letters.content(), format!("{unguarded}\n"));
    let listed = letters.run(&["--unrunnable"]);
    listed.assert_exit(0);
    listed.assert_stderr_has("1 of 1 dead letters selected");
}

/// Letters of a build before the name checks: a stream name the stream plugins refuse now,
/// or a control character in what the call sends. `--retry` sends none of them and says why;
/// `--unrunnable` chooses them, and a letter with a plain name is still sent.
#[test]
fn letters_with_names_refused_now_are_kept_by_retry_and_chosen_as_unrunnable() {
    let letters = Letters::new();
    let base = letters.ems.base_url();
    let climbing = letter(&base, "StreamRecorder", None, "../../etc/cron.d/x", JUNE, 7);
    let control = letter(&base, "Rules", Some("r1"), "cam1", JUNE, 8).replace(
        r#"["id","8"]"#,
        r#"["id","8"],["localStreamName","cam\u001b[2J"]"#,
    );
    assert!(control.contains("localStreamName"), "{control}");
    let plain = letter(&base, "StreamAutoRouter", None, "cam 2", JUNE, 9);
    std::fs::write(letters.path(), format!("{climbing}\n{control}\n{plain}\n"))
        .expect("write the letters");
    let listed = letters.run(&["--unrunnable"]);
    listed.assert_exit(0);
    listed.assert_stderr_has("2 of 3 dead letters selected");
    let run = letters.run(&["--retry"]);
    run.assert_exit(1);
    run.assert_stderr_has("1 done and removed, 2 still failing");
    run.assert_stderr_has(
        "dead-letter.jsonl:1: kept: not sent again: stream name ../../etc/cron.d/x refused: it \
         contains '/'",
    );
    run.assert_stderr_has(
        "dead-letter.jsonl:2: kept: not sent again: parameter localStreamName holds a control \
         character",
    );
    let calls = letters.ems.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    assert_eq!(letters.content(), format!("{climbing}\n{control}\n"));
}

/// A line that is not a letter this version reads (edited by hand, or by another program) is
/// listed with serde's reason, which may quote the line: its control characters are shown
/// escaped, as every value shown is, and `--drop` logs it the same way.
#[test]
fn an_unreadable_line_is_shown_with_its_control_characters_escaped() {
    let letters = Letters::new();
    let line = r#"{"time":1,"plugin":"StreamRecorder","lane":"l","action":{"kind":"\u001b[2J\u202eRED"},"error":"e","attempts":1,"source":{"file":"f","line":1}}"#;
    std::fs::write(letters.path(), format!("{line}\n")).expect("write the line");
    let run = letters.run(&[]);
    run.assert_exit(0);
    assert!(
        run.stdout
            .contains(r"unknown variant `\u{1b}[2J\u{202e}RED`"),
        "{}",
        run.stdout
    );
    let dropped = letters.run(&["--drop", "--unrunnable"]);
    dropped.assert_exit(0);
    dropped.assert_stderr_has(r"unreadable: unknown variant `\u{1b}[2J\u{202e}RED`");
    for out in [&run.stdout, &run.stderr, &dropped.stderr] {
        assert!(!out.contains(['\u{1b}', '\u{202e}']), "{out}");
    }
}

/// `status` gives the file's size in the unit it rounds to: just under 1 MiB is "1.0 MiB",
/// not "1024.0 KiB".
#[test]
fn status_gives_the_file_size_in_the_unit_it_rounds_to() {
    let setup = Setup::new("http://127.0.0.1:9/");
    let state = setup.state_dir();
    std::fs::create_dir_all(&state).expect("create the state dir");
    let path = state.join("dead-letter.jsonl");
    let status = || {
        let run = Emstail::new(["status", "--state-dir", utf8(&state)]).run();
        run.assert_exit(0);
        run.stdout
    };
    for (len, shown) in [
        (1024 * 1024 - 1, "1.0 MiB"),
        (1024 * 1024 - 60, "1023.9 KiB"),
    ] {
        let mut line = vec![b'x'; len - 1];
        line.push(b'\n');
        std::fs::write(&path, &line).expect("write");
        let out = status();
        let expected = format!("dead letters: 1 ({}, {shown})", path.display());
        assert!(out.contains(&expected), "{expected} in {out}");
    }
}
