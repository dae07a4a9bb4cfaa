//! AmazonHLSUpload, AmazonHDSUpload and AmazonDASHUpload: one uploader that mirrors segment
//! output to S3. The three differ only in which events they take and in the table of steps
//! each event asks for.

use super::keys::Depth::{DashMedia, Group, Stream};
use super::keys::Freshness::{Changing, Fixed};
use super::keys::{Depth, Freshness, MediaPath, Placement, content_type};
use super::{Plugin, Refusal};
use crate::action::{Action, PlannedAction, PluginId, S3Put};
use crate::config::{Config, UploadParams};
use crate::event::{Event, StreamInfo};
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Hls,
    Hds,
    Dash,
}

/// The kinds of file event, the same for every protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Master,
    Child,
    ChunkClosed,
    ChunkDeleted,
    /// DASH's `seg_init.mp4`, announced only by the `outStreamCreated` of its writer.
    InitSegment,
}

/// A file next to the event's file that must follow it to S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sibling {
    /// The HLS child playlist that names the chunk.
    ChildPlaylist,
    /// The HDS bootstrap (the `bootstrap` setting).
    Bootstrap,
    /// The legacy HDS set-level manifest `<stem>_v1.<ext>`.
    VersionOneManifest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Put(Depth, Freshness),
    PutSibling {
        sibling: Sibling,
        depth: Depth,
        freshness: Freshness,
        /// A missing file is a warning when the upload runs, not a failure.
        optional: bool,
    },
    Delete(Depth),
    /// Note the child playlist's name for the chunks of its directory.
    RememberChildPlaylist,
}

struct Table {
    plugin: PluginId,
    master: &'static [Step],
    child: &'static [Step],
    chunk_closed: &'static [Step],
    chunk_deleted: &'static [Step],
    init_segment: &'static [Step],
}

const HLS: Table = Table {
    plugin: PluginId::AmazonHLSUpload,
    master: &[Step::Put(Group, Changing)],
    child: &[Step::Put(Stream, Changing), Step::RememberChildPlaylist],
    chunk_closed: &[
        Step::Put(Stream, Fixed),
        Step::PutSibling {
            sibling: Sibling::ChildPlaylist,
            depth: Stream,
            freshness: Changing,
            optional: false,
        },
    ],
    chunk_deleted: &[Step::Delete(Stream)],
    init_segment: &[],
};

const HDS: Table = Table {
    plugin: PluginId::AmazonHDSUpload,
    master: &[
        Step::Put(Group, Changing),
        Step::PutSibling {
            sibling: Sibling::VersionOneManifest,
            depth: Group,
            freshness: Changing,
            optional: false,
        },
    ],
    child: &[Step::Put(Stream, Changing)],
    chunk_closed: &[
        Step::Put(Stream, Fixed),
        Step::PutSibling {
            sibling: Sibling::Bootstrap,
            depth: Stream,
            freshness: Changing,
            optional: true,
        },
    ],
    chunk_deleted: &[Step::Delete(Stream)],
    init_segment: &[],
};

const DASH: Table = Table {
    plugin: PluginId::AmazonDASHUpload,
    master: &[Step::Put(Group, Changing)],
    child: &[],
    chunk_closed: &[Step::Put(DashMedia, Fixed)],
    chunk_deleted: &[Step::Delete(DashMedia)],
    init_segment: &[Step::Put(DashMedia, Fixed)],
};

const DEFAULT_CHILD_PLAYLIST: &str = "playlist.m3u8";

/// Child playlist names kept at most. An entry goes when its HLS output ends, found by the
/// stream's name or `targetFolder`; a folder EMS named otherwise (a name's query parameters
/// become `_k_v` in it) is never matched, and whoever publishes chooses how many such names
/// there are. Past this many, one entry makes room: a live stream's comes back at its next
/// playlist update, which EMS makes at every chunk.
const CHILD_PLAYLISTS_KEPT: usize = 4096;
/// A child playlist whose path is longer (Linux's `PATH_MAX`: no such file can be written) is
/// not remembered, so that the entries above are a bound on bytes too; the default name is
/// used for its chunks.
const CHILD_PLAYLIST_PATH_KEPT_BYTES: usize = 4096;
const DEFAULT_BOOTSTRAP: &str = "bootstrap";
const INIT_SEGMENT_SUFFIX: &str = "seg_init.mp4";

