//! `S3Target` against answers a real S3 does not give, from a bare HTTP server on loopback: a
//! redirect to another server, and an error body far larger than any S3 error.

mod support;

use emstail::action::Secret;
use emstail::config::UploadParams;
use emstail::exec::Failure;
use emstail::exec::s3::S3Target;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::raw_http::{RawServer, respond, respond_streamed};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY";

fn target(endpoint: &str) -> S3Target {
    S3Target::new(&UploadParams {
        aws_access_key: Some("AKIDEXAMPLE".to_string()),
        aws_secret_key: Some(Secret::new(SECRET)),
        endpoint: Some(endpoint.to_string()),
        ..UploadParams::default()
    })
    .expect("valid S3 parameters")
}

fn file(dir: &tempfile::TempDir, name: &str, len: usize) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, vec![b'x'; len]).expect("write the file to upload");
    path
}

#[test]
fn a_redirect_is_not_followed_and_the_upload_is_not_counted_as_done() {
    // Where a hostile or misconfigured endpoint points: it must see nothing, neither the
    // file nor the signed Authorization header.
    let elsewhere = RawServer::start(|_, stream| respond(stream, "200 OK", &[], b""));
    let elsewhere_url = elsewhere.url();
    let s3 = RawServer::start(move |request, stream| {
        let location = format!("{elsewhere_url}{}", request.target);
        respond(
            stream,
            "307 Temporary Redirect",
            &[("Location", location.as_str())],
            b"<Error><Code>TemporaryRedirect</Code></Error>",
        )
    });
    let t = target(&s3.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let small = file(&dir, "segment_1.ts", 1000);
    // 9 MiB goes in parts: the redirect answers the start of the multipart upload.
    let large = file(&dir, "segment_2.ts", 9 << 20);

    let results = [
        t.put("media", "live/segment_1.ts", &small, "video/mp2t", "", None),
        t.put("media", "live/segment_2.ts", &large, "video/mp2t", "", None),
        t.delete("media", "live/segment_0.ts"),
    ];

    for result in &results {
        match result {
            Err(Failure::Permanent(m)) => {
                assert!(m.contains("HTTP 307"), "{m}");
                assert!(m.contains("does not follow"), "{m}");
                assert!(m.contains(&elsewhere.url()), "names where it pointed: {m}");
                assert!(!m.contains(SECRET), "{m}");
            }
            other => panic!("a redirect must fail the action, not complete it: {other:?}"),
        }
    }
    assert_eq!(elsewhere.requests().len(), 0, "{:?}", elsewhere.requests());
    let asked: Vec<String> = s3
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        asked.len(),
        3,
        "one request per action, none sent again: {asked:?}"
    );
}

#[test]
fn a_huge_error_body_is_read_no_further_than_64_kib() {
    const ANNOUNCED: u64 = 1 << 30;
    let written = Arc::new(AtomicU64::new(0));
    let s3 = {
        let written = Arc::clone(&written);
        RawServer::start(move |_, stream| {
            let head = b"<?xml version=\"1.0\"?><Error><Code>InternalError</Code>".to_vec();
            respond_streamed(stream, "500 Internal Server Error", ANNOUNCED, |offset| {
                written.store(offset, Ordering::SeqCst);
                if offset == 0 {
                    head.clone()
                } else {
                    vec![b' '; 64 * 1024]
                }
            })
        })
    };
    let t = target(&s3.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = file(&dir, "segment_1.ts", 1000);

    let result = t.put("media", "live/segment_1.ts", &path, "video/mp2t", "", None);

    assert!(
        matches!(&result, Err(Failure::Retryable(m)) if m.contains("HTTP 500 InternalError")),
        "{result:?}"
    );
    // The client hung up after its 64 KiB: the server's writes stop once the socket buffers
    // between them are full (a few MiB on loopback), far short of the 1 GiB announced.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = written.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = written.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    assert!(
        last < 64 << 20,
        "the server got {last} bytes of its error body out: the answer was read on"
    );
}
