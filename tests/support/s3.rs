//! The S3 test server (s3s-fs, started by `scripts/s3-server.sh`) and what tests ask of it.
//!
//! Ordering: s3s-fs keeps objects as plain files, but their mtimes come from the kernel's
//! coarse clock (several objects written within a few milliseconds share one timestamp), and
//! `LastModified` is that same mtime. Neither gives a real order. A [`Recorder`] does: it is
//! a pass-through proxy in front of the server that logs each request in the order the
//! server *answered* it, and s3s-fs answers a PUT only after the object is in place.
#![allow(dead_code)]

use super::ports::proxy_ends;
use emstail::action::Secret;
use emstail::config::UploadParams;
use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const HOW_TO: &str = "S3 test server not running: run scripts/s3-server.sh and source its env \
                      file (`. target/s3-server.env`) before cargo test";

/// The running s3s-fs, as described by the `EMSTAIL_S3_*` variables.
#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Where s3s-fs keeps the objects: `<data_dir>/<bucket>/<key>`.
    pub data_dir: PathBuf,
}

/// The server from the environment; panics with how to start it when it is not there, in
/// CI and locally alike (a test that cannot reach its server must not pass).
pub fn server() -> S3Server {
    let var = |name: &str| match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => {
            let where_ = if std::env::var_os("CI").is_some() {
                " (CI)"
            } else {
                ""
            };
            panic!("{HOW_TO}{where_}: {name} is not set")
        }
    };
    S3Server {
        endpoint: var("EMSTAIL_S3_ENDPOINT"),
        access_key: var("EMSTAIL_S3_ACCESS_KEY"),
        secret_key: var("EMSTAIL_S3_SECRET_KEY"),
        data_dir: PathBuf::from(var("EMSTAIL_S3_DATA_DIR")),
    }
}

