//! Custom rules at run time: each rule of the `Rules` block, in file order, after the built-in
//! plugins. A rule whose `on` names the event's type, whose conditions all hold and whose
//! event was not caused by emstail (unless `include_own`) becomes one action, built like the
//! plugins build theirs: the `_emstail` marker on every call, parameters escaped when sent,
//! uploads confined to the media roots with the uploaders' keys and content types.

use super::keys::{Depth, Freshness, Placement, content_type};
use super::{MARKER_KEY, Refusal, created_by_emstail, with_marker};
use crate::action::{Action, Params, PlannedAction, PluginId, S3Put};
use crate::config::{
    Condition, Config, FieldPath, Piece, Rule, RuleAction, S3Rule, Template, Test,
};
use crate::event::{Envelope, Event, Settings, StreamInfo, is_truthy};

/// An event with its envelope's timestamp (`${timestamp}`), which a bare [`Event`] lacks.
#[derive(Debug, Clone, Copy)]
pub struct Stamped<'e> {
    pub event: &'e Event,
    pub timestamp: Option<&'e Value>,
}

impl<'e> From<&'e Envelope> for Stamped<'e> {
    fn from(envelope: &'e Envelope) -> Self {
        Stamped {
            event: &envelope.event,
            timestamp: envelope.timestamp.as_ref(),
        }
    }
}
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

/// The rules of a config, ready to run.
pub struct Rules {
    rules: Vec<Compiled>,
    /// Event type → the rules that take it, in file order.
    by_kind: HashMap<String, Vec<usize>>,
}

struct Compiled {
    rule: Rule,
    id: PluginId,
    /// For an upload or delete: keys and confinement from its S3 settings' media roots.
    placement: Option<Placement>,
}

/// What one rule makes of one event (see [`Rules::explain`]).
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per rule and event, handed straight on: boxing the action costs an allocation"
)]
pub enum Verdict {
    /// The rule's `on` does not name the event's type.
    NotOn,
    /// An event of a stream emstail created, and the rule does not say `include_own`.
    Own,
    /// These conditions do not hold, each with the value the event has there (listed only
    /// when every failure was asked for).
    Unmet(Vec<(Condition, String)>),
    /// The rule matched but its action cannot be made: a template names a field the event
    /// lacks, a value holds a control character, a file lies outside the media roots.
    Skipped(String),
    Action(PlannedAction),
}

impl Rules {
    pub fn new(config: &Config) -> Rules {
        let mut by_kind: HashMap<String, Vec<usize>> = HashMap::new();
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                for kind in &rule.on {
                    let list = by_kind.entry(kind.clone()).or_default();
                    if !list.contains(&index) {
                        list.push(index);
                    }
                }
                Compiled {
                    id: rule.id(),
                    placement: rule.action.s3().map(|s3| placement(config, s3)),
                    rule: rule.clone(),
                }
            })
            .collect();
        Rules { rules, by_kind }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Appends the actions of every rule that matches, in file order; a rule that matched
    /// but could not act adds a refusal (counted and logged like a plugin's).
    pub fn handle(
        &self,
        envelope: Stamped,
        out: &mut Vec<PlannedAction>,
        refusals: &mut Vec<Refusal>,
    ) {
        let Some(indexes) = self.by_kind.get(envelope.event.kind()) else {
            return;
        };
        for &index in indexes {
            match self.rules[index].evaluate(envelope, false) {
                Verdict::Action(action) => out.push(action),
                Verdict::Skipped(reason) => refusals.push(Refusal {
                    plugin: self.rules[index].id,
                    reason,
                }),
                Verdict::NotOn | Verdict::Own | Verdict::Unmet(_) => {}
            }
        }
    }

    /// What each rule (or only the one named `only`) makes of the event, in file order, every
    /// failed condition listed: for `emstail rules test`.
    pub fn explain<'r>(&'r self, envelope: Stamped, only: Option<&str>) -> Vec<(&'r str, Verdict)> {
        self.rules
            .iter()
            .filter(|c| only.is_none_or(|name| c.rule.name == name))
            .map(|c| (c.rule.name.as_str(), c.evaluate(envelope, true)))
            .collect()
    }
}

/// The media roots, EMS working directory and key prefix that the uploader of the same S3
/// settings would use.
fn placement(config: &Config, s3: &S3Rule) -> Placement {
    let roots = if s3.settings.media_root.is_empty() {
        &config.service.media_root
    } else {
        &s3.settings.media_root
    };
    Placement::new(
        roots,
        config.service.ems_working_dir.as_deref(),
        &s3.settings.key_prefix,
    )
}

impl Compiled {
    fn evaluate(&self, envelope: Stamped, every_failure: bool) -> Verdict {
        let event = envelope.event;
        if !self.rule.on.iter().any(|kind| kind == event.kind()) {
            return Verdict::NotOn;
        }
        if !self.rule.include_own && caused_by_emstail(event) {
            return Verdict::Own;
        }
        let fails = |c: &Condition| !holds(&c.test, lookup(envelope, &c.path));
        if every_failure {
            let unmet: Vec<(Condition, String)> = (self.rule.when.iter())
                .filter(|c| fails(c))
                .map(|c| (c.clone(), shown(lookup(envelope, &c.path))))
                .collect();
            if !unmet.is_empty() {
                return Verdict::Unmet(unmet);
            }
        } else if self.rule.when.iter().any(fails) {
            return Verdict::Unmet(Vec::new());
        }
        match self.action(envelope) {
            Ok(action) => Verdict::Action(action),
            Err(reason) => Verdict::Skipped(format!("skipped the event: {reason}")),
        }
    }

