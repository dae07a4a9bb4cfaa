//! The `Rules` block: custom rules, each mapping EMS events to one EMS API call or one S3
//! upload or delete. Everything a rule needs at run time is made here, once: templates are
//! split into text and fields, regexes compiled, paths checked against what each event's
//! payload can hold. Every problem names the rule (`Rules["name"]`, or `Rules[3]` before its
//! name is known) and the key.

use super::check::{self, Checker, Scope, Show};
use super::{Plugin, UploadParams};
use crate::action::{ApiTarget, PluginId, RuleName};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashSet;

/// One custom rule, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// The event types it takes, as EMS writes them.
    pub on: Vec<String>,
    /// All must hold.
    pub when: Vec<Condition>,
    /// Also act on events of streams emstail itself created (off: no loops).
    pub include_own: bool,
    pub action: RuleAction,
}

impl Rule {
    /// The name every action of this rule carries.
    pub fn id(&self) -> PluginId {
        PluginId::Rules(RuleName::new(&self.name))
    }
}

/// A test on one field of the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub path: FieldPath,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Contains(Value),
    Matches(Pattern),
    Lt(Number),
    Le(Number),
    Gt(Number),
    Ge(Number),
    Exists(bool),
}

impl Test {
    /// The operator as written in the config.
    pub fn operator(&self) -> &'static str {
        match self {
            Test::Eq(_) => "eq",
            Test::Ne(_) => "ne",
            Test::In(_) => "in",
            Test::Contains(_) => "contains",
            Test::Matches(_) => "matches",
            Test::Lt(_) => "lt",
            Test::Le(_) => "le",
            Test::Gt(_) => "gt",
            Test::Ge(_) => "ge",
            Test::Exists(_) => "exists",
        }
    }

    /// The operand as written in the config.
    pub fn operand(&self) -> Value {
        match self {
            Test::Eq(v) | Test::Ne(v) | Test::Contains(v) => v.clone(),
            Test::In(list) => Value::Array(list.clone()),
            Test::Matches(p) => Value::String(p.0.as_str().to_string()),
            Test::Lt(n) | Test::Le(n) | Test::Gt(n) | Test::Ge(n) => Value::Number(n.clone()),
            Test::Exists(b) => Value::Bool(*b),
        }
    }
}

/// A compiled regex; two are equal when their sources are.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What a condition or a template names: `type`, `timestamp` or `payload.a.b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPath {
    Type,
    Timestamp,
    /// The keys below `payload`, at least one.
    Payload(Vec<String>),
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldPath::Type => f.write_str("type"),
            FieldPath::Timestamp => f.write_str("timestamp"),
            FieldPath::Payload(keys) => write!(f, "payload.{}", keys.join(".")),
        }
    }
}

/// Literal text and fields, e.g. `rtmp://${payload.nearIp}/live`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Field(FieldPath),
}

impl Template {
    /// A template of literal text only.
    pub fn literal(text: &str) -> Template {
        Template(vec![Piece::Text(text.to_string())])
    }

    /// The fields it names.
    pub fn fields(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter().filter_map(|p| match p {
            Piece::Field(path) => Some(path),
            Piece::Text(_) => None,
        })
    }
}

impl std::fmt::Display for Template {
    /// As written in the config: `${field}`s, and `$$` for a literal `$`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => f.write_str(&text.replace('$', "$$"))?,
                Piece::Field(path) => write!(f, "${{{path}}}")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleAction {
    /// An EMS API call; the `_emstail` marker is added to `params` when it is made.
    Call {
        target: ApiTarget,
        command: String,
        params: Vec<(String, Template)>,
    },
    Upload(S3Rule),
    Delete(S3Rule),
}

/// An upload or delete: the file (confined to the media roots like the plugins' files), the
/// bucket and key, and the S3 settings of an upload plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Rule {
    pub file: Template,
    /// Default: the settings' `default_bucket`.
    pub bucket: Option<Template>,
    /// Default: the key the upload plugins give the file.
    pub key: Option<Template>,
    /// The upload plugin whose S3 settings (credentials, endpoint, region, ACL, media roots,
    /// key prefix) these are; `None` for the rule's own.
    pub settings_from: Option<PluginId>,
    pub settings: UploadParams,
}

impl RuleAction {
    pub fn s3(&self) -> Option<&S3Rule> {
        match self {
            RuleAction::Call { .. } => None,
            RuleAction::Upload(s3) | RuleAction::Delete(s3) => Some(s3),
        }
    }
}

const RULE_KEYS: &[&str] = &[
    "name",
    "on",
    "when",
    "include_own",
    "call",
    "upload",
    "delete",
];
const CALL_KEYS: &[&str] = &["command", "params", "target"];
const S3_KEYS: &[&str] = &["file", "bucket", "key", "s3"];
const OPERATORS: &[&str] = &[
    "eq", "ne", "in", "contains", "matches", "lt", "le", "gt", "ge", "exists",
];

/// The upload plugins' blocks, whose S3 settings a rule may use.
pub(super) struct UploadBlocks<'a> {
    pub hls: &'a Plugin<UploadParams>,
    pub hds: &'a Plugin<UploadParams>,
    pub dash: &'a Plugin<UploadParams>,
}

/// Reads the `Rules` block: a list of rules.
pub(super) fn read(
    ck: &mut Checker,
    value: Option<&Value>,
    ems_api: &ApiTarget,
    uploads: &UploadBlocks,
) -> Vec<Rule> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        ck.invalid(
            &Scope::fatal("Rules"),
            "",
            &check::shown(value, Show::Value),
            "must be a list of rules like [ { \"name\": \"…\", \"on\": \"inStreamCreated\", \"call\": { … } } ]",
        );
        return Vec::new();
    };
    let mut rules = Vec::new();
    let mut names = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(rule) = read_rule(ck, i, item, ems_api, uploads) else {
            continue;
        };
        if !names.insert(rule.name.clone()) {
            ck.invalid(
                &scope_of(i, Some(&rule.name)),
                "name",
                &Value::String(rule.name.clone()).to_string(),
                "another rule has this name: every rule needs its own (it names the rule's \
                 actions in logs, dry runs and dead letters)",
            );
            continue;
        }
        rules.push(rule);
    }
    rules
}

