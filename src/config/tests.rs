//! What users will notice: which files load, what they load into, and what the messages say.

use super::*;
use std::path::Path;

const AUTO_ROUTER: &str = include_str!("../../fixtures/config/seed/1-stream-auto-router.ini");
const RECORDER: &str = include_str!("../../fixtures/config/seed/2-stream-recorder.ini");
const LOAD_BALANCER: &str = include_str!("../../fixtures/config/seed/3-stream-load-balancer.ini");
const HDS: &str = include_str!("../../fixtures/config/seed/4-amazon-hds-upload.ini");
const HLS: &str = include_str!("../../fixtures/config/seed/5-amazon-hls-upload.ini");
const DASH: &str = include_str!("../../fixtures/config/seed/6-amazon-dash-upload.ini");
const SEED: [&str; 6] = [AUTO_ROUTER, RECORDER, LOAD_BALANCER, HDS, HLS, DASH];
const ORIGINAL: &str = include_str!("../../fixtures/config/original-plugins.json");
const SAMPLE: &str = include_str!("../../config.ini.sample");

fn load(text: &str) -> Config {
    match Config::from_str(Path::new("config.ini"), text) {
        Ok(config) => config,
        Err(e) => panic!("config should load, got:\n{e}\n--- text ---\n{text}"),
    }
}

fn error(text: &str) -> String {
    match Config::from_str(Path::new("config.ini"), text) {
        Ok(config) => panic!("config should fail, loaded {config:#?}"),
        Err(e) => e.0,
    }
}

fn braced(text: &str) -> String {
    format!("{{\n{text}}}\n")
}

fn has_warning(config: &Config, parts: &[&str]) -> bool {
    config
        .warnings
        .iter()
        .any(|w| parts.iter().all(|p| w.contains(p)))
}

/// The line of `text` (1-based) holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|n| n + 1)
        .expect("the needle is in the text")
}

fn assert_seed(config: &Config) {
    assert!(config.auto_router.enabled);
    assert_eq!(config.auto_router.params.token, "stream");
    assert_eq!(
        config.auto_router.params.push_uri,
        "rtmp://192.168.2.3/live"
    );
    assert_eq!(config.auto_router.params.destination_host, "192.168.2.3");

    assert!(config.recorder.enabled);
    assert_eq!(config.recorder.params.file_location, r"C:\EvoStream\media");
    assert_eq!(config.recorder.params.period_time, 3600);

    assert!(config.load_balancer.enabled);
    assert_eq!(
        api_bases(config),
        [
            "http://192.168.2.3:7777/",
            "http://192.168.2.4:7777/",
            "http://192.168.2.5:7777/"
        ]
    );

    for (upload, bucket) in [
        (&config.hds, "HDS_files"),
        (&config.hls, "HLS_files"),
        (&config.dash, "DASH_files"),
    ] {
        assert!(upload.enabled);
        assert_eq!(upload.params.default_bucket, bucket);
        assert_eq!(upload.params.aws_access_key.as_deref(), Some("1234567890"));
        assert_eq!(
            upload.params.aws_secret_key.as_ref().map(Secret::expose),
            Some("ABCDEFGHIJ1234567890")
        );
        assert!(has_warning(config, &[bucket, "not a valid S3 bucket name"]));
    }
    assert_eq!(config.hds.params.bootstrap, "bootstrap");
}

#[test]
fn seed_snippets_pasted_in_order_load_without_braces() {
    let text = SEED.concat();
    let config = load(&text);
    assert_seed(&config);
    let line = line_of(&text, "\"AmazonHDSUpload\"");
    assert!(
        has_warning(
            &config,
            &[
                &format!("config.ini:{line}:"),
                "AmazonHDSUpload starts inside StreamLoadBalancer",
                "added `}` and the missing comma"
            ]
        ),
        "{:#?}",
        config.warnings
    );
}

#[test]
fn seed_snippets_pasted_in_order_load_with_braces() {
    let text = braced(&SEED.concat());
    let config = load(&text);
    assert_seed(&config);
    let line = line_of(&text, "\"AmazonHDSUpload\"");
    assert!(has_warning(
        &config,
        &[&format!("config.ini:{line}:"), "StreamLoadBalancer"]
    ));
}

#[test]
fn each_seed_snippet_loads_alone() {
    for snippet in SEED {
        for text in [snippet.to_string(), braced(snippet)] {
            let config = load(&text);
            let enabled = [
                config.auto_router.enabled,
                config.recorder.enabled,
                config.load_balancer.enabled,
                config.hds.enabled,
                config.hls.enabled,
                config.dash.enabled,
            ];
            assert_eq!(enabled.iter().filter(|e| **e).count(), 1, "{text}");
        }
    }
}

#[test]
fn the_unclosed_load_balancer_snippet_alone_is_closed_with_a_warning() {
    let config = load(LOAD_BALANCER);
    assert_eq!(config.load_balancer.params.destinations.len(), 3);
    assert!(has_warning(
        &config,
        &["end of file with StreamLoadBalancer (opened at line 1) still open"]
    ));
}

#[test]
fn seed_snippets_in_another_order_still_load() {
    let text = [DASH, LOAD_BALANCER, RECORDER, HLS, AUTO_ROUTER, HDS].concat();
    assert_seed(&load(&text));
}