    fn action(&self, envelope: Stamped) -> Result<PlannedAction, String> {
        match &self.rule.action {
            RuleAction::Call {
                target,
                command,
                params,
            } => {
                let mut rendered = Params(Vec::with_capacity(params.len() + 1));
                for (name, template) in params {
                    rendered
                        .0
                        .push((name.clone(), render(template, envelope, name)?));
                }
                let stream = stream_name(envelope.event).map(str::to_string);
                Ok(PlannedAction {
                    plugin: self.id,
                    lane: stream.clone().unwrap_or_else(|| self.id.to_string()),
                    stream,
                    stream_id: None,
                    action: Action::EmsCall {
                        target: target.clone(),
                        command: command.clone(),
                        params: with_marker(rendered),
                        // A user's own call is sent as written, whatever it names.
                        only_if_armed: None,
                    },
                })
            }
            RuleAction::Upload(s3) => self.s3_action(s3, envelope, true),
            RuleAction::Delete(s3) => self.s3_action(s3, envelope, false),
        }
    }

    fn s3_action(
        &self,
        s3: &S3Rule,
        envelope: Stamped,
        upload: bool,
    ) -> Result<PlannedAction, String> {
        let placement = self
            .placement
            .as_ref()
            .expect("every upload or delete rule has its placement");
        let raw = render(&s3.file, envelope, "file")?;
        let file = placement.resolve(&raw);
        // The uploaders' own check: confined to the media roots, else refused.
        let (derived, group, stream) = placement.key_of(&file, Depth::Stream)?;
        let key = match &s3.key {
            Some(template) => object_key(render(template, envelope, "key")?)?,
            None => derived,
        };
        let bucket = match &s3.bucket {
            Some(template) => bucket_name(render(template, envelope, "bucket")?)?,
            None => s3.settings.default_bucket.clone(),
        };
        if bucket.trim().is_empty() {
            return Err("the bucket is empty".to_string());
        }
        let mut lane = self.id.to_string();
        lane.push(':');
        match (group, stream) {
            (Some(group), Some(stream)) => {
                lane.push_str(group);
                lane.push('/');
                lane.push_str(stream);
            }
            _ => lane.push_str(file.parent_str()),
        }
        let action = if upload {
            let name = file.file_name().unwrap_or("");
            Action::S3Put(S3Put {
                bucket,
                key,
                content_type: content_type(name).into(),
                cache_control: freshness(name).cache_control().into(),
                path: file.to_path_buf(),
                acl: s3.settings.acl.clone(),
                optional: false,
            })
        } else {
            Action::S3Delete { bucket, key }
        };
        Ok(PlannedAction {
            plugin: self.id,
            lane,
            stream: stream.map(str::to_string),
            stream_id: None,
            action,
        })
    }
}

/// Playlists and manifests are rewritten while a stream runs; everything else is a segment.
fn freshness(file_name: &str) -> Freshness {
    let changing = [".m3u8", ".mpd", ".f4m", ".ism", ".ismc", "bootstrap"];
    let lower = file_name.to_ascii_lowercase();
    if changing.iter().any(|end| lower.ends_with(end)) {
        Freshness::Changing
    } else {
        Freshness::Fixed
    }
}

/// A key from a template: relative, without `..` or empty segments' surprises.
fn object_key(key: String) -> Result<String, String> {
    if key.is_empty() || key.starts_with('/') || key.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "the object key {} is empty, absolute or has a . or .. segment",
            super::names::shown(&key)
        ));
    }
    Ok(key)
}

/// A bucket name from a template. It becomes the host name of the request (or, with an
/// `endpoint`, the first segment of its path), so only the characters of bucket names are
/// taken — letters, digits, `.`, `-`, and `_` of older buckets such as the seed's `HLS_files`
/// — beginning and ending with a letter or digit, without `..`: nothing that could end the
/// host or start a port, user, path, query or fragment.
fn bucket_name(bucket: String) -> Result<String, String> {
    let bytes = bucket.as_bytes();
    let ok = (1..=255).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !bucket.contains("..");
    if ok {
        Ok(bucket)
    } else {
        Err(format!(
            "the bucket {} is not a bucket name (letters, digits, '.', '-' and '_', \
             beginning and ending with a letter or digit)",
            super::names::shown(&bucket)
        ))
    }
}

/// The stream the event is about, when it names one.
fn stream_name(event: &Event) -> Option<&str> {
    match event {
        Event::InStreamCreated(s)
        | Event::InStreamClosed(s)
        | Event::OutStreamCreated(s)
        | Event::OutStreamClosed(s) => Some(s.name.as_str()),
        Event::Other { payload, .. } => payload.get("name").and_then(Value::as_str),
        _ => None,
    }
    .filter(|name| !name.is_empty() && !name.chars().any(char::is_control))
}

/// An event about something emstail made: a stream or timer whose settings carry the marker
/// EMS echoes back.
fn caused_by_emstail(event: &Event) -> bool {
    let marked = |map: &Map<String, Value>| is_truthy(map.get(MARKER_KEY));
    let marked_settings = |map: &Map<String, Value>| {
        map.iter()
            .any(|(key, value)| key.ends_with("Settings") && value.as_object().is_some_and(marked))
    };
    match event {
        Event::InStreamCreated(s)
        | Event::InStreamClosed(s)
        | Event::OutStreamCreated(s)
        | Event::OutStreamClosed(s) => stream_marked(s, marked_settings),
        Event::TimerTriggered(timer) => marked(&timer.custom.0),
        Event::Other { payload, .. } => payload
            .as_object()
            .is_some_and(|map| marked(map) || marked_settings(map)),
        _ => false,
    }
}

fn stream_marked(
    stream: &StreamInfo,
    marked_settings: impl Fn(&Map<String, Value>) -> bool,
) -> bool {
    created_by_emstail(stream)
        || [&stream.record_settings, &stream.hls_settings]
            .into_iter()
            .flatten()
            .any(|s| s.is_truthy(MARKER_KEY))
        || marked_settings(&stream.other.0)
}

