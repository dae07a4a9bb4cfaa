//! StreamRecorder: records every inbound stream to mp4 and rotates the file every
//! `period_time` seconds with an EMS timer that shuts the recording down (keepAlive restarts it
//! into the next numbered file). A rotation's calls go out only while its timer is still armed
//! for its recording (see [`TimerGuard`]), as the original asked `listTimers` first, and its
//! shutdown only while that stream is still a recording of ours. A recording that closes
//! without a rotation (its publisher left) has its timer removed, while EMS lists no stream
//! with its id: armed, it would stay until it fired, one per reconnect. (A replay also removes,
//! with that check, the timer of a recording that rotated and then closed in its window,
//! whose rotation it otherwise leaves out.)

use super::{Plugin, Refusal, names, with_marker};
use crate::action::{Action, ApiTarget, Params, PlannedAction, PluginId, StreamCheck, TimerGuard};
use crate::config::{Config, RecorderParams};
use crate::event::{Event, StreamInfo, TimerInfo};
use std::collections::HashMap;

/// The custom key that marks a recording as this plugin's (the original's name, kept so that
/// recordings it started are recognised too). The rotation's `listStreams` check reads it too.
pub(crate) const LOCAL_STREAM_NAME_KEY: &str = "_localStreamName";
const UNIQUE_ID_KEY: &str = "_uniqueId";

/// Recordings whose stream name is kept for their timers' lane. A recording starts again
/// under a new id at every rotation, so the smallest id is the oldest entry, the one whose
/// close was most likely lost; one left out rotates all the same, in a lane of its own.
const RECORDINGS_KEPT: usize = 4096;
/// Longer names are not kept (no file system takes one as a file name): the bound on
/// [`RECORDINGS_KEPT`] entries is one on bytes too.
const NAME_KEPT_BYTES: usize = 1024;

pub struct StreamRecorder {
    params: RecorderParams,
    ems: ApiTarget,
    /// Recording out-stream `uniqueId` → what is known of it, so a timer's shutdown runs in
    /// the stream's lane. Entries leave when the recording closes, all of them when EMS starts
    /// again (its ids start again, and the closes of a crash never come), and the oldest
    /// past [`RECORDINGS_KEPT`].
    recordings: HashMap<String, Recording>,
}

/// A recording the recorder armed a timer for.
struct Recording {
    name: String,
    /// Its timer fired: the rotation removes the timer, so its close need not. (A replay
    /// whose window saw it close sends that removal with the close's check; see
    /// `replay::alive`.)
    rotated: bool,
}

impl StreamRecorder {
    pub fn new(config: &Config) -> StreamRecorder {
        StreamRecorder {
            params: config.recorder.params.clone(),
            ems: config.service.ems_api.clone(),
            recordings: HashMap::new(),
        }
    }

    fn call(
        &self,
        lane: String,
        stream: Option<String>,
        stream_id: Option<u64>,
        command: &str,
        params: Params,
        only_if_armed: Option<TimerGuard>,
    ) -> PlannedAction {
        PlannedAction {
            plugin: PluginId::StreamRecorder,
            lane,
            stream,
            stream_id,
            action: Action::EmsCall {
                target: self.ems.clone(),
                command: command.to_string(),
                params,
                only_if_armed,
            },
        }
    }

    fn record(&self, stream: &StreamInfo) -> Result<PlannedAction, Refusal> {
        if self.params.file_location.trim().is_empty() {
            return Err(Refusal {
                plugin: PluginId::StreamRecorder,
                reason: format!("not recording {}: file_location is empty", stream.name),
            });
        }
        // The name becomes part of pathToFile on the EMS host.
        names::check(PluginId::StreamRecorder, &stream.name)?;
        let params = Params::new()
            .with("localStreamName", &stream.name)
            .with(
                "pathToFile",
                path_to_file(&self.params.file_location, &stream.name),
            )
            .with("type", "mp4")
            .with_bool("overwrite", false)
            .with_bool("keepAlive", true)
            .with(LOCAL_STREAM_NAME_KEY, &stream.name);
        Ok(self.call(
            stream.name.clone(),
            Some(stream.name.clone()),
            None,
            "record",
            with_marker(params),
            None,
        ))
    }

