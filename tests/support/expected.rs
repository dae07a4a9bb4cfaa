//! The parameters emstail's plugins send EMS for one stream, configured as in
//! `config.ini.sample` (and in `Setup`, which follows it): what the dry run prints and what a
//! live replay delivers must be these same lists.

/// The bundled event log and the one logrotate made before it, in JSON-sink format.
pub const F1: &str = "fixtures/logs/events_20261129_101500.txt";
pub const F2: &str = "fixtures/logs/events_20261129_111500.txt";
/// A stream of the fixtures whose name has every character EMS's parameters must escape.
pub const HOSTILE: &str = "lobby cam, 2=\"main\" .. ☃";

/// Parameters in the order they are sent.
pub type Pairs = Vec<(String, String)>;

pub fn pairs(params: &[(&str, &str)]) -> Pairs {
    params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// StreamRecorder's `record` of `name` into `/var/evostreamms/media`.
pub fn record_params(name: &str) -> Pairs {
    let path = format!("/var/evostreamms/media/{name}");
    pairs(&[
        ("localStreamName", name),
        ("pathToFile", &path),
        ("type", "mp4"),
        ("overwrite", "0"),
        ("keepAlive", "1"),
        ("_localStreamName", name),
        ("_emstail", "1"),
    ])
}

/// StreamLoadBalancer's `pullStream` of `name` from the EMS at 127.0.0.1.
pub fn pull_params(name: &str) -> Pairs {
    let uri = format!("rtmp://127.0.0.1/live/{name}");
    pairs(&[
        ("uri", &uri),
        ("localStreamName", name),
        ("keepAlive", "0"),
        ("_emstail", "1"),
    ])
}

/// StreamAutoRouter's `pushStream` of `name` to `rtmp://127.0.0.1:1936/live`.
pub fn push_params(name: &str) -> Pairs {
    pairs(&[
        ("uri", "rtmp://127.0.0.1:1936/live"),
        ("localStreamName", name),
        ("keepAlive", "0"),
        ("_emstail", "1"),
    ])
}
