//! Which streams are alive at the end of the window, learnt in a first pass, and which
//! control calls were issued (see [`Backfill`]).

use super::window::event_time;
use super::{Options, Skip};
use crate::action::{Action, PlannedAction, StreamCheck};
use crate::event::Event;
use crate::parse::{FileParser, Format, OtherPayloads, Parsed, json};
use crate::source::read::{Item, for_each_line_counted};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

/// Which streams are alive at the end of the window, and which control calls were issued.
#[derive(Default)]
pub(super) struct Backfill {
    /// Stream name (its [`Backfill::key`]) → alive after the last event about it. Names are
    /// a publisher's to choose and a window may hold millions: 16 bytes each, whatever their
    /// length, rather than the name.
    alive: HashMap<u128, bool>,
    /// Out-stream uniqueId → alive (recordings, which timers and shutdowns refer to).
    alive_ids: HashMap<u64, bool>,
    /// Hashes of the control calls issued (target, command, parameters): each once.
    issued: HashSet<u128>,
    hashers: (RandomState, RandomState),
}

/// The events that start or end a stream: all the first pass needs.
const LIFECYCLE: [&str; 4] = [
    "inStreamCreated",
    "inStreamClosed",
    "outStreamCreated",
    "outStreamClosed",
];

impl Backfill {
    /// The first pass: reads the files for stream lifecycle events up to the end of the
    /// window. JSON lines whose type can be read off their end without parsing are skipped
    /// unless they are such events. A file that cannot be read is left to the second pass,
    /// which reports it.
    pub(super) fn scan(files: &[(PathBuf, u64)], options: &Options) -> Backfill {
        let mut backfill = Backfill::default();
        let mut parsed = Vec::new();
        let local = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        let until = options.window.until;
        let ignored = AtomicU64::new(0);
        for (path, len) in files {
            // Only lifecycle events count here: no other payload is read.
            let mut parser = FileParser::with_payloads(options.format, OtherPayloads::none());
            let stop = options.stop.as_deref();
            let _ = for_each_line_counted(path, options.max_line, *len, &ignored, stop, |item| {
                let Item::Line(line) = item else { return };
                let skip = parser.format() == Some(Format::Json)
                    && json::line_type(line.bytes).is_some_and(|t| !LIFECYCLE.contains(&t));
                if !skip {
                    parser.push(line, &mut parsed);
                    backfill.observe_all(&mut parsed, until, &local);
                }
            });
            parser.finish(&mut parsed);
            backfill.observe_all(&mut parsed, until, &local);
        }
        backfill
    }

    fn observe_all(
        &mut self,
        parsed: &mut Vec<Parsed>,
        until: Option<i64>,
        local: &jiff::tz::TimeZone,
    ) {
        for p in parsed.drain(..) {
            if let Parsed::Event { envelope, .. } = p {
                let after = until
                    .is_some_and(|until| event_time(&envelope, local).is_some_and(|t| t > until));
                if !after {
                    self.observe(&envelope.event);
                }
            }
        }
    }

    fn observe(&mut self, event: &Event) {
        match event {
            Event::InStreamCreated(s) => {
                self.alive.insert(self.key(&s.name), true);
            }
            Event::InStreamClosed(s) => {
                self.alive.insert(self.key(&s.name), false);
            }
            Event::OutStreamCreated(s) => {
                if let Some(id) = s.unique_id {
                    self.alive_ids.insert(id, true);
                }
            }
            Event::OutStreamClosed(s) => {
                if let Some(id) = s.unique_id {
                    self.alive_ids.insert(id, false);
                }
            }
            _ => {}
        }
    }

    /// Why not to issue this control action: its stream (or out-stream id) ended in the window,
    /// or the same call was issued before. A stream the window never saw start or end counts
    /// as alive: it began before the window and nothing says it ended. A closed recording's
    /// timer removal is about a stream that ended, and goes only while EMS lists no stream
    /// with its id (see [`StreamCheck::NotListed`]): it is issued whatever the window says.
    pub(super) fn issue(&mut self, action: &PlannedAction) -> Option<Skip> {
        let Action::EmsCall {
            target,
            command,
            params,
            only_if_armed,
        } = &action.action
        else {
            return None;
        };
        let of_closed = only_if_armed.is_some_and(|g| g.stream == StreamCheck::NotListed);
        let ended = action
            .stream
            .as_ref()
            .is_some_and(|s| self.alive.get(&self.key(s)) == Some(&false))
            || action
                .stream_id
                .is_some_and(|id| self.alive_ids.get(&id) == Some(&false));
        if ended && !of_closed {
            return Some(Skip::StreamEnded);
        }
        // A rotation's guard is left out: it decides whether the call goes, not what it does.
        // A guard without a timerId names the timer removed, so its id is part of the call.
        let resolved = only_if_armed
            .filter(|g| g.timer_id.is_none())
            .map(|g| g.unique_id);
        let hash = self.key((&target.base, command, &params.0, resolved));
        (!self.issued.insert(hash)).then_some(Skip::Repeated)
    }

    /// Two independent 64-bit hashes of `value`, with keys drawn for this replay: a collision,
    /// which would take one stream for another or drop a call, is out of reach for any real
    /// window, and no name can be chosen ahead to make one.
    fn key(&self, value: impl std::hash::Hash + Copy) -> u128 {
        (u128::from(self.hashers.0.hash_one(value)) << 64)
            | u128::from(self.hashers.1.hash_one(value))
    }
}
