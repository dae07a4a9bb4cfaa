//! The net effect of a window's uploads (see [`NetEffect`]).

use super::Skip;
use crate::action::{Action, PlannedAction, S3Put};
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
    chunks: Chunks,
    /// Playlist and manifest puts, the latest per key, in the order keys first came.
    latest: Vec<(PlannedAction, Place)>,
}

/// The chunk puts a lane holds, oldest first, indexed by the object they put: a later put or
/// delete of the same object finds its held put without comparing every key the lane holds
/// (a scan of up to [`HELD_CHUNKS_PER_LANE`] keys per chunk event was a third of a replay).
#[derive(Default)]
struct Chunks {
    /// In the order they came; `None` where a put was taken out since.
    slots: VecDeque<Option<(PlannedAction, Place)>>,
    /// The sequence number of `slots[0]`.
    first: u64,
    /// bucket → key → the sequence number of the held put of that object.
    index: HashMap<String, HashMap<String, u64>>,
    /// Puts held (the `Some` slots).
    len: usize,
}

impl Chunks {
    fn len(&self) -> usize {
        self.len
    }

    /// Holds `put` (an S3 put) as the newest; any held put of the same object must have been
    /// taken out first.
    fn push_back(&mut self, put: (PlannedAction, Place)) {
        let Some((bucket, key)) = put_target(&put.0.action) else {
            debug_assert!(false, "only puts are held");
            return;
        };
        let seq = self.first + self.slots.len() as u64;
        let keys = match self.index.get_mut(bucket) {
            Some(keys) => keys,
            None => self.index.entry(bucket.to_string()).or_default(),
        };
        keys.insert(key.to_string(), seq);
        self.slots.push_back(Some(put));
        self.len += 1;
    }

    /// Takes out the held put to the object `action` puts or deletes, if there is one.
    fn take(&mut self, action: &Action) -> Option<(PlannedAction, Place)> {
        let (bucket, key) = put_target(action)?;
        let keys = self.index.get_mut(bucket)?;
        let seq = keys.remove(key)?;
        if keys.is_empty() {
            self.index.remove(bucket);
        }
        let taken = self.slots.get_mut((seq - self.first) as usize)?.take();
        self.len -= 1;
        self.tidy();
        taken
    }

    /// Takes out the oldest held put.
    fn pop_front(&mut self) -> Option<(PlannedAction, Place)> {
        while let Some(slot) = self.slots.pop_front() {
            self.first += 1;
            if let Some(put) = slot {
                if let Some((bucket, key)) = put_target(&put.0.action)
                    && let Some(keys) = self.index.get_mut(bucket)
                {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.index.remove(bucket);
                    }
                }
                self.len -= 1;
                return Some(put);
            }
        }
        None
    }

    /// Drops the empty slots at the front, and compacts the slots when most are empty, so
    /// that memory follows the puts held whatever order objects are deleted in.
    fn tidy(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        if self.slots.len() > 2 * self.len + 64 {
            let held: Vec<_> = std::mem::take(&mut self.slots)
                .into_iter()
                .flatten()
                .collect();
            self.first = 0;
            self.index.clear();
            self.len = 0;
            for put in held {
                self.push_back(put);
            }
        }
    }

    fn into_puts(self) -> impl Iterator<Item = (PlannedAction, Place)> {
        self.slots.into_iter().flatten()
    }
}

/// Where an action's event was: the index of its file among the replayed ones, and its line.
/// Two numbers instead of a [`crate::event::Source`], whose file name would be copied for
/// every action held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    pub file: usize,
    pub line: u64,
}

