//! `emstail check --connect`: every EMS API and S3 bucket the config sends to is reached with
//! its credentials (the fake EMS, the S3 test server) and each answer is reported; nothing is
//! written to either.

mod support;

use serde_json::json;
use support::emstail::{Emstail, Setup};
use support::fake_ems::FakeEms;
use support::ports::free_port;
use support::s3::{bucket, server};

fn check(setup: &Setup) -> support::emstail::Run {
    Emstail::new(["check", "--connect", "--config"])
        .arg(setup.write())
        .run()
}

/// The report line that starts with `# ` and `target` (a target, or `connect:`, the summary).
fn line<'a>(stdout: &'a str, target: &str) -> &'a str {
    let prefix = format!("# {target}");
    stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {target} in:\n{stdout}"))
}

#[test]
fn reachable_targets_pass_and_each_is_asked_once_without_a_change() {
    let ems = FakeEms::start();
    let s3 = server();
    let hls = bucket(&s3, "check-ok");
    let destination = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let rtmp = destination.local_addr().expect("an address");
    let setup = Setup::new(&ems.base_url())
        .recorder()
        .plugin(
            "StreamAutoRouter",
            json!({ "token": "", "destination_uri": rtmp.to_string() }),
        )
        .upload("AmazonHLSUpload", &s3, &s3.endpoint, &hls)
        .upload("AmazonDASHUpload", &s3, &s3.endpoint, &hls);
    let run = check(&setup);
    run.assert_exit(0);
    let api = line(&run.stdout, &format!("EMS API {}", ems.target().base));
    assert!(
        api.contains(
            "(StreamAutoRouter, StreamRecorder): answered version: EvoStream Media Server"
        ),
        "{api}"
    );
    let s3_line = line(&run.stdout, &format!("S3 bucket {hls} at {}", s3.endpoint));
    assert!(
        s3_line.ends_with("(AmazonHLSUpload, AmazonDASHUpload): reachable, keys accepted"),
        "{s3_line}"
    );
    assert_eq!(
        line(&run.stdout, "connect:"),
        "# connect: 3 answered, 0 failed"
    );
    // One `version` for the two plugins that share the API; nothing else asked of EMS, and
    // nothing written to the bucket.
    let commands: Vec<String> = ems.calls().into_iter().map(|c| c.command).collect();
    assert_eq!(commands, ["version"]);
    assert_eq!(s3.list(&hls), Vec::<String>::new());
}

#[test]
fn each_unreachable_target_is_named_with_why_and_exits_1() {
    let s3 = server();
    let existing = bucket(&s3, "check-keys");
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let setup = Setup::new(&closed)
        .recorder()
        .upload(
            "AmazonHLSUpload",
            &s3,
            &s3.endpoint,
            "no-such-bucket-for-check",
        )
        .upload_with_secret(
            "AmazonHDSUpload",
            &s3,
            &s3.endpoint,
            &existing,
            "a-wrong-secret-0123456789",
        );
    let run = check(&setup);
    run.assert_exit(1);
    let api = line(&run.stdout, &format!("EMS API {closed}"));
    assert!(
        api.contains("(StreamRecorder): FAILED: unreached: ") && api.contains("refused"),
        "{api}"
    );
    let missing = line(&run.stdout, "S3 bucket no-such-bucket-for-check");
    assert!(
        missing.contains("FAILED: permanent: bucket no-such-bucket-for-check does not exist"),
        "{missing}"
    );
    let keys = line(&run.stdout, &format!("S3 bucket {existing}"));
    assert!(
        keys.contains("(AmazonHDSUpload): FAILED: permanent: S3 rejected the credentials"),
        "{keys}"
    );
    assert_eq!(
        line(&run.stdout, "connect:"),
        "# connect: 0 answered, 3 failed"
    );
    assert!(!run.stdout.contains("a-wrong-secret"), "{}", run.stdout);
    assert!(!run.stderr.contains("a-wrong-secret"), "{}", run.stderr);
}

