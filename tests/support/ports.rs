//! Ports for the tests: a free one, and one that can be made to refuse connections for a
//! while (S3 or EMS going down and coming back).
//!
//! Every port handed out here is below the kernel's ephemeral range and handed out once per
//! process. A test server that stops listening for a while (an outage) leaves its port free;
//! in the ephemeral range, a test running beside it that binds port 0 could be given that port
//! and receive the other test's requests, and the server could not listen on it again.

use std::collections::BTreeSet;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A pass-through TCP proxy to `upstream` that, after `open_for` connections (0: from the
/// start), closes its listening socket for `down_for` (connections are refused, as when S3 is
/// down) and then listens on the same port again.
pub struct Flaky {
    pub endpoint: String,
    stop: Arc<AtomicBool>,
    pub refused_window_passed: Arc<AtomicBool>,
    pub accepted: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

const FLAKY_LIFETIME: Duration = Duration::from_secs(400);

impl Flaky {
    pub fn start(upstream: &str, open_for: usize, down_for: Duration) -> Flaky {
        let (upstream, listener, addr) = proxy_ends(upstream);
        let stop = Arc::new(AtomicBool::new(false));
        let passed = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (stop, passed, accepted) = (stop.clone(), passed.clone(), accepted.clone());
            thread::spawn(move || {
                let started = Instant::now();
                let mut listener = (open_for > 0).then_some(listener);
                let live = || !stop.load(Ordering::Relaxed) && started.elapsed() < FLAKY_LIFETIME;
                while live() {
                    let Some(l) = &listener else {
                        // Down: nothing listens. Then up again on the same port.
                        let until = Instant::now() + down_for;
                        while live() && Instant::now() < until {
                            thread::sleep(Duration::from_millis(10));
                        }
                        listener = Some(listen_again(addr));
                        passed.store(true, Ordering::SeqCst);
                        continue;
                    };
                    match l.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            let upstream = upstream.clone();
                            thread::spawn(move || forward(client, &upstream));
                            let n = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                            if n == open_for && !passed.load(Ordering::SeqCst) {
                                listener = None;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(e) => panic!("accept on {addr}: {e}"),
                    }
                }
            })
        };
        Flaky {
            endpoint: format!("http://{addr}"),
            stop,
            refused_window_passed: passed,
            accepted,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for Flaky {
    fn drop(&mut self) {
        stop_acceptor(&self.stop, &mut self.acceptor);
    }
}

/// A proxy's two ends: the `host:port` of the `upstream` endpoint URL, and a non-blocking
/// listener on a free port of 127.0.0.1, with its address.
pub fn proxy_ends(upstream: &str) -> (String, TcpListener, SocketAddr) {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let (listener, addr) = free_listener();
    (upstream, listener, addr)
}

/// A non-blocking listener on a free port of 127.0.0.1 (see [`free_port`]), with its address.
pub fn free_listener() -> (TcpListener, SocketAddr) {
    let listener = reserved_listener();
    listener
        .set_nonblocking(true)
        .expect("a listener can be made non-blocking");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    (listener, addr)
}

/// Stops a test server's accepting thread: raises `stop`, then waits for the thread (its
/// accept loop polls `stop`).
pub fn stop_acceptor(stop: &AtomicBool, acceptor: &mut Option<JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = acceptor.take() {
        let _ = t.join();
    }
}

/// Listens on `addr` again (bounded wait for the port to be free).
fn listen_again(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)
                    .expect("a listener can be made non-blocking");
                return l;
            }
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("cannot listen on {addr} again: {e}"),
        }
    }
}

fn forward(client: TcpStream, upstream: &str) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    }
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || {
        let _ = io::copy(&mut client_r, &mut server_w);
        let _ = server_w.shutdown(Shutdown::Write);
    });
    let (mut server_r, mut client_w) = (server, client);
    let _ = io::copy(&mut server_r, &mut client_w);
    let _ = client_w.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// A free port of 127.0.0.1 (nothing listens on it when this returns): below the kernel's
/// ephemeral range, so that no bind to port 0 or outgoing connection takes it, and never
/// handed out twice by this process.
pub fn free_port() -> u16 {
    reserved_listener()
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// The ports handed out by this process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// The kernel's ephemeral port range (`ip_local_port_range`).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A listener on a port of 127.0.0.1 outside the ephemeral range that this process has not
/// handed out before.
fn reserved_listener() -> TcpListener {
    const LOWEST: u16 = 10_000;
    let (eph_lo, eph_hi) = ephemeral_range();
    let (lo, hi) = if eph_lo > LOWEST + 1_000 {
        (LOWEST, eph_lo - 1)
    } else if eph_hi < 64_000 {
        (eph_hi + 1, 65_535)
    } else {
        panic!("no room outside the ephemeral port range {eph_lo}-{eph_hi} for test ports")
    };
    let span = u32::from(hi - lo) + 1;
    // Start somewhere else at each call, so that test binaries run one after another do not
    // try the same ports first.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for i in 0..span.min(5_000) {
        let port = lo + ((seed.wrapping_add(i.wrapping_mul(7_919))) % span) as u16;
        if handed.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            handed.insert(port);
            return listener;
        }
    }
    panic!("no free port of 127.0.0.1 in {lo}-{hi} after 5,000 tries")
}
