//! Config + log bytes in, actions out, with every plugin enabled: no panic, no upload of a
//! path outside the media root, no EMS parameter that a value could split or add to, no
//! stream name that reaches a path, a URI or a parameter with a separator or control byte, and
//! no object key with a control character.
#![no_main]

use emstail::action::{Action, Params, S3Put};
use emstail::config::Config;
use emstail::engine::Engine;
use emstail::parse::{FileParser, Line, Parsed};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};
use std::sync::OnceLock;

const MEDIA_ROOT: &str = "/var/evostreamms/evo-webroot";
const CONFIG: &str = r#"{
  "Service": { "media_root": "/var/evostreamms/evo-webroot" },
  "StreamAutoRouter": { "plugin_switch": "enabled",
    "parameters": { "token": "", "destination_uri": "127.0.0.2" } },
  "StreamRecorder": { "plugin_switch": "enabled",
    "parameters": { "file_location": "/var/evostreamms/media", "period_time": 3600 } },
  "StreamLoadBalancer": { "plugin_switch": "enabled",
    "parameters": { "destination_uri": ["127.0.0.3"], "origin_address": "127.0.0.4" } },
  "AmazonHLSUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "hls" } },
  "AmazonHDSUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "hds" } },
  "AmazonDASHUpload": { "plugin_switch": "enabled", "parameters": { "default_bucket": "dash" } }
}"#;

fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| {
        Config::from_str(Path::new("/etc/emstail/config.ini"), CONFIG)
            .expect("the fuzz target's own config is valid")
    })
}

/// Splits EMS's `k=v k=v` command line on unescaped separators, as EMS reads it.
fn split_command_line(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let (mut key, mut value, mut in_value, mut escaped) =
        (String::new(), String::new(), false, false);
    for c in line.chars() {
        let field = if in_value { &mut value } else { &mut key };
        if escaped {
            field.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ' ' {
            pairs.push((std::mem::take(&mut key), std::mem::take(&mut value)));
            in_value = false;
        } else if c == '=' && !in_value {
            in_value = true;
        } else {
            field.push(c);
        }
    }
    if !line.is_empty() {
        pairs.push((key, value));
    }
    pairs
}

fn has_separator_or_control(s: &str) -> bool {
    s.chars()
        .any(|c| c == '/' || c == '\\' || (c as u32) < 0x20 || c as u32 == 0x7f)
        || s == ".."
}

fn check_params(command: &str, params: &Params) {
    let line = params.to_command_line();
    assert_eq!(
        split_command_line(&line),
        params.0,
        "{command}: the command line {line:?} does not decode to its parameters"
    );
    for (key, value) in &params.0 {
        match key.as_str() {
            "localStreamName" | "_localStreamName" => assert!(
                !has_separator_or_control(value),
                "{command}: stream name {value:?} reached a parameter"
            ),
            "pathToFile" | "uri" => {
                assert!(
                    !value.split(['/', '\\']).any(|segment| segment == ".."),
                    "{command}: {key}={value:?} has a .. segment"
                );
                assert!(
                    !value.chars().any(|c| (c as u32) < 0x20 || c as u32 == 0x7f),
                    "{command}: {key}={value:?} has a control character"
                );
            }
            _ => {}
        }
    }
}

fn check_upload(path: &Path, key: &str) {
    assert!(
        path.starts_with(MEDIA_ROOT) && !path.components().any(|c| c == Component::ParentDir),
        "upload of {} outside {MEDIA_ROOT}",
        path.display()
    );
    check_key(key);
}

fn check_key(key: &str) {
    assert!(
        !key.starts_with('/')
            && !key.split('/').any(|s| s == "..")
            && !key.chars().any(char::is_control),
        "object key {key:?}"
    );
}

fuzz_target!(|bytes: &[u8]| {
    let mut engine = Engine::new(config());
    let mut parser = FileParser::default();
    let mut parsed = Vec::new();
    let mut offset = 0u64;
    for (i, piece) in bytes.split(|&b| b == b'\n').enumerate() {
        parser.push(
            Line {
                number: i as u64 + 1,
                offset,
                bytes: piece,
            },
            &mut parsed,
        );
        offset += piece.len() as u64 + 1;
    }
    parser.finish(&mut parsed);
    for p in &parsed {
        let Parsed::Event { envelope, .. } = p else {
            continue;
        };
        for planned in engine.handle(&envelope.event) {
            match &planned.action {
                Action::EmsCall {
                    command, params, ..
                } => check_params(command, params),
                Action::S3Put(S3Put { path, key, .. }) => check_upload(path, key),
                Action::S3Delete { key, .. } => check_key(key),
            }
        }
        engine.take_refusals();
    }
});
