//! Which streams are alive at the end of the window, learnt in a first pass, and which
//! control calls were issued (see [`Backfill`]).

use super::window::event_time;
use super::{Options, Skip};
use crate::action::{Action, PlannedAction, StreamCheck, TimerGuard};
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
    /// Hashes of the control calls issued (target, command, parameters, guard): each once.
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
    /// as alive: it began before the window and nothing says it ended.
    ///
    /// Two timer removals are about a recording that ended, and are issued whatever the window
    /// says, each only while EMS lists no stream with its id (see [`StreamCheck::NotListed`]):
    /// a closed recording's, and a rotation's whose recording ended in the window (its timer
    /// fired, then it closed), which gets that check here in place of none. Left out, the
    /// rotation's would leave its timer armed (the recording's close asks nothing after a
    /// rotation: live, the rotation removed it); unchecked, it could remove a live recording's
    /// timer after an EMS restart. Its shutdown stays left out: its stream ended.
    pub(super) fn issue(&mut self, action: &mut PlannedAction) -> Option<Skip> {
        let PlannedAction {
            stream,
            stream_id,
            action:
                Action::EmsCall {
                    target,
                    command,
                    params,
                    only_if_armed,
                },
            ..
        } = action
        else {
            return None;
        };
        let ended = stream
            .as_ref()
            .is_some_and(|s| self.alive.get(&self.key(s)) == Some(&false))
            || stream_id.is_some_and(|id| self.alive_ids.get(&id) == Some(&false));
        if ended {
            match only_if_armed {
                Some(guard) if guard.stream == StreamCheck::NotListed => {}
                Some(guard) if is_rotation_removal(command, guard) => {
                    guard.stream = StreamCheck::NotListed;
                }
                _ => return Some(Skip::StreamEnded),
            }
        }
        // The guard is part of the call: it decides whether the call goes (after an EMS
        // restart in the window the same shutdown of an id reused is guarded by another
        // timer, and only one of them can be armed now), and a guard without a timerId names
        // the timer removed. It is the guard the call goes with: a rotation's removal given
        // the close's check above is one call however often its timer fired.
        let hash = self.key((&target.base, &*command, &params.0, &*only_if_armed));
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

/// A rotation's timer removal: a `removeTimer` guarded by its timer alone.
fn is_rotation_removal(command: &str, guard: &TimerGuard) -> bool {
    command.eq_ignore_ascii_case("removeTimer")
        && guard.timer_id.is_some()
        && guard.stream == StreamCheck::Unchecked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ApiTarget, Params, PluginId};

    fn call(command: &str, params: Params, guard: TimerGuard) -> PlannedAction {
        PlannedAction {
            plugin: PluginId::StreamRecorder,
            lane: "cam1".to_string(),
            stream: Some("cam1".to_string()),
            stream_id: Some(guard.unique_id),
            action: Action::EmsCall {
                target: ApiTarget::plain("http://127.0.0.1:7777/"),
                command: command.to_string(),
                params,
                only_if_armed: Some(guard),
            },
        }
    }

    fn shutdown(timer_id: u64, unique_id: u64) -> PlannedAction {
        let params = Params::new()
            .with("id", unique_id.to_string())
            .with_bool("permanently", false);
        let guard = TimerGuard::rotation(timer_id, unique_id, StreamCheck::OurRecording);
        call("shutdownStream", params, guard)
    }

    fn remove_timer(timer_id: u64, unique_id: u64) -> PlannedAction {
        let params = Params::new().with("id", timer_id.to_string());
        let guard = TimerGuard::rotation(timer_id, unique_id, StreamCheck::Unchecked);
        call("removeTimer", params, guard)
    }

    fn guard(action: &PlannedAction) -> Option<TimerGuard> {
        let Action::EmsCall { only_if_armed, .. } = &action.action else {
            panic!("an EMS call");
        };
        *only_if_armed
    }

    /// EMS restarted in the window and handed recording id 15 out again: the rotation of the
    /// new recording (timer 1) is another call than the old one's (timer 4), which goes only
    /// while timer 4 is armed, so it is not dropped as a repeat. The same timer firing twice
    /// is one call.
    #[test]
    fn rotations_guarded_by_different_timers_are_different_calls() {
        let mut backfill = Backfill::default();
        assert_eq!(backfill.issue(&mut shutdown(4, 15)), None);
        assert_eq!(backfill.issue(&mut shutdown(1, 15)), None);
        assert_eq!(backfill.issue(&mut shutdown(1, 15)), Some(Skip::Repeated));
    }

    /// Recording 15 rotated, then closed, in the window: its shutdown is left out, its timer
    /// removal goes, only while EMS lists no stream 15, once however often the timer fired.
    /// A recording alive at the end of the window keeps its rotation as it was asked for.
    #[test]
    fn a_rotation_of_a_recording_that_ended_removes_its_timer_while_its_id_is_not_listed() {
        let mut backfill = Backfill::default();
        backfill.alive_ids.insert(15, false);
        backfill.alive_ids.insert(16, true);

        assert_eq!(
            backfill.issue(&mut shutdown(4, 15)),
            Some(Skip::StreamEnded)
        );
        let mut removal = remove_timer(4, 15);
        assert_eq!(backfill.issue(&mut removal), None);
        let closed = TimerGuard {
            timer_id: Some(4),
            unique_id: 15,
            stream: StreamCheck::NotListed,
        };
        assert_eq!(guard(&removal), Some(closed));
        assert_eq!(
            removal.action.to_string(),
            "ems http://127.0.0.1:7777/removeTimer id=4 [only while timer 4 armed for \
             _uniqueId 15 and EMS lists no stream 15]"
        );
        assert_eq!(
            backfill.issue(&mut remove_timer(4, 15)),
            Some(Skip::Repeated)
        );

        let mut alive = remove_timer(5, 16);
        assert_eq!(backfill.issue(&mut shutdown(5, 16)), None);
        assert_eq!(backfill.issue(&mut alive), None);
        assert_eq!(
            guard(&alive),
            Some(TimerGuard::rotation(5, 16, StreamCheck::Unchecked))
        );

        // Only a removeTimer becomes one: any other call guarded by its timer alone is left
        // out, as every call about a stream that ended.
        let mut other = call(
            "shutdownStream",
            Params::new().with("id", "15"),
            TimerGuard::rotation(4, 15, StreamCheck::Unchecked),
        );
        assert_eq!(backfill.issue(&mut other), Some(Skip::StreamEnded));
    }

    /// A closed recording's own removal (no timer id) goes too, unchanged, and is another
    /// call than the rotation's.
    #[test]
    fn a_closed_recordings_removal_is_issued_unchanged() {
        let mut backfill = Backfill::default();
        backfill.alive_ids.insert(15, false);
        let mut removal = call("removeTimer", Params::new(), TimerGuard::closed(15));
        assert_eq!(backfill.issue(&mut removal), None);
        assert_eq!(guard(&removal), Some(TimerGuard::closed(15)));
        assert_eq!(backfill.issue(&mut remove_timer(4, 15)), None);
        assert_eq!(
            backfill.issue(&mut call(
                "removeTimer",
                Params::new(),
                TimerGuard::closed(15)
            )),
            Some(Skip::Repeated)
        );
    }
}
