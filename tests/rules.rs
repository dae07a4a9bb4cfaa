//! Custom rules end to end through the built binary: the seed's two examples replayed against
//! the fake EMS, a rule's upload on the S3 test server, a failing rule action dead-lettered and
//! retried, `rules test`, the dry run's JSON, and the start-up validation.
//!
//! The upload test needs the S3 test server (`scripts/test.sh` starts it).

mod support;

use serde_json::{Value, json};
use support::emstail::{Emstail, Run, Setup, utf8, webroot};
use support::fake_ems::FakeEms;
use support::s3::{assert_bucket, bucket, seed, server};

const LOG: &str = "fixtures/rules/events_20261204_100000.txt";
const CONFIG: &str = "fixtures/config/rules.ini";
const HOSTILE: &str = "cam 2, x=y .. ☃";
const TARGET_FOLDER: &str = "/var/evostreamms/evo-webroot/hls";
/// The segment the fixture log deletes (its file is gone from the webroot too).
const ROTATED: &str = "hls/cam1/segment_1764411300000_1764411300000_1.ts";

fn emstail(args: &[&str]) -> Run {
    Emstail::new(args).log_level("warn").run()
}

/// The seed's two examples, as the issue and the README write them.
fn seed_rules() -> Value {
    json!([
      { "name": "hls-for-every-inbound", "on": "inStreamCreated",
        "when": { "payload.type": { "in": ["INR", "INP"] }, "payload.name": { "matches": "^cam" } },
        "call": { "command": "createHLSStream",
                  "params": { "localStreamNames": "${payload.name}", "groupName": "${payload.name}",
                              "targetFolder": TARGET_FOLDER } } },
      { "name": "drop-inbound-on-lost-output", "on": "outStreamClosed",
        "when": { "payload.inStreamUniqueId": { "exists": true } },
        "call": { "command": "shutdownStream",
                  "params": { "id": "${payload.inStreamUniqueId}", "permanently": 0 } } }
    ])
}

type Call = (String, Vec<(String, String)>);

fn call(command: &str, params: &[(&str, &str)]) -> Call {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (command.to_string(), params)
}

fn create_hls(name: &str) -> Call {
    call(
        "createHLSStream",
        &[
            ("groupName", name),
            ("localStreamNames", name),
            ("targetFolder", TARGET_FOLDER),
            ("_emstail", "1"),
        ],
    )
}

fn shutdown(id: &str) -> Call {
    call(
        "shutdownStream",
        &[("id", id), ("permanently", "0"), ("_emstail", "1")],
    )
}

/// Every call the fake received, sorted.
fn received(fake: &FakeEms) -> Vec<Call> {
    fake.sorted_calls()
}

