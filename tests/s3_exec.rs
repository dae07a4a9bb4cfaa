//! `S3Target` against a real S3 server (s3s-fs from `scripts/s3-server.sh`, which checks SigV4).

mod support;

use emstail::action::Secret;
use emstail::exec::s3::S3Target;
use emstail::exec::{Done, Failure};
use std::path::{Path, PathBuf};
use support::s3::{S3Server, server, unique_bucket};

const PLAYLIST_CACHE: &str = "max-age=2";
const SEGMENT_CACHE: &str = "max-age=31536000, immutable";

struct Fixture {
    server: S3Server,
    bucket: String,
    dir: tempfile::TempDir,
}

fn fixture(prefix: &str) -> Fixture {
    let server = server();
    let bucket = unique_bucket(prefix);
    server.create_bucket(&bucket);
    Fixture {
        server,
        bucket,
        dir: tempfile::tempdir().expect("a temp dir can be created"),
    }
}

impl Fixture {
    fn target(&self) -> S3Target {
        S3Target::new(&self.server.upload_params(&self.bucket)).expect("valid S3 parameters")
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write the file to upload");
        path
    }
}

/// Bytes that differ from offset to offset, so a reordered or truncated part shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

fn put(
    t: &S3Target,
    bucket: &str,
    key: &str,
    path: &Path,
    content_type: &str,
    acl: Option<&str>,
) -> Result<Done, Failure> {
    let cache = if content_type.contains("mpegurl") {
        PLAYLIST_CACHE
    } else {
        SEGMENT_CACHE
    };
    t.put(bucket, key, path, content_type, cache, acl)
}

#[test]
fn a_small_put_stores_the_bytes_content_type_and_cache_control() {
    let f = fixture("small");
    let body = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\nseg1.ts\n".to_vec();
    let path = f.file("playlist.m3u8", &body);

    let done = put(
        &f.target(),
        &f.bucket,
        "live/cam1/playlist.m3u8",
        &path,
        "application/vnd.apple.mpegurl",
        None,
    );

    assert_eq!(done, Ok(Done::Ok));
    let (bytes, content_type, headers) = f.server.get(&f.bucket, "live/cam1/playlist.m3u8");
    assert_eq!(bytes, body);
    assert_eq!(content_type, "application/vnd.apple.mpegurl");
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some(PLAYLIST_CACHE)
    );
}

#[test]
fn a_9_mib_put_goes_in_parts_and_keeps_bytes_type_cache_control_and_acl() {
    let f = fixture("large");
    let recorder = f.server.recorder();
    let target = S3Target::new(&f.server.upload_params_at(&recorder.endpoint, &f.bucket))
        .expect("valid S3 parameters");
    let body = pattern(9 * 1024 * 1024);
    let path = f.file("big.mp4", &body);

    let done = target.put(
        &f.bucket,
        "vod/big.mp4",
        &path,
        "video/mp4",
        SEGMENT_CACHE,
        Some("public-read"),
    );

    assert_eq!(done, Ok(Done::Ok));
    let (bytes, content_type, headers) = f.server.get(&f.bucket, "vod/big.mp4");
    assert_eq!(bytes.len(), body.len());
    assert!(bytes == body, "the stored object differs from the file");
    assert_eq!(content_type, "video/mp4");
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some(SEGMENT_CACHE)
    );

    let exchanges = recorder.exchanges();
    let initiate = exchanges
        .iter()
        .find(|e| e.method == "POST" && e.target.contains("uploads"))
        .expect("a multipart upload was initiated");
    assert_eq!(initiate.header("x-amz-acl"), Some("public-read"));
    let parts = exchanges
        .iter()
        .filter(|e| e.method == "PUT" && e.target.contains("partNumber="))
        .count();
    assert_eq!(parts, 2, "9 MiB in 8 MiB parts");
    assert_eq!(recorder.committed_keys(&f.bucket), ["vod/big.mp4"]);
}

#[test]
fn a_file_of_exactly_8_mib_goes_in_one_part() {
    let f = fixture("exact");
    let recorder = f.server.recorder();
    let target = S3Target::new(&f.server.upload_params_at(&recorder.endpoint, &f.bucket))
        .expect("valid S3 parameters");
    let body = pattern(8 * 1024 * 1024);
    let path = f.file("exact.ts", &body);

    let done = put(&target, &f.bucket, "exact.ts", &path, "video/mp2t", None);

    assert_eq!(done, Ok(Done::Ok));
    let (bytes, content_type, _) = f.server.get(&f.bucket, "exact.ts");
    assert!(bytes == body, "the stored object differs from the file");
    assert_eq!(content_type, "video/mp2t");
    let parts = recorder
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "PUT" && e.target.contains("partNumber="))
        .count();
    assert_eq!(parts, 1, "no empty trailing part");
}