/// A field's value, borrowed from the event where it can be.
#[derive(Debug, Clone, Copy)]
enum Field<'e> {
    Str(&'e str),
    U64(u64),
    Json(&'e Value),
}

impl<'e> Field<'e> {
    fn text(self) -> Option<Cow<'e, str>> {
        match self {
            Field::Str(s) => Some(Cow::Borrowed(s)),
            Field::Json(Value::String(s)) => Some(Cow::Borrowed(s)),
            Field::U64(n) => Some(Cow::Owned(n.to_string())),
            Field::Json(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
            Field::Json(Value::Bool(b)) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Field::Json(_) => None,
        }
    }

    fn number(self) -> Option<Num> {
        match self {
            Field::U64(n) => Some(Num::Int(i128::from(n))),
            Field::Json(Value::Number(n)) => Num::of(n),
            Field::Str(s) => Num::parse(s),
            Field::Json(Value::String(s)) => Num::parse(s),
            Field::Json(_) => None,
        }
    }
}

/// The field `path` names, `None` when the event lacks it or holds `null` there.
fn lookup<'e>(envelope: Stamped<'e>, path: &FieldPath) -> Option<Field<'e>> {
    let field = match path {
        FieldPath::Type => Field::Str(envelope.event.kind()),
        FieldPath::Timestamp => Field::Json(envelope.timestamp?),
        FieldPath::Payload(keys) => payload_field(envelope.event, keys)?,
    };
    match field {
        Field::Json(Value::Null) => None,
        field => Some(field),
    }
}

fn payload_field<'e>(event: &'e Event, keys: &[String]) -> Option<Field<'e>> {
    let (first, rest) = keys.split_first()?;
    let settings = |s: &'e Option<Settings>| walk(s.as_ref()?.0.get(rest.first()?)?, &rest[1..]);
    let plain = |field: Option<Field<'e>>| if rest.is_empty() { field } else { None };
    match event {
        Event::InStreamCreated(s)
        | Event::InStreamClosed(s)
        | Event::OutStreamCreated(s)
        | Event::OutStreamClosed(s) => match first.as_str() {
            "name" => plain(Some(Field::Str(&s.name))),
            "uniqueId" => plain(s.unique_id.map(Field::U64)),
            "type" => plain(s.stream_type.as_deref().map(Field::Str)),
            "ip" => plain(s.ip.as_deref().map(Field::Str)),
            "nearIp" => plain(s.near_ip.as_deref().map(Field::Str)),
            "farIp" => plain(s.far_ip.as_deref().map(Field::Str)),
            "pullSettings" if !rest.is_empty() => settings(&s.pull_settings),
            "pushSettings" if !rest.is_empty() => settings(&s.push_settings),
            "recordSettings" if !rest.is_empty() => settings(&s.record_settings),
            "hlsSettings" if !rest.is_empty() => settings(&s.hls_settings),
            "pullSettings" | "pushSettings" | "recordSettings" | "hlsSettings" => None,
            _ => walk(s.other.0.get(first)?, rest),
        },
        Event::TimerTriggered(t) => match first.as_str() {
            "timerId" => plain(t.timer_id.map(Field::U64)),
            "triggerCount" => plain(t.trigger_count.map(Field::U64)),
            "value" => walk(t.value.as_ref()?, rest),
            _ => walk(t.custom.0.get(first)?, rest),
        },
        Event::Other { payload, .. } => walk(payload.get(first)?, rest),
        Event::HlsMasterPlaylistUpdated(f)
        | Event::HlsChildPlaylistUpdated(f)
        | Event::HlsChunkClosed(f)
        | Event::HlsChunkDeleted(f)
        | Event::HdsMasterPlaylistUpdated(f)
        | Event::HdsChildPlaylistUpdated(f)
        | Event::HdsChunkClosed(f)
        | Event::HdsChunkDeleted(f)
        | Event::DashPlaylistUpdated(f)
        | Event::DashChunkClosed(f)
        | Event::DashChunkDeleted(f) => match first.as_str() {
            "file" => plain(Some(Field::Str(&f.file))),
            _ => None,
        },
    }
}

fn walk<'e>(mut value: &'e Value, keys: &[String]) -> Option<Field<'e>> {
    for key in keys {
        value = value.as_object()?.get(key)?;
    }
    Some(Field::Json(value))
}

/// A number as compared: integers exactly (u64 above 2^53 included), the rest as f64.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(n: &Number) -> Option<Num> {
        if let Some(u) = n.as_u64() {
            Some(Num::Int(i128::from(u)))
        } else if let Some(i) = n.as_i64() {
            Some(Num::Int(i128::from(i)))
        } else {
            n.as_f64().map(Num::Float)
        }
    }

    fn parse(text: &str) -> Option<Num> {
        let text = text.trim();
        if let Ok(i) = text.parse::<i128>() {
            return Some(Num::Int(i));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Num::Float)
    }

    fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Whether `test` holds for the field (`None`: absent or null).
fn holds(test: &Test, field: Option<Field>) -> bool {
    let compare = |n: &Number, want: fn(Ordering) -> bool| {
        let (Some(have), Some(limit)) = (field.and_then(|f| f.number()), Num::of(n)) else {
            return false;
        };
        have.compare(limit).is_some_and(want)
    };
    match test {
        Test::Exists(wanted) => field.is_some() == *wanted,
        Test::Eq(operand) => equal(field, operand),
        Test::Ne(operand) => !equal(field, operand),
        Test::In(list) => list.iter().any(|operand| equal(field, operand)),
        Test::Contains(operand) => contains(field, operand),
        Test::Matches(pattern) => field
            .and_then(|f| f.text().map(|text| pattern.0.is_match(&text)))
            .unwrap_or(false),
        Test::Lt(n) => compare(n, Ordering::is_lt),
        Test::Le(n) => compare(n, Ordering::is_le),
        Test::Gt(n) => compare(n, Ordering::is_gt),
        Test::Ge(n) => compare(n, Ordering::is_ge),
    }
}

