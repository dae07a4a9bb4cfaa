//! Ports for the tests: a free one, and one that can be made to refuse connections for a
//! while (S3 or EMS going down and coming back).

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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

/// A non-blocking listener on a free port of 127.0.0.1, with its address.
pub fn free_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
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

/// A free port of 127.0.0.1 (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}