fn scope_of(index: usize, name: Option<&str>) -> Scope {
    Scope::named(Cow::Owned(match name {
        Some(name) => format!("Rules[{}]", Value::String(name.to_string())),
        None => format!("Rules[{index}]"),
    }))
}

fn read_rule(
    ck: &mut Checker,
    index: usize,
    item: &Value,
    ems_api: &ApiTarget,
    uploads: &UploadBlocks,
) -> Option<Rule> {
    let map = object_or_invalid(
        ck,
        &scope_of(index, None),
        "",
        item,
        "must be an object with name, on, optional when, and one of call, upload, delete",
    )?;
    let errors_before = ck.errors.len();
    let name = match map.get("name").map(|v| v.as_str().map(str::trim)) {
        Some(Some(name)) if !name.is_empty() && !name.chars().any(char::is_control) => {
            name.to_string()
        }
        other => {
            let shown = other
                .and(map.get("name"))
                .map_or("(not set)".to_string(), |v| check::shown(v, Show::Value));
            ck.invalid(
                &scope_of(index, None),
                "name",
                &shown,
                "required: a non-empty name without control characters",
            );
            return None;
        }
    };
    let scope = scope_of(index, Some(&name));
    ck.unknown_keys(&scope.block, map, RULE_KEYS);

    let on = read_on(ck, &scope, map.get("on"))?;
    let include_own = ck
        .get(
            &scope,
            "include_own",
            map.get("include_own"),
            Show::Value,
            check::boolean,
        )
        .unwrap_or(false);
    let when = read_when(ck, &scope, &on, map.get("when"));

    let actions: Vec<&str> = ["call", "upload", "delete"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .collect();
    let action = match actions.as_slice() {
        ["call"] => read_call(ck, &scope, &on, &map["call"], ems_api),
        [kind @ ("upload" | "delete")] => read_s3(ck, &scope, &on, kind, &map[*kind], uploads),
        [] => {
            ck.invalid(
                &scope,
                "call",
                "(not set)",
                "a rule needs exactly one action: call, upload or delete",
            );
            None
        }
        _ => {
            ck.invalid(
                &scope,
                actions[1],
                &check::shown(&map[actions[1]], Show::Value),
                &format!(
                    "a rule has exactly one action, and this one also has {}: split it into \
                     two rules",
                    actions[0]
                ),
            );
            None
        }
    };
    if ck.errors.len() != errors_before {
        return None;
    }
    Some(Rule {
        name,
        on,
        when,
        include_own,
        action: action?,
    })
}

fn read_on(ck: &mut Checker, scope: &Scope, value: Option<&Value>) -> Option<Vec<String>> {
    let Some(value) = value else {
        ck.invalid(
            scope,
            "on",
            "(not set)",
            "required: an event type or a list of them, e.g. \"inStreamCreated\"",
        );
        return None;
    };
    let types = ck.get(scope, "on", Some(value), Show::Value, check::string_list)?;
    if types.is_empty() {
        ck.invalid(scope, "on", "[]", "must name at least one event type");
        return None;
    }
    let mut ok = true;
    for kind in &types {
        if EVENT_TYPES.contains(&kind.as_str()) {
            continue;
        }
        ok = false;
        let hint = match check::closest(kind, EVENT_TYPES) {
            Some(known) => format!("unknown event type (did you mean {known}?)"),
            None => "unknown event type (see the EMS event list: inStreamCreated, \
                     outStreamClosed, hlsChunkClosed, …)"
                .to_string(),
        };
        ck.invalid(scope, "on", &Value::String(kind.clone()).to_string(), &hint);
    }
    ok.then_some(types)
}

fn read_when(
    ck: &mut Checker,
    scope: &Scope,
    on: &[String],
    value: Option<&Value>,
) -> Vec<Condition> {
    let mut conditions = Vec::new();
    let Some(value) = value else {
        return conditions;
    };
    let Some(map) = object_or_invalid(
        ck,
        scope,
        "when",
        value,
        "must be an object of conditions like { \"payload.name\": { \"matches\": \"^cam\" } }",
    ) else {
        return conditions;
    };
    for (field, test) in map {
        let key = format!("when.{field}");
        let Some(path) = field_path(ck, scope, &key, field, on) else {
            continue;
        };
        match test {
            Value::Object(ops) if !ops.is_empty() => {
                for (op, operand) in ops {
                    if let Some(test) = read_test(ck, scope, &format!("{key}.{op}"), op, operand) {
                        conditions.push(Condition {
                            path: path.clone(),
                            test,
                        });
                    }
                }
            }
            // A bare value means equal.
            other => conditions.push(Condition {
                path,
                test: Test::Eq(other.clone()),
            }),
        }
    }
    conditions
}

fn read_test(
    ck: &mut Checker,
    scope: &Scope,
    key: &str,
    op: &str,
    operand: &Value,
) -> Option<Test> {
    let number = |v: &Value| match v {
        Value::Number(n) => Ok(n.clone()),
        _ => Err("must be a number".to_string()),
    };
    let scalar = |v: &Value| match v {
        Value::Array(_) | Value::Object(_) => {
            Err("must be a string, a number, true, false or null".to_string())
        }
        v => Ok(v.clone()),
    };
    let get = |ck: &mut Checker, f: &dyn Fn(&Value) -> Result<Test, String>| {
        ck.get(scope, key, Some(operand), Show::Value, f)
    };
    match op {
        "eq" => get(ck, &|v| Ok(Test::Eq(v.clone()))),
        "ne" => get(ck, &|v| Ok(Test::Ne(v.clone()))),
        "in" => get(ck, &|v| match v {
            Value::Array(list) => Ok(Test::In(list.clone())),
            _ => Err("must be a list of values".to_string()),
        }),
        "contains" => get(ck, &|v| scalar(v).map(Test::Contains)),
        "matches" => get(ck, &|v| {
            let source = v
                .as_str()
                .ok_or("must be a regular expression as a string")?;
            regex::Regex::new(source)
                .map(|re| Test::Matches(Pattern(re)))
                .map_err(|e| format!("not a valid regular expression: {e}"))
        }),
        "lt" => get(ck, &|v| number(v).map(Test::Lt)),
        "le" => get(ck, &|v| number(v).map(Test::Le)),
        "gt" => get(ck, &|v| number(v).map(Test::Gt)),
        "ge" => get(ck, &|v| number(v).map(Test::Ge)),
        "exists" => get(ck, &|v| check::boolean(v).map(Test::Exists)),
        _ => {
            let hint = match check::closest(op, OPERATORS) {
                Some(known) => format!("unknown operator {op} (did you mean {known}?)"),
                None => format!("unknown operator {op} (known: {})", OPERATORS.join(", ")),
            };
            ck.invalid(scope, key, &check::shown(operand, Show::Value), &hint);
            None
        }
    }
}

/// `type`, `timestamp` or `payload.a.b`, checked against what every event of `on` can hold.
fn field_path(
    ck: &mut Checker,
    scope: &Scope,
    key: &str,
    text: &str,
    on: &[String],
) -> Option<FieldPath> {
    let shown = Value::String(text.to_string()).to_string();
    let path = match text.trim() {
        "type" => FieldPath::Type,
        "timestamp" => FieldPath::Timestamp,
        other => match other.strip_prefix("payload.") {
            Some(rest) if rest.split('.').all(|k| !k.is_empty()) => {
                FieldPath::Payload(rest.split('.').map(str::to_string).collect())
            }
            _ => {
                ck.invalid(
                    scope,
                    key,
                    &shown,
                    "must be type, timestamp or payload.<field>[.<field>…]",
                );
                return None;
            }
        },
    };
    if let FieldPath::Payload(keys) = &path {
        for kind in on {
            if let Err(why) = payload_can_have(kind, keys) {
                ck.invalid(
                    scope,
                    key,
                    &shown,
                    &format!("a {kind} event's payload {why}"),
                );
                return None;
            }
        }
    }
    Some(path)
}

/// Splits `text` into literal text and `${field}`s; `$$` is a literal `$`.
fn template(
    ck: &mut Checker,
    scope: &Scope,
    key: &str,
    text: &str,
    on: &[String],
) -> Option<Template> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let mut ok = true;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(more) = after.strip_prefix('$') {
            literal.push('$');
            rest = more;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                ck.invalid(
                    scope,
                    key,
                    &Value::String(text.to_string()).to_string(),
                    "a ${ is not closed by }",
                );
                return None;
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            match field_path(ck, scope, key, &inner[..end], on) {
                Some(path) => pieces.push(Piece::Field(path)),
                None => ok = false,
            }
            rest = &inner[end + 1..];
        } else {
            literal.push('$');
            rest = after;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    // As a field's value with one is never sent: no EMS parameter, path or key gets one (and a
    // dead letter holding one is not sent again).
    let control = pieces
        .iter()
        .any(|piece| matches!(piece, Piece::Text(text) if text.chars().any(char::is_control)));
    if control {
        ck.invalid(
            scope,
            key,
            &Value::String(text.to_string()).to_string(),
            super::check::NO_CONTROL,
        );
        return None;
    }
    ok.then_some(Template(pieces))
}

/// A template given as a string; numbers and booleans are literal text (`true` as `1`, as
/// EMS reads booleans).
fn template_value(
    ck: &mut Checker,
    scope: &Scope,
    key: &str,
    value: &Value,
    on: &[String],
) -> Option<Template> {
    match value {
        Value::String(s) => template(ck, scope, key, s, on),
        Value::Number(n) => Some(Template::literal(&n.to_string())),
        Value::Bool(b) => Some(Template::literal(if *b { "1" } else { "0" })),
        other => {
            ck.invalid(
                scope,
                key,
                &check::shown(other, Show::Value),
                "must be a string (with ${payload.…} fields), a number, true or false",
            );
            None
        }
    }
}

/// `value` as an object, or `None` after reporting `scope.key = value: allowed`.
fn object_or_invalid<'v>(
    ck: &mut Checker,
    scope: &Scope,
    key: &str,
    value: &'v Value,
    allowed: &str,
) -> Option<&'v serde_json::Map<String, Value>> {
    let map = value.as_object();
    if map.is_none() {
        ck.invalid(scope, key, &check::shown(value, Show::Value), allowed);
    }
    map
}

