//! The built `emstail` binary as every end-to-end test starts it, and the config file it is
//! given: one builder ([`Emstail`]) for one-shot commands ([`Run`]), commands watched while
//! they run ([`Running`]) and the daemon ([`Daemon`]), and one config builder ([`Setup`]).

use serde_json::{Map, Value, json};
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// No single one-shot run of the binary may take longer than this.
pub const RUN_LIMIT: Duration = Duration::from_secs(40);

/// The repository, where `fixtures/...` names the bundled logs.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled EMS webroot the fixtures' media files are in.
pub fn webroot() -> PathBuf {
    repo().join("fixtures/ems/evo-webroot")
}

pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until what was read into `so_far` satisfies `done`, at most `timeout`.
fn wait_for(so_far: &Mutex<Vec<u8>>, done: impl Fn(&str) -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done(&String::from_utf8_lossy(&lock(so_far))) {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

// ---------------------------------------------------------------------------------------
// Starting the binary

/// `emstail ARGS`, run in the repository with `RUST_LOG=info`, no `EMSTAIL_CONFIG` from the
/// environment and no stdin.
pub struct Emstail {
    command: Command,
}

impl Emstail {
    pub fn new<I, S>(args: I) -> Emstail
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_emstail"));
        command
            .args(args)
            .current_dir(repo())
            .env("RUST_LOG", "info")
            .env_remove("EMSTAIL_CONFIG")
            .stdin(Stdio::null());
        Emstail { command }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Emstail {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Emstail
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Run in `dir` instead of the repository (for paths given relative to it).
    #[allow(dead_code)]
    pub fn current_dir(mut self, dir: &Path) -> Emstail {
        self.command.current_dir(dir);
        self
    }

    /// `key=value` in its environment.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Emstail {
        self.command.env(key, value);
        self
    }

    /// `key` left out of its environment.
    pub fn env_remove(mut self, key: &str) -> Emstail {
        self.command.env_remove(key);
        self
    }

    /// `RUST_LOG=level`.
    pub fn log_level(mut self, level: &str) -> Emstail {
        self.command.env("RUST_LOG", level);
        self
    }

    /// Runs it through `sh -c 'umask MASK; exec …'`, so that the files it creates get the
    /// modes it sets itself, not the test's umask. Call it after the arguments are given.
    pub fn under_umask(self, mask: u32) -> Emstail {
        self.through(
            Command::new("sh")
                .arg("-c")
                .arg(format!("umask {mask:03o}; exec \"$0\" \"$@\"")),
        )
    }

    /// Runs it in a mount namespace of its own (`unshare -rm`, no privileges needed where
    /// user namespaces are allowed) with a tmpfs of `kib` KiB mounted on `dir`: a small
    /// filesystem a test can fill. Exits 97 if the tmpfs cannot be mounted. The test sees
    /// the tmpfs at `/proc/<pid>/root/<dir>`. Call it after the arguments are given.
    pub fn on_tmpfs(self, dir: &Path, kib: u32) -> Emstail {
        self.through(
            Command::new("unshare")
                .args(["-rm", "sh", "-c"])
                .arg(format!(
                    "mount -t tmpfs -o size={kib}k emstail-test \"$0\" || exit 97; \
                     exec \"$@\""
                ))
                .arg(dir),
        )
    }

    /// `wrapper` with this command's program and arguments appended, its environment and
    /// working directory.
    fn through(self, wrapper: &mut Command) -> Emstail {
        let mut outer = std::mem::replace(wrapper, Command::new("true"));
        outer
            .arg(self.command.get_program())
            .args(self.command.get_args())
            .stdin(Stdio::null());
        for (key, value) in self.command.get_envs() {
            match value {
                Some(value) => outer.env(key, value),
                None => outer.env_remove(key),
            };
        }
        if let Some(dir) = self.command.get_current_dir() {
            outer.current_dir(dir);
        }
        Emstail { command: outer }
    }

    /// Runs it to its exit (at most [`RUN_LIMIT`]).
    pub fn run(self) -> Run {
        self.spawn().finish()
    }

    /// Starts it with stdout and stderr captured; stderr can be watched while it runs.
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the emstail binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let out_so_far = Arc::new(Mutex::new(Vec::new()));
        let out = collect(stdout, Arc::clone(&out_so_far));
        let stderr = child.stderr.take().expect("stderr is piped");
        let err_so_far = Arc::new(Mutex::new(Vec::new()));
        let err = collect(stderr, Arc::clone(&err_so_far));
        Running {
            child: Some(child),
            started: Instant::now(),
            out_so_far,
            out: Some(out),
            err_so_far,
            err: Some(err),
        }
    }

    /// Starts it as a daemon whose stderr is appended to `stderr`; `state` is its state
    /// directory (where it says it is ready).
    pub fn daemon(mut self, stderr: &Path, state: &Path) -> Daemon {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr)
            .expect("stderr file opens");
        let child = self
            .command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("emstail starts");
        Daemon {
            child: Some(child),
            state: state.to_path_buf(),
        }
    }
}

