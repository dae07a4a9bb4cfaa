//! The net effect of a window's uploads (see [`NetEffect`]).

use super::Skip;
use crate::action::{Action, PlannedAction, S3Put};
use crate::plugins::keys::Freshness;
use hashbrown::HashTable;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The hasher of the tables keyed by what the log names (lane and stream names, object keys):
/// foldhash, hashbrown's default, seeded at random in each replay. Those names are anyone's
/// who can publish a stream, but a replay is one pass over files already written: nothing of
/// its hash order or timing goes back to whoever chose them, and foldhash has no collisions
/// known that hold whatever the seed. SipHash, std's, was 12 % of the replay's busier thread.
type Seeded = hashbrown::DefaultHashBuilder;

/// Chunk puts held back at most, every lane together: past this the oldest held is issued
/// even though a later delete may still come (it is then uploaded in vain; its delete still
/// goes out). EMS keeps a playlist's last few chunks and deletes the older ones, so this is
/// some 200 streams' worth; a held put takes about 370 bytes (its key and path, its slot, its
/// index entry), so about 3 MiB at most.
pub const HELD_CHUNKS: usize = 8192;

/// Chunk puts held back per lane at most, so that one lane that never deletes does not take
/// the place of the others' (its oldest is issued first).
const HELD_CHUNKS_PER_LANE: usize = 512;

/// Recent shapes a lane compares a new chunk put with (see [`HeldPut`]): a lane's chunks
/// have one or two (a content type each), a shape not among them is simply made again.
const SHAPES_PER_LANE: usize = 4;

/// The net effect of a window's uploads: a chunk deleted later in the window is not put (its
/// delete still goes out: an earlier run may have put it), and a playlist or manifest is put
/// once, with the file as it is on disk, when its stream's events end (its stream closes, or
/// the window ends). Holds only what belongs to streams alive, and at most [`HELD_CHUNKS`]
/// chunk puts, so memory follows the streams, not the window.
pub(super) struct NetEffect {
    /// Lane name → its index in `lanes`.
    names: HashMap<String, usize, Seeded>,
    /// Stream name → the names of the lanes opened for it, so that a stream's close finds its
    /// lanes without looking at every lane open.
    by_stream: HashMap<String, Vec<String>, Seeded>,
    /// `None` where a lane was flushed; its index is in `free`, for the next lane opened.
    lanes: Vec<Option<Held>>,
    free: Vec<usize>,
    /// Order lanes were opened in, for the flush at the end.
    next: u64,
    /// The number of the next chunk put held: every lane's puts in one order.
    next_chunk: u64,
    /// Chunk puts held, every lane together.
    held: usize,
    /// Every chunk put held, oldest first, as (lane index, number): the oldest of all lanes
    /// is the first still held. Entries of puts gone since are skipped when met, and dropped
    /// when they outnumber the puts held.
    order: VecDeque<(usize, u64)>,
    hasher: Seeded,
    per_lane: usize,
    total: usize,
}

impl Default for NetEffect {
    fn default() -> Self {
        NetEffect::with_caps(HELD_CHUNKS_PER_LANE, HELD_CHUNKS)
    }
}

struct Held {
    opened: u64,
    stream: Option<String>,
    /// Chunk puts, oldest first.
    chunks: Chunks,
    /// The shapes of the lane's latest chunk puts, newest last.
    shapes: Vec<Rc<PlannedAction>>,
    /// Playlist and manifest puts, the latest per key, in the order keys first came.
    latest: Vec<(PlannedAction, Place)>,
}

/// A held chunk put without what it has in common with the lane's other chunk puts: its key
/// and file are its own; plugin, lane, stream, bucket, content type and ACL are in its shape,
/// a put with an empty key and path that the puts alike share. A whole [`PlannedAction`] per
/// held chunk, with its own copies of those names, took about three times the memory.
pub(super) struct HeldPut {
    shape: Rc<PlannedAction>,
    key: Box<str>,
    path: Box<Path>,
}

impl HeldPut {
    fn bucket(&self) -> &str {
        match &self.shape.action {
            Action::S3Put(put) => &put.bucket,
            _ => "",
        }
    }