fn read_call(
    ck: &mut Checker,
    scope: &Scope,
    on: &[String],
    value: &Value,
    ems_api: &ApiTarget,
) -> Option<RuleAction> {
    let map = object_or_invalid(
        ck,
        scope,
        "call",
        value,
        "must be an object like { \"command\": \"shutdownStream\", \"params\": { … } }",
    )?;
    ck.unknown_keys(&format!("{}.call", scope.block), map, CALL_KEYS);
    let command = match map.get("command").and_then(Value::as_str).map(str::trim) {
        Some(c) if !c.is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            c.to_string()
        }
        _ => {
            let shown = map
                .get("command")
                .map_or("(not set)".to_string(), |v| check::shown(v, Show::Value));
            ck.invalid(
                scope,
                "call.command",
                &shown,
                "required: an EMS API command name such as createHLSStream",
            );
            return None;
        }
    };
    if !EMS_COMMANDS
        .iter()
        .any(|known| known.eq_ignore_ascii_case(&command))
    {
        let hint = match check::closest(&command, EMS_COMMANDS) {
            Some(known) => format!(" (did you mean {known}?)"),
            None => String::new(),
        };
        ck.warn(format_args!(
            "{}.call.command = \"{command}\": not an EMS API command emstail knows{hint}; \
             it is sent as written",
            scope.block
        ));
    }
    let target = match map.get("target") {
        None => ems_api.clone(),
        Some(v) => {
            let shown = match v.as_str() {
                Some(s) => format!("\"{}\"", check::redact_url(s)),
                None => check::shown(v, Show::Value),
            };
            match super::service::api_target(v) {
                Ok(target) => target,
                Err(allowed) => {
                    ck.invalid(scope, "call.target", &shown, &allowed);
                    return None;
                }
            }
        }
    };
    let mut params = Vec::new();
    match map.get("params") {
        None => {}
        Some(Value::Object(entries)) => {
            for (name, value) in entries {
                let key = format!("call.params.{name}");
                let valid_name = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid_name || name.eq_ignore_ascii_case(crate::plugins::MARKER_KEY) {
                    ck.invalid(
                        scope,
                        &key,
                        &check::shown(value, Show::Value),
                        "a parameter name is letters, digits, _ and -, and _emstail is \
                         emstail's own marker (added to every call)",
                    );
                    continue;
                }
                if let Some(t) = template_value(ck, scope, &key, value, on) {
                    params.push((name.clone(), t));
                }
            }
        }
        Some(other) => ck.invalid(
            scope,
            "call.params",
            &check::shown(other, Show::Value),
            "must be an object of parameters like { \"localStreamNames\": \"${payload.name}\" }",
        ),
    }
    Some(RuleAction::Call {
        target,
        command,
        params,
    })
}

