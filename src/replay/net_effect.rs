//! The net effect of a window's uploads (see [`NetEffect`]).

use super::Skip;
use crate::action::{Action, PlannedAction, S3Put};
use crate::event::Source;
use crate::plugins::keys::Freshness;
use std::collections::{HashMap, VecDeque};

/// Chunks held back per lane at most: past this the oldest is issued even though a later
/// delete may still come. EMS keeps a playlist's few last chunks and deletes the older ones,
/// so a lane holds few; the cap keeps memory bounded when it never deletes.
const HELD_CHUNKS_PER_LANE: usize = 512;

/// The net effect of a window's uploads: a chunk deleted later in the window is not put (its
/// delete still goes out: an earlier run may have put it), and a playlist or manifest is put
/// once, with the file as it is on disk, when its stream's events end (its stream closes, or
/// the window ends). Holds only what belongs to streams alive, so memory follows them.
#[derive(Default)]
pub(super) struct NetEffect {
    lanes: HashMap<String, Held>,
    /// Order lanes were opened in, for the flush at the end.
    next: u64,
}

struct Held {
    opened: u64,
    stream: Option<String>,
    /// Chunk puts, oldest first.
    chunks: VecDeque<(PlannedAction, Source)>,
    /// Playlist and manifest puts, the latest per key, in the order keys first came.
    latest: Vec<(PlannedAction, Source)>,
}

impl Held {
    /// Takes out the held chunk put to the object `action` puts or deletes, if there is one.
    fn take_chunk(&mut self, action: &Action) -> Option<(PlannedAction, Source)> {
        let target = put_target(action);
        let i = self
            .chunks
            .iter()
            .position(|(held, _)| put_target(&held.action) == target)?;
        self.chunks.remove(i)
    }
}

type Out = Vec<(PlannedAction, Source)>;
type LeftOut = Vec<(PlannedAction, Source, Skip)>;

fn put_target(action: &Action) -> Option<(&str, &str)> {
    match action {
        Action::S3Put(S3Put { bucket, key, .. }) | Action::S3Delete { bucket, key } => {
            Some((bucket, key))
        }
        Action::EmsCall { .. } => None,
    }
}

impl NetEffect {
    pub(super) fn take(
        &mut self,
        action: PlannedAction,
        source: &Source,
        out: &mut Out,
        left: &mut LeftOut,
    ) {
        let lane = match self.lanes.get_mut(&action.lane) {
            Some(lane) => lane,
            None => {
                if action.action.is_control() {
                    out.push((action, source.clone()));
                    return;
                }
                self.next += 1;
                self.lanes.entry(action.lane.clone()).or_insert(Held {
                    opened: self.next,
                    stream: action.stream.clone(),
                    chunks: VecDeque::new(),
                    latest: Vec::new(),
                })
            }
        };
        match &action.action {
            Action::EmsCall { .. } => out.push((action, source.clone())),
            Action::S3Put(S3Put { cache_control, .. })
                if cache_control == Freshness::Fixed.cache_control() =>
            {
                if let Some((old, old_source)) = lane.take_chunk(&action.action) {
                    left.push((old, old_source, Skip::Superseded));
                }
                lane.chunks.push_back((action, source.clone()));
                if lane.chunks.len() > HELD_CHUNKS_PER_LANE
                    && let Some(oldest) = lane.chunks.pop_front()
                {
                    out.push(oldest);
                }
            }
            Action::S3Put(_) => {
                let target = put_target(&action.action);
                match lane
                    .latest
                    .iter_mut()
                    .find(|(held, _)| put_target(&held.action) == target)
                {
                    Some(slot) => {
                        let (old, old_source) = std::mem::replace(slot, (action, source.clone()));
                        left.push((old, old_source, Skip::Superseded));
                    }
                    None => lane.latest.push((action, source.clone())),
                }
            }
            Action::S3Delete { .. } => {
                if let Some((put, put_source)) = lane.take_chunk(&action.action) {
                    left.push((put, put_source, Skip::DeletedLater));
                }
                out.push((action, source.clone()));
            }
        }
    }

    /// The held puts of the lanes of `stream`: chunks first, then playlists.
    pub(super) fn flush_stream(&mut self, stream: &str) -> Out {
        let mut lanes: Vec<(String, u64)> = self
            .lanes
            .iter()
            .filter(|(_, held)| held.stream.as_deref() == Some(stream))
            .map(|(name, held)| (name.clone(), held.opened))
            .collect();
        lanes.sort_by_key(|(_, opened)| *opened);
        let mut out = Vec::new();
        for (name, _) in lanes {
            if let Some(held) = self.lanes.remove(&name) {
                out.extend(held.chunks);
                out.extend(held.latest);
            }
        }
        out
    }

    /// Everything still held, lane by lane in the order they opened.
    pub(super) fn flush_all(&mut self) -> Out {
        let mut lanes: Vec<Held> = self.lanes.drain().map(|(_, held)| held).collect();
        lanes.sort_by_key(|held| held.opened);
        let mut out = Vec::new();
        for held in lanes {
            out.extend(held.chunks);
            out.extend(held.latest);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::PluginId;

    fn put(key: &str, freshness: Freshness) -> PlannedAction {
        PlannedAction {
            plugin: PluginId::AmazonHLSUpload,
            lane: "AmazonHLSUpload:cam1".into(),
            stream: Some("cam1".into()),
            stream_id: None,
            action: Action::S3Put(S3Put {
                bucket: "b".into(),
                key: key.into(),
                path: key.into(),
                content_type: "video/mp2t".into(),
                cache_control: freshness.cache_control().into(),
                acl: None,
                optional: false,
            }),
        }
    }

    fn key(a: &PlannedAction) -> &str {
        match &a.action {
            Action::S3Put(S3Put { key, .. }) | Action::S3Delete { key, .. } => key,
            Action::EmsCall { command, .. } => command,
        }
    }

    fn source(line: u64) -> Source {
        Source {
            file: "f".into(),
            line,
        }
    }

    #[test]
    fn a_lane_that_never_deletes_holds_at_most_its_cap_oldest_going_first() {
        let mut net = NetEffect::default();
        let mut out = Vec::new();
        let mut left = Vec::new();
        for n in 0..HELD_CHUNKS_PER_LANE + 10 {
            let chunk = put(&format!("seg{n}.ts"), Freshness::Fixed);
            net.take(chunk, &source(n as u64), &mut out, &mut left);
        }
        let early: Vec<&str> = out.iter().map(|(a, _)| key(a)).collect();
        let expected: Vec<String> = (0..10).map(|n| format!("seg{n}.ts")).collect();
        assert_eq!(early, expected);
        assert!(left.is_empty());
        let rest = net.flush_stream("cam1");
        assert_eq!(rest.len(), HELD_CHUNKS_PER_LANE);
        assert_eq!(key(&rest[0].0), "seg10.ts");
        assert!(
            net.flush_all().is_empty(),
            "the closed stream's lane is gone"
        );
    }
}
