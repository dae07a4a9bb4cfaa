//! A bare HTTP/1.1 server on 127.0.0.1 whose answers a test writes byte by byte: a body far
//! larger than memory should hold, a redirect to elsewhere, anything a real server would not
//! send. It records each request (head, and how many body bytes came) and answers one per
//! connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The server stops by itself after this long, should a test forget it.
const LIFETIME: Duration = Duration::from_secs(120);

/// One request as received.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Bytes of body received (announced by Content-Length).
    pub body_bytes: u64,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Answer = dyn Fn(&RawRequest, &mut TcpStream) -> io::Result<()> + Send + Sync;

pub struct RawServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl RawServer {
    /// Listens on a free port; `answer` writes the whole response to each request.
    pub fn start(
        answer: impl Fn(&RawRequest, &mut TcpStream) -> io::Result<()> + Send + Sync + 'static,
    ) -> RawServer {
        let (listener, addr) = super::ports::free_listener();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answer> = Arc::new(answer);
        let acceptor = {
            let (requests, stop) = (requests.clone(), stop.clone());
            thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (requests, answer) = (requests.clone(), answer.clone());
                            thread::spawn(move || serve(stream, &requests, &*answer));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        RawServer {
            addr,
            requests,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        super::ports::stop_acceptor(&self.stop, &mut self.acceptor);
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<RawRequest>>, answer: &Answer) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Some(mut request) = read_head(&mut reader) else {
        return;
    };
    let length: u64 = request
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if request
        .header("Expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        // Answered without a 100: the client must wait for the final answer.
    } else {
        request.body_bytes =
            io::copy(&mut (&mut reader).take(length), &mut io::sink()).unwrap_or(0);
    }
    requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(request.clone());
    let _ = answer(&request, &mut writer);
    let _ = writer.flush();
    let _ = writer.shutdown(std::net::Shutdown::Both);
}

fn read_head(reader: &mut BufReader<TcpStream>) -> Option<RawRequest> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_string();
    let target = words.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Some(RawRequest {
        method,
        target,
        headers,
        body_bytes: 0,
    })
}

/// Writes a response head with a Content-Length, then `length` bytes that `body` makes in
/// pieces (called with the offset of the next piece until it returns an empty one), without
/// ever holding the whole body.
pub fn respond_streamed(
    stream: &mut TcpStream,
    status: &str,
    length: u64,
    mut body: impl FnMut(u64) -> Vec<u8>,
) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )?;
    let mut sent = 0;
    while sent < length {
        let piece = body(sent);
        if piece.is_empty() {
            break;
        }
        let piece = &piece[..piece.len().min((length - sent) as usize)];
        stream.write_all(piece)?;
        sent += piece.len() as u64;
    }
    Ok(())
}

/// A complete small response.
pub fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}
