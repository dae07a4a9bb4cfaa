//! Baseline for the action benchmark: the EMS calls that `replay` makes for N new streams with
//! StreamRecorder and StreamAutoRouter enabled (a `record` and a `pushStream` each), sent with
//! the daemon's own API client from N threads and nothing else (no log, no plugins, no lanes).
//!
//!   cargo run --release --example ems_call_loop -- --api http://127.0.0.1:7777/ \
//!       --streams 20000 --concurrency 8 --prefix loop
//!
//! Prints calls/s; the gap to `replay`'s rate is its overhead.

use clap::Parser;
use emstail::action::{ApiTarget, Params};
use emstail::exec::ems::{EmsClient, EmsClientConfig};
use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// EMS API base URL.
    #[arg(long)]
    api: String,
    /// Streams to create calls for; two calls each.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Calling threads.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stream names are PREFIX00001, …: pick one the EMS has not seen, or pushes are
    /// answered "already taken".
    #[arg(long, default_value = "loop")]
    prefix: String,
    /// Only the `record` call for each stream (what `bench/follow.sh`'s events cause).
    #[arg(long)]
    record_only: bool,
    /// Start calls at this many per second, spread evenly (0: as fast as they go).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// With --rate: one thread starts the calls at their times and hands each to the calling
    /// threads through a queue (a mutex and a condvar, as the daemon's pool), instead of each
    /// calling thread waiting for its own: a floor that pays the daemon's hand-off from the
    /// thread that reads the log to the one that calls.
    #[arg(long, requires = "rate")]
    handoff: bool,
    /// Per-request timeout, as `Service.request_timeout_secs`.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let target = ApiTarget::plain(&args.api);
    let timeout = Duration::from_secs(args.timeout_secs);
    let client = EmsClient::new(EmsClientConfig {
        connect_timeout: timeout.min(Duration::from_secs(3)),
        request_timeout: timeout,
    });
    let calls: Vec<(&str, Params)> = (1..=args.streams)
        .flat_map(|i| {
            let name = format!("{}{i:05}", args.prefix);
            let record = Params::new()
                .with("localStreamName", name.as_str())
                .with("pathToFile", format!("/var/evostreamms/media/{name}"))
                .with("type", "mp4")
                .with_bool("overwrite", false)
                .with_bool("keepAlive", true)
                .with("_localStreamName", name.as_str())
                .with("_emstail", "1");
            let push = Params::new()
                .with("uri", "rtmp://127.0.0.1:1936/live")
                .with("localStreamName", name.as_str())
                .with_bool("keepAlive", false)
                .with("_emstail", "1");
            let mut calls = vec![("record", record)];
            if !args.record_only {
                calls.push(("pushStream", push));
            }
            calls
        })
        .collect();

    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let call = |i: usize| {
        let (command, params) = &calls[i];
        if let Err(e) = client.execute(&target, command, params) {
            eprintln!("{command}: {e}");
            failed.fetch_add(1, Ordering::Relaxed);
        }
    };
    let due = |started: Instant, i: usize| {
        let due = started + Duration::from_secs_f64(i as f64 / args.rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    };
    // The hand-off queue: call indexes, and whether the starting thread is done.
    let queue = (Mutex::new((VecDeque::new(), false)), Condvar::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..args.concurrency.max(1) {
            scope.spawn(|| {
                loop {
                    let i = if args.handoff {
                        let mut q = queue.0.lock().expect("queue lock");
                        loop {
                            if let Some(i) = q.0.pop_front() {
                                break i;
                            }
                            if q.1 {
                                return;
                            }
                            q = queue.1.wait(q).expect("queue lock");
                        }
                    } else {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= calls.len() {
                            break;
                        }
                        if args.rate > 0 {
                            due(started, i);
                        }
                        i
                    };
                    call(i);
                }
            });
        }
        if args.handoff {
            for i in 0..calls.len() {
                due(started, i);
                queue.0.lock().expect("queue lock").0.push_back(i);
                queue.1.notify_one();
            }
            queue.0.lock().expect("queue lock").1 = true;
            queue.1.notify_all();
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failed.into_inner();
    let done = calls.len() - failed;
    println!(
        "{done} calls ({failed} failed) in {elapsed:.3} s with {} threads: {:.1} calls/s",
        args.concurrency.max(1),
        done as f64 / elapsed
    );
    if failed > 0 {
        eprintln!("ems_call_loop: {failed} calls failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