/// Equality as EMS writes values: a number and a string holding the same number are equal
/// (custom `_keys` come back as strings), and `null` means absent.
fn equal(field: Option<Field>, operand: &Value) -> bool {
    let Some(field) = field else {
        return operand.is_null();
    };
    match operand {
        Value::Null => false,
        Value::String(want) => field.text().is_some_and(|have| have == want.as_str()),
        Value::Number(want) => match (field.number(), Num::of(want)) {
            (Some(have), Some(want)) => have.compare(want) == Some(Ordering::Equal),
            _ => false,
        },
        Value::Bool(want) => match field {
            Field::Json(Value::Bool(have)) => have == want,
            _ => field.text().is_some_and(|text| {
                let text = text.trim();
                let (yes, no) = (
                    text == "1" || text.eq_ignore_ascii_case("true"),
                    text == "0" || text.eq_ignore_ascii_case("false"),
                );
                if *want { yes } else { no }
            }),
        },
        Value::Array(_) | Value::Object(_) => matches!(field, Field::Json(v) if v == operand),
    }
}

/// Text containing the operand's text, or a list holding an element equal to it.
fn contains(field: Option<Field>, operand: &Value) -> bool {
    match field {
        None => false,
        Some(Field::Json(Value::Array(items))) => items
            .iter()
            .any(|item| equal(Some(Field::Json(item)), operand)),
        Some(field) => {
            let needle = match operand {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                other => Cow::Owned(other.to_string()),
            };
            field
                .text()
                .is_some_and(|text| text.contains(needle.as_ref()))
        }
    }
}

/// A field's value as `rules test` shows it: JSON, or `absent`.
fn shown(field: Option<Field>) -> String {
    match field {
        None => "absent".to_string(),
        Some(Field::Str(s)) => Value::String(s.to_string()).to_string(),
        Some(Field::U64(n)) => n.to_string(),
        Some(Field::Json(v)) => v.to_string(),
    }
}

/// Whether `path` holds a stream name: the payload's `name`, or any `…StreamName` key
/// (`localStreamName` in pull, push and record settings, `_localStreamName`).
fn names_a_stream(path: &FieldPath) -> bool {
    match path {
        FieldPath::Payload(keys) => match keys.as_slice() {
            [only] if only == "name" => true,
            [.., last] => last.to_ascii_lowercase().ends_with("streamname"),
            [] => false,
        },
        _ => false,
    }
}

/// Whether `path` holds a path EMS composed from its own settings (`payload.file`,
/// `recordSettings.computedPathToFile`, `hlsSettings.targetFolder`, …), which may rightly
/// start with `..`: EMS's default `targetFolder` is `../evo-webroot`.
fn composed_by_ems(path: &FieldPath) -> bool {
    match path {
        FieldPath::Payload(keys) => keys.last().is_some_and(|last| {
            let last = last.to_ascii_lowercase();
            ["file", "path", "folder"]
                .iter()
                .any(|end| last.ends_with(end))
        }),
        _ => false,
    }
}