#[test]
fn both_seed_examples_replay_against_the_fake_ems_with_exactly_these_calls() {
    let ems = FakeEms::start();
    let setup = Setup::new(&ems.base_url()).block("Rules", seed_rules());
    let run = emstail(&["replay", "--config", utf8(&setup.write()), LOG]);

    run.assert_exit(0);
    let mut expected = vec![
        // cam1 and the hostile name: inbound (INR, INP) and named ^cam. Not lobby (name),
        // cam3 (IRT), nor cam_edge (emstail pulled it).
        create_hls("cam1"),
        create_hls(HOSTILE),
        // The lost outputs that name their inbound stream; not the HLS output emstail made.
        shutdown("1"),
        shutdown("9007199254740993"),
    ];
    expected.sort();
    assert_eq!(received(&ems), expected);
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn dry_run_json_names_the_plugin_rules_and_the_rule() {
    let out = emstail(&["replay", "--config", CONFIG, "--dry-run", "--json", LOG]);
    out.assert_exit(0);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let source = |line: u64| json!({ "file": LOG, "line": line });
    let hls = |name: &str, line: u64| {
        json!({ "plugin": "Rules", "rule": "hls-for-every-inbound", "kind": "ems_call",
                "target": "http://127.0.0.1:7777/", "command": "createHLSStream",
                "params": { "groupName": name, "localStreamNames": name,
                            "targetFolder": TARGET_FOLDER, "_emstail": "1" },
                "source": source(line) })
    };
    let drop = |id: &str, line: u64| {
        json!({ "plugin": "Rules", "rule": "drop-inbound-on-lost-output", "kind": "ems_call",
                "target": "http://127.0.0.1:7777/", "command": "shutdownStream",
                "params": { "id": id, "permanently": "0", "_emstail": "1" },
                "source": source(line) })
    };
    assert_eq!(
        lines,
        vec![
            hls("cam1", 1),
            hls(HOSTILE, 3),
            drop("1", 8),
            drop("9007199254740993", 10)
        ]
    );
}

#[test]
fn rules_test_shows_matches_failed_conditions_and_exact_actions() {
    let out = emstail(&["rules", "test", "--config", CONFIG, "-v", LOG]);
    out.assert_exit(0);
    let expected = format!(
        "{LOG}:1 inStreamCreated
  hls-for-every-inbound: ems http://127.0.0.1:7777/createHLSStream groupName=cam1 localStreamNames=cam1 targetFolder={TARGET_FOLDER} _emstail=1
{LOG}:2 inStreamCreated
  hls-for-every-inbound: not matched:
    payload.name matches \"^cam\" failed: it is \"lobby\"
{LOG}:3 inStreamCreated
  hls-for-every-inbound: ems http://127.0.0.1:7777/createHLSStream groupName=cam\\ 2\\,\\ x\\=y\\ ..\\ ☃ localStreamNames=cam\\ 2\\,\\ x\\=y\\ ..\\ ☃ targetFolder={TARGET_FOLDER} _emstail=1
{LOG}:4 inStreamCreated
  hls-for-every-inbound: not matched:
    payload.type in [\"INR\",\"INP\"] failed: it is \"IRT\"
{LOG}:5 inStreamCreated
  hls-for-every-inbound: not matched: a stream emstail made (include_own is off)
{LOG}:7 outStreamClosed
  drop-inbound-on-lost-output: not matched: a stream emstail made (include_own is off)
{LOG}:8 outStreamClosed
  drop-inbound-on-lost-output: ems http://127.0.0.1:7777/shutdownStream id=1 permanently=0 _emstail=1
{LOG}:9 outStreamClosed
  drop-inbound-on-lost-output: not matched:
    payload.inStreamUniqueId exists true failed: it is absent
{LOG}:10 outStreamClosed
  drop-inbound-on-lost-output: ems http://127.0.0.1:7777/shutdownStream id=9007199254740993 permanently=0 _emstail=1
"
    );
    assert_eq!(out.stdout, expected);
    assert!(
        out.stderr
            .contains("10 events, 9 taken by a rule: 4 actions, 0 skipped"),
        "{}",
        out.stderr
    );

    // Without -v only what matched; with --rule only that rule.
    let out = emstail(&[
        "rules",
        "test",
        "--config",
        CONFIG,
        "--rule",
        "drop-inbound-on-lost-output",
        LOG,
    ]);
    out.assert_exit(0);
    assert_eq!(
        out.stdout,
        format!(
            "{LOG}:7 outStreamClosed\n  no rule matched\n\
             {LOG}:8 outStreamClosed\n  drop-inbound-on-lost-output: ems http://127.0.0.1:7777/shutdownStream id=1 permanently=0 _emstail=1\n\
             {LOG}:9 outStreamClosed\n  no rule matched\n\
             {LOG}:10 outStreamClosed\n  drop-inbound-on-lost-output: ems http://127.0.0.1:7777/shutdownStream id=9007199254740993 permanently=0 _emstail=1\n"
        )
    );
    let out = emstail(&["rules", "test", "--config", CONFIG, "--rule", "nope", LOG]);
    out.assert_exit(2);
    out.assert_stderr_has(
        "no rule named \"nope\" (rules: hls-for-every-inbound, drop-inbound-on-lost-output)",
    );
}

/// A failed condition shows the event's value as JSON, which leaves DEL and the C1 controls
/// (U+009B is a terminal's CSI) as they are: they are escaped, as everywhere else.
#[test]
fn rules_test_shows_a_hostile_value_of_a_failed_condition_without_its_controls() {
    let setup = Setup::new("http://127.0.0.1:7777").block(
        "Rules",
        json!([{ "name": "cams", "on": "inStreamCreated",
                 "when": { "payload.name": { "matches": "^cam" } },
                 "call": { "command": "version" } }]),
    );
    let log = setup.path("events_20261204_120000.txt");
    std::fs::write(
        &log,
        "{\"id\":1,\"payload\":{\"name\":\"lobby\\u009b2J\\u007f\\u0085x\"},\"timestamp\":1,\"type\":\"inStreamCreated\"},\n",
    )
    .expect("write the log");
    let out = emstail(&[
        "rules",
        "test",
        "--config",
        utf8(&setup.write()),
        "-v",
        utf8(&log),
    ]);
    out.assert_exit(0);
    assert!(
        out.stdout.ends_with(
            "    payload.name matches \"^cam\" failed: it is \"lobby\\u{9b}2J\\u{7f}\\u{85}x\"\n"
        ),
        "{:?}",
        out.stdout
    );
    assert!(!out.stdout.chars().any(|c| c.is_control() && c != '\n'));
}

#[test]
fn a_missing_template_field_skips_the_rule_with_a_counted_warning_and_sends_nothing_empty() {
    let ems = FakeEms::start();
    let rules = json!([{ "name": "needs-far-port", "on": "inStreamCreated",
        "call": { "command": "pushStream", "params": { "uri": "rtmp://10.0.0.9:${payload.farPort}/live" } } }]);
    let setup = Setup::new(&ems.base_url()).block("Rules", rules);
    let log = setup.path("events_20261204_110000.txt");
    std::fs::write(
        &log,
        "{\"id\":1,\"payload\":{\"name\":\"a\",\"farPort\":1935},\"timestamp\":1,\"type\":\"inStreamCreated\"},\n\
         {\"id\":2,\"payload\":{\"name\":\"b\"},\"timestamp\":2,\"type\":\"inStreamCreated\"},\n",
    )
    .expect("write the log");
    let run = emstail(&["replay", "--config", utf8(&setup.write()), utf8(&log)]);

    run.assert_exit(0);
    assert_eq!(
        received(&ems),
        vec![call(
            "pushStream",
            &[("uri", "rtmp://10.0.0.9:1935/live"), ("_emstail", "1")]
        )]
    );
    run.assert_stderr_has(&format!(
            "{}:2: refused: Rules:needs-far-port: skipped the event: uri: the event has no payload.farPort",
            utf8(&log)
        ));
    run.assert_stderr_has("1 refused");
}

#[test]
fn a_failing_rule_call_is_retried_dead_lettered_and_run_again_by_dead_letters_retry() {
    let ems = FakeEms::start();
    ems.fail_next_http(2, 500);
    let setup = Setup::new(&ems.base_url())
        .block("Rules", seed_rules())
        .retry(2);
    let log = setup.path("events_20261204_120000.txt");
    std::fs::write(
        &log,
        "{\"id\":1,\"payload\":{\"name\":\"cam1\",\"uniqueId\":10,\"inStreamUniqueId\":4},\"timestamp\":1,\"type\":\"outStreamClosed\"},\n",
    )
    .expect("write the log");
    let config = setup.write();
    let run = emstail(&["replay", "--config", utf8(&config), utf8(&log)]);

    run.assert_exit(1);
    assert_eq!(
        received(&ems),
        vec![shutdown("4"), shutdown("4")],
        "tried twice"
    );
    let letters = setup.dead_letters();
    assert_eq!(letters.len(), 1, "{}", run.stderr);
    assert_eq!(letters[0]["plugin"], "Rules");
    assert_eq!(letters[0]["rule"], "drop-inbound-on-lost-output");
    assert_eq!(letters[0]["attempts"], 2);
    assert_eq!(letters[0]["action"]["command"], "shutdownStream");

    let list = emstail(&["dead-letters", "--config", utf8(&config)]);
    list.assert_exit(0);
    assert!(
        list.stdout
            .starts_with("Rules:drop-inbound-on-lost-output ems http://"),
        "{}",
        list.stdout
    );
    let retry = emstail(&["dead-letters", "--retry", "--config", utf8(&config)]);
    retry.assert_exit(0);
    assert_eq!(received(&ems), vec![shutdown("4"); 3]);
    assert!(setup.dead_letters().is_empty(), "{}", retry.stderr);
}

#[test]
fn upload_and_delete_rules_put_and_remove_objects_with_the_uploaders_keys_and_types() {
    let s3 = server();
    let ems = FakeEms::start();
    let bucket = bucket(&s3, "rule-upload");
    // The plugin is off: the rule only borrows its S3 settings.
    let settings = json!({
        "plugin_switch": "disabled",
        "parameters": { "aws_access_key": s3.access_key, "aws_secret_key": s3.secret_key,
                        "default_bucket": bucket, "region": "us-east-1", "endpoint": s3.endpoint },
    });
    // A rule with S3 settings of its own deletes the rotated segment.
    seed(&s3, &bucket, ROTATED);
    let own = json!({ "aws_access_key": s3.access_key, "aws_secret_key": s3.secret_key,
                      "default_bucket": bucket, "region": "us-east-1", "endpoint": s3.endpoint });
    let rules = json!([
        { "name": "segments", "on": "hlsChunkClosed",
          "upload": { "file": "${payload.file}", "s3": "AmazonHLSUpload" } },
        { "name": "drop-rotated", "on": "hlsChunkDeleted",
          "delete": { "file": "${payload.file}", "s3": own } } ]);
    let setup = Setup::new(&ems.base_url())
        .block("AmazonHLSUpload", settings)
        .block("Rules", rules);
    let run = emstail(&["replay", "--config", utf8(&setup.write()), "fixtures/logs"]);

    run.assert_exit(0);
    assert_bucket(
        &s3,
        &bucket,
        &webroot(),
        &[
            (
                "hls/cam1/segment_1764411300000_1764411310000_2.ts",
                "video/mp2t",
                "max-age=86400",
            ),
            (
                "hls/lobby cam ☃/segment_1764411300000_1764411300000_1.ts",
                "video/mp2t",
                "max-age=86400",
            ),
        ],
    );
    // Outside the media root: refused like the uploader's, never uploaded.
    run.assert_stderr_has(
        "refused: Rules:segments: skipped the event: /etc/passwd is outside the media roots",
    );
    assert!(ems.calls().is_empty());
    assert!(setup.dead_letters().is_empty());
}

#[test]
fn invalid_rules_stop_start_up_with_exit_2_naming_the_rule_and_key() {
    for (rules, expected) in [
        (
            json!([{ "name": "a", "on": "inStreamCreatd", "call": { "command": "version" } }]),
            "Rules[\"a\"].on = \"inStreamCreatd\": unknown event type (did you mean inStreamCreated?)",
        ),
        (
            json!([{ "name": "b", "on": "hlsChunkClosed",
                     "call": { "command": "version", "params": { "n": "${payload.name}" } } }]),
            "Rules[\"b\"].call.params.n = \"payload.name\": a hlsChunkClosed event's payload has no field name",
        ),
        (
            json!([{ "name": "c", "on": "inStreamCreated",
                     "when": { "payload.name": { "matches": "([" } }, "call": { "command": "version" } }]),
            "Rules[\"c\"].when.payload.name.matches = \"([\": not a valid regular expression",
        ),
        (
            json!([{ "name": "d", "on": "inStreamCreated" }]),
            "Rules[\"d\"].call = (not set): a rule needs exactly one action",
        ),
        (
            json!([{ "name": "e", "on": "inStreamCreated", "call": { "command": "version" } },
                   { "name": "e", "on": "inStreamClosed", "call": { "command": "version" } }]),
            "Rules[\"e\"].name = \"e\": another rule has this name",
        ),
    ] {
        let setup = Setup::bare("http://127.0.0.1:7777").block("Rules", rules);
        let out = emstail(&["check", "--config", utf8(&setup.write())]);
        out.assert_exit(2);
        assert!(out.stderr.contains(expected), "{expected}\n{}", out.stderr);
    }
    // An unknown command is only a warning: EMS has commands emstail does not list.
    let rules =
        json!([{ "name": "f", "on": "inStreamCreated", "call": { "command": "createHLSStrem" } }]);
    let setup = Setup::bare("http://127.0.0.1:7777").block("Rules", rules);
    let out = emstail(&["check", "--config", utf8(&setup.write())]);
    out.assert_exit(0);
    out.assert_stderr_has("(did you mean createHLSStream?)");
}

#[test]
fn the_daemon_runs_the_rules_on_the_live_log_with_the_events_timestamp() {
    let ems = FakeEms::start();
    let mut rules = seed_rules();
    rules.as_array_mut().expect("a list").push(
        json!({ "name": "stamp", "on": "outStreamCreated", "include_own": true,
                      "call": { "command": "version", "params": { "at": "${timestamp}" } } }),
    );
    let setup = Setup::new(&ems.base_url()).block("Rules", rules);
    let logs = setup.path("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::copy(LOG, logs.join("events_20261204_100000.txt")).expect("copy the fixture log");
    let config = setup.write();
    let stderr = setup.path("stderr.txt");
    let daemon = Emstail::new(["run", "--config", utf8(&config), "--from-start", "--log"])
        .arg(&logs)
        .args(["--rescan-ms", "100"])
        .daemon(&stderr, &setup.state_dir());

    let arrived = ems.wait_for_calls(5, std::time::Duration::from_secs(20));
    daemon.stop("rules on the live log");
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(arrived, "{log}");
    let mut expected = vec![
        create_hls("cam1"),
        create_hls(HOSTILE),
        // Line 6, the HLS output emstail made (include_own), at its envelope's timestamp.
        call("version", &[("at", "1795947306"), ("_emstail", "1")]),
        shutdown("1"),
        shutdown("9007199254740993"),
    ];
    expected.sort();
    assert_eq!(received(&ems), expected, "{log}");
}

/// Events of types no plugin reads keep their payload for the rules that are `on` them, in
/// replay and in the daemon alike; the types no rule names are read without one.
#[test]
fn rules_on_types_no_plugin_reads_see_their_payload_in_replay_and_the_daemon() {
    let rules = json!([
        { "name": "cli-ids", "on": "cliRequest", "when": { "payload.command": "listStreamsIds" },
          "call": { "command": "version", "params": { "asked": "${payload.command}" } } },
        { "name": "codecs", "on": ["inStreamCodecsUpdated"], "when": { "payload.name": { "matches": "^cam" } },
          "call": { "command": "version", "params": { "codecs": "${payload.name}" } } }
    ]);
    let lines = [
        r#"{"_logEntry":"00001","id":1,"payload":{"command":"listStreamsIds","parameters":{}},"processId":2593,"timestamp":1795947301,"type":"cliRequest"},"#,
        r#"{"_logEntry":"00002","id":2,"payload":{"command":"version"},"processId":2593,"timestamp":1795947302,"type":"cliRequest"},"#,
        r#"{"_logEntry":"00003","id":3,"payload":{"command":"listStreamsIds","name":"cam9"},"processId":2593,"timestamp":1795947303,"type":"cliResponse"},"#,
        r#"{"_logEntry":"00004","id":4,"payload":{"name":"cam7","type":"INR"},"processId":2593,"timestamp":1795947304,"type":"inStreamCodecsUpdated"},"#,
        r#"{"_logEntry":"00005","id":5,"payload":{"name":"lobby","type":"INR"},"processId":2593,"timestamp":1795947305,"type":"inStreamCodecsUpdated"},"#,
    ];
    let expected = vec![
        call("version", &[("asked", "listStreamsIds"), ("_emstail", "1")]),
        call("version", &[("codecs", "cam7"), ("_emstail", "1")]),
    ];

    let ems = FakeEms::start();
    let setup = Setup::new(&ems.base_url()).block("Rules", rules.clone());
    let logs = setup.path("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let log = logs.join("events_20261204_100000.txt");
    std::fs::write(&log, lines.join("\n") + "\n").expect("write the log");
    let config = setup.write();
    emstail(&["replay", "--config", utf8(&config), utf8(&log)]).assert_exit(0);
    assert_eq!(received(&ems), expected, "replay");

    let ems = FakeEms::start();
    let setup = Setup::new(&ems.base_url()).block("Rules", rules);
    let config = setup.write();
    let stderr = setup.path("stderr.txt");
    let daemon = Emstail::new(["run", "--config", utf8(&config), "--from-start", "--log"])
        .arg(&logs)
        .daemon(&stderr, &setup.state_dir());
    let arrived = ems.wait_for_calls(2, std::time::Duration::from_secs(20));
    daemon.stop("rules on types no plugin reads");
    let output = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(arrived, "{output}");
    assert_eq!(received(&ems), expected, "daemon: {output}");
}