    fn arm_timer(&mut self, stream: &StreamInfo) -> Result<Option<PlannedAction>, Refusal> {
        if !is_own_recording(stream) {
            return Ok(None);
        }
        let Some(unique_id) = stream.unique_id else {
            return Err(Refusal {
                plugin: PluginId::StreamRecorder,
                reason: format!(
                    "recording of {} has no uniqueId: it cannot be rotated",
                    stream.name
                ),
            });
        };
        let stream_id = Some(unique_id);
        let unique_id = unique_id.to_string();
        self.keep_recording(&unique_id, &stream.name);
        let params = Params::new()
            .with("value", self.params.period_time.to_string())
            .with(UNIQUE_ID_KEY, unique_id);
        Ok(Some(self.call(
            stream.name.clone(),
            Some(stream.name.clone()),
            stream_id,
            "setTimer",
            params,
            None,
        )))
    }

    fn keep_recording(&mut self, unique_id: &str, name: &str) {
        if name.len() > NAME_KEPT_BYTES {
            self.recordings.remove(unique_id);
            return;
        }
        if self.recordings.len() >= RECORDINGS_KEPT && !self.recordings.contains_key(unique_id) {
            let oldest = self
                .recordings
                .keys()
                .min_by_key(|id| id.parse::<u64>().unwrap_or(0))
                .cloned();
            if let Some(oldest) = oldest {
                log::info!(
                    "StreamRecorder: {RECORDINGS_KEPT} recordings known without their close; \
                     forgetting the oldest (uniqueId {oldest}): its timer rotates it in a lane \
                     of its own"
                );
                self.recordings.remove(&oldest);
            }
        }
        self.recordings.insert(
            unique_id.to_string(),
            Recording {
                name: name.to_string(),
                rotated: false,
            },
        );
    }

    fn rotate(&mut self, timer: &TimerInfo, out: &mut Vec<PlannedAction>) {
        // The recorder arms its timers with a stream's numeric uniqueId (EMS echoes it back
        // as a string): anything else is not its timer, and never becomes a parameter.
        let Some(id) = timer.custom.get_u64(UNIQUE_ID_KEY) else {
            return;
        };
        let Some(timer_id) = timer.timer_id else {
            return;
        };
        let unique_id = id.to_string();
        // The name is kept until the recording closes: a timer that fires again before the
        // rotation shows up still belongs to the same stream (and its lane).
        let (lane, stream) = match self.recordings.get_mut(&unique_id) {
            Some(recording) => {
                recording.rotated = true;
                (recording.name.clone(), Some(recording.name.clone()))
            }
            None => (format!("timer:{unique_id}"), None),
        };
        let stream_id = Some(id);
        // Both only while EMS still holds this timer for this recording: after an EMS restart
        // the same numbers may be another stream and another recording's timer. The shutdown
        // goes first, so that the timer it is checked by is still there for the removal.
        // The shutdown also only while the stream is our recording: a timer armed after a
        // restart for an id read from before it names whatever stream has the id now; that
        // timer is still ours, and is removed.
        let timer_guard = TimerGuard::rotation(timer_id, id, StreamCheck::Unchecked);
        let shutdown_guard = TimerGuard::rotation(timer_id, id, StreamCheck::OurRecording);
        out.push(
            self.call(
                lane.clone(),
                stream.clone(),
                stream_id,
                "shutdownStream",
                Params::new()
                    .with("id", unique_id)
                    .with_bool("permanently", false),
                Some(shutdown_guard),
            ),
        );
        out.push(self.call(
            lane,
            stream,
            stream_id,
            "removeTimer",
            Params::new().with("id", timer_id.to_string()),
            Some(timer_guard),
        ));
    }