fn read_s3(
    ck: &mut Checker,
    scope: &Scope,
    on: &[String],
    kind: &str,
    value: &Value,
    uploads: &UploadBlocks,
) -> Option<RuleAction> {
    let map = object_or_invalid(
        ck,
        scope,
        kind,
        value,
        "must be an object like { \"file\": \"${payload.file}\", \"s3\": \"AmazonHLSUpload\" }",
    )?;
    ck.unknown_keys(&format!("{}.{kind}", scope.block), map, S3_KEYS);
    let mut part = |name: &str, required: bool| -> Option<Option<Template>> {
        let key = format!("{kind}.{name}");
        match map.get(name) {
            None if required => {
                ck.invalid(
                    scope,
                    &key,
                    "(not set)",
                    "required: the file the event names, usually \"${payload.file}\"",
                );
                None
            }
            None => Some(None),
            Some(Value::String(s)) => template(ck, scope, &key, s, on).map(Some),
            Some(other) => {
                ck.invalid(
                    scope,
                    &key,
                    &check::shown(other, Show::Value),
                    "must be a string (with ${payload.…} fields)",
                );
                None
            }
        }
    };
    let file = part("file", true);
    let bucket = part("bucket", false);
    let key = part("key", false);
    let blocks = [
        (PluginId::AmazonHLSUpload, uploads.hls),
        (PluginId::AmazonHDSUpload, uploads.hds),
        (PluginId::AmazonDASHUpload, uploads.dash),
    ];
    let names: Vec<&str> = blocks.iter().map(|(id, _)| id.name()).collect();
    let (settings_from, settings) = match map.get("s3") {
        // Its own settings: the keys of an upload plugin's parameters.
        Some(Value::Object(own)) => {
            let mut params = UploadParams::default();
            let errors_before = ck.errors.len();
            super::plugins::upload_at(ck, scope, &format!("{kind}.s3"), own, &mut params);
            if ck.errors.len() != errors_before {
                return None;
            }
            (None, params)
        }
        s3 => {
            let named = s3
                .and_then(Value::as_str)
                .and_then(|name| blocks.iter().find(|(id, _)| id.name() == name.trim()));
            let Some((from, block)) = named else {
                let shown = s3.map_or("(not set)".to_string(), |v| check::shown(v, Show::Value));
                let hint = s3
                    .and_then(Value::as_str)
                    .and_then(|s| check::closest(s, &names))
                    .map_or(String::new(), |known| format!(" (did you mean {known}?)"));
                ck.invalid(
                    scope,
                    &format!("{kind}.s3"),
                    &shown,
                    &format!(
                        "required: the upload plugin whose S3 settings to use, one of {}{hint}, \
                         or settings of its own {{ \"default_bucket\": …, \"region\": …, … }}",
                        names.join(", ")
                    ),
                );
                return None;
            };
            (Some(*from), block.params.clone())
        }
    };
    let (file, bucket, key) = (file??, bucket?, key?);
    if bucket.is_none() && settings.default_bucket.trim().is_empty() {
        let why = match settings_from {
            Some(from) => format!("required, as {from}.parameters.default_bucket is not set"),
            None => format!("required, as {kind}.s3.default_bucket is not set"),
        };
        ck.invalid(scope, &format!("{kind}.bucket"), "(not set)", &why);
        return None;
    }
    let rule = S3Rule {
        file,
        bucket,
        key,
        settings_from,
        settings,
    };
    Some(if kind == "upload" {
        RuleAction::Upload(rule)
    } else {
        RuleAction::Delete(rule)
    })
}