/// A bucket name no other test (or earlier run against the same server) uses.
pub fn unique_bucket(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

impl S3Server {
    /// Plugin parameters pointing at this server with its credentials.
    pub fn upload_params(&self, bucket: &str) -> UploadParams {
        self.upload_params_at(&self.endpoint, bucket)
    }

    /// Plugin parameters pointing at `endpoint` (a [`Recorder`]) with this server's credentials.
    pub fn upload_params_at(&self, endpoint: &str, bucket: &str) -> UploadParams {
        UploadParams {
            aws_access_key: Some(self.access_key.clone()),
            aws_secret_key: Some(Secret::new(self.secret_key.clone())),
            default_bucket: bucket.to_string(),
            endpoint: Some(endpoint.to_string()),
            ..UploadParams::default()
        }
    }

    fn region(&self) -> Region {
        Region::Custom {
            region: "us-east-1".to_string(),
            endpoint: self.endpoint.clone(),
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(
            Some(&self.access_key),
            Some(&self.secret_key),
            None,
            None,
            None,
        )
        .expect("explicit credentials always build")
    }

    /// A path-style rust-s3 handle on `name`, for checking what the code under test did.
    pub fn bucket(&self, name: &str) -> Box<Bucket> {
        Bucket::new(name, self.region(), self.credentials())
            .unwrap_or_else(|e| panic!("bucket handle {name}: {e}"))
            .with_path_style()
    }

    /// Creates `name` on the server (the daemon never creates buckets; tests do).
    pub fn create_bucket(&self, name: &str) {
        Bucket::create_with_path_style(
            name,
            self.region(),
            self.credentials(),
            BucketConfiguration::default(),
        )
        .unwrap_or_else(|e| panic!("creating bucket {name} on {}: {e}", self.endpoint));
    }

    /// Body, Content-Type and all response headers (lower-case names) of one object, read
    /// with a GET because rust-s3's blocking HEAD does not return the content type.
    pub fn get(&self, bucket: &str, key: &str) -> (Vec<u8>, String, HashMap<String, String>) {
        let response = self
            .bucket(bucket)
            .get_object(key)
            .unwrap_or_else(|e| panic!("GET s3://{bucket}/{key}: {e}"));
        let headers: HashMap<String, String> = response
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let content_type = headers.get("content-type").cloned().unwrap_or_default();
        (response.to_vec(), content_type, headers)
    }

    /// Every key in `bucket`, sorted.
    pub fn list(&self, bucket: &str) -> Vec<String> {
        let pages = self
            .bucket(bucket)
            .list(String::new(), None)
            .unwrap_or_else(|e| panic!("listing {bucket}: {e}"));
        let mut keys: Vec<String> = pages
            .into_iter()
            .flat_map(|page| page.contents)
            .map(|object| object.key)
            .collect();
        keys.sort();
        keys
    }

    /// A recording proxy in front of this server.
    pub fn recorder(&self) -> Recorder {
        Recorder::start(&self.endpoint)
    }
}

/// One request as the [`Recorder`] saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// The request target as sent, e.g. `/bucket/a/b.ts?uploadId=…`.
    pub target: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Bucket and key of a path-style target, percent-decoded.
    pub fn object(&self) -> (String, String) {
        let path = self.target.split('?').next().unwrap_or("");
        let path = percent_decode(path.trim_start_matches('/'));
        match path.split_once('/') {
            Some((b, k)) => (b.to_string(), k.to_string()),
            None => (path, String::new()),
        }
    }

    fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// True for the request that makes an object appear: a plain PUT, or the POST that
    /// completes a multipart upload.
    pub fn commits_object(&self) -> bool {
        let q = self.query();
        (self.method == "PUT" && !q.contains("partNumber=") && !q.contains("uploadId="))
            || (self.method == "POST" && q.contains("uploadId="))
    }
}

/// A pass-through TCP proxy to the S3 server that logs requests in the order they were
/// answered. Connections are forwarded byte for byte, so SigV4 signatures stay valid.
pub struct Recorder {
    pub endpoint: String,
    log: Arc<Mutex<Vec<Exchange>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

/// The proxy never outlives this, whatever a test does.
const RECORDER_LIFETIME: Duration = Duration::from_secs(600);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

impl Recorder {
    fn start(upstream_endpoint: &str) -> Recorder {
        let (upstream, listener, addr) = proxy_ends(upstream_endpoint);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < RECORDER_LIFETIME {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let (upstream, log) = (upstream.clone(), Arc::clone(&log));
                            thread::spawn(move || relay(client, &upstream, &log));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Recorder {
            endpoint: format!("http://{addr}"),
            log,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Every request answered so far, in answer order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log
            .lock()
            .expect("no recorder thread panics while holding the log")
            .clone()
    }

    /// Keys of `bucket` in the order their objects appeared (successful commits only).
    pub fn committed_keys(&self, bucket: &str) -> Vec<String> {
        self.exchanges()
            .into_iter()
            .filter(|e| (200..300).contains(&e.status) && e.commits_object())
            .filter_map(|e| {
                let (b, k) = e.object();
                (b == bucket).then_some(k)
            })
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        super::ports::stop_acceptor(&self.stop, &mut self.acceptor);
    }
}

/// Forwards one client connection. The request head is parsed before any of it is sent on,
/// so it is on record before the server can answer.
fn relay(client: TcpStream, upstream: &str, log: &Mutex<Vec<Exchange>>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    }
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let head: Arc<Mutex<Option<RequestHead>>> = Arc::new(Mutex::new(None));
    let head_w = Arc::clone(&head);
    let upward = thread::spawn(move || {
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut head_seen = false;
        loop {
            let n = match client_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if head_seen {
                if server_w.write_all(&buf[..n]).is_err() {
                    break;
                }
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&pending, b"\r\n\r\n") {
                *head_w.lock().expect("head lock is never poisoned") =
                    Some(parse_request_head(&pending[..end]));
                head_seen = true;
                if server_w.write_all(&pending).is_err() {
                    break;
                }
                pending.clear();
            }
        }
        let _ = server_w.shutdown(Shutdown::Write);
    });

    let (mut server_r, mut client_w) = (server, client);
    let mut buf = vec![0u8; 64 * 1024];
    let mut status_line = Vec::new();
    let mut logged = false;
    loop {
        let n = match server_r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !logged {
            status_line.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&status_line, b"\r\n") {
                let line = String::from_utf8_lossy(&status_line[..end]).to_string();
                let status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if let Some((method, target, headers)) =
                    head.lock().expect("head lock is never poisoned").take()
                {
                    log.lock()
                        .expect("log lock is never poisoned")
                        .push(Exchange {
                            method,
                            target,
                            headers,
                            status,
                        });
                }
                logged = true;
            }
        }
        if client_w.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client_w.shutdown(Shutdown::Write);
    let _ = upward.join();
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Method, target and lower-cased headers.
type RequestHead = (String, String, Vec<(String, String)>);

fn parse_request_head(head: &[u8]) -> RequestHead {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (method, target, headers)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%'
            && let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// What a test asks of a bucket

/// A bucket of its own on the test server.
pub fn bucket(s3: &S3Server, prefix: &str) -> String {
    let name = unique_bucket(prefix);
    s3.create_bucket(&name);
    name
}

/// Puts `bytes` at `key` directly, so that a test can see emstail delete it.
pub fn seed(s3: &S3Server, bucket: &str, key: &str) {
    s3.bucket(bucket)
        .put_object(key, b"to be deleted")
        .unwrap_or_else(|e| panic!("seeding s3://{bucket}/{key}: {e}"));
}

/// Asserts the bucket holds exactly `expected` (key, content type, cache control), each
/// object with the bytes of the file `<root>/<key>`.
pub fn assert_bucket(s3: &S3Server, bucket: &str, root: &Path, expected: &[(&str, &str, &str)]) {
    let mut keys: Vec<&str> = expected.iter().map(|(k, _, _)| *k).collect();
    keys.sort_unstable();
    assert_eq!(s3.list(bucket), keys, "keys in s3://{bucket}");
    for (key, content_type, cache_control) in expected {
        let (bytes, got_type, headers) = s3.get(bucket, key);
        let file = std::fs::read(root.join(key)).expect("the uploaded file exists");
        assert!(bytes == file, "s3://{bucket}/{key} differs from its file");
        assert_eq!(&got_type, content_type, "Content-Type of {key}");
        assert_eq!(
            headers.get("cache-control").map(String::as_str),
            Some(*cache_control),
            "Cache-Control of {key}"
        );
    }
}

/// Asserts that each of `streams` HLS streams of `chunks` chunks was stored in order, every
/// object once: under `hls/<stream>/`, each `segment_<n>.ts` before the `playlist.m3u8` that
/// follows it (by the order the [`Recorder`] saw the server answer), and that the bucket holds
/// the segments and one playlist per stream.
pub fn assert_segments_before_playlists(
    s3: &S3Server,
    recorder: &Recorder,
    bucket: &str,
    streams: usize,
    chunks: usize,
) {
    let committed = recorder.committed_keys(bucket);
    assert_eq!(committed.len(), streams * chunks * 2, "each object once");
    let mut per_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in committed {
        let (stream, file) = key
            .strip_prefix("hls/")
            .and_then(|k| k.split_once('/'))
            .expect("keys are hls/<stream>/<file>");
        per_stream
            .entry(stream.to_string())
            .or_default()
            .push(file.to_string());
    }
    assert_eq!(per_stream.len(), streams);
    let expected: Vec<String> = (0..chunks)
        .flat_map(|c| [format!("segment_{c}.ts"), "playlist.m3u8".to_string()])
        .collect();
    for (stream, files) in &per_stream {
        assert_eq!(files, &expected, "order of stream {stream}");
    }
    assert_eq!(s3.list(bucket).len(), streams * (chunks + 1));
}