#[test]
fn the_acl_header_is_sent_only_when_an_acl_is_configured() {
    let f = fixture("acl");
    let recorder = f.server.recorder();
    let target = S3Target::new(&f.server.upload_params_at(&recorder.endpoint, &f.bucket))
        .expect("valid S3 parameters");
    let path = f.file("seg1.ts", b"segment");

    let with_acl = put(
        &target,
        &f.bucket,
        "public.ts",
        &path,
        "video/mp2t",
        Some("public-read"),
    );
    let without_acl = put(&target, &f.bucket, "private.ts", &path, "video/mp2t", None);

    assert_eq!(with_acl, Ok(Done::Ok));
    assert_eq!(without_acl, Ok(Done::Ok));
    let exchanges = recorder.exchanges();
    let request_for = |key: &str| {
        exchanges
            .iter()
            .find(|e| e.method == "PUT" && e.object().1 == key)
            .unwrap_or_else(|| panic!("no PUT for {key} in {exchanges:?}"))
    };
    assert_eq!(
        request_for("public.ts").header("x-amz-acl"),
        Some("public-read")
    );
    assert_eq!(request_for("private.ts").header("x-amz-acl"), None);
}

#[test]
fn the_recorder_lists_objects_in_the_order_they_were_stored() {
    let f = fixture("order");
    let recorder = f.server.recorder();
    let target = S3Target::new(&f.server.upload_params_at(&recorder.endpoint, &f.bucket))
        .expect("valid S3 parameters");
    let path = f.file("seg.ts", b"x");
    let keys = ["s/seg3.ts", "s/seg1.ts", "s/playlist.m3u8", "s/seg2.ts"];

    for key in keys {
        assert_eq!(
            put(&target, &f.bucket, key, &path, "video/mp2t", None),
            Ok(Done::Ok)
        );
    }

    assert_eq!(recorder.committed_keys(&f.bucket), keys);
}

#[test]
fn delete_removes_the_object_and_a_second_delete_is_still_fine() {
    let f = fixture("delete");
    let target = f.target();
    let path = f.file("seg1.ts", b"segment");
    assert_eq!(
        put(&target, &f.bucket, "a/seg1.ts", &path, "video/mp2t", None),
        Ok(Done::Ok)
    );
    assert_eq!(
        put(&target, &f.bucket, "a/seg2.ts", &path, "video/mp2t", None),
        Ok(Done::Ok)
    );

    let first = target.delete(&f.bucket, "a/seg1.ts");
    let second = target.delete(&f.bucket, "a/seg1.ts");

    assert_eq!(first, Ok(Done::Ok));
    assert!(second.is_ok(), "deleting a missing key: {second:?}");
    assert_eq!(f.server.list(&f.bucket), ["a/seg2.ts"]);
}

#[test]
fn a_wrong_secret_is_permanent_names_the_bucket_and_hides_the_secret() {
    let f = fixture("creds");
    let wrong_secret = "not-the-right-secret-Zq81";
    let mut params = f.server.upload_params(&f.bucket);
    params.aws_secret_key = Some(Secret::new(wrong_secret));
    let target = S3Target::new(&params).expect("valid S3 parameters");
    let path = f.file("seg1.ts", b"segment");

    let put_result = put(&target, &f.bucket, "seg1.ts", &path, "video/mp2t", None);
    let delete_result = target.delete(&f.bucket, "seg1.ts");

    for result in [put_result, delete_result] {
        match result {
            Err(Failure::Permanent(m)) => {
                assert!(m.contains("credentials"), "{m}");
                assert!(m.contains(&f.bucket), "{m}");
                assert!(!m.contains(wrong_secret), "{m}");
                assert!(!m.contains(&f.server.secret_key), "{m}");
            }
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }
    assert!(f.server.list(&f.bucket).is_empty());
}

/// Through a delete: s3s-fs answers NoSuchBucket there, while its PUT quietly makes the
/// bucket directory (real S3 refuses both the same way; the unit tests cover the PUT answer).
#[test]
fn a_missing_bucket_is_permanent_and_named() {
    let f = fixture("exists");
    let missing = unique_bucket("missing");

    let result = f.target().delete(&missing, "seg1.ts");

    assert_eq!(
        result,
        Err(Failure::Permanent(format!(
            "bucket {missing} does not exist (emstail never creates buckets)"
        )))
    );
}

/// Refused: nothing was sent, so S3 cannot have stored it; retried like any outage.
#[test]
fn a_closed_port_is_unreached_and_retried() {
    let f = fixture("closed");
    let port = support::ports::free_port();
    let params = f
        .server
        .upload_params_at(&format!("http://127.0.0.1:{port}"), &f.bucket);
    let target = S3Target::new(&params).expect("valid S3 parameters");
    let path = f.file("seg1.ts", b"segment");

    let put_result = put(&target, &f.bucket, "seg1.ts", &path, "video/mp2t", None);
    let delete_result = target.delete(&f.bucket, "seg1.ts");

    for result in [put_result, delete_result] {
        match result {
            Err(f @ Failure::Unreached(_)) => assert!(f.is_transient()),
            other => panic!("a refused connection is unreached: {other:?}"),
        }
    }
}

#[test]
fn a_file_gone_before_upload_is_missing() {
    let f = fixture("gone");
    let path = f.dir.path().join("rotated-away.ts");

    let result = put(
        &f.target(),
        &f.bucket,
        "rotated-away.ts",
        &path,
        "video/mp2t",
        None,
    );

    assert_eq!(
        result,
        Err(Failure::Missing(format!(
            "{}: no longer exists",
            path.display()
        )))
    );
    assert!(f.server.list(&f.bucket).is_empty());
}