impl Protocol {
    fn table(self) -> &'static Table {
        match self {
            Protocol::Hls => &HLS,
            Protocol::Hds => &HDS,
            Protocol::Dash => &DASH,
        }
    }

    fn params(self, config: &Config) -> &UploadParams {
        match self {
            Protocol::Hls => &config.hls.params,
            Protocol::Hds => &config.hds.params,
            Protocol::Dash => &config.dash.params,
        }
    }

    /// The file this protocol's uploader must act on, if the event is one of its own.
    fn classify(self, event: &Event) -> Option<(FileKind, Cow<'_, str>)> {
        use FileKind::*;
        let (kind, file) = match (self, event) {
            (Protocol::Hls, Event::HlsMasterPlaylistUpdated(f)) => (Master, f),
            (Protocol::Hls, Event::HlsChildPlaylistUpdated(f)) => (Child, f),
            (Protocol::Hls, Event::HlsChunkClosed(f)) => (ChunkClosed, f),
            (Protocol::Hls, Event::HlsChunkDeleted(f)) => (ChunkDeleted, f),
            (Protocol::Hds, Event::HdsMasterPlaylistUpdated(f)) => (Master, f),
            (Protocol::Hds, Event::HdsChildPlaylistUpdated(f)) => (Child, f),
            (Protocol::Hds, Event::HdsChunkClosed(f)) => (ChunkClosed, f),
            (Protocol::Hds, Event::HdsChunkDeleted(f)) => (ChunkDeleted, f),
            (Protocol::Dash, Event::DashPlaylistUpdated(f)) => (Master, f),
            (Protocol::Dash, Event::DashChunkClosed(f)) => (ChunkClosed, f),
            (Protocol::Dash, Event::DashChunkDeleted(f)) => (ChunkDeleted, f),
            (Protocol::Dash, Event::OutStreamCreated(stream)) => {
                let file = stream
                    .record_settings
                    .as_ref()?
                    .get_str("computedPathToFile")?;
                return file
                    .trim()
                    .ends_with(INIT_SEGMENT_SUFFIX)
                    .then_some((InitSegment, Cow::Owned(file)));
            }
            _ => return None,
        };
        Some((kind, Cow::Borrowed(&file.file)))
    }
}

impl Table {
    fn steps(&self, kind: FileKind) -> &'static [Step] {
        match kind {
            FileKind::Master => self.master,
            FileKind::Child => self.child,
            FileKind::ChunkClosed => self.chunk_closed,
            FileKind::ChunkDeleted => self.chunk_deleted,
            FileKind::InitSegment => self.init_segment,
        }
    }
}

pub struct Uploader {
    protocol: Protocol,
    placement: Placement,
    bucket: String,
    /// `bucket` is empty or white space: every upload is refused.
    no_bucket: bool,
    acl: Option<String>,
    bootstrap: String,
    /// Directory → name of the last child playlist EMS updated there (HLS `playlistName`),
    /// for the HLS streams still alive: an entry goes when its stream ends.
    child_playlists: HashMap<String, String>,
}

impl Uploader {
    pub fn new(protocol: Protocol, config: &Config) -> Uploader {
        let params = protocol.params(config);
        let roots = if params.media_root.is_empty() {
            &config.service.media_root
        } else {
            &params.media_root
        };
        let bootstrap = params.bootstrap.trim();
        Uploader {
            protocol,
            placement: Placement::new(
                roots,
                config.service.ems_working_dir.as_deref(),
                &params.key_prefix,
            ),
            bucket: params.default_bucket.clone(),
            no_bucket: params.default_bucket.trim().is_empty(),
            acl: params.acl.clone(),
            bootstrap: if bootstrap.is_empty() {
                DEFAULT_BOOTSTRAP.to_string()
            } else {
                bootstrap.to_string()
            },
            child_playlists: HashMap::new(),
        }
    }

    fn plugin(&self) -> PluginId {
        self.protocol.table().plugin
    }