    /// The put whole again, in `into`'s buffers (the put rebuilt last, reused so that a held
    /// put goes out without allocating its names again).
    pub(super) fn rebuild(self, into: &mut Option<PlannedAction>) -> &PlannedAction {
        let whole = match into {
            Some(whole) => {
                refill(whole, &self.shape);
                whole
            }
            None => into.insert(PlannedAction::clone(&self.shape)),
        };
        if let Action::S3Put(put) = &mut whole.action {
            put.key = self.key.into_string();
            put.path = self.path.into_path_buf();
        }
        whole
    }
}

/// `whole` made equal to `shape` in the buffers it has.
fn refill(whole: &mut PlannedAction, shape: &PlannedAction) {
    whole.plugin = shape.plugin;
    whole.lane.clone_from(&shape.lane);
    whole.stream.clone_from(&shape.stream);
    whole.stream_id = shape.stream_id;
    match (&mut whole.action, &shape.action) {
        (Action::S3Put(w), Action::S3Put(s)) => {
            w.bucket.clone_from(&s.bucket);
            w.content_type.clone_from(&s.content_type);
            w.cache_control.clone_from(&s.cache_control);
            w.acl.clone_from(&s.acl);
            w.optional = s.optional;
        }
        (w, s) => w.clone_from(s),
    }
}

/// A put or delete as it goes out of the net effect: whole, or a held chunk put to rebuild.
/// Unboxed: it lives only until it is issued, and boxing the whole one would allocate for
/// every action that is not a held chunk.
#[allow(clippy::large_enum_variant)]
pub(super) enum Going {
    Whole(PlannedAction),
    Chunk(HeldPut),
}

impl Going {
    /// Hands `f` the action whole; `scratch` as for [`HeldPut::rebuild`].
    pub(super) fn with<R>(
        self,
        scratch: &mut Option<PlannedAction>,
        f: impl FnOnce(&PlannedAction) -> R,
    ) -> R {
        match self {
            Going::Whole(action) => f(&action),
            Going::Chunk(put) => f(put.rebuild(scratch)),
        }
    }
}

/// The chunk puts a lane holds, oldest first, indexed by the object they put: a later put or
/// delete of the same object finds its held put without comparing every key the lane holds
/// (a scan of up to [`HELD_CHUNKS_PER_LANE`] keys per chunk event was a third of a replay).
#[derive(Default)]
struct Chunks {
    /// (number, put) in the order they came, numbers rising; `None` where a put was taken
    /// out since.
    slots: VecDeque<(u64, Option<(HeldPut, Place)>)>,
    /// The numbers of the held puts, found by the hash of their bucket and key.
    index: HashTable<u64>,
    /// Puts held (the `Some` slots).
    len: usize,
}

fn object_hash(hasher: &Seeded, bucket: &str, key: &str) -> u64 {
    hasher.hash_one((bucket, key))
}

/// Where put `number` is in `slots`.
fn position(slots: &VecDeque<(u64, Option<(HeldPut, Place)>)>, number: u64) -> Option<usize> {
    slots.binary_search_by_key(&number, |(n, _)| *n).ok()
}

impl Chunks {
    fn len(&self) -> usize {
        self.len
    }

    fn holds(&self, number: u64) -> bool {
        position(&self.slots, number).is_some_and(|i| self.slots[i].1.is_some())
    }

    /// Holds `put` as the newest, numbered `number` (above every number held); any held put
    /// of the same object must have been taken out first.
    fn push_back(&mut self, hasher: &Seeded, number: u64, put: HeldPut, place: Place) {
        let hash = object_hash(hasher, put.bucket(), &put.key);
        let Chunks { slots, index, .. } = self;
        slots.push_back((number, Some((put, place))));
        index.insert_unique(hash, number, |&n| {
            let held = position(slots, n).and_then(|i| slots[i].1.as_ref());
            held.map_or(0, |(put, _)| object_hash(hasher, put.bucket(), &put.key))
        });
        self.len += 1;
    }

    /// Takes out the held put to `bucket`/`key`, if there is one.
    fn take(&mut self, hasher: &Seeded, bucket: &str, key: &str) -> Option<(HeldPut, Place)> {
        let hash = object_hash(hasher, bucket, key);
        let Chunks { slots, index, .. } = self;
        let found = index.find_entry(hash, |&n| {
            let held = position(slots, n).and_then(|i| slots[i].1.as_ref());
            held.is_some_and(|(put, _)| *put.key == *key && put.bucket() == bucket)
        });
        let (number, _) = found.ok()?.remove();
        self.take_slot(number)
    }