/// Every event type EMS 2.0 can write (the docs' lists, the code's extras, the upload
/// plugins' deletions).
pub const EVENT_TYPES: &[&str] = &[
    "inStreamCreated",
    "outStreamCreated",
    "streamCreated",
    "inStreamClosed",
    "outStreamClosed",
    "streamClosed",
    "inStreamCodecsUpdated",
    "outStreamCodecsUpdated",
    "streamCodecsUpdated",
    "audioFeedStopped",
    "videoFeedStopped",
    "outStreamFirstFrameSent",
    "pullStreamFailed",
    "hlsChunkCreated",
    "hlsChunkClosed",
    "hlsChunkError",
    "hlsChunkDeleted",
    "hlsChildPlaylistUpdated",
    "hlsMasterPlaylistUpdated",
    "hdsChunkCreated",
    "hdsChunkClosed",
    "hdsChunkError",
    "hdsChunkDeleted",
    "hdsChildPlaylistUpdated",
    "hdsMasterPlaylistUpdated",
    "mssChunkCreated",
    "mssChunkClosed",
    "mssChunkError",
    "mssPlaylistUpdated",
    "dashChunkCreated",
    "dashChunkClosed",
    "dashChunkError",
    "dashChunkDeleted",
    "dashPlaylistUpdated",
    "recordChunkCreated",
    "recordChunkClosed",
    "recordChunkError",
    "cliRequest",
    "cliResponse",
    "processStarted",
    "processStopped",
    "timerCreated",
    "timerTriggered",
    "timerClosed",
    "protocolRegisteredToApp",
    "protocolUnregisteredFromApp",
    "carrierCreated",
    "carrierClosed",
    "applicationStart",
    "applicationStop",
    "serverStarted",
    "serverStopping",
    "streamingSessionStarted",
    "streamingSessionEnded",
    "mediaFileDownloaded",
    "playlistItemStart",
    "firstPlaylistItemStart",
    "lastPlaylistItemStart",
    "webRTCStarted",
    "webRTCStopped",
    "webRTCPeerConnectionCreated",
    "webRTCPeerConnectionClosed",
    "webRTCPeerStreamStarted",
    "webRTCPeerStreamClosed",
    "WSStreamStarted",
    "WSStreamClosed",
];

/// The runtime API commands of EMS 2.0 (`pages/api`); EMS has more, so an unknown one is only
/// a warning.
const EMS_COMMANDS: &[&str] = &[
    "version",
    "pullStream",
    "pushStream",
    "record",
    "setTimer",
    "listTimers",
    "removeTimer",
    "shutdownStream",
    "listStreams",
    "listStreamsIds",
    "getStreamInfo",
    "getStreamsCount",
    "isStreamRunning",
    "listConfig",
    "removeConfig",
    "getConfigInfo",
    "createHLSStream",
    "createHDSStream",
    "createMSSStream",
    "createDASHStream",
    "launchProcess",
    "transcode",
    "addStreamAlias",
    "removeStreamAlias",
    "listStreamAliases",
    "flushStreamAliases",
    "addGroupNameAlias",
    "removeGroupNameAlias",
    "listGroupNameAliases",
    "flushGroupNameAliases",
    "listConnections",
    "listConnectionsIds",
    "getConnectionInfo",
    "getConnectionsCount",
    "setBandwidthLimit",
    "getBandwidth",
    "setLogLevel",
    "generateLazyPullFile",
    "startWebRTC",
    "stopWebRTC",
    "insertPlaylistItem",
    "setAuthentication",
    "setConnectionsLimit",
    "getConnectionsLimit",
    "listServices",
    "enableService",
    "shutdownService",
    "createService",
    "listInboundStreamNames",
    "listInboundStreams",
    "listStorage",
    "addStorage",
    "removeStorage",
    "quit",
];

/// The top-level payload keys of the stream events that hold a value (stream stats); the
/// objects (codecs, the settings of the API call that made the stream) are
/// [`STREAM_OBJECTS`].
const STREAM_VALUES: &[&str] = &[
    "name",
    "uniqueId",
    "type",
    "typeNumeric",
    "ip",
    "nearIp",
    "nearPort",
    "farIp",
    "farPort",
    "port",
    "appName",
    "creationTimestamp",
    "queryTimestamp",
    "upTime",
    "bandwidth",
    "connectionType",
    "canDropFrames",
    "inStreamUniqueId",
    "outStreamsUniqueIds",
    "pageUrl",
    "swfUrl",
    "tcUrl",
    "serverAgent",
    "userAgent",
    "processId",
    "processType",
    "edgePid",
];
/// Stream fields with keys of their own below them (custom `_keys` included).
const STREAM_OBJECTS: &[&str] = &[
    "audio",
    "video",
    "pullSettings",
    "pushSettings",
    "hlsSettings",
    "hdsSettings",
    "mssSettings",
    "dashSettings",
    "recordSettings",
    "processSettings",
];

/// What the payload of an event type holds, as emstail keeps it.
enum Known {
    /// Keys holding a value, keys holding an object (anything may be below them), plus
    /// custom `_keys` when the flag is set.
    Fields(&'static [&'static str], &'static [&'static str], bool),
    /// The typed file events: emstail keeps their `file` and nothing else.
    FileOnly,
    /// Not documented field by field: any path is accepted.
    Any,
}

fn known_payload(kind: &str) -> Known {
    match kind {
        "inStreamCreated"
        | "outStreamCreated"
        | "streamCreated"
        | "inStreamClosed"
        | "outStreamClosed"
        | "streamClosed"
        | "inStreamCodecsUpdated"
        | "outStreamCodecsUpdated"
        | "streamCodecsUpdated"
        | "outStreamFirstFrameSent" => Known::Fields(STREAM_VALUES, STREAM_OBJECTS, false),
        "timerCreated" | "timerTriggered" | "timerClosed" => {
            Known::Fields(&["timerId", "triggerCount", "value"], &[], true)
        }
        // The typed file events keep their `file` only.
        "hlsChunkClosed"
        | "hlsChunkDeleted"
        | "hlsChildPlaylistUpdated"
        | "hlsMasterPlaylistUpdated"
        | "hdsChunkClosed"
        | "hdsChunkDeleted"
        | "hdsChildPlaylistUpdated"
        | "hdsMasterPlaylistUpdated"
        | "dashChunkClosed"
        | "dashChunkDeleted"
        | "dashPlaylistUpdated" => Known::FileOnly,
        "mssPlaylistUpdated" => Known::Fields(&["file"], &[], false),
        "hlsChunkCreated" => {
            Known::Fields(&["file", "playlistStartTs", "segmentStartTs"], &[], false)
        }
        "hdsChunkCreated" | "mssChunkCreated" | "dashChunkCreated" => {
            Known::Fields(&["file", "startTime"], &[], false)
        }
        "mssChunkClosed" => {
            Known::Fields(&["file", "startTime", "stopTime", "frameCount"], &[], false)
        }
        "recordChunkCreated" | "recordChunkClosed" => {
            Known::Fields(&["file", "startTime", "stopTime", "frameCount"], &[], true)
        }
        "hlsChunkError" | "hdsChunkError" | "mssChunkError" | "dashChunkError"
        | "recordChunkError" => Known::Fields(&["error"], &[], false),
        "audioFeedStopped" | "videoFeedStopped" => {
            Known::Fields(&["id", "localStreamName"], &[], false)
        }
        "cliRequest" => Known::Fields(&["command"], &["parameters"], false),
        _ => Known::Any,
    }
}