    fn sibling_name(&self, sibling: Sibling, file: &MediaPath) -> Cow<'_, str> {
        match sibling {
            Sibling::ChildPlaylist => Cow::Borrowed(
                self.child_playlists
                    .get(file.parent_str())
                    .map_or(DEFAULT_CHILD_PLAYLIST, String::as_str),
            ),
            Sibling::Bootstrap => Cow::Borrowed(&self.bootstrap),
            Sibling::VersionOneManifest => {
                Cow::Owned(version_one_name(file.file_name().unwrap_or("")))
            }
        }
    }

    fn put(&self, path: &MediaPath, key: String, freshness: Freshness, optional: bool) -> Action {
        Action::S3Put(S3Put {
            bucket: self.bucket.clone(),
            content_type: content_type(path.file_name().unwrap_or("")).into(),
            cache_control: freshness.cache_control().into(),
            key,
            path: path.to_path_buf(),
            acl: self.acl.clone(),
            optional,
        })
    }

    fn refusal(&self, reason: String) -> Refusal {
        Refusal {
            plugin: self.plugin(),
            reason,
        }
    }

    /// The actions for one file event, added to `out` all or none: a chunk is never sent
    /// without its playlist, nor a playlist without its chunk.
    fn plan(
        &mut self,
        kind: FileKind,
        raw: &str,
        out: &mut Vec<PlannedAction>,
    ) -> Result<(), Refusal> {
        let before = out.len();
        let planned = self.plan_into(kind, raw, out);
        if planned.is_err() {
            out.truncate(before);
        }
        planned
    }

    fn plan_into(
        &mut self,
        kind: FileKind,
        raw: &str,
        actions: &mut Vec<PlannedAction>,
    ) -> Result<(), Refusal> {
        let steps = self.protocol.table().steps(kind);
        if steps.is_empty() {
            return Ok(());
        }
        if self.no_bucket {
            return Err(self.refusal(format!(
                "not uploading {}: default_bucket is empty",
                super::names::Clipped(raw, super::keys::SHOWN_PATH_CHARS)
            )));
        }
        let file = self.placement.resolve(raw);
        let mut lane_of_event = None;
        let first = actions.len();
        for step in steps {
            let action = match *step {
                Step::Put(depth, freshness) => {
                    let key = self.locate(&file, depth, &mut lane_of_event)?;
                    self.put(&file, key, freshness, false)
                }
                Step::PutSibling {
                    sibling,
                    depth,
                    freshness,
                    optional,
                } => {
                    let path = file.sibling(&self.sibling_name(sibling, &file));
                    let key = self.locate(&path, depth, &mut lane_of_event)?;
                    self.put(&path, key, freshness, optional)
                }
                Step::Delete(depth) => {
                    let key = self.locate(&file, depth, &mut lane_of_event)?;
                    Action::S3Delete {
                        bucket: self.bucket.clone(),
                        key,
                    }
                }
                Step::RememberChildPlaylist => {
                    if let Some(name) = file.file_name()
                        && file.parent_str().len() + name.len() < CHILD_PLAYLIST_PATH_KEPT_BYTES
                    {
                        // EMS updates the same playlist over and over: no new strings then.
                        match self.child_playlists.get_mut(file.parent_str()) {
                            Some(known) if known == name => {}
                            Some(known) => name.clone_into(known),
                            None => {
                                if self.child_playlists.len() >= CHILD_PLAYLISTS_KEPT
                                    && let Some(any) = self.child_playlists.keys().next().cloned()
                                {
                                    self.child_playlists.remove(&any);
                                }
                                self.child_playlists
                                    .insert(file.parent_text(), name.to_string());
                            }
                        }
                    }
                    continue;
                }
            };
            // The lane is filled in below, when it is known which action is the last.
            actions.push(PlannedAction {
                plugin: self.plugin(),
                lane: String::new(),
                stream: None,
                stream_id: None,
                action,
            });
        }
        // Every action step located its file first, which set the lane: copies of it for all
        // but the last action, which takes it.
        if let Some((lane, stream)) = lane_of_event
            && let Some((last, others)) = actions[first..].split_last_mut()
        {
            for action in others {
                action.lane.clone_from(&lane);
                action.stream.clone_from(&stream);
            }
            last.lane = lane;
            last.stream = stream;
        }
        Ok(())
    }

    /// Forgets the child playlist names of an HLS output that ended: its directory is
    /// `<group folder>/<stream name>`, or its `hlsSettings.targetFolder` when EMS gives one.
    /// A stream that starts again names its playlist anew before its first chunk closes.
    fn forget_child_playlists(&mut self, stream: &StreamInfo) {
        let is_hls = stream.hls_settings.is_some()
            || stream
                .stream_type
                .as_deref()
                .is_some_and(|t| t.to_ascii_uppercase().contains("HLS"));
        if !is_hls || self.child_playlists.is_empty() {
            return;
        }
        // A path is compared as the parent of a file in it, as the map's keys were made.
        let folder = stream
            .hls_settings
            .as_ref()
            .and_then(|settings| settings.get_str("targetFolder"))
            .map(|folder| {
                let folder = self.placement.resolve(&folder);
                folder.join(&MediaPath::parse("_")).parent_text()
            });
        self.child_playlists.retain(|directory, _| {
            let name = directory.rsplit('/').next().unwrap_or(directory);
            name != stream.name && folder.as_deref() != Some(directory.as_str())
        });
    }

    /// The key of `path`; the first file located sets the lane for the whole event, so that
    /// everything one event asks for runs in order.
    fn locate(
        &self,
        path: &MediaPath,
        depth: Depth,
        lane_of_event: &mut Option<(String, Option<String>)>,
    ) -> Result<String, Refusal> {
        let (key, group, stream) = self
            .placement
            .key_of(path, depth)
            .map_err(|reason| self.refusal(reason))?;
        if lane_of_event.is_none() {
            let plugin = self.plugin().name();
            let mut lane = String::with_capacity(plugin.len() + 1 + path.parent_str().len());
            lane.push_str(plugin);
            lane.push(':');
            match (group, stream, depth) {
                (Some(group), _, Depth::Group) => lane.push_str(group),
                (Some(group), Some(stream), _) => {
                    lane.push_str(group);
                    lane.push('/');
                    lane.push_str(stream);
                }
                _ => lane.push_str(path.parent_str()),
            }
            *lane_of_event = Some((lane, stream.map(str::to_string)));
        }
        Ok(key)
    }
}

impl Plugin for Uploader {
    fn id(&self) -> PluginId {
        self.plugin()
    }

    fn handle(&mut self, event: &Event, out: &mut Vec<PlannedAction>) -> Result<(), Refusal> {
        if let (Protocol::Hls, Event::OutStreamClosed(stream)) = (self.protocol, event) {
            self.forget_child_playlists(stream);
            return Ok(());
        }
        let Some((kind, file)) = self.protocol.classify(event) else {
            return Ok(());
        };
        self.plan(kind, &file, out)
    }
}

