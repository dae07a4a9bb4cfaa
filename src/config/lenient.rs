//! Turns what users actually write into strict JSON, then parses it with serde_json.
//!
//! Real `config.ini` files carry `/* */`, `//` and `#` comments, trailing commas, doc snippets
//! pasted without the outer braces, and one seed snippet that lacks its closing `}`. A
//! token-aware pre-pass repairs these and says so in a warning. It never adds or removes a
//! newline, and it remembers where every output byte came from, so serde_json's errors are
//! reported at the line and column of the user's file.

use super::ConfigError;
use crate::action::PluginId;
use serde_json::Value;
use std::collections::HashMap;

/// Top-level block names; one of these nested deeper means a block above it was not closed.
pub(super) const BLOCKS: [&str; 8] = [
    "Service",
    PluginId::StreamAutoRouter.name(),
    PluginId::StreamRecorder.name(),
    PluginId::StreamLoadBalancer.name(),
    PluginId::AmazonHLSUpload.name(),
    PluginId::AmazonHDSUpload.name(),
    PluginId::AmazonDASHUpload.name(),
    "Rules",
];

/// The parsed document and the repairs made to it.
pub(super) struct Parsed {
    pub value: Value,
    pub warnings: Vec<String>,
}

/// Reads `text` leniently; `file` names it in messages.
pub(super) fn parse(file: &str, text: &str) -> Result<Parsed, ConfigError> {
    let tokens = tokenize(file, text)?;
    let mut repair = Repair::new(file, text);
    repair.run(&tokens)?;
    let value = serde_json::from_str(&repair.out).map_err(|e| {
        let (line, column) = repair.source_position(e.line(), e.column());
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        ConfigError(format!("{file}:{line}:{column}: {message}"))
    })?;
    Ok(Parsed {
        value,
        warnings: repair.warnings,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open(u8),
    Close(u8),
    Colon,
    Comma,
    Str,
    /// Numbers, `true`, `false`, `null` — and anything else serde_json will name.
    Scalar,
    Space,
    Comment,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    line: usize,
}

/// `{` and `[` nested deeper than this are refused while tokenizing: a configuration needs a
/// few levels, and the repair pass (and serde_json) would spend time and memory on each.
const MAX_NESTING: usize = 100;

fn tokenize(file: &str, text: &str) -> Result<Vec<Token>, ConfigError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut depth = 0usize;
    while i < bytes.len() {
        let start = i;
        let start_line = line;
        let kind = match bytes[i] {
            // A byte order mark, as Windows editors write them.
            0xEF if i == 0 && text.starts_with('\u{FEFF}') => {
                i += 3;
                Kind::Comment
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let (l, c) = line_col(text, start);
                    return Err(ConfigError(format!(
                        "{file}:{l}:{c}: nested deeper than {MAX_NESTING} levels of {{ and [ \
                         (no configuration needs more than a few)"
                    )));
                }
                i += 1;
                Kind::Open(bytes[start])
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
                Kind::Close(bytes[start])
            }
            b':' => {
                i += 1;
                Kind::Colon
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => {
                            let (l, c) = line_col(text, start);
                            return Err(ConfigError(format!(
                                "{file}:{l}:{c}: string not closed on its line (a `\"` is missing)"
                            )));
                        }
                        Some(b'\\') => {
                            // An escaped newline is no escape: let the check above report it.
                            i += 1;
                            if bytes.get(i) != Some(&b'\n') {
                                i += 1;
                            }
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                Kind::Str
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |n| i + n);
                Kind::Comment
            }
            b'#' => {
                i = memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |n| i + n);
                Kind::Comment
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let Some(n) = memchr::memmem::find(&bytes[i + 2..], b"*/") else {
                    let (l, c) = line_col(text, start);
                    return Err(ConfigError(format!(
                        "{file}:{l}:{c}: comment `/*` is never closed with `*/`"
                    )));
                };
                i += 2 + n + 2;
                line += bytes[start..i].iter().filter(|&&b| b == b'\n').count();
                Kind::Comment
            }
            b' ' | b'\t' | b'\r' | b'\n' => {
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                Kind::Space
            }
            _ => {
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b'{' | b'}'
                            | b'['
                            | b']'
                            | b':'
                            | b','
                            | b'"'
                            | b'#'
                            | b' '
                            | b'\t'
                            | b'\r'
                            | b'\n'
                    )
                    && !(bytes[i] == b'/' && matches!(bytes.get(i + 1), Some(b'/' | b'*')))
                {
                    i += 1;
                }
                // Never an empty token, whatever the byte: the loop must advance.
                if i == start {
                    i += 1;
                }
                Kind::Scalar
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i.min(bytes.len()),
            line: start_line,
        });
    }
    Ok(tokens)
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |n| n + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In an object, after `{` or `,`.
    Key,
    Colon,
    /// After `:` in an object, or after `[` or `,` in an array.
    Value,
    AfterValue,
}