#[test]
fn original_web_services_plugins_json_loads() {
    let config = load(ORIGINAL);
    assert!(!config.recorder.enabled);
    assert_eq!(
        config.recorder.params.file_location,
        r"F:\EVOSTREAMMS\evostreamms\media"
    );
    assert!(!config.auto_router.enabled);
    assert_eq!(config.auto_router.params.token, "forwardthese");
    assert!(!config.hds.enabled && !config.hls.enabled && !config.dash.enabled);
    assert_eq!(config.dash.params.default_bucket, "ems-files");

    assert!(config.load_balancer.enabled);
    let destinations = &config.load_balancer.params.destinations;
    assert_eq!(
        destinations.len(),
        2,
        "enable:false switches the API proxy off, not the destination"
    );
    assert_eq!(destinations[0].address, "192.168.2.193");
    assert_eq!(
        destinations[0].api.base,
        "http://192.168.2.193:8888/apiproxy/"
    );
    assert_eq!(destinations[0].api.user.as_deref(), Some("username"));
    assert_eq!(
        destinations[0].api.password.as_ref().map(Secret::expose),
        Some("password")
    );
    assert_eq!(destinations[1].address, "192.168.2.137");
    assert_eq!(destinations[1].api.base, "http://192.168.2.137:7777/");
    assert_eq!(destinations[1].api.user, None);
    assert_eq!(destinations[1].api.password, None);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn service_block_from_the_spec_loads() {
    let text = r#"{
  /* emstail's own settings: every key optional; command-line flags override them */
  "Service": {
    "ems_api": "http://127.0.0.1:7777",          // local EMS runtime API (or its API proxy URL)
    "event_log": "/var/evostreamms/logs/events*.txt", // a file, a directory, or a glob
    "log_format": "auto",                         // auto | json | text
    "state_dir": "/var/lib/emstail",              // checkpoints, dead letters, lock
    "media_root": ["/var/evostreamms/evo-webroot"], // uploads are confined to these roots
    "workers": 8,                                 // parallel action lanes
    "retry": { "max_attempts": 8, "max_backoff_secs": 60 }
  },
  "StreamAutoRouter": { "plugin_switch": "enabled", "parameters": { "token": "stream", "destination_uri": "192.168.2.3" } },
  "StreamRecorder":   { "plugin_switch": "disabled", "parameters": { "file_location": "/var/media", "period_time": 3600 } }
}"#;
    let config = load(text);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(
        config.service.ems_api,
        ApiTarget::plain("http://127.0.0.1:7777/")
    );
    assert_eq!(
        config.service.event_log,
        "/var/evostreamms/logs/events*.txt"
    );
    assert_eq!(
        config.service.media_root,
        [PathBuf::from("/var/evostreamms/evo-webroot")]
    );
    assert_eq!(config.service.workers, 8);
    assert!(config.auto_router.enabled);
    assert!(!config.recorder.enabled);
}

#[test]
fn service_settings_are_read_and_defaults_apply() {
    let config = load(
        r#""Service": {
             "ems_api": "https://admin:s3cret@ems.example:8443/apiproxy",
             "log_format": "JSON",
             "media_root": "/srv/media",
             "ems_working_dir": "/opt/ems",
             "workers": "16",
             "retry": { "max_attempts": 3 }
           }"#,
    );
    let s = &config.service;
    assert_eq!(s.ems_api.base, "https://ems.example:8443/apiproxy/");
    assert_eq!(s.ems_api.user.as_deref(), Some("admin"));
    assert_eq!(
        s.ems_api.password.as_ref().map(Secret::expose),
        Some("s3cret")
    );
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.media_root, [PathBuf::from("/srv/media")]);
    assert_eq!(s.ems_working_dir, Some(PathBuf::from("/opt/ems")));
    assert_eq!(s.workers, 16);
    assert_eq!(s.retry.max_attempts, Some(3), "an explicit limit is kept");
    assert_eq!(
        s.retry.max_backoff_secs, 30,
        "the backoff cap defaults to 30 s"
    );
    assert_eq!(
        s.retry.max_elapsed_secs, 86_400,
        "transient failures are retried for a day by default"
    );
    assert_eq!(s.state_dir, PathBuf::from("/var/lib/emstail"));
    assert!(!config.recorder.enabled && !config.hls.enabled);
    assert_eq!(config.hds.params.bootstrap, "bootstrap");
}

#[test]
fn relative_local_paths_are_resolved_against_the_config_directory() {
    let text = r#"{ "Service": { "media_root": ["media", "../shared/media"],
                    "state_dir": "state", "ems_working_dir": ".",
                    "event_log": "logs/events_*.txt" },
                    "AmazonHLSUpload": { "plugin_switch": "disabled",
                      "parameters": { "media_root": "hls" } } }"#;
    let config = Config::from_str(Path::new("/etc/emstail/config.ini"), text)
        .expect("relative local paths are allowed");
    let s = &config.service;
    assert_eq!(
        s.media_root,
        [
            PathBuf::from("/etc/emstail/media"),
            PathBuf::from("/etc/shared/media")
        ]
    );
    assert_eq!(s.state_dir, PathBuf::from("/etc/emstail/state"));
    assert_eq!(s.ems_working_dir, Some(PathBuf::from("/etc/emstail")));
    assert_eq!(s.event_log, "/etc/emstail/logs/events_*.txt");
    assert_eq!(
        config.hls.params.media_root,
        [PathBuf::from("/etc/emstail/hls")]
    );
}