type Out = Vec<(PlannedAction, Place)>;
type LeftOut = Vec<(PlannedAction, Place, Skip)>;

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
        source: Place,
        out: &mut Out,
        left: &mut LeftOut,
    ) {
        let lane = match self.lanes.get_mut(&action.lane) {
            Some(lane) => lane,
            None => {
                if action.action.is_control() {
                    out.push((action, source));
                    return;
                }
                self.next += 1;
                self.lanes.entry(action.lane.clone()).or_insert(Held {
                    opened: self.next,
                    stream: action.stream.clone(),
                    chunks: Chunks::default(),
                    latest: Vec::new(),
                })
            }
        };
        match &action.action {
            Action::EmsCall { .. } => out.push((action, source)),
            Action::S3Put(S3Put { cache_control, .. })
                if cache_control == Freshness::Fixed.cache_control() =>
            {
                if let Some((old, old_source)) = lane.chunks.take(&action.action) {
                    left.push((old, old_source, Skip::Superseded));
                }
                lane.chunks.push_back((action, source));
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
                        let (old, old_source) = std::mem::replace(slot, (action, source));
                        left.push((old, old_source, Skip::Superseded));
                    }
                    None => lane.latest.push((action, source)),
                }
            }
            Action::S3Delete { .. } => {
                if let Some((put, put_source)) = lane.chunks.take(&action.action) {
                    left.push((put, put_source, Skip::DeletedLater));
                }
                out.push((action, source));
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
                out.extend(held.chunks.into_puts());
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
            out.extend(held.chunks.into_puts());
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

    fn source(line: u64) -> Place {
        Place { file: 0, line }
    }

    #[test]
    fn a_lane_that_never_deletes_holds_at_most_its_cap_oldest_going_first() {
        let mut net = NetEffect::default();
        let mut out = Vec::new();
        let mut left = Vec::new();
        for n in 0..HELD_CHUNKS_PER_LANE + 10 {
            let chunk = put(&format!("seg{n}.ts"), Freshness::Fixed);
            net.take(chunk, source(n as u64), &mut out, &mut left);
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

    fn delete(key: &str) -> PlannedAction {
        PlannedAction {
            action: Action::S3Delete {
                bucket: "b".into(),
                key: key.into(),
            },
            ..put(key, Freshness::Fixed)
        }
    }

    /// The lane as a plain list searched from the front, as the index must behave.
    fn naive(
        held: &mut VecDeque<(PlannedAction, Place)>,
        action: PlannedAction,
        source: Place,
        out: &mut Vec<String>,
        left: &mut Vec<String>,
    ) {
        let target = put_target(&action.action).map(|(b, k)| (b.to_string(), k.to_string()));
        let found = held.iter().position(|(h, _)| {
            put_target(&h.action).map(|(b, k)| (b.to_string(), k.to_string())) == target
        });
        let taken = found.and_then(|i| held.remove(i));
        match &action.action {
            Action::S3Delete { .. } => {
                if let Some((t, s)) = taken {
                    left.push(format!("deleted later {} {}", key(&t), s.line));
                }
                out.push(format!("{} {}", key(&action), source.line));
            }
            _ => {
                if let Some((t, s)) = taken {
                    left.push(format!("superseded {} {}", key(&t), s.line));
                }
                held.push_back((action, source));
                if held.len() > HELD_CHUNKS_PER_LANE
                    && let Some((a, s)) = held.pop_front()
                {
                    out.push(format!("{} {}", key(&a), s.line));
                }
            }
        }
    }

    #[test]
    fn chunks_go_as_a_search_of_the_held_list_would_have_them_go() {
        let mut net = NetEffect::default();
        let mut model = VecDeque::new();
        let (mut out, mut left, mut model_out, mut model_left) = (vec![], vec![], vec![], vec![]);
        // A fixed pseudo-random walk over more objects than a lane holds: puts again,
        // deletes in and out of order, deletes of objects never put.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for line in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let name = format!("seg{}.ts", x % 700);
            let action = if x.is_multiple_of(3) {
                delete(&name)
            } else {
                put(&name, Freshness::Fixed)
            };
            let (mut o, mut l) = (Vec::new(), Vec::new());
            net.take(action.clone(), source(line), &mut o, &mut l);
            out.extend(o.iter().map(|(a, s)| format!("{} {}", key(a), s.line)));
            left.extend(l.iter().map(|(a, s, reason)| {
                let why = match reason {
                    Skip::DeletedLater => "deleted later",
                    _ => "superseded",
                };
                format!("{why} {} {}", key(a), s.line)
            }));
            naive(
                &mut model,
                action,
                source(line),
                &mut model_out,
                &mut model_left,
            );
        }
        assert_eq!(out, model_out);
        assert_eq!(left, model_left);
        let rest: Vec<String> = net
            .flush_all()
            .iter()
            .map(|(a, s)| format!("{} {}", key(a), s.line))
            .collect();
        let model_rest: Vec<String> = model
            .iter()
            .map(|(a, s)| format!("{} {}", key(a), s.line))
            .collect();
        assert_eq!(rest, model_rest);
    }

    #[test]
    fn taken_out_chunks_behind_a_held_one_do_not_pile_up() {
        let mut net = NetEffect::default();
        let (mut out, mut left) = (Vec::new(), Vec::new());
        net.take(
            put("first.ts", Freshness::Fixed),
            source(0),
            &mut out,
            &mut left,
        );
        for n in 1..10_000u64 {
            let name = format!("seg{n}.ts");
            net.take(put(&name, Freshness::Fixed), source(n), &mut out, &mut left);
            net.take(delete(&name), source(n), &mut out, &mut left);
        }
        let lane = net.lanes.values().next().expect("one lane");
        assert_eq!(lane.chunks.len(), 1);
        assert!(
            lane.chunks.slots.len() < 200,
            "{} slots",
            lane.chunks.slots.len()
        );
        assert_eq!(left.len(), 9_999);
        let rest = net.flush_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(key(&rest[0].0), "first.ts");
    }
}