    /// Takes out held put `number`.
    fn take_number(&mut self, hasher: &Seeded, number: u64) -> Option<(HeldPut, Place)> {
        let i = position(&self.slots, number)?;
        let (put, _) = self.slots[i].1.as_ref()?;
        let hash = object_hash(hasher, put.bucket(), &put.key);
        if let Ok(found) = self.index.find_entry(hash, |&n| n == number) {
            found.remove();
        }
        self.take_slot(number)
    }

    /// Empties the slot of `number`, already out of the index.
    fn take_slot(&mut self, number: u64) -> Option<(HeldPut, Place)> {
        let i = position(&self.slots, number)?;
        let taken = self.slots[i].1.take()?;
        self.len -= 1;
        self.tidy();
        Some(taken)
    }

    /// Takes out the oldest held put.
    fn pop_front(&mut self, hasher: &Seeded) -> Option<(HeldPut, Place)> {
        let number = self.slots.iter().find(|(_, put)| put.is_some())?.0;
        self.take_number(hasher, number)
    }

    /// Drops the empty slots at the front, and the others when most are empty, so that
    /// memory follows the puts held whatever order objects are deleted in.
    fn tidy(&mut self) {
        while let Some((_, None)) = self.slots.front() {
            self.slots.pop_front();
        }
        if self.slots.len() > 2 * self.len + 64 {
            self.slots.retain(|(_, put)| put.is_some());
        }
    }

    fn into_puts(self) -> impl Iterator<Item = (Going, Place)> {
        self.slots
            .into_iter()
            .filter_map(|(_, put)| put)
            .map(|(put, place)| (Going::Chunk(put), place))
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

pub(super) type Out = Vec<(Going, Place)>;
pub(super) type LeftOut = Vec<(Going, Place, Skip)>;

fn put_target(action: &Action) -> Option<(&str, &str)> {
    match action {
        Action::S3Put(S3Put { bucket, key, .. }) | Action::S3Delete { bucket, key } => {
            Some((bucket, key))
        }
        Action::EmsCall { .. } => None,
    }
}

impl Held {
    /// `put` (a chunk put) as held: its key and path, and a shape of the lane's it is like.
    fn compact(&mut self, mut put: PlannedAction) -> HeldPut {
        let (key, path) = match &mut put.action {
            Action::S3Put(p) => (
                std::mem::take(&mut p.key).into_boxed_str(),
                std::mem::take(&mut p.path).into_boxed_path(),
            ),
            _ => (Box::default(), PathBuf::new().into_boxed_path()),
        };
        let shape = match self.shapes.iter().rev().find(|shape| ***shape == put) {
            Some(shape) => Rc::clone(shape),
            None => {
                if self.shapes.len() == SHAPES_PER_LANE {
                    self.shapes.remove(0);
                }
                let shape = Rc::new(put);
                self.shapes.push(Rc::clone(&shape));
                shape
            }
        };
        HeldPut { shape, key, path }
    }

    fn into_puts(self) -> impl Iterator<Item = (Going, Place)> {
        self.chunks.into_puts().chain(
            self.latest
                .into_iter()
                .map(|(action, place)| (Going::Whole(action), place)),
        )
    }
}

impl NetEffect {
    /// A net effect that holds at most `per_lane` chunk puts a lane and `total` in all.
    pub(super) fn with_caps(per_lane: usize, total: usize) -> NetEffect {
        NetEffect {
            names: HashMap::default(),
            by_stream: HashMap::default(),
            lanes: Vec::new(),
            free: Vec::new(),
            next: 0,
            next_chunk: 0,
            held: 0,
            order: VecDeque::new(),
            hasher: Seeded::default(),
            per_lane,
            total,
        }
    }

    /// Chunk puts held now, every lane together.
    #[cfg(test)]
    fn chunks_held(&self) -> usize {
        self.held
    }

    pub(super) fn take(
        &mut self,
        action: PlannedAction,
        source: Place,
        out: &mut Out,
        left: &mut LeftOut,
    ) {
        let index = match self.names.get(&action.lane) {
            Some(&index) => index,
            None => {
                if action.action.is_control() {
                    out.push((Going::Whole(action), source));
                    return;
                }
                self.next += 1;
                let held = Held {
                    opened: self.next,
                    stream: action.stream.clone(),
                    chunks: Chunks::default(),
                    shapes: Vec::new(),
                    latest: Vec::new(),
                };
                let index = match self.free.pop() {
                    Some(index) => {
                        self.lanes[index] = Some(held);
                        index
                    }
                    None => {
                        self.lanes.push(Some(held));
                        self.lanes.len() - 1
                    }
                };
                self.names.insert(action.lane.clone(), index);
                if let Some(stream) = &action.stream {
                    (self.by_stream.entry(stream.clone()).or_default()).push(action.lane.clone());
                }
                index
            }
        };
        let Some(lane) = self.lanes[index].as_mut() else {
            debug_assert!(false, "a named lane is held");
            return;
        };
        match &action.action {
            Action::EmsCall { .. } => out.push((Going::Whole(action), source)),
            Action::S3Put(S3Put {
                cache_control,
                bucket,
                key,
                ..
            }) if cache_control == Freshness::Fixed.cache_control() => {
                if let Some((old, old_source)) = lane.chunks.take(&self.hasher, bucket, key) {
                    self.held -= 1;
                    left.push((Going::Chunk(old), old_source, Skip::Superseded));
                }
                let number = self.next_chunk;
                self.next_chunk += 1;
                let put = lane.compact(action);
                lane.chunks.push_back(&self.hasher, number, put, source);
                self.held += 1;
                self.order.push_back((index, number));
                if lane.chunks.len() > self.per_lane
                    && let Some((oldest, at)) = lane.chunks.pop_front(&self.hasher)
                {
                    self.held -= 1;
                    out.push((Going::Chunk(oldest), at));
                }
                self.keep_to_total(out);
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
                        left.push((Going::Whole(old), old_source, Skip::Superseded));
                    }
                    None => lane.latest.push((action, source)),
                }
            }
            Action::S3Delete { bucket, key } => {
                if let Some((put, put_source)) = lane.chunks.take(&self.hasher, bucket, key) {
                    self.held -= 1;
                    left.push((Going::Chunk(put), put_source, Skip::DeletedLater));
                }
                out.push((Going::Whole(action), source));
            }
        }
    }