#[test]
fn comments_trailing_commas_and_a_missing_final_brace_load() {
    let text = "# hash comment\n{\n  // line comment\n  \"StreamRecorder\": { /* inline */ \"plugin_switch\": \"Enabled\",\n    \"parameters\": { \"file_location\": \"/media\", \"period_time\": \"600\", },\n  },\n";
    let config = load(text);
    assert!(config.recorder.enabled);
    assert_eq!(config.recorder.params.period_time, 600);
    assert_eq!(config.recorder.params.file_location, "/media");
    assert_eq!(
        config.warnings,
        [
            "config.ini:6: end of file with the top-level object (opened at line 2) still open: closed it there"
        ]
    );
}

#[test]
fn a_missing_comma_before_a_key_on_the_next_line_is_supplied() {
    let text = "{\n\"StreamRecorder\": {\n\"plugin_switch\": \"enabled\"\n\"parameters\": { \"file_location\": \"/media\" }\n}\n}\n";
    let config = load(text);
    assert!(config.recorder.enabled);
    assert_eq!(
        config.warnings,
        ["config.ini:4: missing comma before key \"parameters\": added one"]
    );
}

#[test]
fn a_single_backslash_in_a_windows_path_is_kept_with_a_warning() {
    let config = load(
        r#""StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "D:\EMS\media" } }"#,
    );
    assert_eq!(config.recorder.params.file_location, r"D:\EMS\media");
    assert!(has_warning(
        &config,
        &["config.ini:1:", "literal backslash"]
    ));
}

#[test]
fn json_syntax_errors_name_file_line_and_column_of_the_users_text() {
    // Line 4 column 19 is the `3600` after a missing colon; the comment and the supplied
    // outer brace before it must not shift the position.
    let text = "/* a comment\n   on two lines */ \"StreamRecorder\": {\n  \"parameters\": {\n    \"period_time\" 3600 } } }\n";
    assert_eq!(error(text), "config.ini:4:19: expected `:`");
    assert_eq!(
        error("{ \"Service\": { \"workers\": 8 ] }"),
        "config.ini:1:29: `]` does not close the `{` of Service opened at line 1"
    );
    assert_eq!(
        error("{\n  \"Service\": {\n    \"event_log\": \"/x\n  }\n}"),
        "config.ini:3:18: string not closed on its line (a `\"` is missing)"
    );
    assert_eq!(
        error("{ \"Service\": {} }\n/* never closed"),
        "config.ini:2:1: comment `/*` is never closed with `*/`"
    );
    assert_eq!(
        error("{ \"Service\": { \"workers\": eight } }"),
        "config.ini:1:27: expected value"
    );
}