/// The template's text for this event, or why there is none: a field the event lacks, a
/// value with a control character (never sent to EMS, nor put in a path or key), or a value
/// that would end the path or query of the URI it is inside.
fn render(template: &Template, envelope: Stamped, key: &str) -> Result<String, String> {
    let mut out = String::new();
    // After the template's own `scheme://`, a field is part of a URI.
    let mut in_uri = false;
    for piece in &template.0 {
        match piece {
            Piece::Text(text) => {
                in_uri |= text.contains("://");
                out.push_str(text);
            }
            Piece::Field(path) => {
                let field = lookup(envelope, path)
                    .ok_or_else(|| format!("{key}: the event has no {path}"))?;
                let text = match field {
                    Field::Json(Value::Bool(b)) => Cow::Borrowed(if *b { "1" } else { "0" }),
                    Field::Json(v @ (Value::Array(_) | Value::Object(_))) => {
                        Cow::Owned(v.to_string())
                    }
                    other => other.text().expect("scalars have a text"),
                };
                if text.chars().any(char::is_control) {
                    return Err(format!("{key}: {path} holds a control character"));
                }
                // A stream name goes nowhere a plugin would not put it.
                if names_a_stream(path)
                    && let Some(why) = super::names::unsafe_reason(&text)
                {
                    return Err(format!(
                        "{key}: {path} {} refused: {why}",
                        super::names::shown(&text)
                    ));
                }
                // `"groupName": "${payload.appName}"` with `..` would put EMS's output beside
                // the folder the rule names, `/rec/${payload.pageUrl}.mp4` anywhere on disk.
                if !composed_by_ems(path)
                    && text
                        .split(['/', '\\'])
                        .any(|segment| segment.trim() == "..")
                {
                    return Err(format!(
                        "{key}: {path} {} refused: it holds a '..' path segment, which would \
                         leave the folder the rule names",
                        super::names::shown(&text)
                    ));
                }
                // `rtmp://host/live/${payload.name}` with a stream `victim?x` would name
                // `victim`: the URI is the rule's, a value only fills its place in it.
                if in_uri && text.contains(['?', '#']) {
                    return Err(format!(
                        "{key}: {path} {} refused: it contains '?' or '#', which would end the \
                         path or query of the URI it is in",
                        super::names::shown(&text)
                    ));
                }
                out.push_str(&text);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::plugins::test_support::{assert_separators, event};
    use serde_json::json;
    use std::path::Path;

    fn config(rules: &str) -> Config {
        let text = format!(
            r#"{{ "Service": {{ "media_root": "/var/evostreamms/evo-webroot" }},
                 "StreamAutoRouter": {{ "plugin_switch": "enabled",
                     "parameters": {{ "token": "", "destination_uri": "10.9.9.9" }} }},
                 "AmazonHLSUpload": {{ "plugin_switch": "disabled",
                     "parameters": {{ "default_bucket": "media", "key_prefix": "live/" }} }},
                 "Rules": {rules} }}"#
        );
        Config::from_str(Path::new("config.ini"), &text).expect("test rules are valid")
    }

    /// The rule named `r`, taking `on` with `when`, calling `version` with `params`.
    fn rule(on: &str, when: &str, params: &str) -> String {
        format!(
            r#"[{{ "name": "r", "on": "{on}", "when": {when},
                   "call": {{ "command": "version", "params": {params} }} }}]"#
        )
    }

    fn stamped(event: &Event) -> Stamped<'_> {
        Stamped {
            event,
            timestamp: None,
        }
    }

    /// Whether the one rule of `when` matches the event.
    fn matches(when: &str, kind: &str, payload: Value) -> bool {
        let rules = Rules::new(&config(&rule(kind, when, "{}")));
        let event = event(kind, payload);
        match rules.explain(stamped(&event), None).remove(0).1 {
            Verdict::Action(_) => true,
            Verdict::Unmet(_) => false,
            other => panic!("{other:?}"),
        }
    }

    /// The command line the one rule sends for the event, or the refusal.
    fn call(params: &str, kind: &str, payload: Value) -> Result<String, String> {
        let mut engine = Engine::new(&config(&rule(kind, "{}", params)));
        let envelope = Envelope {
            id: None,
            timestamp: Some(json!(1795947300)),
            event: event(kind, payload),
        };
        let actions: Vec<PlannedAction> = engine
            .handle_envelope(&envelope)
            .into_iter()
            .filter(|a| a.plugin.rule() == Some("r"))
            .collect();
        // The built-in plugins' own refusals (StreamAutoRouter refuses a name with `\`) aside.
        let refusal = engine
            .take_refusals()
            .into_iter()
            .rfind(|r| r.plugin.rule() == Some("r"));
        if let Some(refusal) = refusal {
            assert!(actions.is_empty());
            return Err(refusal.to_string());
        }
        let [action] = actions.as_slice() else {
            panic!("one action: {actions:?}")
        };
        let Action::EmsCall { params, .. } = &action.action else {
            panic!("a call")
        };
        assert_separators(params);
        Ok(params.to_command_line())
    }

    const IN: &str = "inStreamCreated";

    #[test]
    fn eq_ne_and_in_compare_strings_and_numbers_loosely() {
        let cam = || json!({"name": "cam1", "uniqueId": 7, "type": "INR"});
        assert!(matches(r#"{ "payload.name": "cam1" }"#, IN, cam()));
        assert!(!matches(r#"{ "payload.name": "cam2" }"#, IN, cam()));
        assert!(matches(
            r#"{ "payload.name": { "eq": "cam1" } }"#,
            IN,
            cam()
        ));
        assert!(matches(r#"{ "payload.uniqueId": 7 }"#, IN, cam()));
        assert!(matches(r#"{ "payload.uniqueId": "7" }"#, IN, cam()));
        assert!(matches(
            r#"{ "payload.name": { "ne": "cam2" } }"#,
            IN,
            cam()
        ));
        assert!(!matches(
            r#"{ "payload.name": { "ne": "cam1" } }"#,
            IN,
            cam()
        ));
        // Absent: not equal to a value, equal to null.
        assert!(matches(r#"{ "payload.farIp": { "ne": "x" } }"#, IN, cam()));
        assert!(matches(r#"{ "payload.farIp": null }"#, IN, cam()));
        assert!(matches(
            r#"{ "payload.type": { "in": ["INR", "INP"] } }"#,
            IN,
            cam()
        ));
        assert!(!matches(
            r#"{ "payload.type": { "in": ["ONR"] } }"#,
            IN,
            cam()
        ));
        assert!(matches(r#"{ "type": "inStreamCreated" }"#, IN, cam()));
        // A custom key EMS echoed back as a string equals the number and the boolean.
        let pulled = json!({"name": "s", "pullSettings": {"_site": "3", "keepAlive": "1"}});
        assert!(matches(
            r#"{ "payload.pullSettings._site": 3 }"#,
            IN,
            pulled.clone()
        ));
        assert!(matches(
            r#"{ "payload.pullSettings.keepAlive": true }"#,
            IN,
            pulled.clone()
        ));
        assert!(!matches(
            r#"{ "payload.pullSettings.keepAlive": false }"#,
            IN,
            pulled
        ));
    }

    #[test]
    fn contains_and_matches_read_text_and_lists() {
        let s = || json!({"name": "front-cam-2", "outStreamsUniqueIds": [4, 9]});
        for (when, expected) in [
            (r#"{ "payload.name": { "contains": "cam" } }"#, true),
            (r#"{ "payload.name": { "contains": "back" } }"#, false),
            (
                r#"{ "payload.outStreamsUniqueIds": { "contains": 9 } }"#,
                true,
            ),
            (
                r#"{ "payload.outStreamsUniqueIds": { "contains": 5 } }"#,
                false,
            ),
            (
                r#"{ "payload.name": { "matches": "^front-.*-\\d$" } }"#,
                true,
            ),
            (r#"{ "payload.name": { "matches": "^cam" } }"#, false),
            (r#"{ "payload.farIp": { "matches": "" } }"#, false),
        ] {
            assert_eq!(matches(when, IN, s()), expected, "{when}");
        }
    }

    #[test]
    fn numeric_comparisons_are_exact_above_2_pow_53() {
        let big = || json!({"name": "s", "typeNumeric": 5282249572905648128u64, "upTime": 12.5});
        for (when, expected) in [
            (
                r#"{ "payload.typeNumeric": { "gt": 5282249572905648127 } }"#,
                true,
            ),
            (
                r#"{ "payload.typeNumeric": { "ge": 5282249572905648128 } }"#,
                true,
            ),
            (
                r#"{ "payload.typeNumeric": { "lt": 5282249572905648128 } }"#,
                false,
            ),
            (
                r#"{ "payload.typeNumeric": { "le": 5282249572905648128 } }"#,
                true,
            ),
            (r#"{ "payload.typeNumeric": 5282249572905648129 }"#, false),
            (r#"{ "payload.upTime": { "gt": 12, "lt": 13 } }"#, true),
            (r#"{ "payload.upTime": { "ge": 12.6 } }"#, false),
            (r#"{ "payload.name": { "gt": 0 } }"#, false),
            (r#"{ "payload.farPort": { "lt": 1 } }"#, false),
        ] {
            assert_eq!(matches(when, IN, big()), expected, "{when}");
        }
    }

    #[test]
    fn exists_counts_null_as_absent() {
        let s = || json!({"name": "s", "inStreamUniqueId": 3, "customData": null});
        for (when, expected) in [
            (
                r#"{ "payload.inStreamUniqueId": { "exists": true } }"#,
                true,
            ),
            (
                r#"{ "payload.inStreamUniqueId": { "exists": false } }"#,
                false,
            ),
            (r#"{ "payload.customData": { "exists": true } }"#, false),
            (r#"{ "payload.customData": { "exists": false } }"#, true),
            (r#"{ "payload.farIp": { "exists": false } }"#, true),
        ] {
            assert_eq!(matches(when, "outStreamClosed", s()), expected, "{when}");
        }
    }

    #[test]
    fn templates_fill_nested_fields_numbers_and_literal_text() {
        let line = call(
            r#"{ "uri": "${payload.pullSettings.uri}", "id": "${payload.uniqueId}",
                 "big": "${payload.typeNumeric}", "note": "${type} at ${timestamp}: $$1",
                 "up": "${payload.upTime}s", "flag": true }"#,
            IN,
            json!({"name": "cam1", "uniqueId": 12, "typeNumeric": 5282249572905648128u64,
                   "upTime": 12.5, "pullSettings": {"uri": "rtmp://10.0.0.5/live/cam1"}}),
        );
        // Parameters go in the order of their names; the marker comes last.
        assert_eq!(
            line.as_deref(),
            Ok(
                "big=5282249572905648128 flag=1 id=12 note=inStreamCreated\\ at\\ 1795947300:\\ $1 \
                up=12.5s uri=rtmp://10.0.0.5/live/cam1 _emstail=1"
            )
        );
    }

    #[test]
    fn values_are_escaped_as_the_plugins_escape_them() {
        // A name a plugin takes (spaces, commas, `=`, quotes): escaped, one parameter.
        let name = "x stream, uri=rtmp:evil \"q\" .. ü";
        let line = call(
            r#"{ "localStreamName": "${payload.name}" }"#,
            IN,
            json!({ "name": name }),
        )
        .expect("acts");
        let mut expected = crate::action::Params::new().with("localStreamName", name);
        expected = with_marker(expected);
        assert_eq!(line, expected.to_command_line());
        assert!(line.starts_with(r"localStreamName=x\ stream\,\ uri\=rtmp:evil"));
        // Any other value is escaped the same way, `\` and `/` included.
        let line = call(
            r#"{ "uri": "${payload.pullSettings.uri}" }"#,
            IN,
            json!({ "name": "s", "pullSettings": { "uri": "rtmp://h/live/a b,c=d\\e" } }),
        )
        .expect("acts");
        assert!(
            line.starts_with(r"uri=rtmp://h/live/a\ b\,c\=d\\e "),
            "{line}"
        );
    }

    #[test]
    fn stream_names_a_plugin_would_refuse_are_refused_by_rules_too() {
        for (name, why) in [
            ("../../etc/cron.d/evil", "it contains '/'"),
            ("a\\b", "it contains '\\'"),
            ("..", "it is a '.' or '..' path segment"),
        ] {
            for template in [
                r#"{ "localStreamNames": "${payload.name}" }"#,
                r#"{ "s": "${payload.pullSettings.localStreamName}" }"#,
            ] {
                let refused = call(
                    template,
                    IN,
                    json!({ "name": name, "pullSettings": { "localStreamName": name } }),
                )
                .expect_err("refused");
                assert!(refused.contains(why), "{name}: {refused}");
            }
        }
    }

    /// A field inside a URI (after the template's `scheme://`) cannot end the URI's path or
    /// query: with `?` or `#` a stream `victim?x` would make the call name `victim`.
    #[test]
    fn a_value_inside_a_uri_cannot_end_its_path_or_query() {
        let params = r#"{ "uri": "rtmp://10.0.0.9/live/${payload.name}?site=${payload.pullSettings._site}" }"#;
        let payload =
            |name: &str, site: &str| json!({ "name": name, "pullSettings": { "_site": site } });
        assert_eq!(
            call(params, IN, payload("cam 1", "a.b")).as_deref(),
            Ok(r"uri=rtmp://10.0.0.9/live/cam\ 1?site\=a.b _emstail=1")
        );
        for (name, site, field) in [
            ("victim?x", "a", "payload.name"),
            ("victim#x", "a", "payload.name"),
            ("cam1", "a#b", "payload.pullSettings._site"),
            ("cam1", "a?b", "payload.pullSettings._site"),
        ] {
            let refused = call(params, IN, payload(name, site)).expect_err(name);
            assert!(
                refused.contains(&format!("uri: {field} ")) && refused.contains("'?' or '#'"),
                "{name} {site}: {refused}"
            );
        }
        // Outside a URI the same values are sent as they are, escaped.
        let plain = call(
            r#"{ "n": "${payload.name}", "s": "x/${payload.pullSettings._site}" }"#,
            IN,
            payload("victim?x#y", "a#b"),
        );
        assert_eq!(plain.as_deref(), Ok("n=victim?x#y s=x/a#b _emstail=1"));
    }

    /// A value from the event cannot lead a path out of the folder the rule names: a client's
    /// `appName` or `pageUrl` of `..` would put EMS's output, or its recording, elsewhere on
    /// disk. A path EMS composed from its own settings may start with `..` (its default
    /// `targetFolder` is `../evo-webroot`) and is sent as it is.
    #[test]
    fn a_value_cannot_add_a_parent_segment_to_a_path_but_a_path_ems_composed_may_hold_one() {
        let params = r#"{ "groupName": "${payload.appName}",
                          "pathToFile": "/rec/${payload.pageUrl}.mp4" }"#;
        let payload =
            |app: &str, page: &str| json!({ "name": "cam1", "appName": app, "pageUrl": page });
        assert_eq!(
            call(params, IN, payload("live", "a..b/c.d")).as_deref(),
            Ok("groupName=live pathToFile=/rec/a..b/c.d.mp4 _emstail=1")
        );
        for (app, page, field) in [
            ("..", "x", "payload.appName"),
            ("live", "../../etc/cron.d/x", "payload.pageUrl"),
            ("live", r"a\..\b", "payload.pageUrl"),
            ("live", "a/.. /b", "payload.pageUrl"),
        ] {
            let refused = call(params, IN, payload(app, page)).expect_err(page);
            assert!(
                refused.contains(&format!(": {field} ")) && refused.contains("'..' path segment"),
                "{app} {page}: {refused}"
            );
        }
        let file = call(
            r#"{ "f": "${payload.file}" }"#,
            "hlsChunkClosed",
            json!({ "file": "../evo-webroot/hls/cam1/segment_1.ts" }),
        );
        assert_eq!(
            file.as_deref(),
            Ok("f=../evo-webroot/hls/cam1/segment_1.ts _emstail=1")
        );
        let folder = call(
            r#"{ "t": "${payload.hlsSettings.targetFolder}" }"#,
            "outStreamCreated",
            json!({ "name": "cam1", "hlsSettings": { "targetFolder": "../evo-webroot/hls" } }),
        );
        assert_eq!(folder.as_deref(), Ok("t=../evo-webroot/hls _emstail=1"));
    }

    #[test]
    fn a_missing_field_or_a_control_character_skips_with_a_refusal() {
        let e = call(
            r#"{ "id": "${payload.inStreamUniqueId}" }"#,
            "outStreamClosed",
            json!({"name": "s"}),
        );
        assert_eq!(
            e,
            Err("Rules:r: skipped the event: id: the event has no payload.inStreamUniqueId".into())
        );
        let e = call(r#"{ "n": "${payload.name}" }"#, IN, json!({"name": "a\nb"}));
        assert_eq!(
            e,
            Err("Rules:r: skipped the event: n: payload.name holds a control character".into())
        );
        // Null is absent too: nothing empty is ever sent.
        let e = call(
            r#"{ "d": "${payload.customData}" }"#,
            IN,
            json!({"name": "s", "customData": null}),
        );
        assert!(e.is_err(), "{e:?}");
    }

    #[test]
    fn events_of_streams_emstail_made_are_skipped_unless_include_own() {
        let ours = |settings: &str| json!({"name": "s", settings: {"_emstail": "1"}});
        for settings in [
            "pullSettings",
            "pushSettings",
            "hlsSettings",
            "dashSettings",
        ] {
            let rules = Rules::new(&config(&rule("outStreamCreated", "{}", "{}")));
            let e = event("outStreamCreated", ours(settings));
            assert_eq!(
                rules.explain(stamped(&e), None)[0].1,
                Verdict::Own,
                "{settings}"
            );
        }
        let own = r#"[{ "name": "r", "on": "outStreamCreated", "include_own": true,
                        "call": { "command": "version" } }]"#;
        let rules = Rules::new(&config(own));
        let e = event("outStreamCreated", ours("hlsSettings"));
        assert!(matches!(
            rules.explain(stamped(&e), None)[0].1,
            Verdict::Action(_)
        ));
        let rules = Rules::new(&config(&rule("timerTriggered", "{}", "{}")));
        let e = event("timerTriggered", json!({"timerId": 1, "_emstail": "1"}));
        assert_eq!(rules.explain(stamped(&e), None)[0].1, Verdict::Own);
    }

    /// StreamRecorder arms its timers with `_uniqueId` only (no marker): a rule on
    /// `timerTriggered` sees them unless it leaves `_uniqueId` out, as the README says.
    #[test]
    fn the_recorders_timers_are_not_own_and_a_condition_leaves_them_out() {
        let rotation = event(
            "timerTriggered",
            json!({"timerId": 4, "triggerCount": 1, "value": 600, "_uniqueId": "15"}),
        );
        let any = Rules::new(&config(&rule("timerTriggered", "{}", "{}")));
        assert!(matches!(
            any.explain(stamped(&rotation), None)[0].1,
            Verdict::Action(_)
        ));
        let when = r#"{ "payload._uniqueId": { "exists": false } }"#;
        let others = Rules::new(&config(&rule("timerTriggered", when, "{}")));
        assert!(matches!(
            others.explain(stamped(&rotation), None)[0].1,
            Verdict::Unmet(_)
        ));
        let foreign = event("timerTriggered", json!({"timerId": 5, "value": 60}));
        assert!(matches!(
            others.explain(stamped(&foreign), None)[0].1,
            Verdict::Action(_)
        ));
    }

    #[test]
    fn rules_run_after_the_plugins_in_file_order_with_the_marker() {
        let rules = r#"[
            { "name": "second", "on": "inStreamCreated", "call": { "command": "b" } },
            { "name": "first", "on": ["outStreamClosed", "inStreamCreated"],
              "call": { "command": "a", "target": "http://u:secret@10.1.1.1:8888/apiproxy" } } ]"#;
        let mut engine = Engine::new(&config(rules));
        let actions = engine.handle(&event(IN, json!({"name": "cam1"})));
        let who: Vec<String> = actions.iter().map(|a| a.plugin.to_string()).collect();
        assert_eq!(who, ["StreamAutoRouter", "Rules:second", "Rules:first"]);
        let Action::EmsCall { target, params, .. } = &actions[2].action else {
            panic!("a call")
        };
        assert_eq!(target.to_string(), "http://u:***@10.1.1.1:8888/apiproxy/");
        assert_eq!(params.to_command_line(), "_emstail=1");
        assert_eq!(actions[2].lane, "cam1");
        assert_eq!(actions[2].stream.as_deref(), Some("cam1"));
        assert!(!format!("{:?}{}", actions[2], actions[2]).contains("secret"));
    }

    /// A value of up to a log line's 1 MiB fills a key, bucket or URI template: the refusal
    /// shows its start and length, on a short line, not the whole value.
    #[test]
    fn a_refusal_shows_the_start_of_a_long_value_and_its_length() {
        let rules = r#"[
            { "name": "key", "on": "outStreamCreated",
              "upload": { "file": "/var/evostreamms/evo-webroot/rec/cam1.mp4",
                          "key": "/${payload.farIp}", "s3": "AmazonHLSUpload" } },
            { "name": "bucket", "on": "outStreamCreated",
              "upload": { "file": "/var/evostreamms/evo-webroot/rec/cam1.mp4",
                          "bucket": "${payload.farIp}", "s3": "AmazonHLSUpload" } },
            { "name": "uri", "on": "outStreamCreated",
              "call": { "command": "pullStream", "params": { "uri": "rtmp://h/live/${payload.farIp}" } } } ]"#;
        let mut engine = Engine::new(&config(rules));
        let value = format!("{}?#", "v".repeat(1 << 20));
        engine.handle(&event(
            "outStreamCreated",
            json!({"name": "cam1", "farIp": value}),
        ));
        let refusals = engine.take_refusals();
        assert_eq!(refusals.len(), 3, "{refusals:?}");
        for refusal in refusals {
            let shown = refusal.to_string();
            assert!(shown.len() < 1024, "{} bytes", shown.len());
            assert!(
                shown.contains(" bytes)"),
                "{}",
                &shown[..300.min(shown.len())]
            );
        }
    }

    /// A bucket name becomes the request URL's host (or its first path segment with an
    /// `endpoint`): a value from the event must not carry the request elsewhere.
    #[test]
    fn a_bucket_from_a_template_must_be_a_bucket_name() {
        let rules = r#"[ { "name": "rec", "on": "outStreamCreated",
            "upload": { "file": "${payload.recordSettings.computedPathToFile}",
                        "bucket": "rec-${payload.name}", "s3": "AmazonHLSUpload" } } ]"#;
        let mut engine = Engine::new(&config(rules));
        let file = "/var/evostreamms/evo-webroot/rec/cam1.mp4";
        let upload = |engine: &mut Engine, name: &str| {
            let payload = json!({"name": name, "recordSettings": {"computedPathToFile": file}});
            let actions: Vec<PlannedAction> = engine
                .handle(&event("outStreamCreated", payload))
                .into_iter()
                .filter(|a| a.plugin.rule() == Some("rec"))
                .collect();
            let refusals = engine.take_refusals();
            match actions.as_slice() {
                [
                    PlannedAction {
                        action: Action::S3Put(put),
                        ..
                    },
                ] => Ok(put.bucket.clone()),
                [] => Err(refusals
                    .into_iter()
                    .map(|r| r.to_string())
                    .collect::<String>()),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(upload(&mut engine, "cam1").as_deref(), Ok("rec-cam1"));
        assert_eq!(upload(&mut engine, "Cam_1.a").as_deref(), Ok("rec-Cam_1.a"));
        for name in [
            "x.attacker.example#",
            "x.attacker.example:8443?",
            "x@attacker.example",
            "x?list-type=2",
            "x..y",
            "x.",
            "x-",
            "x y",
            "ü",
        ] {
            let refusal = upload(&mut engine, name).expect_err(name);
            assert!(refusal.contains("bucket"), "{name}: {refusal}");
        }
    }

    #[test]
    fn uploads_are_confined_and_keyed_like_the_uploaders() {
        let rules = r#"[
            { "name": "up", "on": "hlsChunkClosed", "upload": { "file": "${payload.file}", "s3": "AmazonHLSUpload" } },
            { "name": "del", "on": "hlsChunkDeleted",
              "delete": { "file": "${payload.file}", "bucket": "b-${type}", "key": "k/x" , "s3": "AmazonHLSUpload" } },
            { "name": "keyed", "on": "hlsChildPlaylistUpdated",
              "upload": { "file": "${payload.file}", "key": "../${payload.file}", "s3": "AmazonHLSUpload" } } ]"#;
        let mut engine = Engine::new(&config(rules));
        let chunk = "/var/evostreamms/evo-webroot/hls/cam1/segment_1.ts";
        let actions = engine.handle(&event("hlsChunkClosed", json!({ "file": chunk })));
        assert_eq!(
            actions[0].action,
            Action::S3Put(S3Put {
                bucket: "media".into(),
                key: "live/hls/cam1/segment_1.ts".into(),
                path: chunk.into(),
                content_type: "video/mp2t".into(),
                cache_control: "max-age=86400".into(),
                acl: None,
                optional: false,
            })
        );
        assert_eq!(actions[0].lane, "Rules:up:hls/cam1");
        let outside = engine.handle(&event("hlsChunkClosed", json!({ "file": "/etc/passwd" })));
        assert!(outside.is_empty());
        let refusal = engine.take_refusals().remove(0).to_string();
        assert!(
            refusal
                .starts_with("Rules:up: skipped the event: /etc/passwd is outside the media roots"),
            "{refusal}"
        );
        let climbing = "/var/evostreamms/evo-webroot/../../../etc/passwd";
        assert!(
            engine
                .handle(&event("hlsChunkClosed", json!({ "file": climbing })))
                .is_empty()
        );
        assert_eq!(engine.take_refusals().len(), 1);

        let deleted = engine.handle(&event(
            "hlsChunkDeleted",
            json!({ "file": "/var/evostreamms/evo-webroot/a.ts" }),
        ));
        assert_eq!(
            deleted[0].action,
            Action::S3Delete {
                bucket: "b-hlsChunkDeleted".into(),
                key: "k/x".into()
            }
        );
        let playlist = "/var/evostreamms/evo-webroot/hls/cam1/playlist.m3u8";
        assert!(
            engine
                .handle(&event(
                    "hlsChildPlaylistUpdated",
                    json!({ "file": playlist })
                ))
                .is_empty()
        );
        assert!(
            engine.take_refusals()[0]
                .reason
                .contains("has a . or .. segment")
        );
    }
}