    /// Issues the oldest held chunk puts of every lane while more than `total` are held, and
    /// forgets the entries of `order` whose puts are gone when they are most of it.
    fn keep_to_total(&mut self, out: &mut Out) {
        while self.held > self.total {
            let Some((index, number)) = self.order.pop_front() else {
                debug_assert!(false, "every held chunk put is in the order");
                break;
            };
            let lane = self.lanes.get_mut(index).and_then(Option::as_mut);
            if let Some((oldest, at)) =
                lane.and_then(|l| l.chunks.take_number(&self.hasher, number))
            {
                self.held -= 1;
                out.push((Going::Chunk(oldest), at));
            }
        }
        if self.order.len() > 2 * self.held + 64 {
            let lanes = &self.lanes;
            self.order.retain(|&(index, number)| {
                lanes
                    .get(index)
                    .and_then(Option::as_ref)
                    .is_some_and(|lane| lane.chunks.holds(number))
            });
        }
    }

    fn remove_lane(&mut self, name: &str) -> Option<Held> {
        let index = self.names.remove(name)?;
        let held = self.lanes.get_mut(index)?.take()?;
        self.free.push(index);
        self.held -= held.chunks.len();
        Some(held)
    }

    /// The held puts of the lanes of `stream`: chunks first, then playlists.
    pub(super) fn flush_stream(&mut self, stream: &str) -> Out {
        let Some(opened) = self.by_stream.remove(stream) else {
            return Vec::new();
        };
        let (lanes, names) = (&self.lanes, &self.names);
        let mut names: Vec<(String, u64)> = opened
            .into_iter()
            .filter_map(|name| {
                let held = lanes.get(*names.get(&name)?)?.as_ref()?;
                let opened = held.opened;
                (held.stream.as_deref() == Some(stream)).then_some((name, opened))
            })
            .collect();
        names.sort_by_key(|(_, opened)| *opened);
        let mut out = Vec::new();
        for (name, _) in names {
            if let Some(held) = self.remove_lane(&name) {
                out.extend(held.into_puts());
            }
        }
        out
    }