#[test]
fn an_api_proxy_is_reached_with_its_password_and_a_wrong_one_fails() {
    let good = FakeEms::start();
    good.require_basic_auth("admin", "right");
    let bad = FakeEms::start();
    bad.require_basic_auth("admin", "right");
    let proxy = |ems: &FakeEms, password: &str| {
        json!({ "address": "127.0.0.1", "ewsPort": ems.addr().port(),
                "userName": "admin", "password": password })
    };
    let setup = Setup::new(&good.base_url()).plugin(
        "StreamLoadBalancer",
        json!({
            "destination_ems_apiproxies": [proxy(&good, "right"), proxy(&bad, "wrong-one")],
            "origin_address": "127.0.0.1",
        }),
    );
    let run = check(&setup);
    run.assert_exit(1);
    let reached = line(
        &run.stdout,
        &format!("EMS API http://admin:***@{}/apiproxy/", good.addr()),
    );
    assert!(reached.contains("answered version"), "{reached}");
    let refused = line(
        &run.stdout,
        &format!("EMS API http://admin:***@{}/apiproxy/", bad.addr()),
    );
    assert!(
        refused.contains("FAILED: ") && refused.contains("401"),
        "{refused}"
    );
    assert!(!run.stdout.contains("wrong-one"), "{}", run.stdout);
    assert_eq!(good.calls_for("version").len(), 1);
}

#[test]
fn a_bucket_named_by_each_event_is_not_checked_and_does_not_fail() {
    let ems = FakeEms::start();
    let s3 = server();
    let setup = Setup::new(&ems.base_url())
        .upload(
            "AmazonHLSUpload",
            &s3,
            &s3.endpoint,
            &bucket(&s3, "check-rule"),
        )
        .block(
            "Rules",
            json!([{
                "name": "per-stream",
                "on": "hlsChunkClosed",
                "upload": {
                    "file": "${payload.file}",
                    "bucket": "b-${type}",
                    "s3": "AmazonHLSUpload",
                },
            }]),
        );
    let run = check(&setup);
    run.assert_exit(0);
    let rule = line(&run.stdout, "S3 bucket b-${type}");
    assert!(
        rule.ends_with("(Rules:per-stream): not checked: the bucket is named by each event"),
        "{rule}"
    );
    assert_eq!(
        line(&run.stdout, "connect:"),
        "# connect: 1 answered, 0 failed, 1 not checked"
    );
}

/// EMS takes a `pushStream` whatever its destination does: the destination's RTMP port is
/// connected to, and one that refuses is named.
#[test]
fn the_auto_routers_rtmp_destination_is_connected_to() {
    let ems = FakeEms::start();
    let listening = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let open = listening.local_addr().expect("an address").port();
    let closed = free_port();
    for (port, code, said) in [
        (open, 0, format!("accepts connections on 127.0.0.1:{open}")),
        (
            closed,
            1,
            format!("FAILED: cannot connect to 127.0.0.1:{closed}: "),
        ),
    ] {
        let setup = Setup::new(&ems.base_url()).plugin(
            "StreamAutoRouter",
            json!({ "token": "", "destination_uri": format!("127.0.0.1:{port}") }),
        );
        let run = check(&setup);
        run.assert_exit(code);
        let rtmp = line(
            &run.stdout,
            &format!("RTMP destination rtmp://127.0.0.1:{port}/live"),
        );
        assert!(
            rtmp.contains(&format!("(StreamAutoRouter): {said}")),
            "{rtmp}"
        );
    }
}

#[test]
fn without_connect_nothing_is_reached() {
    let ems = FakeEms::start();
    let setup = Setup::new(&ems.base_url()).recorder();
    let run = Emstail::new(["check", "--config"]).arg(setup.write()).run();
    run.assert_exit(0);
    assert!(!run.stdout.contains("# connect:"), "{}", run.stdout);
    assert_eq!(ems.calls().len(), 0);
}
