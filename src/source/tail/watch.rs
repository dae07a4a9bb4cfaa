//! inotify as a wake-up only. Events are not trusted to be complete (the queue overflows,
//! renames are not paired): any event just cuts the wait short, and one that may mean a file
//! appeared, went or was renamed (or an overflow) asks for a scan before reading.

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What runs on the watcher's thread at each event that asks for no scan, given the paths the
/// event names (none if it names none): returns whether it dealt with the event, or the
/// waiting reader must be woken instead (see [`super::Tailer::read_on_event`]).
pub type Hook = Box<dyn Fn(&[PathBuf]) -> bool + Send + Sync>;

pub(super) struct Wake {
    watcher: RecommendedWatcher,
    watched: Option<(PathBuf, bool)>,
    /// `None` once handed out as a [`Waiter`].
    rx: Option<Receiver<()>>,
    scan: Arc<AtomicBool>,
    hook: Arc<OnceLock<Hook>>,
}

/// Wakes a thread waiting for the watcher's events, away from the tailer.
pub struct Waiter(Receiver<()>);

impl Waiter {
    /// Sleeps until an event the hook did not deal with, or `timeout`.
    pub fn wait(&self, timeout: Duration) {
        if let Err(RecvTimeoutError::Disconnected) = self.0.recv_timeout(timeout) {
            // The watcher's thread is gone: no more wake-ups, so the timeout alone paces.
            std::thread::sleep(timeout);
        }
    }
}

impl Wake {
    pub(super) fn new() -> notify::Result<Wake> {
        // One pending wake-up is enough: the reader looks at everything when it wakes.
        let (tx, rx): (SyncSender<()>, Receiver<()>) = sync_channel(1);
        let scan = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&scan);
        let hook: Arc<OnceLock<Hook>> = Arc::new(OnceLock::new());
        let on_event = Arc::clone(&hook);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if needs_scan(&res) {
                // Listing files may change the watch, which only the waiting reader can do.
                flag.store(true, Ordering::SeqCst);
            } else if let Some(hook) = on_event.get() {
                let paths = res.as_ref().map_or(&[][..], |event| &event.paths[..]);
                if hook(paths) {
                    return;
                }
            }
            match tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        })?;
        Ok(Wake {
            watcher,
            watched: None,
            rx: Some(rx),
            scan,
            hook,
        })
    }

    /// Watches `root` (directory, recursive) instead of what was watched before, if different.
    pub(super) fn watch(&mut self, root: Option<(PathBuf, bool)>) {
        if root == self.watched {
            return;
        }
        if let Some((old, _)) = self.watched.take() {
            // The directory may be gone already, which removed the watch with it.
            let _ = self.watcher.unwatch(&old);
        }
        let Some((dir, recursive)) = root else { return };
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match self.watcher.watch(&dir, mode) {
            Ok(()) => self.watched = Some((dir, recursive)),
            Err(e) => log::debug!(
                "cannot watch {}: {e}; the rescan timer covers it",
                dir.display()
            ),
        }
    }

    /// Whether a directory is being watched (a failed watch leaves it to the rescan timer).
    pub(super) fn watching(&self) -> bool {
        self.watched.is_some()
    }

    /// Whether an event asked for a scan since the last call.
    pub(super) fn take_scan(&self) -> bool {
        self.scan.swap(false, Ordering::SeqCst)
    }

    /// Whether an event asked for a scan, leaving the request in place.
    pub(super) fn scan_asked(&self) -> bool {
        self.scan.load(Ordering::SeqCst)
    }

    /// Runs `hook` on the watcher's thread at every event from now on, and hands out the
    /// wake-ups it does not deal with. `None` if done before.
    pub(super) fn hook(&mut self, hook: Hook) -> Option<Waiter> {
        let rx = self.rx.take()?;
        if self.hook.set(hook).is_err() {
            return None;
        }
        Some(Waiter(rx))
    }

    /// Sleeps until an event or `timeout` (just sleeps once the wake-ups are handed out).
    pub(super) fn wait(&self, timeout: Duration) {
        match &self.rx {
            Some(rx) => {
                let _ = rx.recv_timeout(timeout);
            }
            None => std::thread::sleep(timeout),
        }
    }
}

/// Whether a watcher report may mean the set of files changed, so that the directory must be
/// listed again: anything but a plain data write or an access, an overflowed queue (events
/// were lost), or an error.
fn needs_scan(res: &notify::Result<notify::Event>) -> bool {
    match res {
        Ok(event) => {
            event.need_rescan()
                || !matches!(
                    event.kind,
                    EventKind::Modify(ModifyKind::Data(_)) | EventKind::Access(_)
                )
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::needs_scan;
    use notify::event::{
        AccessKind, CreateKind, DataChange, EventKind, Flag, ModifyKind, RemoveKind, RenameMode,
    };
    use notify::{Error, Event};

    fn event(kind: EventKind) -> notify::Result<Event> {
        Ok(Event::new(kind).add_path("/var/log/evostreamms/events.txt".into()))
    }

    #[test]
    fn a_plain_append_only_wakes_the_reader() {
        assert!(!needs_scan(&event(EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        )))));
        assert!(!needs_scan(&event(EventKind::Access(AccessKind::Any))));
    }

    #[test]
    fn files_appearing_going_or_renamed_ask_for_a_scan() {
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Any,
        ] {
            assert!(needs_scan(&event(kind)), "{kind:?}");
        }
    }

    #[test]
    fn an_overflowed_queue_or_a_watcher_error_asks_for_a_scan() {
        // inotify's IN_Q_OVERFLOW arrives as an event flagged Rescan: events were dropped, so
        // a rotation may have been missed.
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(needs_scan(&Ok(overflow)));
        let overflow_on_data =
            Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any))).set_flag(Flag::Rescan);
        assert!(needs_scan(&Ok(overflow_on_data)));
        assert!(needs_scan(&Err(Error::generic("inotify read failed"))));
    }
}
