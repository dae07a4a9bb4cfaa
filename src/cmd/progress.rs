//! How far a replay has come, on stderr: an indicatif bar on a terminal (bytes read of the
//! total, events/s, actions done/queued/failed, ETA), otherwise one plain log line every 10 s.

use emstail::replay::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Actions as the display counts them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Actions {
    pub done: u64,
    pub queued: u64,
    pub failed: u64,
}

pub type CountActions = Box<dyn Fn() -> Actions + Send>;

/// Runs until dropped.
pub struct Display {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Between two plain progress lines.
const LOG_EVERY: Duration = Duration::from_secs(10);
const BAR_TICK: Duration = Duration::from_millis(200);

impl Display {
    pub fn start(progress: Arc<Progress>, actions: CountActions) -> Display {
        let stop = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("emstail-progress".into())
                .spawn(move || {
                    if terminal {
                        bar(&progress, &actions, &stop);
                    } else {
                        lines(&progress, &actions, &stop);
                    }
                })
                .ok()
        };
        Display { stop, thread }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Events per second since the last look.
struct Rate {
    at: Instant,
    events: u64,
}

impl Rate {
    fn per_sec(&mut self, events: u64) -> u64 {
        let secs = self.at.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (events.saturating_sub(self.events) as f64 / secs) as u64
        } else {
            0
        };
        *self = Rate {
            at: Instant::now(),
            events,
        };
        rate
    }
}

fn message(events_per_sec: u64, a: Actions) -> String {
    format!(
        "{events_per_sec} events/s, actions {} done / {} queued / {} failed",
        a.done, a.queued, a.failed
    )
}

fn bar(progress: &Progress, actions: &CountActions, stop: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(
        Some(progress.total_bytes.load(Relaxed)),
        ProgressDrawTarget::stderr(),
    );
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    let mut rate = Rate {
        at: Instant::now(),
        events: 0,
    };
    // Rated over about a second, drawn five times a second.
    let mut shown_rate = 0;
    let mut ticks = 0u32;
    loop {
        let done = stop.load(Relaxed);
        bar.set_length(progress.total_bytes.load(Relaxed));
        bar.set_position(progress.disk_bytes.load(Relaxed));
        if ticks.is_multiple_of(5) {
            shown_rate = rate.per_sec(progress.events.load(Relaxed));
        }
        bar.set_message(message(shown_rate, actions()));
        if done {
            bar.finish();
            return;
        }
        ticks += 1;
        std::thread::sleep(BAR_TICK);
    }
}

fn lines(progress: &Progress, actions: &CountActions, stop: &AtomicBool) {
    let mut rate = Rate {
        at: Instant::now(),
        events: 0,
    };
    let mut next = Instant::now() + LOG_EVERY;
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next += LOG_EVERY;
        let read = progress.disk_bytes.load(Relaxed);
        let total = progress.total_bytes.load(Relaxed).max(1);
        log::info!(
            "replay: {:.1}% read ({read} of {total} bytes), {}",
            read as f64 * 100.0 / total as f64,
            message(rate.per_sec(progress.events.load(Relaxed)), actions())
        );
    }
}