struct Frame {
    /// `{` or `[`.
    open: u8,
    state: State,
    /// Where it was opened, for messages.
    line: usize,
    /// `StreamLoadBalancer.parameters`, `…destination_ems_apiproxies[1]`; empty for the root.
    name: String,
    /// Supplied because the file has no outer braces: closing it needs no warning.
    synthetic: bool,
    /// Output position of a comma that is trailing if a closer follows.
    pending_comma: Option<usize>,
    last_key: String,
    /// Keys seen so far and their lines, to warn about duplicates (serde_json keeps the last).
    keys: HashMap<String, usize>,
    items: usize,
}

impl Frame {
    fn closer(&self) -> u8 {
        if self.open == b'{' { b'}' } else { b']' }
    }

    fn label(&self) -> String {
        if self.name.is_empty() {
            "the top-level object".to_string()
        } else {
            self.name.clone()
        }
    }

    fn child_name(&self) -> String {
        match (self.open, self.name.is_empty()) {
            (b'{', true) => self.last_key.clone(),
            (b'{', false) => format!("{}.{}", self.name, self.last_key),
            _ => format!("{}[{}]", self.name, self.items),
        }
    }
}

struct Repair<'a> {
    file: &'a str,
    text: &'a str,
    out: String,
    /// For each output byte, the input byte it came from (inserted bytes: where they were put).
    origin: Vec<usize>,
    stack: Vec<Frame>,
    /// Output position just after the last significant token; insertions go here.
    last_end: usize,
    last_line: usize,
    root_closed: bool,
    warnings: Vec<String>,
}