/// `manifest.f4m` → `manifest_v1.f4m`; the extension is what follows the last dot.
fn version_one_name(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}_v1.{extension}"),
        None => format!("{name}_v1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{config, event};
    use serde_json::json;
    use std::path::PathBuf;

    /// A put or delete reduced to what a reader checks.
    #[derive(Debug, PartialEq)]
    enum Done {
        Put {
            key: String,
            path: String,
            content_type: String,
            cache_control: String,
            optional: bool,
        },
        Delete(String),
    }

    fn put(key: &str, path: &str, content_type: &str, cache_control: &str) -> Done {
        Done::Put {
            key: key.to_string(),
            path: path.to_string(),
            content_type: content_type.to_string(),
            cache_control: cache_control.to_string(),
            optional: false,
        }
    }

    fn done(actions: &[PlannedAction]) -> Vec<Done> {
        actions
            .iter()
            .map(|planned| match &planned.action {
                Action::S3Put(S3Put {
                    key,
                    path,
                    content_type,
                    cache_control,
                    optional,
                    ..
                }) => Done::Put {
                    key: key.clone(),
                    path: path.to_string_lossy().into_owned(),
                    content_type: content_type.to_string(),
                    cache_control: cache_control.to_string(),
                    optional: *optional,
                },
                Action::S3Delete { key, .. } => Done::Delete(key.clone()),
                other => panic!("an uploader only puts and deletes, got {other:?}"),
            })
            .collect()
    }

    fn uploader_with(protocol: Protocol, edit: impl FnOnce(&mut Config)) -> Uploader {
        let mut config = config();
        for block in [&mut config.hls, &mut config.hds, &mut config.dash] {
            block.enabled = true;
            block.params.default_bucket = "media-bucket".to_string();
            block.params.bootstrap = "bootstrap".to_string();
        }
        edit(&mut config);
        Uploader::new(protocol, &config)
    }

    fn uploader(protocol: Protocol) -> Uploader {
        uploader_with(protocol, |_| {})
    }

    fn run(plugin: &mut Uploader, kind: &str, file: &str) -> Vec<PlannedAction> {
        let mut out = Vec::new();
        plugin
            .handle(&event(kind, json!({ "file": file })), &mut out)
            .expect("an unconfined upload with enough path components is accepted");
        out
    }

    fn refuse(plugin: &mut Uploader, kind: &str, file: &str) -> Refusal {
        let mut out = Vec::new();
        let refusal = plugin
            .handle(&event(kind, json!({ "file": file })), &mut out)
            .unwrap_err();
        assert!(out.is_empty(), "a refused event adds no action");
        refusal
    }

    const PLAYLIST: &str = "application/vnd.apple.mpegurl";
    const SHORT: &str = "max-age=2";
    const LONG: &str = "max-age=86400";

    // ---- HLS ----

    #[test]
    fn hls_master_playlist_is_put_at_group_level() {
        let mut plugin = uploader(Protocol::Hls);
        let out = run(
            &mut plugin,
            "hlsMasterPlaylistUpdated",
            "/var/www/G/playlist.m3u8",
        );
        assert_eq!(
            done(&out),
            vec![put(
                "G/playlist.m3u8",
                "/var/www/G/playlist.m3u8",
                PLAYLIST,
                SHORT
            )]
        );
        assert_eq!(out[0].plugin, PluginId::AmazonHLSUpload);
        assert_eq!(out[0].lane, "AmazonHLSUpload:G");
        assert_eq!(out[0].stream, None);
        let Action::S3Put(S3Put { bucket, acl, .. }) = &out[0].action else {
            panic!("a master playlist is put");
        };
        assert_eq!(bucket, "media-bucket");
        assert_eq!(acl, &None, "no ACL unless configured");
    }

    #[test]
    fn hls_child_playlist_is_put_at_stream_level() {
        let mut plugin = uploader(Protocol::Hls);
        let out = run(
            &mut plugin,
            "hlsChildPlaylistUpdated",
            "/var/www/G/S/playlist.m3u8",
        );
        assert_eq!(
            done(&out),
            vec![put(
                "G/S/playlist.m3u8",
                "/var/www/G/S/playlist.m3u8",
                PLAYLIST,
                SHORT
            )]
        );
        assert_eq!(out[0].lane, "AmazonHLSUpload:G/S");
        assert_eq!(out[0].stream.as_deref(), Some("S"));
    }

    #[test]
    fn hls_chunk_closed_puts_the_chunk_then_the_child_playlist() {
        let mut plugin = uploader(Protocol::Hls);
        let out = run(
            &mut plugin,
            "hlsChunkClosed",
            "/var/www/G/S/segment_1_1_14.ts",
        );
        assert_eq!(
            done(&out),
            vec![
                put(
                    "G/S/segment_1_1_14.ts",
                    "/var/www/G/S/segment_1_1_14.ts",
                    "video/mp2t",
                    LONG
                ),
                put(
                    "G/S/playlist.m3u8",
                    "/var/www/G/S/playlist.m3u8",
                    PLAYLIST,
                    SHORT
                ),
            ]
        );
        assert!(out.iter().all(|a| a.lane == "AmazonHLSUpload:G/S"));
        assert!(out.iter().all(|a| a.stream.as_deref() == Some("S")));
    }

    #[test]
    fn hls_chunk_closed_uses_the_child_playlist_name_seen_in_its_directory() {
        let mut plugin = uploader(Protocol::Hls);
        run(
            &mut plugin,
            "hlsChildPlaylistUpdated",
            "/var/www/G/S/index.m3u8",
        );
        let out = run(&mut plugin, "hlsChunkClosed", "/var/www/G/S/seg_2.ts");
        assert_eq!(
            done(&out)[1],
            put("G/S/index.m3u8", "/var/www/G/S/index.m3u8", PLAYLIST, SHORT)
        );
        let other = run(&mut plugin, "hlsChunkClosed", "/var/www/G/T/seg_2.ts");
        assert_eq!(
            done(&other)[1],
            put(
                "G/T/playlist.m3u8",
                "/var/www/G/T/playlist.m3u8",
                PLAYLIST,
                SHORT
            )
        );
    }

    /// Folders whose HLS output's end is never matched to them (EMS names a folder after a
    /// stream's name with its query parameters rewritten) must not pile up for the life of
    /// the daemon: whoever publishes chooses how many there are.
    #[test]
    fn child_playlist_names_of_unmatched_folders_do_not_pile_up() {
        let mut plugin = uploader(Protocol::Hls);
        for n in 0..CHILD_PLAYLISTS_KEPT + 500 {
            run(
                &mut plugin,
                "hlsChildPlaylistUpdated",
                &format!("/var/www/G/cam_token_{n}/index.m3u8"),
            );
        }
        assert_eq!(plugin.child_playlists.len(), CHILD_PLAYLISTS_KEPT);
        // The newest is kept, and a live stream's name comes back at its next update.
        let last = CHILD_PLAYLISTS_KEPT + 499;
        let chunk = run(
            &mut plugin,
            "hlsChunkClosed",
            &format!("/var/www/G/cam_token_{last}/seg_1.ts"),
        );
        assert_eq!(
            done(&chunk)[1],
            put(
                &format!("G/cam_token_{last}/index.m3u8"),
                &format!("/var/www/G/cam_token_{last}/index.m3u8"),
                PLAYLIST,
                SHORT
            )
        );
    }

    /// A path no file system takes (the line cap is 1 MiB, so 4,096 such names could have held
    /// gigabytes) is not remembered; its chunks' playlist takes the default name.
    #[test]
    fn a_child_playlist_with_an_overlong_path_is_not_remembered() {
        let mut plugin = uploader(Protocol::Hls);
        let folder = format!("/var/www/G/{}", "s".repeat(CHILD_PLAYLIST_PATH_KEPT_BYTES));
        run(
            &mut plugin,
            "hlsChildPlaylistUpdated",
            &format!("{folder}/index.m3u8"),
        );
        assert!(plugin.child_playlists.is_empty());
        let chunk = run(&mut plugin, "hlsChunkClosed", &format!("{folder}/seg_1.ts"));
        assert!(
            done(&chunk)
                .iter()
                .any(|d| matches!(d, Done::Put { key, .. } if key.ends_with("/playlist.m3u8"))),
            "{:?}",
            done(&chunk)
        );
    }

    #[test]
    fn a_child_playlist_name_is_forgotten_when_its_hls_stream_ends() {
        let mut plugin = uploader(Protocol::Hls);
        for dir in ["G/S1", "G/S2", "H/S1", "G/S3"] {
            run(
                &mut plugin,
                "hlsChildPlaylistUpdated",
                &format!("/var/www/{dir}/index.m3u8"),
            );
        }
        assert_eq!(plugin.child_playlists.len(), 4);
        let close = |plugin: &mut Uploader, payload: serde_json::Value| {
            let mut out = Vec::new();
            plugin
                .handle(&event("outStreamClosed", payload), &mut out)
                .expect("a closed stream is no refusal");
            assert!(out.is_empty(), "closing a stream uploads nothing");
        };
        // Not an HLS output: an RTMP push of the same name leaves the HLS streams alone.
        close(&mut plugin, json!({"name": "S1", "type": "ONR"}));
        assert_eq!(plugin.child_playlists.len(), 4);
        // The HLS output of S1 ends: both groups' S1 directories go, by the stream's name.
        close(&mut plugin, json!({"name": "S1", "type": "OFHLS"}));
        assert_eq!(plugin.child_playlists.len(), 2);
        // Named by its folder: a stream whose directory is not its name.
        close(
            &mut plugin,
            json!({"name": "cam", "type": "OFHLS",
                   "hlsSettings": {"targetFolder": "/var/www/G/S2/", "localStreamName": "cam"}}),
        );
        assert_eq!(plugin.child_playlists.len(), 1);
        // A chunk of an ended stream that comes late takes the default playlist name.
        let late = run(&mut plugin, "hlsChunkClosed", "/var/www/G/S1/seg_9.ts");
        assert_eq!(
            done(&late)[1],
            put(
                "G/S1/playlist.m3u8",
                "/var/www/G/S1/playlist.m3u8",
                PLAYLIST,
                SHORT
            )
        );
        let live = run(&mut plugin, "hlsChunkClosed", "/var/www/G/S3/seg_9.ts");
        assert_eq!(
            done(&live)[1],
            put(
                "G/S3/index.m3u8",
                "/var/www/G/S3/index.m3u8",
                PLAYLIST,
                SHORT
            )
        );
    }

    #[test]
    fn a_control_character_in_a_stream_folder_reaches_no_object_key() {
        for protocol in [Protocol::Hls, Protocol::Hds, Protocol::Dash] {
            let mut plugin = uploader(protocol);
            let (closed, deleted, below) = match protocol {
                Protocol::Hls => ("hlsChunkClosed", "hlsChunkDeleted", "segment_1.ts"),
                Protocol::Hds => ("hdsChunkClosed", "hdsChunkDeleted", "f4vSeg1-Frag1"),
                Protocol::Dash => ("dashChunkClosed", "dashChunkDeleted", "video/1/s.m4s"),
            };
            for kind in [closed, deleted] {
                for name in ["ca\nm", "\u{1b}[31mcam", "cam\u{7f}", "cam\u{85}"] {
                    let file = format!("/var/www/G/{name}/{below}");
                    let refusal = refuse(&mut plugin, kind, &file);
                    let reason = refusal.to_string();
                    assert!(reason.contains("control character"), "{reason}");
                    assert!(!reason.chars().any(char::is_control), "{reason:?}");
                }
            }
        }
    }

    #[test]
    fn hls_chunk_deleted_deletes_the_chunk() {
        let mut plugin = uploader(Protocol::Hls);
        let out = run(&mut plugin, "hlsChunkDeleted", "/var/www/G/S/seg_1.ts");
        assert_eq!(done(&out), vec![Done::Delete("G/S/seg_1.ts".to_string())]);
        assert_eq!(out[0].lane, "AmazonHLSUpload:G/S");
    }

    #[test]
    fn hls_windows_paths_give_the_same_keys() {
        let mut plugin = uploader(Protocol::Hls);
        let out = run(
            &mut plugin,
            "hlsChunkClosed",
            r"C:\EvoStream\webroot\G\S\seg_1.ts",
        );
        assert_eq!(
            done(&out),
            vec![
                put(
                    "G/S/seg_1.ts",
                    "C:/EvoStream/webroot/G/S/seg_1.ts",
                    "video/mp2t",
                    LONG
                ),
                put(
                    "G/S/playlist.m3u8",
                    "C:/EvoStream/webroot/G/S/playlist.m3u8",
                    PLAYLIST,
                    SHORT
                ),
            ]
        );
    }

    // ---- HDS ----

    #[test]
    fn hds_master_manifest_is_put_with_its_v1_twin() {
        let mut plugin = uploader(Protocol::Hds);
        let out = run(
            &mut plugin,
            "hdsMasterPlaylistUpdated",
            "/var/www/G/manifest.f4m",
        );
        assert_eq!(
            done(&out),
            vec![
                put(
                    "G/manifest.f4m",
                    "/var/www/G/manifest.f4m",
                    "application/f4m",
                    SHORT
                ),
                put(
                    "G/manifest_v1.f4m",
                    "/var/www/G/manifest_v1.f4m",
                    "application/f4m",
                    SHORT
                ),
            ]
        );
        assert!(out.iter().all(|a| a.lane == "AmazonHDSUpload:G"));
    }

    #[test]
    fn hds_v1_name_splits_at_the_last_dot() {
        assert_eq!(version_one_name("my.set.f4m"), "my.set_v1.f4m");
        assert_eq!(version_one_name("manifest"), "manifest_v1");
        let mut plugin = uploader(Protocol::Hds);
        let out = run(
            &mut plugin,
            "hdsMasterPlaylistUpdated",
            "/var/www/G/my.set.f4m",
        );
        assert_eq!(
            done(&out)[1],
            put(
                "G/my.set_v1.f4m",
                "/var/www/G/my.set_v1.f4m",
                "application/f4m",
                SHORT
            )
        );
    }

    #[test]
    fn hds_child_manifest_is_put_at_stream_level() {
        let mut plugin = uploader(Protocol::Hds);
        let out = run(&mut plugin, "hdsChildPlaylistUpdated", "/var/www/G/S/S.f4m");
        assert_eq!(
            done(&out),
            vec![put(
                "G/S/S.f4m",
                "/var/www/G/S/S.f4m",
                "application/f4m",
                SHORT
            )]
        );
        assert_eq!(out[0].lane, "AmazonHDSUpload:G/S");
    }

    #[test]
    fn hds_chunk_closed_puts_the_fragment_then_the_optional_bootstrap() {
        let mut plugin = uploader(Protocol::Hds);
        let out = run(&mut plugin, "hdsChunkClosed", "/var/www/G/S/f4vSeg1-Frag7");
        let octets = "application/octet-stream";
        assert_eq!(
            done(&out),
            vec![
                put(
                    "G/S/f4vSeg1-Frag7",
                    "/var/www/G/S/f4vSeg1-Frag7",
                    octets,
                    LONG
                ),
                Done::Put {
                    key: "G/S/bootstrap".to_string(),
                    path: "/var/www/G/S/bootstrap".to_string(),
                    content_type: octets.to_string(),
                    cache_control: SHORT.to_string(),
                    optional: true,
                },
            ]
        );
        assert!(out.iter().all(|a| a.lane == "AmazonHDSUpload:G/S"));
    }

    #[test]
    fn hds_bootstrap_name_comes_from_the_setting() {
        let mut plugin = uploader_with(Protocol::Hds, |c| {
            c.hds.params.bootstrap = "boot.abst".into()
        });
        let out = run(&mut plugin, "hdsChunkClosed", "/var/www/G/S/f4vSeg1-Frag7");
        assert!(
            matches!(&out[1].action, Action::S3Put(S3Put { key, .. }) if key == "G/S/boot.abst")
        );

        let mut plugin = uploader_with(Protocol::Hds, |c| c.hds.params.bootstrap = String::new());
        let out = run(&mut plugin, "hdsChunkClosed", "/var/www/G/S/f4vSeg1-Frag7");
        assert!(
            matches!(&out[1].action, Action::S3Put(S3Put { key, .. }) if key == "G/S/bootstrap")
        );
    }

    #[test]
    fn hds_chunk_deleted_deletes_only_the_fragment() {
        let mut plugin = uploader(Protocol::Hds);
        let out = run(&mut plugin, "hdsChunkDeleted", "/var/www/G/S/f4vSeg1-Frag7");
        assert_eq!(
            done(&out),
            vec![Done::Delete("G/S/f4vSeg1-Frag7".to_string())]
        );
    }

    // ---- DASH ----

    #[test]
    fn dash_playlist_is_put_at_group_level() {
        let mut plugin = uploader(Protocol::Dash);
        let out = run(
            &mut plugin,
            "dashPlaylistUpdated",
            "/var/www/G/manifest.mpd",
        );
        assert_eq!(
            done(&out),
            vec![put(
                "G/manifest.mpd",
                "/var/www/G/manifest.mpd",
                "application/dash+xml",
                SHORT
            )]
        );
        assert_eq!(out[0].lane, "AmazonDASHUpload:G");
    }

    #[test]
    fn dash_chunk_closed_puts_the_media_file_with_five_components() {
        let mut plugin = uploader(Protocol::Dash);
        let file = "/var/www/G/S/audio/128000/1416464032000.fmp4";
        let out = run(&mut plugin, "dashChunkClosed", file);
        assert_eq!(
            done(&out),
            vec![put(
                "G/S/audio/128000/1416464032000.fmp4",
                file,
                "video/mp4",
                LONG
            )]
        );
        assert_eq!(out[0].lane, "AmazonDASHUpload:G/S");
        assert_eq!(out[0].stream.as_deref(), Some("S"));
    }

    #[test]
    fn dash_double_slashes_are_collapsed() {
        let mut plugin = uploader(Protocol::Dash);
        let out = run(
            &mut plugin,
            "dashChunkClosed",
            "/var/www/G/S//video/229376/1.fmp4",
        );
        assert_eq!(
            done(&out),
            vec![put(
                "G/S/video/229376/1.fmp4",
                "/var/www/G/S/video/229376/1.fmp4",
                "video/mp4",
                LONG
            )]
        );
    }

    #[test]
    fn dash_chunk_deleted_deletes_the_same_key() {
        let mut plugin = uploader(Protocol::Dash);
        let out = run(
            &mut plugin,
            "dashChunkDeleted",
            "/var/www/G/S//video/229376/1.fmp4",
        );
        assert_eq!(
            done(&out),
            vec![Done::Delete("G/S/video/229376/1.fmp4".to_string())]
        );
    }

    #[test]
    fn dash_relative_path_keeps_group_and_stream() {
        let file = "../evo-webroot/G/S/video/229376/x.fmp4";
        let mut plugin = uploader(Protocol::Dash);
        let out = run(&mut plugin, "dashChunkClosed", file);
        assert_eq!(
            done(&out),
            vec![put("G/S/video/229376/x.fmp4", file, "video/mp4", LONG)]
        );

        let mut plugin = uploader_with(Protocol::Dash, |c| {
            c.service.ems_working_dir = Some(PathBuf::from("/usr/bin"));
        });
        let out = run(&mut plugin, "dashChunkClosed", file);
        assert_eq!(
            done(&out),
            vec![put(
                "G/S/video/229376/x.fmp4",
                "/usr/evo-webroot/G/S/video/229376/x.fmp4",
                "video/mp4",
                LONG
            )]
        );
    }

    #[test]
    fn dash_init_segment_from_out_stream_created_is_put() {
        let mut plugin = uploader(Protocol::Dash);
        let file = "/var/www/G/S/video/229376/seg_init.mp4";
        let created = event(
            "outStreamCreated",
            json!({"name": "S", "uniqueId": 9,
                   "recordSettings": {"computedPathToFile": file}}),
        );
        let mut out = Vec::new();
        plugin.handle(&created, &mut out).expect("inside no root");
        assert_eq!(
            done(&out),
            vec![put(
                "G/S/video/229376/seg_init.mp4",
                file,
                "video/mp4",
                LONG
            )]
        );
    }

    #[test]
    fn dash_ignores_other_out_streams() {
        let mut plugin = uploader(Protocol::Dash);
        for payload in [
            json!({"name": "S"}),
            json!({"name": "S", "recordSettings": {"computedPathToFile": "/rec/S_0001.mp4"}}),
            json!({"name": "S", "recordSettings": {"localStreamName": "S"}}),
        ] {
            let mut out = Vec::new();
            plugin
                .handle(&event("outStreamCreated", payload), &mut out)
                .expect("not an init segment");
            assert!(out.is_empty());
        }
    }

    // ---- common to all three ----

    #[test]
    fn each_uploader_only_takes_its_own_events() {
        let files = [
            ("hlsChunkClosed", "/w/G/S/1.ts"),
            ("hdsChunkClosed", "/w/G/S/f4vSeg1-Frag1"),
            ("dashChunkClosed", "/w/G/S/video/1/1.fmp4"),
            ("hlsMasterPlaylistUpdated", "/w/G/playlist.m3u8"),
            ("hdsMasterPlaylistUpdated", "/w/G/manifest.f4m"),
            ("dashPlaylistUpdated", "/w/G/manifest.mpd"),
        ];
        for (protocol, prefix) in [
            (Protocol::Hls, "hls"),
            (Protocol::Hds, "hds"),
            (Protocol::Dash, "dash"),
        ] {
            let mut plugin = uploader(protocol);
            for (kind, file) in files {
                let out = run(&mut plugin, kind, file);
                assert_eq!(
                    !out.is_empty(),
                    kind.starts_with(prefix),
                    "{protocol:?} on {kind}"
                );
            }
        }
        let mut dash = uploader(Protocol::Dash);
        let out = run(&mut dash, "mssPlaylistUpdated", "/w/G/manifest.ismc");
        assert!(out.is_empty());
    }

    #[test]
    fn key_prefix_acl_and_media_roots_apply() {
        let mut plugin = uploader_with(Protocol::Hls, |c| {
            c.hls.params.key_prefix = "site/".to_string();
            c.hls.params.acl = Some("public-read".to_string());
            c.service.media_root = vec![PathBuf::from("/var/www")];
        });
        let out = run(&mut plugin, "hlsChunkClosed", "/var/www/G/S/seg_1.ts");
        let keys: Vec<&str> = out
            .iter()
            .map(|a| match &a.action {
                Action::S3Put(S3Put { key, acl, .. }) => {
                    assert_eq!(acl.as_deref(), Some("public-read"));
                    key.as_str()
                }
                other => panic!("expected puts, got {other:?}"),
            })
            .collect();
        assert_eq!(keys, vec!["site/G/S/seg_1.ts", "site/G/S/playlist.m3u8"]);
    }

    #[test]
    fn plugin_media_root_replaces_the_service_one() {
        let mut plugin = uploader_with(Protocol::Hls, |c| {
            c.service.media_root = vec![PathBuf::from("/var/www")];
            c.hls.params.media_root = vec![PathBuf::from("/srv/hls")];
        });
        run(&mut plugin, "hlsChunkDeleted", "/srv/hls/G/S/seg_1.ts");
        let refusal = refuse(&mut plugin, "hlsChunkDeleted", "/var/www/G/S/seg_1.ts");
        assert_eq!(
            refusal.reason,
            "/var/www/G/S/seg_1.ts is outside the media roots [/srv/hls]"
        );
    }

    #[test]
    fn file_outside_the_media_roots_is_refused() {
        let mut plugin = uploader_with(Protocol::Hls, |c| {
            c.service.media_root = vec![PathBuf::from("/var/www"), PathBuf::from("/srv/media")];
        });
        let refusal = refuse(&mut plugin, "hlsChunkClosed", "/etc/G/S/passwd.ts");
        assert_eq!(refusal.plugin, PluginId::AmazonHLSUpload);
        assert_eq!(
            refusal.reason,
            "/etc/G/S/passwd.ts is outside the media roots [/var/www, /srv/media]"
        );
    }

    #[test]
    fn dot_dot_escaping_the_root_is_refused() {
        let mut plugin = uploader_with(Protocol::Dash, |c| {
            c.service.media_root = vec![PathBuf::from("/var/www")];
        });
        let refusal = refuse(
            &mut plugin,
            "dashChunkClosed",
            "/var/www/G/S/../../../../etc/shadow",
        );
        assert!(
            refusal.reason.starts_with("/etc/shadow is outside"),
            "{refusal}"
        );
    }

    #[test]
    fn relative_path_with_roots_but_no_working_dir_is_refused() {
        let mut plugin = uploader_with(Protocol::Dash, |c| {
            c.service.media_root = vec![PathBuf::from("/var/www")];
        });
        let refusal = refuse(
            &mut plugin,
            "dashChunkClosed",
            "../evo-webroot/G/S/video/1/x.fmp4",
        );
        assert!(
            refusal.reason.contains("Service.ems_working_dir"),
            "{refusal}"
        );
    }

    #[test]
    fn too_shallow_path_without_roots_is_refused() {
        let mut plugin = uploader(Protocol::Dash);
        let refusal = refuse(&mut plugin, "dashChunkClosed", "/S/video/1/x.fmp4");
        assert!(
            refusal.reason.contains("too few path components"),
            "{refusal}"
        );
    }

    /// EMS's default targetFolder is relative, so without `Service.ems_working_dir` every file
    /// is refused, and the refusal names the path, whose stream folder is the publisher's.
    #[test]
    fn a_refused_path_is_reported_on_one_line() {
        let mut plugin = uploader_with(Protocol::Hls, |c| {
            c.service.media_root = vec![PathBuf::from("/var/www")];
        });
        let hostile = "../evo-webroot/G/cam\n2026-12-05 13:00:00.000Z ERROR emstail] forged\u{1b}[2J/seg_1.ts";
        let outside = hostile.replacen("..", "/etc", 1);
        for file in [hostile, outside.as_str()] {
            let shown = refuse(&mut plugin, "hlsChunkClosed", file).to_string();
            assert!(!shown.chars().any(char::is_control), "{shown}");
            assert!(shown.contains("cam\\n2026"), "{shown}");
        }
    }

    /// On a Unix host `\` is part of a name: a stream named `evil\..\victim` writes into its
    /// own folder, which must not be read as the folder of the stream `victim`.
    #[test]
    fn a_backslash_under_a_unix_root_is_part_of_the_name() {
        let mut plugin = uploader_with(Protocol::Hds, |c| {
            c.service.media_root = vec![PathBuf::from("/var/www")];
        });
        let own = "G/evil\\..\\victim";
        let out = run(
            &mut plugin,
            "hdsChunkDeleted",
            &format!("/var/www/{own}/f4vSeg1-Frag7"),
        );
        assert_eq!(
            done(&out),
            vec![Done::Delete(format!("{own}/f4vSeg1-Frag7"))]
        );
        assert_eq!(out[0].lane, format!("AmazonHDSUpload:{own}"));
        let file = format!("/var/www/{own}/f4vSeg1-Frag8");
        let out = run(&mut plugin, "hdsChunkClosed", &file);
        assert_eq!(
            done(&out)[0],
            put(
                &format!("{own}/f4vSeg1-Frag8"),
                &file,
                "application/octet-stream",
                LONG
            )
        );
    }

    #[test]
    fn empty_bucket_is_refused() {
        let mut plugin = uploader_with(Protocol::Hls, |c| c.hls.params.default_bucket.clear());
        let refusal = refuse(&mut plugin, "hlsChunkDeleted", "/w/G/S/1.ts");
        assert!(refusal.reason.contains("default_bucket"), "{refusal}");
    }
}