    /// The removal of a closed recording's timer: EMS's timer armed with `_uniqueId` = its
    /// id, found by the executor (the recorder never sees the id `setTimer` was given), and
    /// removed only while EMS lists no stream with that id: a close acted on after an EMS
    /// restart may name an id that is a live recording's again, with its own timer. None
    /// when it is not a recording of ours, or when its rotation removes its timer.
    fn remove_timer_of_closed(&mut self, stream: &StreamInfo) -> Option<PlannedAction> {
        let id = stream.unique_id?;
        let unique_id = id.to_string();
        let known = self.recordings.remove(&unique_id);
        let lane = match &known {
            Some(Recording { rotated: true, .. }) => return None,
            Some(Recording { name, .. }) => name.clone(),
            None if is_own_recording(stream) => format!("timer:{unique_id}"),
            None => return None,
        };
        // Its rotation's lane: after a timer that fired, the removal follows the rotation.
        Some(self.call(
            lane,
            Some(stream.name.clone()),
            Some(id),
            "removeTimer",
            Params::new(),
            Some(TimerGuard::closed(id)),
        ))
    }
}

/// An out-stream is a recording the recorder made when its `recordSettings` carry
/// `_localStreamName` equal to its name.
fn is_own_recording(stream: &StreamInfo) -> bool {
    stream
        .record_settings
        .as_ref()
        .and_then(|settings| settings.get_str(LOCAL_STREAM_NAME_KEY))
        .is_some_and(|name| name.trim() == stream.name.trim())
}

impl Plugin for StreamRecorder {
    fn id(&self) -> PluginId {
        PluginId::StreamRecorder
    }

    fn handle(&mut self, event: &Event, out: &mut Vec<PlannedAction>) -> Result<(), Refusal> {
        match event {
            Event::InStreamCreated(stream) => out.push(self.record(stream)?),
            Event::OutStreamCreated(stream) => out.extend(self.arm_timer(stream)?),
            Event::OutStreamClosed(stream) => out.extend(self.remove_timer_of_closed(stream)),
            Event::TimerTriggered(timer) => self.rotate(timer, out),
            // Every stream and id of the EMS before is gone, closed or not.
            event if super::is_server_started(event) => self.recordings.clear(),
            _ => {}
        }
        Ok(())
    }
}