impl<'a> Repair<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Repair {
            file,
            text,
            out: String::with_capacity(text.len() + 16),
            origin: Vec::with_capacity(text.len() + 16),
            stack: Vec::new(),
            last_end: 0,
            last_line: 1,
            root_closed: false,
            warnings: Vec::new(),
        }
    }

    fn run(&mut self, tokens: &[Token]) -> Result<(), ConfigError> {
        let significant: Vec<usize> = (0..tokens.len())
            .filter(|&i| !matches!(tokens[i].kind, Kind::Space | Kind::Comment))
            .collect();
        if significant.is_empty() {
            self.warnings
                .push(format!("{}: no settings in the file", self.file));
            self.out = "{}".to_string();
            self.origin = vec![0, 0];
            return Ok(());
        }
        let first = tokens[significant[0]];
        let bare_members = first.kind == Kind::Str
            && significant
                .get(1)
                .is_some_and(|&i| tokens[i].kind == Kind::Colon);

        let mut next_sig = 0;
        for (i, token) in tokens.iter().enumerate() {
            match token.kind {
                Kind::Space => self.copy(token.start, token.end),
                Kind::Comment => self.blank(token.start, token.end),
                _ => {
                    next_sig += 1;
                    let followed_by_colon = significant
                        .get(next_sig)
                        .is_some_and(|&j| tokens[j].kind == Kind::Colon);
                    if i == significant[0] && bare_members {
                        self.insert("{", token.start);
                        let root = self.frame(b'{', token.line, String::new(), true);
                        self.stack.push(root);
                    }
                    self.significant(token, followed_by_colon)?;
                }
            }
        }
        self.close_at_end();
        Ok(())
    }

    fn frame(&self, open: u8, line: usize, name: String, synthetic: bool) -> Frame {
        Frame {
            open,
            state: if open == b'{' {
                State::Key
            } else {
                State::Value
            },
            line,
            name,
            synthetic,
            pending_comma: None,
            last_key: String::new(),
            keys: HashMap::new(),
            items: 0,
        }
    }

    fn significant(&mut self, token: &Token, followed_by_colon: bool) -> Result<(), ConfigError> {
        let raw = &self.text[token.start..token.end];
        match token.kind {
            Kind::Str | Kind::Scalar | Kind::Open(_) => {
                let key = token.kind == Kind::Str && followed_by_colon;
                if key
                    && self.stack.len() > 1
                    && self.stack[0].open == b'{'
                    && BLOCKS.contains(&&raw[1..raw.len() - 1])
                {
                    self.close_block_before(token, &raw[1..raw.len() - 1]);
                }
                if self.stack.is_empty()
                    && (self.root_closed || token.kind == Kind::Str || token.kind == Kind::Scalar)
                {
                    if self.root_closed {
                        let (l, c) = line_col(self.text, token.start);
                        return Err(ConfigError(format!(
                            "{}:{l}:{c}: text after the end of the top-level object",
                            self.file
                        )));
                    }
                    // Let serde_json name what it found instead of an object.
                    self.emit_token(token);
                    return Ok(());
                }
                self.comma_if_missing(token, key);
                if key {
                    self.begin_key(token, raw);
                    self.emit_token(token);
                } else {
                    let name = self.stack.last().map(Frame::child_name).unwrap_or_default();
                    self.begin_value();
                    self.emit_token(token);
                    if let Kind::Open(open) = token.kind {
                        let child = self.frame(open, token.line, name, false);
                        self.stack.push(child);
                    }
                }
            }
            Kind::Close(close) => {
                let Some(top) = self.stack.last() else {
                    let (l, c) = line_col(self.text, token.start);
                    return Err(ConfigError(format!(
                        "{}:{l}:{c}: `{}` closes nothing",
                        self.file, close as char
                    )));
                };
                if top.closer() != close {
                    let (l, c) = line_col(self.text, token.start);
                    return Err(ConfigError(format!(
                        "{}:{l}:{c}: `{}` does not close the `{}` of {} opened at line {}",
                        self.file,
                        close as char,
                        top.open as char,
                        top.label(),
                        top.line
                    )));
                }
                self.pop();
                self.emit_token(token);
            }
            Kind::Colon => {
                if let Some(top) = self.stack.last_mut()
                    && top.open == b'{'
                    && top.state == State::Colon
                {
                    top.state = State::Value;
                }
                self.emit_token(token);
            }
            Kind::Comma => {
                let at = self.out.len();
                let mut stray = false;
                if let Some(top) = self.stack.last_mut() {
                    match top.state {
                        State::AfterValue => {
                            top.state = if top.open == b'{' {
                                State::Key
                            } else {
                                State::Value
                            };
                            top.pending_comma = Some(at);
                        }
                        State::Key => stray = true,
                        State::Value if top.open == b'[' => stray = true,
                        _ => {}
                    }
                }
                if stray {
                    self.warnings
                        .push(format!("{}:{}: extra comma ignored", self.file, token.line));
                    self.blank(token.start, token.end);
                } else {
                    self.emit_token(token);
                }
            }
            Kind::Space | Kind::Comment => {}
        }
        Ok(())
    }

    /// A value or key on a new line right after a value: the comma between them is missing.
    fn comma_if_missing(&mut self, token: &Token, key: bool) {
        let Some(top) = self.stack.last() else {
            return;
        };
        let fits = if top.open == b'{' { key } else { !key };
        if top.state == State::AfterValue && fits && token.line > self.last_line {
            let what = if key {
                format!("before key {}", &self.text[token.start..token.end])
            } else {
                "before this value".to_string()
            };
            self.warnings.push(format!(
                "{}:{}: missing comma {what}: added one",
                self.file, token.line
            ));
            self.insert_at_last(",", token.start);
            if let Some(top) = self.stack.last_mut() {
                top.state = if top.open == b'{' {
                    State::Key
                } else {
                    State::Value
                };
            }
        }
    }

    /// A known block name as a key below the top level: the blocks above it were not closed.
    fn close_block_before(&mut self, token: &Token, block: &str) {
        let mut outer = String::new();
        let mut closers = String::new();
        while self.stack.len() > 1 {
            if let Some(top) = self.stack.last() {
                outer = format!("{} (opened at line {})", top.label(), top.line);
                let closer = (top.closer() as char).to_string();
                closers.push_str(&closer);
                self.pop();
                self.insert_at_last(&closer, token.start);
            }
        }
        let mut message = format!(
            "{}:{}: block {block} starts inside {outer}, which is not closed: added `{closers}`",
            self.file, token.line,
        );
        if let Some(root) = self.stack.last_mut()
            && root.state == State::AfterValue
        {
            root.state = State::Key;
            message.push_str(" and the missing comma");
            self.insert_at_last(",", token.start);
        }
        message.push_str(" before it");
        self.warnings.push(message);
    }

    fn close_at_end(&mut self) {
        let end = self.text.len();
        let mut unclosed = Vec::new();
        while let Some(top) = self.stack.last() {
            if !top.synthetic {
                unclosed.push(format!("{} (opened at line {})", top.label(), top.line));
            }
            let closer = (top.closer() as char).to_string();
            self.pop();
            self.insert_at_last(&closer, end);
        }
        if !unclosed.is_empty() {
            self.warnings.push(format!(
                "{}:{}: end of file with {} still open: closed it there",
                self.file,
                self.last_line,
                unclosed.join(", ")
            ));
        }
    }

    /// Closes the innermost container, dropping a trailing comma in it.
    fn pop(&mut self) {
        if let Some(frame) = self.stack.pop() {
            if let Some(at) = frame.pending_comma
                && matches!(frame.state, State::Key | State::Value)
            {
                self.out.replace_range(at..at + 1, " ");
            }
            if self.stack.is_empty() {
                self.root_closed = true;
            }
        }
    }

    fn begin_key(&mut self, token: &Token, raw: &str) {
        let file = self.file;
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        if top.open != b'{' || top.state != State::Key {
            return;
        }
        let key = raw[1..raw.len() - 1].to_string();
        if let Some(first) = top.keys.insert(key.clone(), token.line) {
            let path = if top.name.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", top.name)
            };
            self.warnings.push(format!(
                "{file}:{}: {path} is set twice (also at line {first}): the later one is used",
                token.line
            ));
        }
        top.last_key = key;
        top.state = State::Colon;
        top.pending_comma = None;
    }

    fn begin_value(&mut self) {
        if let Some(top) = self.stack.last_mut()
            && top.state == State::Value
        {
            top.state = State::AfterValue;
            top.pending_comma = None;
            if top.open == b'[' {
                top.items += 1;
            }
        }
    }

    fn emit_token(&mut self, token: &Token) {
        if token.kind == Kind::Str {
            self.copy_string(token);
        } else {
            self.copy(token.start, token.end);
        }
        self.last_end = self.out.len();
        self.last_line = token.line;
    }

    /// Copies a string token, turning backslashes that start no JSON escape (`C:\media`)
    /// into literal backslashes. The warning does not quote the string: it may be a secret.
    fn copy_string(&mut self, token: &Token) {
        let bytes = self.text.as_bytes();
        let mut i = token.start;
        let mut repaired = false;
        let mut run = i;
        while i < token.end {
            if bytes[i] == b'\\' {
                let next = bytes.get(i + 1).copied().unwrap_or(b' ');
                let valid = match next {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => true,
                    b'u' => {
                        bytes.len() >= i + 6
                            && bytes[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit)
                    }
                    _ => false,
                };
                if !valid {
                    self.copy(run, i);
                    self.push_mapped("\\", i);
                    run = i;
                    repaired = true;
                    i += 1;
                } else {
                    i += 2;
                }
            } else {
                i += 1;
            }
        }
        self.copy(run, token.end);
        if repaired {
            self.warnings.push(format!(
                "{}:{}: a backslash that starts no JSON escape was read as a literal backslash \
                 (write \\\\ for a backslash)",
                self.file, token.line
            ));
        }
    }

    fn copy(&mut self, start: usize, end: usize) {
        self.out.push_str(&self.text[start..end]);
        self.origin.extend(start..end);
    }

    /// Replaces a comment or stray comma by spaces, keeping its newlines.
    fn blank(&mut self, start: usize, end: usize) {
        for (i, &b) in self.text.as_bytes()[start..end].iter().enumerate() {
            self.out.push(if b == b'\n' { '\n' } else { ' ' });
            self.origin.push(start + i);
        }
    }

    fn push_mapped(&mut self, s: &str, origin: usize) {
        self.out.push_str(s);
        self.origin.extend(std::iter::repeat_n(origin, s.len()));
    }

    /// Inserts `s` at the current end of the output.
    fn insert(&mut self, s: &str, origin: usize) {
        self.push_mapped(s, origin);
        self.last_end = self.out.len();
    }

    /// Inserts `s` right after the last significant token (only blanks follow it), so that a
    /// supplied `}` or `,` sits on the line of the text it completes.
    fn insert_at_last(&mut self, s: &str, origin: usize) {
        let at = self.last_end;
        self.out.insert_str(at, s);
        self.origin
            .splice(at..at, std::iter::repeat_n(origin, s.len()));
        self.last_end = at + s.len();
    }

    /// Maps serde_json's 1-based line and byte column in the output back to the user's text.
    fn source_position(&self, line: usize, column: usize) -> (usize, usize) {
        if line == 0 {
            return (1, 1);
        }
        let line_start = if line == 1 {
            0
        } else {
            memchr::memchr_iter(b'\n', self.out.as_bytes())
                .nth(line - 2)
                .map_or(self.out.len(), |n| n + 1)
        };
        let at = line_start + column.saturating_sub(1);
        let source = self.origin.get(at).copied().unwrap_or(self.text.len());
        line_col(self.text, source)
    }
}
