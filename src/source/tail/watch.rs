//! inotify as a wake-up only. Events are not trusted to be complete (the queue overflows,
//! renames are not paired): any event just cuts the wait short, and one that may mean a file
//! appeared, went or was renamed (or an overflow) asks for a scan before reading.

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

pub(super) struct Wake {
    watcher: RecommendedWatcher,
    watched: Option<(PathBuf, bool)>,
    rx: Receiver<()>,
    scan: Arc<AtomicBool>,
}

impl Wake {
    pub(super) fn new() -> notify::Result<Wake> {
        // One pending wake-up is enough: the reader looks at everything when it wakes.
        let (tx, rx): (SyncSender<()>, Receiver<()>) = sync_channel(1);
        let scan = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&scan);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let rescan = match &res {
                Ok(event) => {
                    event.need_rescan()
                        || !matches!(
                            event.kind,
                            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Access(_)
                        )
                }
                // An error from the watcher may mean lost events.
                Err(_) => true,
            };
            if rescan {
                flag.store(true, Ordering::SeqCst);
            }
            match tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        })?;
        Ok(Wake {
            watcher,
            watched: None,
            rx,
            scan,
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

    /// Whether an event asked for a scan since the last call.
    pub(super) fn take_scan(&self) -> bool {
        self.scan.swap(false, Ordering::SeqCst)
    }

    /// Sleeps until an event or `timeout`.
    pub(super) fn wait(&self, timeout: Duration) {
        let _ = self.rx.recv_timeout(timeout);
    }
}