/// `file_location` joined with the stream name using the directory's own separator (a
/// Windows directory written with `\` only keeps `\`).
fn path_to_file(file_location: &str, name: &str) -> String {
    let location = file_location.trim();
    let separator = if location.contains('\\') && !location.contains('/') {
        '\\'
    } else {
        '/'
    };
    if location.ends_with(separator) {
        format!("{location}{name}")
    } else {
        format!("{location}{separator}{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{config, ems_calls, event};
    use serde_json::json;

    fn recorder(file_location: &str) -> StreamRecorder {
        let mut config = config();
        config.recorder.enabled = true;
        config.recorder.params = RecorderParams {
            file_location: file_location.to_string(),
            period_time: 600,
        };
        StreamRecorder::new(&config)
    }

    fn run(plugin: &mut StreamRecorder, event: &Event) -> Vec<PlannedAction> {
        let mut out = Vec::new();
        plugin
            .handle(event, &mut out)
            .expect("these events are never refused");
        out
    }

    fn record_out_stream(name: &str, unique_id: u64, local_name: &str) -> Event {
        event(
            "outStreamCreated",
            json!({"name": name, "uniqueId": unique_id, "type": "OFMP4",
                   "recordSettings": {"localStreamName": name, "_localStreamName": local_name,
                                      "_emstail": "1"}}),
        )
    }

    #[test]
    fn in_stream_created_records_with_exact_params() {
        let mut plugin = recorder("/var/media");
        let out = run(
            &mut plugin,
            &event("inStreamCreated", json!({"name": "cam1", "uniqueId": 3})),
        );
        assert_eq!(
            ems_calls(&out),
            vec![(
                "record".to_string(),
                "localStreamName=cam1 pathToFile=/var/media/cam1 type=mp4 overwrite=0 \
                 keepAlive=1 _localStreamName=cam1 _emstail=1"
                    .to_string()
            )]
        );
        assert_eq!(out[0].plugin, PluginId::StreamRecorder);
        assert_eq!(out[0].lane, "cam1");
        assert_eq!(out[0].stream.as_deref(), Some("cam1"));
        let Action::EmsCall { target, .. } = &out[0].action else {
            panic!("record is an EMS call");
        };
        assert_eq!(target.base, "http://127.0.0.1:7777/");
    }

    #[test]
    fn streams_emstail_pulled_are_recorded_too() {
        let mut plugin = recorder("/var/media");
        let out = run(
            &mut plugin,
            &event(
                "inStreamCreated",
                json!({"name": "cam1", "pullSettings": {"_emstail": "1"}}),
            ),
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn path_to_file_uses_the_locations_separator() {
        assert_eq!(
            path_to_file(r"C:\EvoStream\media", "s"),
            r"C:\EvoStream\media\s"
        );
        assert_eq!(
            path_to_file(r"C:\EvoStream\media\", "s"),
            r"C:\EvoStream\media\s"
        );
        assert_eq!(
            path_to_file("C:/EvoStream/media", "s"),
            "C:/EvoStream/media/s"
        );
        assert_eq!(path_to_file("/var/media/", "s"), "/var/media/s");
        assert_eq!(path_to_file(r"/mnt/odd\dir", "s"), r"/mnt/odd\dir/s");
    }

    #[test]
    fn windows_file_location_reaches_the_record_call() {
        let mut plugin = recorder(r"C:\EvoStream\media");
        let out = run(
            &mut plugin,
            &event("inStreamCreated", json!({"name": "cam1"})),
        );
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("record is an EMS call");
        };
        assert_eq!(params.get("pathToFile"), Some(r"C:\EvoStream\media\cam1"));
    }

    #[test]
    fn empty_file_location_is_refused_not_recorded() {
        let mut plugin = recorder("");
        let mut out = Vec::new();
        let refusal = plugin
            .handle(&event("inStreamCreated", json!({"name": "cam1"})), &mut out)
            .unwrap_err();
        assert!(refusal.reason.contains("file_location"), "{refusal}");
        assert!(out.is_empty());
    }

    #[test]
    fn own_recording_arms_a_timer() {
        let mut plugin = recorder("/var/media");
        let out = run(&mut plugin, &record_out_stream("cam1", 15, "cam1"));
        assert_eq!(
            ems_calls(&out),
            vec![("setTimer".to_string(), "value=600 _uniqueId=15".to_string())]
        );
        assert_eq!(out[0].lane, "cam1");
    }

    #[test]
    fn local_stream_name_is_compared_loosely() {
        let mut plugin = recorder("/var/media");
        let numeric = event(
            "outStreamCreated",
            json!({"name": "42", "uniqueId": "7", "recordSettings": {"_localStreamName": 42}}),
        );
        assert_eq!(ems_calls(&run(&mut plugin, &numeric))[0].0, "setTimer");
    }

    #[test]
    fn other_out_streams_are_never_touched() {
        let mut plugin = recorder("/var/media");
        let foreign_record = record_out_stream("cam1", 15, "cam2");
        assert!(run(&mut plugin, &foreign_record).is_empty());
        let record_without_marker = event(
            "outStreamCreated",
            json!({"name": "cam1", "uniqueId": 15, "recordSettings": {"localStreamName": "cam1"}}),
        );
        assert!(run(&mut plugin, &record_without_marker).is_empty());
    }

    #[test]
    fn out_stream_without_record_settings_is_ignored_without_panic() {
        let mut plugin = recorder("/var/media");
        let player = event(
            "outStreamCreated",
            json!({"name": "cam1", "uniqueId": 20, "type": "ONR"}),
        );
        assert!(run(&mut plugin, &player).is_empty());
        let odd = event(
            "outStreamCreated",
            json!({"name": "cam1", "recordSettings": "not an object"}),
        );
        assert!(run(&mut plugin, &odd).is_empty());
    }

    fn guard(action: &PlannedAction) -> Option<TimerGuard> {
        let Action::EmsCall { only_if_armed, .. } = &action.action else {
            panic!("the recorder plans EMS calls only");
        };
        *only_if_armed
    }

    /// The shutdown first, so that the timer both are checked by is still there for the
    /// removal; both only while that timer is armed for that recording, and the shutdown
    /// only while that stream is our recording.
    #[test]
    fn timer_triggered_shuts_the_recording_down_then_removes_the_timer_both_if_armed() {
        let mut plugin = recorder("/var/media");
        run(&mut plugin, &record_out_stream("cam1", 15, "cam1"));
        let out = run(
            &mut plugin,
            &event(
                "timerTriggered",
                json!({"timerId": 4, "triggerCount": 1, "value": 600, "_uniqueId": "15"}),
            ),
        );
        assert_eq!(
            ems_calls(&out),
            vec![
                (
                    "shutdownStream".to_string(),
                    "id=15 permanently=0".to_string()
                ),
                ("removeTimer".to_string(), "id=4".to_string()),
            ]
        );
        assert!(out.iter().all(|a| a.lane == "cam1"));
        assert!(out.iter().all(|a| a.stream.as_deref() == Some("cam1")));
        let armed = TimerGuard::rotation(4, 15, StreamCheck::Unchecked);
        let recording = TimerGuard::rotation(4, 15, StreamCheck::OurRecording);
        assert_eq!(guard(&out[0]), Some(recording));
        assert_eq!(guard(&out[1]), Some(armed));
        assert_eq!(
            out[0].action.to_string(),
            "ems http://127.0.0.1:7777/shutdownStream id=15 permanently=0 \
             [only while timer 4 armed for _uniqueId 15 and stream 15 is our recording]"
        );
        assert_eq!(
            out[1].action.to_string(),
            "ems http://127.0.0.1:7777/removeTimer id=4 [only while timer 4 armed for _uniqueId 15]"
        );
    }

    #[test]
    fn only_a_rotation_is_guarded() {
        let mut plugin = recorder("/var/media");
        let record = run(
            &mut plugin,
            &event("inStreamCreated", json!({"name": "cam1", "uniqueId": 3})),
        );
        let timer = run(&mut plugin, &record_out_stream("cam1", 15, "cam1"));
        assert_eq!(guard(&record[0]), None);
        assert_eq!(guard(&timer[0]), None);
    }

    #[test]
    fn timer_for_an_unknown_recording_still_rotates_in_its_own_lane() {
        let mut plugin = recorder("/var/media");
        let out = run(
            &mut plugin,
            &event("timerTriggered", json!({"timerId": "9", "_uniqueId": 77})),
        );
        assert_eq!(
            ems_calls(&out),
            vec![
                (
                    "shutdownStream".to_string(),
                    "id=77 permanently=0".to_string()
                ),
                ("removeTimer".to_string(), "id=9".to_string()),
            ]
        );
        assert!(
            out.iter()
                .all(|a| a.lane == "timer:77" && a.stream.is_none())
        );
    }

    #[test]
    fn a_timer_that_fires_again_stays_in_its_streams_lane() {
        let mut plugin = recorder("/var/media");
        run(&mut plugin, &record_out_stream("cam1", 15, "cam1"));
        let timer = event("timerTriggered", json!({"timerId": 4, "_uniqueId": "15"}));
        run(&mut plugin, &timer);
        let again = run(&mut plugin, &timer);
        assert!(
            again
                .iter()
                .all(|a| a.lane == "cam1" && a.stream.as_deref() == Some("cam1"))
        );
    }

    #[test]
    fn closed_recording_forgets_its_name() {
        let mut plugin = recorder("/var/media");
        run(&mut plugin, &record_out_stream("cam1", 15, "cam1"));
        run(
            &mut plugin,
            &event("outStreamClosed", json!({"name": "cam1", "uniqueId": 15})),
        );
        let out = run(
            &mut plugin,
            &event("timerTriggered", json!({"timerId": 4, "_uniqueId": "15"})),
        );
        assert_eq!(out[0].lane, "timer:15");
    }

    fn closed(name: &str, unique_id: u64, record_settings: Option<serde_json::Value>) -> Event {
        let mut payload = json!({"name": name, "uniqueId": unique_id, "type": "OFMP4"});
        if let Some(settings) = record_settings {
            payload["recordSettings"] = settings;
        }
        event("outStreamClosed", payload)
    }

    /// Its publisher left: the recording closes without a rotation, and its timer, armed for
    /// its id, is removed in the stream's lane, by the id EMS lists it under, only while EMS
    /// lists no stream with that id.
    #[test]
    fn a_recording_that_closes_has_its_timer_removed_while_its_id_is_not_listed() {
        let mut plugin = recorder("/var/media");
        run(&mut plugin, &record_out_stream("cam1", 15, "cam1"));
        let out = run(&mut plugin, &closed("cam1", 15, None));
        assert_eq!(
            ems_calls(&out),
            vec![("removeTimer".to_string(), String::new())]
        );
        assert_eq!(out[0].lane, "cam1");
        assert_eq!(out[0].stream.as_deref(), Some("cam1"));
        assert_eq!(out[0].stream_id, Some(15));
        assert_eq!(guard(&out[0]), Some(TimerGuard::closed(15)));
        assert_eq!(
            out[0].action.to_string(),
            "ems http://127.0.0.1:7777/removeTimer id=<its timerId> \
             [only while a timer is armed for _uniqueId 15 and EMS lists no stream 15]"
        );
        assert!(plugin.recordings.is_empty(), "forgotten");
        assert!(
            run(&mut plugin, &closed("cam1", 15, None)).is_empty(),
            "a close seen twice asks once"
        );
    }

    /// A close that follows its rotation's shutdown asks nothing: the rotation removes the
    /// timer.
    #[test]
    fn a_recording_closed_by_its_rotation_leaves_the_removal_to_the_rotation() {
        let mut plugin = recorder("/var/media");
        run(&mut plugin, &record_out_stream("cam1", 15, "cam1"));
        let timer = event("timerTriggered", json!({"timerId": 4, "_uniqueId": "15"}));
        assert_eq!(run(&mut plugin, &timer).len(), 2);
        assert!(run(&mut plugin, &closed("cam1", 15, None)).is_empty());
    }

    /// A recording of ours that this run never saw start (emstail started later, or forgot
    /// it) is known by its settings; its removal runs in the lane of its rotation.
    #[test]
    fn an_unknown_recording_of_ours_is_known_by_its_settings_when_it_closes() {
        let mut plugin = recorder("/var/media");
        let settings = json!({"localStreamName": "cam1", "_localStreamName": "cam1"});
        let out = run(&mut plugin, &closed("cam1", 15, Some(settings)));
        assert_eq!(ems_calls(&out)[0].0, "removeTimer");
        assert_eq!(out[0].lane, "timer:15");
        assert_eq!(guard(&out[0]), Some(TimerGuard::closed(15)));

        for other in [
            closed("cam1", 16, None),
            closed("cam1", 17, Some(json!({"localStreamName": "cam1"}))),
            closed("cam1", 18, Some(json!({"_localStreamName": "cam2"}))),
            event(
                "outStreamClosed",
                json!({"name": "cam1", "recordSettings": {"_localStreamName": "cam1"}}),
            ),
        ] {
            assert!(run(&mut plugin, &other).is_empty(), "{other:?}");
        }
    }

    /// The lane the rotation of recording `unique_id` runs in.
    fn rotation_lane(plugin: &mut StreamRecorder, unique_id: u64) -> String {
        let timer = event(
            "timerTriggered",
            json!({"timerId": 4, "_uniqueId": unique_id.to_string()}),
        );
        run(plugin, &timer)[0].lane.clone()
    }

    /// EMS crashed: the closes of its recordings never come. Its next start forgets them all,
    /// and a recording of the new run that reuses an id rotates in its own stream's lane.
    #[test]
    fn recordings_of_an_ems_that_crashed_are_forgotten_when_it_starts_again() {
        let mut plugin = recorder("/var/media");
        for id in 1..=100 {
            run(
                &mut plugin,
                &record_out_stream(&format!("old{id}"), id, &format!("old{id}")),
            );
        }
        assert_eq!(plugin.recordings.len(), 100);
        run(&mut plugin, &event("serverStarted", json!({"PID": 7})));
        assert!(plugin.recordings.is_empty());
        run(&mut plugin, &record_out_stream("cam1", 1, "cam1"));
        assert_eq!(rotation_lane(&mut plugin, 1), "cam1");
        assert_eq!(rotation_lane(&mut plugin, 2), "timer:2");
    }

    /// Closes lost without a restart seen (the log that held them rotated away while emstail
    /// was down): the oldest entries make room, and a live recording still rotates in its
    /// stream's lane.
    #[test]
    fn recordings_whose_close_never_came_are_bounded() {
        let mut plugin = recorder("/var/media");
        for id in 1..=5_000 {
            run(
                &mut plugin,
                &record_out_stream(&format!("s{id}"), id, &format!("s{id}")),
            );
        }
        assert_eq!(plugin.recordings.len(), RECORDINGS_KEPT);
        assert_eq!(rotation_lane(&mut plugin, 5_000), "s5000");
        assert_eq!(rotation_lane(&mut plugin, 1), "timer:1");
        run(&mut plugin, &record_out_stream("cam1", 5_001, "cam1"));
        assert_eq!(plugin.recordings.len(), RECORDINGS_KEPT);
        assert_eq!(rotation_lane(&mut plugin, 5_001), "cam1");

        let long = "x".repeat(NAME_KEPT_BYTES + 1);
        run(&mut plugin, &record_out_stream(&long, 5_002, &long));
        assert_eq!(plugin.recordings.len(), RECORDINGS_KEPT);
        assert_eq!(rotation_lane(&mut plugin, 5_002), "timer:5002");
    }

    #[test]
    fn timers_without_unique_id_or_timer_id_are_not_ours() {
        let mut plugin = recorder("/var/media");
        let foreign = event("timerTriggered", json!({"timerId": 4, "value": 60}));
        assert!(run(&mut plugin, &foreign).is_empty());
        let no_id = event("timerTriggered", json!({"_uniqueId": "15"}));
        assert!(run(&mut plugin, &no_id).is_empty());
    }

    /// `_uniqueId` is a stream's numeric id when the recorder armed the timer: anything else
    /// is not its timer, and never becomes a `shutdownStream` id.
    #[test]
    fn a_unique_id_that_is_not_a_number_is_not_ours() {
        let mut plugin = recorder("/var/media");
        for id in ["15\nINFO forged", "15 permanently=1", "cam1", "-3", ""] {
            let timer = event("timerTriggered", json!({"timerId": 4, "_uniqueId": id}));
            assert!(run(&mut plugin, &timer).is_empty(), "{id:?}");
        }
        let padded = event("timerTriggered", json!({"timerId": 4, "_uniqueId": " 15 "}));
        assert_eq!(
            ems_calls(&run(&mut plugin, &padded))[0],
            (
                "shutdownStream".to_string(),
                "id=15 permanently=0".to_string()
            )
        );
    }

    #[test]
    fn hostile_stream_names_reach_the_params_unchanged() {
        let name = "a b,c=d\"e..f ü";
        let mut plugin = recorder("/var/media");
        let out = run(
            &mut plugin,
            &event("inStreamCreated", json!({"name": name})),
        );
        let Action::EmsCall { params, .. } = &out[0].action else {
            panic!("record is an EMS call");
        };
        assert_eq!(params.get("localStreamName"), Some(name));
        assert_eq!(params.get("_localStreamName"), Some(name));
        assert_eq!(
            params.get("pathToFile"),
            Some(format!("/var/media/{name}").as_str())
        );
        crate::plugins::test_support::assert_separators(params);
    }

    #[test]
    fn names_that_would_leave_the_recording_folder_are_refused_not_recorded() {
        for name in [
            "../../../../etc/cron.d/evil",
            "..",
            "a/b",
            "a\\b",
            "a\0b",
            "cam\n1",
            "cam\x7f",
        ] {
            let mut plugin = recorder("/var/media");
            let mut out = Vec::new();
            let refusal = plugin
                .handle(&event("inStreamCreated", json!({"name": name})), &mut out)
                .expect_err(name);
            assert_eq!(refusal.plugin, PluginId::StreamRecorder);
            assert!(refusal.reason.contains("stream name"), "{refusal}");
            assert!(out.is_empty(), "{name}: {out:?}");
        }
    }
}