/// Whether a payload of `kind` can hold `keys`; else what it can hold.
fn payload_can_have(kind: &str, keys: &[String]) -> Result<(), String> {
    let first = keys[0].as_str();
    let (values, objects, custom) = match known_payload(kind) {
        Known::Any => return Ok(()),
        Known::FileOnly if first == "file" && keys.len() == 1 => return Ok(()),
        Known::FileOnly if first == "file" => {
            return Err("field file holds a value, not an object".to_string());
        }
        Known::FileOnly => {
            return Err(format!(
                "has no field {first} that emstail keeps (only payload.file)"
            ));
        }
        Known::Fields(values, objects, custom) => (values, objects, custom),
    };
    // Every event: the logger's PID and the sink's customData (any value).
    let known = values.contains(&first)
        || objects.contains(&first)
        || first == "PID"
        || first == "customData"
        || (custom && first.starts_with('_'));
    if !known {
        let mut all: Vec<&str> = [values, objects].concat();
        all.extend(["PID", "customData"]);
        let hint = match check::closest(first, &all) {
            Some(k) => format!("(did you mean payload.{k}?)"),
            None => format!("(it has {})", all.join(", ")),
        };
        return Err(format!("has no field {first} {hint}"));
    }
    if keys.len() > 1 && !(objects.contains(&first) || first == "customData") {
        return Err(format!("field {first} holds a value, not an object"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn load(rules: &str) -> Result<Config, ConfigError> {
        let text = format!(
            r#"{{ "AmazonHLSUpload": {{ "plugin_switch": "disabled",
                   "parameters": {{ "default_bucket": "media" }} }},
                 "Rules": {rules} }}"#
        );
        Config::from_str(Path::new("config.ini"), &text)
    }

    fn error(rules: &str) -> String {
        match load(rules) {
            Ok(config) => panic!("accepted: {:?}", config.rules),
            Err(e) => e.0,
        }
    }

    /// Asserts that loading `rules` fails with a message that says `needle`.
    #[track_caller]
    fn assert_error_has(rules: &str, needle: &str) {
        let e = error(rules);
        assert!(e.contains(needle), "{e}");
    }

    const SEED: &str = r#"[
      { "name": "hls-for-every-inbound", "on": "inStreamCreated",
        "when": { "payload.type": { "in": ["INR", "INP"] }, "payload.name": { "matches": "^cam" } },
        "call": { "command": "createHLSStream",
                  "params": { "localStreamNames": "${payload.name}", "groupName": "${payload.name}",
                              "targetFolder": "/var/evostreamms/evo-webroot/hls" } } },
      { "name": "drop-inbound-on-lost-output", "on": "outStreamClosed",
        "when": { "payload.inStreamUniqueId": { "exists": true } },
        "call": { "command": "shutdownStream",
                  "params": { "id": "${payload.inStreamUniqueId}", "permanently": 0 } } } ]"#;

    #[test]
    fn the_seed_examples_load_as_written_in_the_issue() {
        let config = load(SEED).expect("valid");
        assert_eq!(config.rules.len(), 2);
        let rule = &config.rules[0];
        assert_eq!(rule.name, "hls-for-every-inbound");
        assert_eq!(rule.on, vec!["inStreamCreated"]);
        assert_eq!(rule.when.len(), 2);
        assert!(!rule.include_own);
        let RuleAction::Call {
            target,
            command,
            params,
        } = &rule.action
        else {
            panic!("a call")
        };
        assert_eq!(target.base, "http://127.0.0.1:7777/");
        assert_eq!(command, "createHLSStream");
        // Parameters are kept in the order of their names (the JSON reader sorts keys).
        assert_eq!(
            params[1],
            (
                "localStreamNames".to_string(),
                Template(vec![Piece::Field(FieldPath::Payload(vec!["name".into()]))])
            )
        );
        let RuleAction::Call { params, .. } = &config.rules[1].action else {
            panic!("a call")
        };
        assert_eq!(
            params[1],
            ("permanently".to_string(), Template::literal("0"))
        );
        assert_eq!(params[0].0, "id");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn a_bare_value_means_equal_and_operators_are_read() {
        let config = load(
            r#"[{ "name": "r", "on": ["inStreamCreated", "outStreamCreated"],
                  "when": { "payload.name": "cam1", "payload.uniqueId": { "ge": 2, "lt": 10 },
                            "payload.customData": null, "type": { "ne": "x" } },
                  "call": { "command": "version" } }]"#,
        )
        .expect("valid");
        let tests: Vec<(String, &str, Value)> = config.rules[0]
            .when
            .iter()
            .map(|c| (c.path.to_string(), c.test.operator(), c.test.operand()))
            .collect();
        assert_eq!(
            tests,
            vec![
                ("payload.customData".into(), "eq", Value::Null),
                ("payload.name".into(), "eq", Value::from("cam1")),
                ("payload.uniqueId".into(), "ge", Value::from(2)),
                ("payload.uniqueId".into(), "lt", Value::from(10)),
                ("type".into(), "ne", Value::from("x")),
            ]
        );
    }

    #[test]
    fn an_unknown_event_type_is_an_error_with_the_closest_name() {
        let e =
            error(r#"[{ "name": "r", "on": "inStreamCreatd", "call": { "command": "version" } }]"#);
        assert_eq!(
            e,
            "config.ini: Rules[\"r\"].on = \"inStreamCreatd\": unknown event type (did you mean inStreamCreated?)"
        );
    }

    #[test]
    fn a_path_the_payload_cannot_have_is_an_error_naming_the_rule_and_key() {
        let e = error(
            r#"[{ "name": "up", "on": ["hlsChunkClosed", "outStreamClosed"],
                  "call": { "command": "version", "params": { "f": "${payload.file}" } } }]"#,
        );
        assert!(
            e.starts_with("config.ini: Rules[\"up\"].call.params.f = \"payload.file\": a outStreamClosed event's payload has no field file"),
            "{e}"
        );
        assert_error_has(
            r#"[{ "name": "x", "on": "inStreamCreated", "when": { "payload.nmae": "a" },
                  "call": { "command": "version" } }]"#,
            "Rules[\"x\"].when.payload.nmae",
        );
        assert!(e.contains("did you mean payload.name?"), "{e}");
        assert_error_has(
            r#"[{ "name": "x", "on": "inStreamCreated", "when": { "payload.name.first": "a" },
                  "call": { "command": "version" } }]"#,
            "holds a value, not an object",
        );
        // Below a settings object anything goes (custom _keys).
        load(
            r#"[{ "name": "x", "on": "inStreamCreated", "when": { "payload.pullSettings._site": "a" },
                  "call": { "command": "version" } }]"#,
        )
        .expect("custom keys below pullSettings");
        assert_error_has(
            r#"[{ "name": "x", "on": "inStreamCreated", "when": { "name": "a" },
                  "call": { "command": "version" } }]"#,
            "must be type, timestamp or payload.",
        );
    }

    #[test]
    fn an_invalid_regex_is_an_error() {
        let e = error(
            r#"[{ "name": "re", "on": "inStreamCreated", "when": { "payload.name": { "matches": "(cam" } },
                  "call": { "command": "version" } }]"#,
        );
        assert!(
            e.starts_with("config.ini: Rules[\"re\"].when.payload.name.matches = \"(cam\": not a valid regular expression"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_doubled_action_is_an_error() {
        assert_error_has(
            r#"[{ "name": "none", "on": "inStreamCreated" }]"#,
            "Rules[\"none\"].call = (not set): a rule needs exactly one action",
        );
        let e = error(
            r#"[{ "name": "two", "on": "hlsChunkClosed", "call": { "command": "version" },
                  "upload": { "file": "${payload.file}", "s3": "AmazonHLSUpload" } }]"#,
        );
        assert!(e.contains("Rules[\"two\"].upload = "), "{e}");
        assert!(e.contains("also has call"), "{e}");
    }

    #[test]
    fn an_unknown_command_is_a_warning_with_the_closest_one() {
        let config = load(
            r#"[{ "name": "c", "on": "inStreamCreated", "call": { "command": "createHLSStraem" } }]"#,
        )
        .expect("only a warning");
        assert_eq!(
            config.warnings,
            vec![
                "config.ini: Rules[\"c\"].call.command = \"createHLSStraem\": not an EMS API command emstail knows (did you mean createHLSStream?); it is sent as written"
            ]
        );
        // Commands are case-insensitive in EMS.
        let config = load(
            r#"[{ "name": "c", "on": "inStreamCreated", "call": { "command": "pullstream" } }]"#,
        )
        .expect("valid");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn a_duplicate_name_is_an_error() {
        let e = error(
            r#"[{ "name": "d", "on": "inStreamCreated", "call": { "command": "version" } },
                { "name": "d", "on": "inStreamClosed", "call": { "command": "version" } }]"#,
        );
        assert!(
            e.starts_with("config.ini: Rules[\"d\"].name = \"d\": another rule has this name"),
            "{e}"
        );
    }

    #[test]
    fn a_rule_without_a_name_is_named_by_its_index() {
        let e = error(
            r#"[{ "name": "ok", "on": "inStreamCreated", "call": { "command": "version" } },
                { "on": "inStreamClosed", "call": { "command": "version" } }]"#,
        );
        assert_eq!(
            e,
            "config.ini: Rules[1].name = (not set): required: a non-empty name without control characters"
        );
    }

    #[test]
    fn other_problems_name_the_rule_and_key() {
        for (rules, expected) in [
            (
                r#"[{ "name": "o", "on": "inStreamCreated", "when": { "payload.uniqueId": { "gt": "5" } }, "call": { "command": "version" } }]"#,
                "Rules[\"o\"].when.payload.uniqueId.gt = \"5\": must be a number",
            ),
            (
                r#"[{ "name": "o", "on": "inStreamCreated", "when": { "payload.name": { "match": "a" } }, "call": { "command": "version" } }]"#,
                "Rules[\"o\"].when.payload.name.match = \"a\": unknown operator match (did you mean matches?)",
            ),
            (
                r#"[{ "name": "o", "on": "inStreamCreated", "call": { "command": "version", "params": { "a": "${payload.name" } } }]"#,
                "Rules[\"o\"].call.params.a = \"${payload.name\": a ${ is not closed by }",
            ),
            (
                r#"[{ "name": "o", "on": "inStreamCreated", "call": { "command": "version", "params": { "path": "C:\temp" } } }]"#,
                "Rules[\"o\"].call.params.path = \"C:\\temp\": must not contain control characters (in JSON, write \\\\ for a backslash)",
            ),
            (
                r#"[{ "name": "o", "on": "inStreamCreated", "call": { "command": "version", "params": { "_emstail": "0" } } }]"#,
                "Rules[\"o\"].call.params._emstail = \"0\"",
            ),
            (
                r#"[{ "name": "o", "on": "inStreamCreated", "call": { "command": "version", "target": "ftp://x" } }]"#,
                "Rules[\"o\"].call.target = \"ftp://x\": must be an http://",
            ),
            (
                r#"[{ "name": "o", "on": "hlsChunkClosed", "upload": { "file": "${payload.file}", "s3": "AmazonHLSUplaod" } }]"#,
                "Rules[\"o\"].upload.s3 = \"AmazonHLSUplaod\": required: the upload plugin whose S3 settings to use, one of AmazonHLSUpload, AmazonHDSUpload, AmazonDASHUpload (did you mean AmazonHLSUpload?)",
            ),
            (
                r#"[{ "name": "o", "on": "hlsChunkClosed", "delete": { "s3": "AmazonHLSUpload" } }]"#,
                "Rules[\"o\"].delete.file = (not set)",
            ),
            (
                r#"{ "name": "o" }"#,
                "Rules = {\"name\":\"o\"}: must be a list of rules",
            ),
        ] {
            let e = error(rules);
            assert!(e.contains(expected), "{rules}\n{e}");
        }
    }

    #[test]
    fn the_samples_commented_rules_load_once_uncommented_and_check_shows_them() {
        let sample = include_str!("../../config.ini.sample");
        let mut inside = false;
        let text: String = sample
            .lines()
            .map(|line| {
                inside |= line.starts_with("    // \"Rules\"");
                let out = match line.strip_prefix("    // ") {
                    Some(rest) if inside => format!("    {rest}\n"),
                    _ => format!("{line}\n"),
                };
                inside &= !line.starts_with("    // ],");
                out
            })
            .collect();
        let config = Config::from_str(Path::new("config.ini.sample"), &text).expect("valid");
        let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["hls-for-every-inbound", "drop-inbound-on-lost-output"]
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let shown = config.render();
        for line in [
            "Rules[\"hls-for-every-inbound\"].on = inStreamCreated\n",
            "Rules[\"hls-for-every-inbound\"].when.payload.name = matches \"^cam\"\n",
            "Rules[\"hls-for-every-inbound\"].call.params.groupName = \"${payload.name}\"\n",
            "Rules[\"drop-inbound-on-lost-output\"].when.payload.inStreamUniqueId = exists true\n",
            "Rules[\"drop-inbound-on-lost-output\"].call.target = http://127.0.0.1:7777/\n",
        ] {
            assert!(shown.contains(line), "{line}in\n{shown}");
        }
    }

    #[test]
    fn a_call_target_with_credentials_is_redacted_wherever_it_is_shown() {
        let config = load(
            r#"[{ "name": "p", "on": "inStreamCreated",
                  "call": { "command": "version", "target": "http://u:s3cret@10.0.0.9:8888/apiproxy" } }]"#,
        )
        .expect("valid");
        let shown = format!("{}{:?}", config.render(), config.rules);
        assert!(
            shown.contains("Rules[\"p\"].call.target = http://u:***@10.0.0.9:8888/apiproxy/"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        let e = error(
            r#"[{ "name": "p", "on": "inStreamCreated",
                  "call": { "command": "version", "target": "ftp://u:s3cret@10.0.0.9/" } }]"#,
        );
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn a_rule_may_have_s3_settings_of_its_own_checked_like_a_plugins() {
        let config = load(
            r#"[{ "name": "own", "on": "hlsChunkClosed",
                  "upload": { "file": "${payload.file}",
                              "s3": { "aws_access_key": "AK", "aws_secret_key": "s3cret",
                                      "default_bucket": "archive", "region": "eu-west-1" } } }]"#,
        )
        .expect("valid");
        let s3 = config.rules[0].action.s3().expect("an upload");
        assert_eq!(s3.settings_from, None);
        assert_eq!(s3.settings.default_bucket, "archive");
        let shown = config.render();
        for line in [
            "Rules[\"own\"].upload.bucket = none (\"archive\")\n",
            "Rules[\"own\"].upload.s3.aws_secret_key = ***\n",
            "Rules[\"own\"].upload.s3.region = \"eu-west-1\"\n",
        ] {
            assert!(shown.contains(line), "{line}in\n{shown}");
        }
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_error_has(
            r#"[{ "name": "own", "on": "hlsChunkClosed",
                  "upload": { "file": "${payload.file}", "s3": { "default_bucket": "a", "acl": "open" } } }]"#,
            "Rules[\"own\"].upload.s3.acl = \"open\"",
        );
        assert_error_has(
            r#"[{ "name": "own", "on": "hlsChunkClosed",
                  "delete": { "file": "${payload.file}", "s3": { "region": "x" } } }]"#,
            "Rules[\"own\"].delete.bucket = (not set): required, as delete.s3.default_bucket is not set",
        );
    }

    #[test]
    fn templates_split_text_and_fields() {
        let config = load(
            r#"[{ "name": "t", "on": "inStreamCreated",
                  "call": { "command": "pushStream", "params": {
                      "a_uri": "rtmp://${payload.nearIp}:1935/live/${payload.name}",
                      "b_note": "cost $$5 at ${timestamp} for ${type} $x",
                      "c_flag": true } } }]"#,
        )
        .expect("valid");
        let RuleAction::Call { params, .. } = &config.rules[0].action else {
            panic!("a call")
        };
        let field = |k: &str| Piece::Field(FieldPath::Payload(vec![k.to_string()]));
        let text = |t: &str| Piece::Text(t.to_string());
        assert_eq!(
            params[0].1,
            Template(vec![
                text("rtmp://"),
                field("nearIp"),
                text(":1935/live/"),
                field("name")
            ])
        );
        assert_eq!(
            params[1].1,
            Template(vec![
                text("cost $5 at "),
                Piece::Field(FieldPath::Timestamp),
                text(" for "),
                Piece::Field(FieldPath::Type),
                text(" $x"),
            ])
        );
        assert_eq!(params[2].1, Template::literal("1"));
    }
}