    /// Everything still held, lane by lane in the order they opened, taken out as it goes
    /// (a list of it all, made at once, was the peak of a replay's memory).
    pub(super) fn flush_all(self) -> impl Iterator<Item = (Going, Place)> {
        let mut lanes: Vec<Held> = self.lanes.into_iter().flatten().collect();
        lanes.sort_by_key(|held| held.opened);
        lanes.into_iter().flat_map(Held::into_puts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::PluginId;

    fn put_in(stream: &str, key: &str, freshness: Freshness) -> PlannedAction {
        PlannedAction {
            plugin: PluginId::AmazonHLSUpload,
            lane: format!("AmazonHLSUpload:{stream}"),
            stream: Some(stream.into()),
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

    fn put(key: &str, freshness: Freshness) -> PlannedAction {
        put_in("cam1", key, freshness)
    }

    fn delete_in(stream: &str, key: &str) -> PlannedAction {
        PlannedAction {
            action: Action::S3Delete {
                bucket: "b".into(),
                key: key.into(),
            },
            ..put_in(stream, key, Freshness::Fixed)
        }
    }

    fn delete(key: &str) -> PlannedAction {
        delete_in("cam1", key)
    }

    fn whole(going: Going) -> PlannedAction {
        going.with(&mut None, PlannedAction::clone)
    }

    fn key(a: &PlannedAction) -> &str {
        match &a.action {
            Action::S3Put(S3Put { key, .. }) | Action::S3Delete { key, .. } => key,
            Action::EmsCall { command, .. } => command,
        }
    }

    fn keys(out: impl IntoIterator<Item = (Going, Place)>) -> Vec<String> {
        out.into_iter()
            .map(|(a, _)| key(&whole(a)).to_string())
            .collect()
    }

    fn source(line: u64) -> Place {
        Place { file: 0, line }
    }

    fn lane_of<'a>(net: &'a NetEffect, name: &str) -> &'a Held {
        let index = net.names[name];
        net.lanes[index].as_ref().expect("the lane is held")
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
        let expected: Vec<String> = (0..10).map(|n| format!("seg{n}.ts")).collect();
        assert_eq!(keys(out), expected);
        assert!(left.is_empty());
        let rest = keys(net.flush_stream("cam1"));
        assert_eq!(rest.len(), HELD_CHUNKS_PER_LANE);
        assert_eq!(rest[0], "seg10.ts");
        assert!(
            net.flush_all().next().is_none(),
            "the closed stream's lane is gone"
        );
    }

    /// A stream's close flushes its own lanes, found through the stream's name, whatever other
    /// lanes are open: lanes whose close never comes in the window (a folder EMS named
    /// otherwise than its stream, whose name whoever publishes chooses) are neither flushed by
    /// another stream's close nor looked at by it (which made a window of many such streams
    /// and closes cost the product of the two).
    #[test]
    fn a_close_flushes_its_own_lanes_found_by_its_name_and_no_other() {
        const STREAMS: usize = 1_000;
        let mut net = NetEffect::default();
        let (mut out, mut left) = (Vec::new(), Vec::new());
        for n in 0..STREAMS {
            let playlist = put_in(&format!("s{n}_k_v"), "playlist.m3u8", Freshness::Changing);
            net.take(playlist, source(n as u64), &mut out, &mut left);
        }
        assert_eq!(
            net.by_stream.len(),
            STREAMS,
            "one entry per stream with a lane"
        );
        for n in 0..STREAMS {
            assert!(net.flush_stream(&format!("s{n}?k=v")).is_empty());
        }
        assert_eq!(
            net.by_stream.len(),
            STREAMS,
            "closes of other names found nothing"
        );
        assert_eq!(keys(net.flush_stream("s7_k_v")), ["playlist.m3u8"]);
        assert!(
            !net.by_stream.contains_key("s7_k_v"),
            "its entry goes with it"
        );
        assert!(net.flush_stream("s7_k_v").is_empty(), "flushed once");
        assert_eq!(net.flush_all().count(), STREAMS - 1);
    }

    #[test]
    fn a_held_put_goes_out_as_it_came_in_whatever_was_rebuilt_before() {
        let mut net = NetEffect::default();
        let (mut out, mut left) = (Vec::new(), Vec::new());
        let mut came = Vec::new();
        for n in 0..12u64 {
            let mut action = put_in(
                &format!("cam{}", n % 3),
                &format!("seg{n}.ts"),
                Freshness::Fixed,
            );
            if let Action::S3Put(p) = &mut action.action {
                if n % 2 == 0 {
                    p.content_type = "video/mp4".into();
                    p.acl = Some("public-read".into());
                }
                if n % 4 == 1 {
                    p.bucket = format!("bucket-{n}");
                    p.optional = true;
                }
                p.path = format!("/media/cam{}/seg{n}.ts", n % 3).into();
            }
            if n == 5 {
                action.plugin = PluginId::AmazonDASHUpload;
                action.stream_id = Some(7);
            }
            came.push(action.clone());
            net.take(action, source(n), &mut out, &mut left);
        }
        assert!(out.is_empty() && left.is_empty());
        let mut scratch = None;
        let mut gone: Vec<PlannedAction> = net
            .flush_all()
            .map(|(a, _)| a.with(&mut scratch, PlannedAction::clone))
            .collect();
        gone.sort_by_key(|a| {
            key(a)
                .trim_start_matches("seg")
                .trim_end_matches(".ts")
                .parse::<u64>()
                .ok()
        });
        assert_eq!(gone, came);
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

    fn lines(out: impl IntoIterator<Item = (Going, Place)>) -> Vec<String> {
        out.into_iter()
            .map(|(a, s)| format!("{} {}", key(&whole(a)), s.line))
            .collect()
    }

    fn left_lines(left: LeftOut) -> Vec<String> {
        left.into_iter()
            .map(|(a, s, reason)| {
                let why = match reason {
                    Skip::DeletedLater => "deleted later",
                    _ => "superseded",
                };
                format!("{why} {} {}", key(&whole(a)), s.line)
            })
            .collect()
    }

    /// A fixed pseudo-random walk.
    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn chunks_go_as_a_search_of_the_held_list_would_have_them_go() {
        let mut net = NetEffect::default();
        let mut model = VecDeque::new();
        let (mut out, mut left, mut model_out, mut model_left) = (vec![], vec![], vec![], vec![]);
        // More objects than a lane holds: puts again, deletes in and out of order, deletes of
        // objects never put.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for line in 0..20_000u64 {
            let r = xorshift(&mut x);
            let name = format!("seg{}.ts", r % 700);
            let action = if r.is_multiple_of(3) {
                delete(&name)
            } else {
                put(&name, Freshness::Fixed)
            };
            let (mut o, mut l) = (Vec::new(), Vec::new());
            net.take(action.clone(), source(line), &mut o, &mut l);
            out.extend(lines(o));
            left.extend(left_lines(l));
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
        let model_rest: Vec<String> = model
            .iter()
            .map(|(a, s)| format!("{} {}", key(a), s.line))
            .collect();
        assert_eq!(lines(net.flush_all()), model_rest);
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
        let lane = lane_of(&net, "AmazonHLSUpload:cam1");
        assert_eq!(lane.chunks.len(), 1);
        assert!(
            lane.chunks.slots.len() < 200,
            "{} slots",
            lane.chunks.slots.len()
        );
        assert!(net.order.len() < 200, "{} in the order", net.order.len());
        assert_eq!(left.len(), 9_999);
        assert_eq!(keys(net.flush_all()), ["first.ts"]);
    }

    #[test]
    fn past_the_total_cap_the_oldest_put_of_every_lane_goes_first() {
        let mut net = NetEffect::with_caps(HELD_CHUNKS_PER_LANE, 6);
        let (mut out, mut left) = (Vec::new(), Vec::new());
        // Three streams take turns, two chunks each per turn: nine held on the sixth turn.
        for n in 0..3u64 {
            for cam in ["a", "b", "c"] {
                for part in ["v", "w"] {
                    let name = format!("{cam}{n}{part}.ts");
                    net.take(
                        put_in(cam, &name, Freshness::Fixed),
                        source(n),
                        &mut out,
                        &mut left,
                    );
                    assert!(net.chunks_held() <= 6);
                }
            }
        }
        assert_eq!(
            keys(std::mem::take(&mut out)),
            [
                "a0v.ts", "a0w.ts", "b0v.ts", "b0w.ts", "c0v.ts", "c0w.ts", "a1v.ts", "a1w.ts",
                "b1v.ts", "b1w.ts", "c1v.ts", "c1w.ts"
            ],
        );
        // A delete still cancels what is held, and leaves room.
        net.take(delete_in("b", "b2v.ts"), source(3), &mut out, &mut left);
        assert_eq!(net.chunks_held(), 5);
        assert_eq!(left_lines(left), ["deleted later b2v.ts 2"]);
        assert_eq!(keys(net.flush_stream("a")), ["a2v.ts", "a2w.ts"]);
        assert_eq!(net.chunks_held(), 3);
        assert_eq!(keys(net.flush_all()), ["b2w.ts", "c2v.ts", "c2w.ts"]);
    }

    /// Every lane in one list, oldest first, as the two caps must behave.
    struct Model {
        held: Vec<(String, String, u64)>,
        per_lane: usize,
        total: usize,
    }

    impl Model {
        fn take(
            &mut self,
            stream: &str,
            name: &str,
            is_delete: bool,
            line: u64,
        ) -> (Vec<String>, Vec<String>) {
            let (mut out, mut left) = (Vec::new(), Vec::new());
            if let Some(i) = self
                .held
                .iter()
                .position(|(s, k, _)| s == stream && k == name)
            {
                let (_, k, l) = self.held.remove(i);
                let why = if is_delete {
                    "deleted later"
                } else {
                    "superseded"
                };
                left.push(format!("{why} {k} {l}"));
            }
            if is_delete {
                out.push(format!("{name} {line}"));
                return (out, left);
            }
            self.held.push((stream.into(), name.into(), line));
            if self.held.iter().filter(|(s, _, _)| s == stream).count() > self.per_lane {
                let i = self
                    .held
                    .iter()
                    .position(|(s, _, _)| s == stream)
                    .expect("one held");
                let (_, k, l) = self.held.remove(i);
                out.push(format!("{k} {l}"));
            }
            while self.held.len() > self.total {
                let (_, k, l) = self.held.remove(0);
                out.push(format!("{k} {l}"));
            }
            (out, left)
        }

        fn flush(&mut self, stream: &str) -> Vec<String> {
            let (gone, kept) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|(s, _, _)| s == stream);
            self.held = kept;
            gone.into_iter()
                .map(|(_, k, l)| format!("{k} {l}"))
                .collect::<Vec<String>>()
        }
    }

    #[test]
    fn lanes_under_both_caps_go_as_one_list_of_every_lane_would_have_them_go() {
        let (per_lane, total) = (40, 100);
        let mut net = NetEffect::with_caps(per_lane, total);
        let mut model = Model {
            held: Vec::new(),
            per_lane,
            total,
        };
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for line in 0..30_000u64 {
            let r = xorshift(&mut x);
            let stream = format!("cam{}", r % 5);
            let name = format!("seg{}.ts", (r >> 8) % 90);
            let (mut out, mut left) = (Vec::new(), Vec::new());
            if r.is_multiple_of(997) {
                // The stream closes: its held puts go, its lane with them.
                assert_eq!(
                    lines(net.flush_stream(&stream)),
                    model.flush(&stream),
                    "line {line}"
                );
                continue;
            }
            let is_delete = (r >> 20).is_multiple_of(4);
            let action = if is_delete {
                delete_in(&stream, &name)
            } else {
                put_in(&stream, &name, Freshness::Fixed)
            };
            net.take(action, source(line), &mut out, &mut left);
            let (model_out, model_left) = model.take(&stream, &name, is_delete, line);
            assert_eq!(lines(out), model_out, "line {line}");
            assert_eq!(left_lines(left), model_left, "line {line}");
            assert_eq!(net.chunks_held(), model.held.len());
            assert!(net.order.len() <= 2 * total + 64 + 1);
        }
    }
}