/// A finished run.
pub struct Run {
    /// `None` when it was killed for running past [`RUN_LIMIT`] (the test then fails).
    pub code: Option<i32>,
    pub stdout_bytes: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.code, Some(code), "stderr:\n{}", self.stderr);
    }

    /// Asserts that stderr says `needle`, showing the whole stderr when it does not.
    #[track_caller]
    pub fn assert_stderr_has(&self, needle: &str) {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
    }
}

/// Reads `from` to its end on a thread, into `into` as it comes.
fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            lock(&into).extend_from_slice(&buf[..n]);
        }
    })
}

/// A one-shot command still running; killed when dropped unfinished.
pub struct Running {
    child: Option<Child>,
    started: Instant,
    /// stdout as read so far; complete once `out` is joined.
    out_so_far: Arc<Mutex<Vec<u8>>>,
    out: Option<JoinHandle<()>>,
    /// stderr as read so far; complete once `err` is joined.
    err_so_far: Arc<Mutex<Vec<u8>>>,
    err: Option<JoinHandle<()>>,
}

impl Running {
    /// Waits until emstail's stderr contains `needle`, at most `timeout`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(&self.err_so_far, |text| text.contains(needle), timeout)
    }

    /// Waits until emstail's stdout holds `lines` lines, at most `timeout`.
    pub fn wait_for_stdout_lines(&self, lines: usize, timeout: Duration) -> bool {
        wait_for(
            &self.out_so_far,
            |text| text.lines().count() >= lines,
            timeout,
        )
    }

    /// Sends the signal `name` (`TERM`, `HUP`, …).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("still running").id()
    }

    pub fn signal(&self, name: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Waits for the exit, at most [`RUN_LIMIT`]; a run still going then is killed and fails
    /// the test.
    pub fn finish(mut self) -> Run {
        let mut child = self.child.take().expect("a running child");
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting on emstail works") {
                break Some(status);
            }
            if self.started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        for reader in [self.out.take(), self.err.take()].into_iter().flatten() {
            reader.join().expect("pipe reader does not panic");
        }
        let stdout = std::mem::take(&mut *lock(&self.out_so_far));
        let run = Run {
            code: status.and_then(|s| s.code()),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stdout_bytes: stdout,
            stderr: String::from_utf8_lossy(&lock(&self.err_so_far)).into_owned(),
            elapsed,
        };
        eprintln!("--- emstail stderr ({elapsed:?}) ---\n{}", run.stderr);
        assert!(
            status.is_some(),
            "emstail ran past {RUN_LIMIT:?} and was killed"
        );
        run
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// SIGKILL and reap the child, if it is still held.
fn kill_and_reap(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A running `emstail run`; killed (SIGKILL) when dropped, so no test leaves one behind.
pub struct Daemon {
    child: Option<Child>,
    state: PathBuf,
}

impl Daemon {
    fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is kept until the daemon is consumed")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// The exit status if the process ends within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child().try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// Whether it has written its first status, which it does once its signal handlers
    /// are in place (a SIGTERM before that ends it by the default action).
    pub fn ready(&self) -> bool {
        std::fs::read(self.state.join("status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|s| s["pid"] == self.pid())
    }

    /// SIGTERM once it is ready, then the exit status (within 15 s, or the test fails).
    pub fn term(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ready() && self.running() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        self.signal("TERM");
        let status = self
            .wait_exit(Duration::from_secs(15))
            .expect("emstail exits within 15 s of SIGTERM");
        self.child = None;
        status
    }

    /// SIGTERM once it is ready; it must exit with status 0.
    pub fn stop(self, context: &str) {
        let status = self.term();
        assert!(status.success(), "{context}: emstail exited with {status}");
    }

    /// The exit status, which must come within `limit`.
    pub fn exit_within(mut self, limit: Duration) -> ExitStatus {
        let status = self
            .wait_exit(limit)
            .unwrap_or_else(|| panic!("emstail exits within {limit:?}"));
        self.child = None;
        status
    }

    /// SIGTERM at once (not waiting for the first status), then as [`Self::exit_within`].
    pub fn term_now(self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        self.exit_within(limit)
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        assert!(self.child.is_some(), "child present");
        kill_and_reap(&mut self.child);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------
// The config file

/// One test's temp dir, with a config written into it (as JSON, which emstail reads).
pub struct Setup {
    pub dir: tempfile::TempDir,
    service: Map<String, Value>,
    plugins: Map<String, Value>,
}

impl Setup {
    /// Service settings for the fixtures: the repository's webroot as media root, small
    /// retry settings, state in the temp dir.
    pub fn new(ems_api: &str) -> Setup {
        Setup::bare(ems_api)
            .service("media_root", json!([utf8(&webroot())]))
            .service(
                "ems_working_dir",
                json!(utf8(&repo().join("fixtures/ems/bin"))),
            )
            .service("workers", json!(8))
            .service("request_timeout_secs", json!(5))
            .retry(3)
    }

    /// Only the EMS API and the state directory (`state` in the temp dir).
    pub fn bare(ems_api: &str) -> Setup {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let service = json!({
            "ems_api": ems_api,
            "state_dir": utf8(&dir.path().join("state")),
        });
        Setup {
            dir,
            service: service.as_object().cloned().expect("an object"),
            plugins: Map::new(),
        }
    }

    /// `name` in the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn service(mut self, key: &str, value: Value) -> Setup {
        self.service.insert(key.to_string(), value);
        self
    }

    /// At most `max_attempts`, backing off at most 1 s.
    pub fn retry(self, max_attempts: u32) -> Setup {
        self.retry_backing_off(max_attempts, 1)
    }

    pub fn retry_backing_off(self, max_attempts: u32, max_backoff_secs: u64) -> Setup {
        self.service(
            "retry",
            json!({ "max_attempts": max_attempts, "max_backoff_secs": max_backoff_secs }),
        )
    }

    pub fn plugin(mut self, name: &str, parameters: Value) -> Setup {
        self.plugins.insert(
            name.to_string(),
            json!({ "plugin_switch": "enabled", "parameters": parameters }),
        );
        self
    }

    /// A top-level block written as given (`Rules`, a disabled plugin).
    pub fn block(mut self, name: &str, value: Value) -> Setup {
        self.plugins.insert(name.to_string(), value);
        self
    }

    pub fn recorder(self) -> Setup {
        self.plugin(
            "StreamRecorder",
            json!({ "file_location": "/var/evostreamms/media", "period_time": 3600 }),
        )
    }

    pub fn auto_router(self) -> Setup {
        self.plugin(
            "StreamAutoRouter",
            json!({ "token": "", "destination_uri": "127.0.0.1:1936" }),
        )
    }

    pub fn upload(
        self,
        plugin: &str,
        s3: &super::s3::S3Server,
        endpoint: &str,
        bucket: &str,
    ) -> Setup {
        self.upload_with_secret(plugin, s3, endpoint, bucket, &s3.secret_key)
    }

    pub fn upload_with_secret(
        self,
        plugin: &str,
        s3: &super::s3::S3Server,
        endpoint: &str,
        bucket: &str,
        secret: &str,
    ) -> Setup {
        self.plugin(
            plugin,
            json!({
                "aws_access_key": s3.access_key,
                "aws_secret_key": secret,
                "default_bucket": bucket,
                "region": "us-east-1",
                "endpoint": endpoint,
            }),
        )
    }

    /// Writes `config.ini` and returns its path.
    pub fn write(&self) -> PathBuf {
        let mut root = self.plugins.clone();
        root.insert("Service".into(), Value::Object(self.service.clone()));
        let path = self.path("config.ini");
        let text = serde_json::to_string_pretty(&Value::Object(root)).expect("JSON serialises");
        std::fs::write(&path, text).expect("the temp dir is writable");
        // It may hold secrets: readable by its owner only, as emstail asks.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod the config");
        path
    }

    pub fn dead_letter_path(&self) -> PathBuf {
        self.state_dir().join("dead-letter.jsonl")
    }

    /// The dead-letter file's lines (none when it does not exist).
    pub fn dead_letters(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.dead_letter_path()) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).expect("each dead letter is one JSON line"))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("reading the dead-letter file: {e}"),
        }
    }
}