#[test]
fn each_invalid_value_names_file_block_key_value_and_what_is_allowed() {
    let cases: &[(&str, &str)] = &[
        (
            r#""StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "/m", "period_time": 90000 } }"#,
            "config.ini: StreamRecorder.parameters.period_time = 90000: must be a whole number of seconds from 1 to 86399",
        ),
        (
            r#""StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "/m", "period_time": "an hour" } }"#,
            "config.ini: StreamRecorder.parameters.period_time = \"an hour\": must be a whole number of seconds from 1 to 86399",
        ),
        (
            r#""StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "media" } }"#,
            "config.ini: StreamRecorder.parameters.file_location = \"media\": must be an absolute directory on the EMS host",
        ),
        (
            r#""StreamRecorder": { "plugin_switch": "enabled", "parameters": { } }"#,
            "config.ini: StreamRecorder.parameters.file_location = (not set): required when StreamRecorder is enabled",
        ),
        (
            r#""StreamRecorder": { "plugin_switch": "on" }"#,
            "config.ini: StreamRecorder.plugin_switch = \"on\": must be \"enabled\" or \"disabled\"",
        ),
        (
            r#""StreamAutoRouter": { "plugin_switch": "enabled", "parameters": { "destination_uri": "" } }"#,
            "config.ini: StreamAutoRouter.parameters.destination_uri = \"\": required when StreamAutoRouter is enabled",
        ),
        (
            r#""StreamAutoRouter": { "plugin_switch": "enabled", "parameters": { "destination_uri": "http://x/live" } }"#,
            "config.ini: StreamAutoRouter.parameters.destination_uri = \"http://x/live\": must be a host, host:port or rtmp://host[:port]/app",
        ),
        (
            r#""StreamAutoRouter": { "plugin_switch": "enabled", "parameters": { "destination_uri": "host:99999" } }"#,
            "config.ini: StreamAutoRouter.parameters.destination_uri = \"host:99999\": must be a host",
        ),
        (
            r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": { } }"#,
            "config.ini: StreamLoadBalancer.parameters.destination_uri = (not set): at least one destination is required",
        ),
        (
            r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": { "destination_ems_apiproxies": [ ] } }"#,
            "config.ini: StreamLoadBalancer.parameters.destination_ems_apiproxies = []: at least one destination is required",
        ),
        (
            r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": { "destination_uri": ["10.0.0.1", "bad host"] } }"#,
            "config.ini: StreamLoadBalancer.parameters.destination_uri[1] = \"bad host\": must be a host name or IP address",
        ),
        (
            r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": { "destination_ems_apiproxies": [ { "address": "a", "ewsPort": 0 } ] } }"#,
            "config.ini: StreamLoadBalancer.parameters.destination_ems_apiproxies[0].ewsPort = 0: must be a whole number from 1 to 65535",
        ),
        (
            r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": { "destination_ems_apiproxies": [ { "address": "a", "authentication": "basic" } ] } }"#,
            "config.ini: StreamLoadBalancer.parameters.destination_ems_apiproxies[0].userName = (not set): required when authentication is \"basic\"",
        ),
        (
            r#""AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "" } }"#,
            "config.ini: AmazonHLSUpload.parameters.default_bucket = \"\": required when AmazonHLSUpload is enabled: an S3 bucket name",
        ),
        (
            r#""AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "b", "acl": "world" } }"#,
            "config.ini: AmazonHLSUpload.parameters.acl = \"world\": must be one of private, public-read, public-read-write, authenticated-read, bucket-owner-read, bucket-owner-full-control",
        ),
        (
            r#""AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "b", "endpoint": "127.0.0.1:9000" } }"#,
            "config.ini: AmazonHLSUpload.parameters.endpoint = \"127.0.0.1:9000\": must be an http:// or https:// URL",
        ),
        (
            r#""AmazonDASHUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "b", "aws_access_key": "AKIA" } }"#,
            "config.ini: AmazonDASHUpload.parameters.aws_secret_key = \"\": must be set when aws_access_key is set",
        ),
        (
            r#""AmazonHDSUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "b", "bootstrap": "a/b" } }"#,
            "config.ini: AmazonHDSUpload.parameters.bootstrap = \"a/b\": must be a file name",
        ),
        (
            r#""Service": { "workers": 0 }"#,
            "config.ini: Service.workers = 0: must be a whole number from 1 to 256",
        ),
        (
            r#""Service": { "retry": { "max_backoff_secs": 7200 } }"#,
            "config.ini: Service.retry.max_backoff_secs = 7200: must be a whole number of seconds from 1 to 3600",
        ),
        (
            r#""Service": { "retry": { "max_attempts": 101 } }"#,
            "config.ini: Service.retry.max_attempts = 101: must be a whole number from 1 to 100",
        ),
        (
            r#""Service": { "retry": { "max_elapsed_secs": 0 } }"#,
            "config.ini: Service.retry.max_elapsed_secs = 0: must be a whole number of seconds from 1 to 2592000",
        ),
        (
            r#""Service": { "log_format": "xml" }"#,
            "config.ini: Service.log_format = \"xml\": must be \"auto\", \"json\" or \"text\"",
        ),
        (
            r#""Service": { "ems_api": "ftp://user:hunter2@host/" }"#,
            "config.ini: Service.ems_api = \"ftp://user:***@host/\": must be an http:// or https:// URL",
        ),
        (
            r#""Service": { "media_root": ["/ok", 3] }"#,
            "config.ini: Service.media_root = [\"/ok\",3]: must be a string or a list of strings",
        ),
        (
            r#""Service": 7"#,
            "config.ini: Service = 7: must be an object of settings",
        ),
    ];
    for (text, expected) in cases {
        let message = error(text);
        assert!(
            message.starts_with(expected),
            "for {text}\n  got:      {message}\n  expected: {expected}…"
        );
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let message = error(
        r#""Service": { "workers": 0 },
           "StreamRecorder": { "plugin_switch": "enabled", "parameters": { "file_location": "/m", "period_time": 0 } }"#,
    );
    assert_eq!(message.lines().count(), 2, "{message}");
}

#[test]
fn errors_in_a_disabled_plugin_are_only_warnings() {
    let config = load(
        r#""StreamRecorder": { "plugin_switch": "disabled", "parameters": { "file_location": "relative", "period_time": 90000 } },
           "AmazonHLSUpload": { "plugin_switch": "DISABLED", "parameters": { "acl": "world" } }"#,
    );
    assert!(!config.recorder.enabled);
    assert_eq!(
        config.recorder.params.period_time, 3600,
        "the default stays"
    );
    assert_eq!(
        config.warnings,
        [
            "config.ini: StreamRecorder.parameters.file_location = \"relative\": must be an absolute \
             directory on the EMS host, such as /var/evostreamms/media or C:\\\\EvoStream\\\\media \
             (StreamRecorder is disabled, so this is only a warning)",
            "config.ini: StreamRecorder.parameters.period_time = 90000: must be a whole number of \
             seconds from 1 to 86399 (StreamRecorder is disabled, so this is only a warning)",
            "config.ini: AmazonHLSUpload.parameters.acl = \"world\": must be one of private, \
             public-read, public-read-write, authenticated-read, bucket-owner-read, \
             bucket-owner-full-control (AmazonHLSUpload is disabled, so this is only a warning)",
        ]
    );
}

#[test]
fn unknown_keys_and_blocks_are_warnings_with_the_closest_name() {
    let config = load(
        r#""StreamRecorder": { "plugin_switch": "disabled", "parameters": { "period_tme": 60 } },
           "StreamRecordr": {},
           "Service": { "wokers": 4, "retry": { "max_attempt": 2 } },
           "Frobnicator": {}"#,
    );
    let expected = [
        "config.ini: unknown block Frobnicator (known: Service, StreamAutoRouter, StreamRecorder, \
         StreamLoadBalancer, AmazonHLSUpload, AmazonHDSUpload, AmazonDASHUpload, Rules)",
        "config.ini: unknown block StreamRecordr (did you mean StreamRecorder?)",
        "config.ini: unknown key Service.wokers (did you mean workers?)",
        "config.ini: unknown key Service.retry.max_attempt (did you mean max_attempts?)",
        "config.ini: unknown key StreamRecorder.parameters.period_tme (did you mean period_time?)",
    ];
    for warning in expected {
        assert!(
            config.warnings.iter().any(|w| w == warning),
            "missing {warning}\n in {:#?}",
            config.warnings
        );
    }
}

#[test]
fn a_block_without_plugin_switch_is_disabled_with_a_warning() {
    let config = load(r#""StreamRecorder": { "parameters": { "file_location": "/m" } }"#);
    assert!(!config.recorder.enabled);
    assert_eq!(
        config.warnings,
        ["config.ini: StreamRecorder.plugin_switch is not set: the plugin is disabled"]
    );
}

#[test]
fn a_key_set_twice_warns_and_the_later_one_wins() {
    let config = load(
        "\"StreamRecorder\": { \"plugin_switch\": \"disabled\" },\n\"StreamRecorder\": { \"plugin_switch\": \"enabled\", \"parameters\": { \"file_location\": \"/m\" } }",
    );
    assert!(config.recorder.enabled);
    assert!(has_warning(
        &config,
        &["config.ini:2: StreamRecorder is set twice (also at line 1)"]
    ));
}

#[test]
fn auto_router_destination_forms() {
    let cases = [
        ("10.0.0.9", "rtmp://10.0.0.9/live", "10.0.0.9"),
        (
            "ems2.example:1936",
            "rtmp://ems2.example:1936/live",
            "ems2.example",
        ),
        (
            "rtmp://ems2.example:1936/app/",
            "rtmp://ems2.example:1936/app",
            "ems2.example",
        ),
        ("rtmp://10.0.0.9", "rtmp://10.0.0.9/live", "10.0.0.9"),
        ("[::1]:1936", "rtmp://[::1]:1936/live", "::1"),
    ];
    for (uri, push, host) in cases {
        let config = load(&format!(
            r#""StreamAutoRouter": {{ "plugin_switch": "enabled", "parameters": {{ "destination_uri": "{uri}" }} }}"#
        ));
        let p = &config.auto_router.params;
        assert_eq!(
            (p.push_uri.as_str(), p.destination_host.as_str()),
            (push, host)
        );
        assert_eq!(p.destination_uri, uri);
    }
}

#[test]
fn load_balancer_destination_forms() {
    let config = load(
        r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": {
              "destination_uri": "10.0.0.1:7000",
              "destination_ems_apiproxies": [
                { "address": "10.0.0.2" },
                { "address": "10.0.0.3", "authentication": "none", "ewsPort": "9999" },
                { "address": "10.0.0.4", "userName": "u", "password": "p", "pseudoDomain": "/proxy/" },
                { "address": "10.0.0.1:7000" }
              ],
              "origin_address": "10.0.0.100" } }"#,
    );
    let p = &config.load_balancer.params;
    let got: Vec<(String, String, Option<String>, Option<String>)> = p
        .destinations
        .iter()
        .map(|d| {
            (
                d.address.clone(),
                d.api.base.clone(),
                d.api.user.clone(),
                d.api.password.as_ref().map(|s| s.expose().to_string()),
            )
        })
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        got,
        [
            (s("10.0.0.1"), s("http://10.0.0.1:7000/"), None, None),
            (s("10.0.0.2"), s("http://10.0.0.2:7777/"), None, None),
            (
                s("10.0.0.3"),
                s("http://10.0.0.3:9999/apiproxy/"),
                None,
                None
            ),
            (
                s("10.0.0.4"),
                s("http://10.0.0.4:8888/proxy/"),
                Some(s("u")),
                Some(s("p"))
            ),
        ]
    );
    assert_eq!(p.origin_address.as_deref(), Some("10.0.0.100"));
    assert!(has_warning(
        &config,
        &["http://10.0.0.1:7000/ is listed twice"]
    ));
}

/// The API base each destination is called on, password shown as `***`, in list order.
fn api_bases(config: &Config) -> Vec<String> {
    config
        .load_balancer
        .params
        .destinations
        .iter()
        .map(|d| d.api.to_string())
        .collect()
}

#[test]
fn an_api_proxy_entry_with_enable_true_is_called_through_the_proxy_with_basic_auth() {
    let config = load(
        r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": {
              "destination_ems_apiproxies": [
                { "enable": true, "authentication": "basic", "pseudoDomain": "apiproxy",
                  "address": "10.1.1.3", "ewsPort": 8888, "userName": "u", "password": "p" } ] } }"#,
    );
    assert_eq!(api_bases(&config), ["http://u:***@10.1.1.3:8888/apiproxy/"]);
    let api = &config.load_balancer.params.destinations[0].api;
    assert_eq!(api.base, "http://10.1.1.3:8888/apiproxy/");
    assert_eq!(api.password.as_ref().map(Secret::expose), Some("p"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn an_api_proxy_entry_with_enable_false_is_called_on_its_api_directly_without_a_warning() {
    let config = load(
        r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": {
              "destination_ems_apiproxies": [
                { "enable": false, "address": "10.1.1.2" },
                { "enable": false, "address": "10.1.1.4", "userName": "u", "password": "p",
                  "ewsPort": 8888, "pseudoDomain": "apiproxy", "authentication": "basic" } ] } }"#,
    );
    // The proxy's settings of an entry whose proxy is switched off are not used.
    assert_eq!(
        api_bases(&config),
        ["http://10.1.1.2:7777/", "http://10.1.1.4:7777/"]
    );
    assert!(
        config
            .load_balancer
            .params
            .destinations
            .iter()
            .all(|d| d.api.user.is_none() && d.api.password.is_none())
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn the_seed_destination_uri_list_is_called_on_each_address_s_api() {
    let config = load(
        r#""StreamLoadBalancer": { "plugin_switch": "enabled",
              "parameters": { "destination_uri": [ "192.168.2.3", "192.168.2.4", "192.168.2.5" ] } }"#,
    );
    assert_eq!(
        api_bases(&config),
        [
            "http://192.168.2.3:7777/",
            "http://192.168.2.4:7777/",
            "http://192.168.2.5:7777/"
        ]
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn upload_options_are_normalised() {
    let config = load(
        r#""Service": { "media_root": "/srv/media" },
           "AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": {
              "default_bucket": "hls-files", "aws_access_key": "", "aws_secret_key": "",
              "region": "eu-west-1", "endpoint": "http://127.0.0.1:9000/",
              "key_prefix": "/live//hls", "acl": "Public-Read" } }"#,
    );
    let p = &config.hls.params;
    assert_eq!(p.aws_access_key, None);
    assert_eq!(p.aws_secret_key, None);
    assert_eq!(p.region.as_deref(), Some("eu-west-1"));
    assert_eq!(p.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(p.key_prefix, "live/hls/");
    assert_eq!(p.acl.as_deref(), Some("public-read"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn without_media_root_uploads_are_confined_to_the_ems_web_root() {
    let config = load(
        r#""AmazonDASHUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "dash-files" } }"#,
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(
        config.service.media_root,
        [PathBuf::from("/var/evostreamms/evo-webroot")]
    );
    assert!(
        config.dash.params.media_root.is_empty(),
        "falls back to Service"
    );
    assert_eq!(config.service.max_upload_bytes, 1 << 30);
}

#[test]
fn an_empty_media_root_list_is_an_error_not_an_unconfined_mode() {
    assert_eq!(
        error(r#""Service": { "media_root": [] }"#),
        "config.ini: Service.media_root = []: must name at least one directory \
         (uploads are confined to the media roots; the default is /var/evostreamms/evo-webroot)"
    );
    let e = error(
        r#""AmazonHLSUpload": { "plugin_switch": "enabled",
              "parameters": { "default_bucket": "b", "media_root": [] } }"#,
    );
    assert!(
        e.contains("AmazonHLSUpload.parameters.media_root = []: must name at least one directory"),
        "{e}"
    );
}

#[test]
fn max_upload_bytes_is_read_and_checked() {
    let config = load(r#""Service": { "max_upload_bytes": 1048576 }"#);
    assert_eq!(config.service.max_upload_bytes, 1_048_576);
    let e = error(r#""Service": { "max_upload_bytes": 0 }"#);
    assert!(
        e.contains("Service.max_upload_bytes = 0: must be a whole number"),
        "{e}"
    );
}

#[test]
fn secrets_never_appear_in_render_debug_or_errors() {
    let mut text = SEED.concat();
    text.push_str(r#""Service": { "ems_api": "http://admin:apiSecret1@127.0.0.1:7777" }, "#);
    let config = load(&text);
    let original = load(ORIGINAL);
    for shown in [
        config.render(),
        format!("{config:?}"),
        format!("{config:#?}"),
        original.render(),
        format!("{original:?}"),
    ] {
        for secret in [
            "ABCDEFGHIJ1234567890",
            "apiSecret1",
            "exampleSecretKeyExampleSecretKey00000000",
            "\"password\"",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked in:\n{shown}");
        }
    }
    let rendered = config.render();
    assert!(
        rendered.contains("AmazonHLSUpload.aws_secret_key = ***\n"),
        "{rendered}"
    );
    assert!(rendered.contains("Service.ems_api = http://admin:***@127.0.0.1:7777/\n"));
    assert!(original.render().contains(
        "StreamLoadBalancer.destinations[0] = \"192.168.2.193\" via http://username:***@192.168.2.193:8888/apiproxy/\n"
    ));

    let message = error(
        r#""AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "b", "aws_access_key": "a", "aws_secret_key": ["TopSecret"] } }"#,
    );
    assert!(!message.contains("TopSecret"), "{message}");
    assert!(message.contains("AmazonHLSUpload.parameters.aws_secret_key = ***: must be a string"));
}

#[test]
fn render_shows_every_block_one_key_per_line() {
    let rendered = load(ORIGINAL).render();
    for line in [
        "Service.ems_api = http://127.0.0.1:7777/",
        "Service.workers = 8",
        "Service.retry.max_attempts = none (max_elapsed_secs decides)",
        "Service.retry.max_elapsed_secs = 86400",
        "Service.retry.max_backoff_secs = 30",
        "StreamAutoRouter.plugin_switch = \"disabled\"",
        "StreamAutoRouter.token = \"forwardthese\"",
        "StreamRecorder.period_time = 3600",
        "StreamLoadBalancer.plugin_switch = \"enabled\"",
        "AmazonHDSUpload.bootstrap = \"bootstrap\"",
        "AmazonDASHUpload.aws_access_key = \"AKIAEXAMPLEEXAMPLE00\"",
        "AmazonDASHUpload.aws_secret_key = ***",
        "AmazonHLSUpload.aws_secret_key = none (from the environment)",
    ] {
        assert!(
            rendered.lines().any(|l| l == line),
            "no {line} in\n{rendered}"
        );
    }
    assert!(rendered.lines().skip(1).all(|l| l.contains(" = ")));
}

#[test]
fn the_sample_loads_with_all_six_plugins_enabled() {
    let config = load(SAMPLE);
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
    for plugin in PluginId::ALL {
        assert!(config.is_enabled(plugin), "{plugin}");
    }
    assert_eq!(
        config.auto_router.params.push_uri,
        "rtmp://127.0.0.1:1936/live"
    );
    assert_eq!(
        config.recorder.params.file_location,
        "/var/evostreamms/media"
    );
    assert_eq!(
        api_bases(&config),
        [
            "http://127.0.0.1:7778/",
            "http://emstail:***@127.0.0.1:8888/apiproxy/",
            "http://127.0.0.1:7779/"
        ]
    );
    for (upload, bucket) in [
        (&config.hls, "hls-files"),
        (&config.hds, "hds-files"),
        (&config.dash, "dash-files"),
    ] {
        assert_eq!(upload.params.default_bucket, bucket);
        assert_eq!(
            upload.params.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(upload.params.region.as_deref(), Some("us-east-1"));
    }
    let cwd = std::env::current_dir().expect("tests run in a directory");
    assert_eq!(
        config.service.media_root,
        [cwd.join("fixtures/ems/evo-webroot")]
    );
    assert_eq!(
        config.service.ems_working_dir,
        Some(cwd.join("fixtures/ems/bin"))
    );
    assert_eq!(config.service.state_dir, cwd.join("target/emstail-state"));
}

#[cfg(unix)]
#[test]
fn load_warns_when_a_file_with_secrets_is_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("emstail-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let secret_file = dir.join("secret.ini");
    let plain_file = dir.join("plain.ini");
    std::fs::write(&secret_file, ORIGINAL).expect("temp dir is writable");
    std::fs::write(&plain_file, RECORDER.replace("C:\\\\", "/")).expect("temp dir is writable");

    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .expect("the test owns the file");
    };
    mode(&secret_file, 0o644);
    mode(&plain_file, 0o644);
    let readable = Config::load(&secret_file).expect("loads");
    let private = {
        mode(&secret_file, 0o600);
        Config::load(&secret_file).expect("loads")
    };
    let plain = Config::load(&plain_file).expect("loads");
    let _ = std::fs::remove_dir_all(&dir);

    assert!(has_warning(
        &readable,
        &["holds a secret and is readable by every user (mode 644)"]
    ));
    assert!(!has_warning(&private, &["readable"]));
    assert!(!has_warning(&plain, &["readable"]));
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let e = Config::load(Path::new("/nonexistent/emstail.ini")).expect_err("no such file");
    assert!(
        e.0.starts_with("/nonexistent/emstail.ini: cannot read:"),
        "{e}"
    );
}

#[test]
fn an_empty_file_loads_with_every_plugin_disabled() {
    let config = load("// nothing here yet\n");
    assert!(!config.recorder.enabled && !config.load_balancer.enabled);
    assert_eq!(config.warnings, ["config.ini: no settings in the file"]);
}

#[test]
fn a_top_level_that_is_not_an_object_is_an_error() {
    assert!(error("[1, 2]").starts_with("config.ini: must be an object of blocks"));
}

#[test]
fn a_windows_file_with_byte_order_mark_and_crlf_loads() {
    let text = format!("\u{FEFF}{}", ORIGINAL.replace('\n', "\r\n"));
    let config = load(&text);
    assert!(config.load_balancer.enabled);
    assert_eq!(config.load_balancer.params.destinations.len(), 2);
}

#[test]
fn a_single_api_proxy_entry_without_list_brackets_is_one_destination() {
    let config = load(
        r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": {
              "destination_ems_apiproxies": { "address": "10.0.0.2", "userName": "u", "password": "p" } } }"#,
    );
    let destinations = &config.load_balancer.params.destinations;
    assert_eq!(destinations.len(), 1);
    assert_eq!(
        destinations[0].api.to_string(),
        "http://u:***@10.0.0.2:8888/apiproxy/"
    );
}

#[test]
fn values_shown_in_messages_hide_nested_secrets() {
    let message = error(
        r#""StreamLoadBalancer": { "plugin_switch": "enabled", "parameters": {
              "destination_ems_apiproxies": "x" } },
           "AmazonHLSUpload": [ { "aws_secret_key": "NestedSecret1" } ],
           "Service": { "ems_api": ["http://u:UrlSecret2@h/"] }"#,
    );
    assert!(
        message.contains("AmazonHLSUpload = [{\"aws_secret_key\":\"***\"}]"),
        "{message}"
    );
    assert!(
        message.contains("Service.ems_api = [\"http://u:***@h/\"]"),
        "{message}"
    );
    assert!(!message.contains("NestedSecret1") && !message.contains("UrlSecret2"));
}

mod no_input_panics {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\n",
        " ",
        "\"Service\"",
        "\"StreamRecorder\"",
        "\"plugin_switch\"",
        "\"enabled\"",
        "\"parameters\"",
        "\"period_time\"",
        "3600",
        "true",
        "/*",
        "*/",
        "//",
        "#",
        "\"a\\",
        "\\",
        "\"",
        "\u{FEFF}",
        "é",
        "\"C:\\x\"",
    ];

    /// The line a `config.ini:LINE:` message points at, if it names one.
    fn line_in(message: &str) -> Option<usize> {
        message
            .strip_prefix("config.ini:")?
            .split(':')
            .next()?
            .parse()
            .ok()
    }

    fn check(text: &str) -> Result<(), TestCaseError> {
        let lines = text.split('\n').count();
        let messages = match Config::from_str(Path::new("config.ini"), text) {
            Ok(config) => {
                let _ = config.render();
                config.warnings
            }
            Err(ConfigError(message)) => vec![message],
        };
        // A position, when given, is inside the user's text.
        for message in messages {
            if let Some(line) = line_in(&message) {
                prop_assert!(line >= 1 && line <= lines, "{message} for {text:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text(text in "\\PC{0,200}") {
            check(&text)?;
        }

        #[test]
        fn json_like_token_soup(pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..80)) {
            check(&pieces.concat())?;
        }
    }
}

#[test]
fn deep_nesting_is_refused_at_the_line_that_goes_too_deep() {
    let e = error(&"[".repeat(40_000));
    assert_eq!(
        e,
        "config.ini:1:101: nested deeper than 100 levels of { and [ (no configuration needs more than a few)"
    );
    let text = format!("{{\n  \"Service\": {}", "[\n".repeat(200));
    let e = error(&text);
    assert!(
        e.starts_with("config.ini:101:1: nested deeper than 100 levels"),
        "{e}"
    );
    // 100 levels are still read (and then judged as settings, not as nesting).
    let ok = format!("{{ \"x\": {}1{} }}", "[".repeat(99), "]".repeat(99));
    let config = load(&ok);
    assert!(
        has_warning(&config, &["unknown block x"]),
        "{:?}",
        config.warnings
    );
}

#[test]
fn url_passwords_never_appear_in_errors_or_warnings_whatever_they_hold() {
    for password in [
        "S3cr/et",
        "p@ss",
        "pa:ss",
        "pa#ss",
        "pa%2Fss",
        "a/b@c:d#e%f",
    ] {
        let cases = [
            // Not a URL emstail can use: an error that shows the value.
            format!(r#""Service": {{ "ems_api": "http://admin:{password}@127.0.0.1:99999" }}"#),
            format!(r#""Service": {{ "ems_api": "http://admin:{password}@127.0.0.1:7777/x?y" }}"#),
            // Without a scheme.
            format!(r#""Service": {{ "ems_api": "admin:{password}@127.0.0.1:7777" }}"#),
            // destination_uri errors, and the same as a warning in a disabled plugin.
            format!(
                r#""StreamAutoRouter": {{ "plugin_switch": "enabled",
                     "parameters": {{ "destination_uri": "rtmp://admin:{password}@h:x/live" }} }}"#
            ),
            format!(
                r#""StreamAutoRouter": {{ "plugin_switch": "disabled",
                     "parameters": {{ "destination_uri": "rtmp://admin:{password}@h:x/live" }} }}"#
            ),
            format!(
                r#""StreamLoadBalancer": {{ "plugin_switch": "enabled",
                     "parameters": {{ "destination_uri": ["10.0.0.1", "http://admin:{password}@10.0.0.2"] }} }}"#
            ),
            // A URL in a key whose value has the wrong type.
            format!(r#""Service": {{ "workers": "http://admin:{password}@h/" }}"#),
        ];
        for text in cases {
            let shown = match Config::from_str(Path::new("config.ini"), &text) {
                Ok(config) => config.warnings.join("\n"),
                Err(e) => e.0,
            };
            assert!(!shown.is_empty(), "a message is expected for {text}");
            assert!(!shown.contains(password), "{password} leaked: {shown}");
            assert!(shown.contains("admin:***@"), "{shown}");
        }
    }
}

#[test]
fn a_key_prefix_with_a_dot_dot_segment_is_an_error() {
    for prefix in ["../other", "live/../../x", "live/..", "..\\\\x", " .. /x"] {
        let e = error(&format!(
            r#""AmazonHLSUpload": {{ "plugin_switch": "enabled",
                 "parameters": {{ "default_bucket": "b", "key_prefix": "{prefix}" }} }}"#
        ));
        assert!(
            e.contains("AmazonHLSUpload.parameters.key_prefix = ")
                && e.contains("must not contain a `..` segment"),
            "{prefix}: {e}"
        );
    }
    let config = load(
        r#""AmazonHLSUpload": { "plugin_switch": "enabled",
             "parameters": { "default_bucket": "b", "key_prefix": "live..1/..hls/" } }"#,
    );
    assert_eq!(config.hls.params.key_prefix, "live..1/..hls/");
}
