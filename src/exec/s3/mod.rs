//! S3 puts and deletes: one [`S3Target`] per upload plugin. rust-s3 signs each request and
//! ureq sends it ([`send`]: no redirect followed, answers read up to 64 KiB).
//!
//! Every outcome is sorted into [`Done`] or [`Failure`] here, because only this file knows
//! which S3 answers are worth retrying. The daemon never creates buckets: a missing bucket
//! is a configuration mistake, reported once per action as permanent.

mod send;

use super::confine::{UploadFile, open_regular};
use super::{Done, Failure};
use crate::action::{ControlEscaped, Secret};
use crate::config::UploadParams;
use ::s3::command::{Command, Multipart};
use ::s3::creds::Credentials;
use ::s3::error::S3Error;
use ::s3::serde_types::{CompleteMultipartUploadData, InitiateMultipartUploadResponse, Part};
use ::s3::{Bucket, Region};
use send::{Answer, SendError};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Objects this size and larger go up in parts; smaller ones in one PUT.
pub const MULTIPART_THRESHOLD: u64 = ::s3::bucket::CHUNK_SIZE as u64;

/// The region a plugin's `region` names: trimmed, and [`DEFAULT_REGION`] when it is empty or
/// absent.
pub fn region_name(params: &UploadParams) -> &str {
    params
        .region
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_REGION)
}

/// The region of a plugin that names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Buckets kept ready per target; others are made anew for each request.
const MAX_BUCKETS_KEPT: usize = 64;

/// The prefix [`S3Target::probe`] lists; no upload writes under it.
const PROBE_PREFIX: &str = "emstail-check/no-such-object";

/// Upper bound on one HTTP request once connected (connecting has its own 30 s limit). A
/// whole 8 MiB part must fit, on a slow uplink too.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and as whom one upload plugin writes.
pub struct S3Target {
    region: Region,
    /// Renewed, once expired, before a bucket is made with them; each bucket renews its own
    /// before it signs a request.
    credentials: Mutex<Credentials>,
    /// The credentials are a role's (an instance or container role, web identity): they
    /// expire and are fetched again, so S3 refusing them as expired, or their source not
    /// answering for a moment, is worth another attempt.
    renewable: bool,
    path_style: bool,
    /// The secret actually in use, to scrub it from any message that might echo it.
    secret: Secret,
    agent: ureq::Agent,
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl fmt::Debug for S3Target {
    /// Region and endpoint only: rust-s3's own `Debug` would print the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Target")
            .field("region", &self.region.to_string())
            .field("endpoint", &self.region.endpoint())
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl S3Target {
    /// The target for one plugin's `region`, `endpoint` and keys.
    ///
    /// Keys come from the config when both are set; otherwise from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`, the AWS profile, or the container/instance role.
    pub fn new(params: &UploadParams) -> Result<S3Target, String> {
        let region_name = region_name(params);
        let endpoint = params
            .endpoint
            .as_deref()
            .map(|e| e.trim().trim_end_matches('/'))
            .filter(|e| !e.is_empty());
        let (region, path_style) = match endpoint {
            Some(endpoint) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(format!(
                        "S3 endpoint {endpoint:?} must start with http:// or https://"
                    ));
                }
                let region = Region::Custom {
                    region: region_name.to_string(),
                    endpoint: endpoint.to_string(),
                };
                (region, true)
            }
            None => {
                let region = region_name
                    .parse::<Region>()
                    .map_err(|e| format!("S3 region {region_name:?}: {e}"))?;
                (region, false)
            }
        };
        let credentials = credentials(params)?;
        let secret = Secret::new(credentials.secret_key.clone().unwrap_or_default());
        Ok(S3Target {
            region,
            renewable: credentials.expiration.is_some(),
            credentials: Mutex::new(credentials),
            path_style,
            secret,
            agent: send::agent(REQUEST_TIMEOUT),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// The endpoint as `scheme://host[:port]`, with any user and password left out: what
    /// names this target in `status` and the metrics.
    pub fn endpoint(&self) -> String {
        crate::status::redact_url(&format!(
            "{}://{}",
            self.region.scheme(),
            self.region.host()
        ))
    }

    /// Uploads the regular file at `path` as `s3://bucket/key` (no size limit beyond the
    /// file's own: the daemon goes through [`S3Target::put_file`] with one).
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
        cache_control: &str,
        acl: Option<&str>,
    ) -> Result<Done, Failure> {
        let (file, size) = open_regular(path, u64::MAX)?;
        let headers = PutHeaders {
            content_type,
            cache_control,
            acl,
        };
        self.put_file(bucket, key, file, size, path, &headers)
    }

    /// Uploads an opened upload (see [`crate::exec::confine::open_upload`]) as
    /// `s3://bucket/key`: what was checked through the descriptor is what is sent.
    pub fn put_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: UploadFile,
        content_type: &str,
        cache_control: &str,
        acl: Option<&str>,
    ) -> Result<Done, Failure> {
        let headers = PutHeaders {
            content_type,
            cache_control,
            acl,
        };
        self.put_file(
            bucket,
            key,
            upload.file,
            upload.size,
            &upload.real,
            &headers,
        )
    }

    /// Small files go in one PUT; files of [`MULTIPART_THRESHOLD`] and more are streamed in
    /// parts, never held whole in memory. Never more than `size` bytes are read, so a file
    /// that keeps growing cannot make the upload endless. `acl` is sent as `x-amz-acl` only
    /// when set.
    fn put_file(
        &self,
        bucket: &str,
        key: &str,
        file: File,
        size: u64,
        path: &Path,
        headers: &PutHeaders,
    ) -> Result<Done, Failure> {
        let handle = self.bucket(bucket)?;
        let mut file = file.take(size);
        let result = if size < MULTIPART_THRESHOLD {
            let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut body)
                .map_err(|e| read_failure(path, &e))?;
            self.put_small(&handle, key, &body, headers)
        } else {
            self.put_multipart(&handle, key, &mut file, path, headers)
        };
        result
            .map(|()| Done::Ok)
            .map_err(|e| self.classify(e, "put", bucket, key))
    }

    /// Deletes `s3://bucket/key`; a key that is already gone counts as done.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<Done, Failure> {
        let handle = self.bucket(bucket)?;
        match self.request(&handle, key, Command::DeleteObject) {
            Ok(_) => Ok(Done::Ok),
            Err(StepError::Status(answer))
                if answer.status == 404 && error_code(&answer.body) == Some("NoSuchKey") =>
            {
                Ok(Done::AlreadyDone(format!(
                    "s3://{bucket}/{key} was already gone"
                )))
            }
            Err(e) => Err(self.classify(e, "delete", bucket, key)),
        }
    }

    /// Lists at most one key of `bucket` under a prefix no upload writes, signed like an
    /// upload: an answer (or `AccessDenied` to keys that may write but not list) says the
    /// bucket is there and the keys are taken, and nothing is written. Otherwise the error an
    /// upload would get.
    pub fn probe(&self, bucket: &str) -> Result<String, Failure> {
        let handle = self.bucket(bucket)?;
        let list = Command::ListObjectsV2 {
            prefix: PROBE_PREFIX.to_string(),
            delimiter: None,
            continuation_token: None,
            start_after: None,
            max_keys: Some(1),
        };
        match self.request(&handle, "/", list) {
            Ok(_) => Ok("reachable, keys accepted".into()),
            Err(StepError::Status(answer)) if error_code(&answer.body) == Some("AccessDenied") => {
                Ok(
                    "reachable, keys accepted; listing is refused to them, which uploads do not \
                    need"
                        .into(),
                )
            }
            Err(e) => Err(self.classify(e, "list", bucket, PROBE_PREFIX)),
        }
    }

    fn bucket(&self, name: &str) -> Result<Arc<Bucket>, Failure> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = buckets.get(name) {
            return Ok(Arc::clone(b));
        }
        let build = || -> Result<Bucket, S3Error> {
            let credentials = {
                let mut credentials = self
                    .credentials
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // A failure shows when the bucket renews them before signing, as a failure
                // of that request.
                let _ = credentials.refresh();
                credentials.clone()
            };
            let b = Bucket::new(name, self.region.clone(), credentials)?;
            Ok(if self.path_style {
                *b.with_path_style()
            } else {
                *b
            })
        };
        let bucket = Arc::new(
            build()
                .map_err(|e| Failure::Permanent(self.scrub(format!("S3 bucket {name:?}: {e}"))))?,
        );
        // The configured buckets are a handful; a rule's bucket from a template may be one
        // per stream name, which whoever publishes streams chooses: past a few, one is made
        // for each request instead of being kept for good.
        if buckets.len() < MAX_BUCKETS_KEPT {
            buckets.insert(name.to_string(), Arc::clone(&bucket));
        }
        Ok(bucket)
    }

    /// Sorts an error into retry / give up, with a message naming the bucket and never the
    /// secret.
    fn classify(&self, error: StepError, op: &str, bucket: &str, key: &str) -> Failure {
        if self.renewable
            && let Some(why) = role_credentials_lapsed(&error)
        {
            // Signed just before they expired here, or as S3's clock had them expire: the
            // next attempt is signed with new ones. Or their source did not answer.
            return Failure::Retryable(self.scrub(format!(
                "S3 {op} s3://{bucket}/{key}: {why}; the role's credentials are fetched again \
                 for the next attempt"
            )));
        }
        let failure = match error {
            StepError::Read(failure) => return failure,
            other => classify_step(other, op, bucket, key),
        };
        match failure {
            Failure::Retryable(m) => Failure::Retryable(self.scrub(m)),
            Failure::Unreached(m) => Failure::Unreached(self.scrub(m)),
            Failure::Permanent(m) => Failure::Permanent(self.scrub(m)),
            Failure::Missing(m) => Failure::Missing(self.scrub(m)),
        }
    }

    fn scrub(&self, message: String) -> String {
        let secret = self.secret.expose();
        if secret.is_empty() {
            message
        } else {
            message.replace(secret, "***")
        }
    }
}

fn credentials(params: &UploadParams) -> Result<Credentials, String> {
    let access = params
        .aws_access_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let secret = params
        .aws_secret_key
        .as_ref()
        .map(|s| s.expose().trim())
        .filter(|s| !s.is_empty());
    match (access, secret) {
        (Some(access), Some(secret)) => {
            Credentials::new(Some(access), Some(secret), None, None, None)
                .map_err(|e| format!("S3 credentials from the config: {e}"))
        }
        (Some(_), None) => Err("aws_access_key is set but aws_secret_key is empty".to_string()),
        (None, Some(_)) => Err("aws_secret_key is set but aws_access_key is empty".to_string()),
        (None, None) => Credentials::default().map_err(|_| {
            "no S3 credentials: set aws_access_key and aws_secret_key, or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or an AWS profile or instance role"
                .to_string()
        }),
    }
}

struct PutHeaders<'a> {
    content_type: &'a str,
    cache_control: &'a str,
    acl: Option<&'a str>,
}

impl PutHeaders<'_> {
    /// Cache-Control when set and `x-amz-acl` when configured: what the object keeps.
    fn object_headers(&self) -> Result<http::HeaderMap, S3Error> {
        let mut headers = http::HeaderMap::new();
        if !self.cache_control.is_empty() {
            headers.insert(http::header::CACHE_CONTROL, self.cache_control.parse()?);
        }
        if let Some(acl) = self.acl {
            headers.insert(http::HeaderName::from_static("x-amz-acl"), acl.parse()?);
        }
        Ok(headers)
    }
}

/// Why a step of an upload failed.
enum StepError {
    /// Reading the local file.
    Read(Failure),
    /// rust-s3 could not build or sign the request.
    Build(S3Error),
    /// No answer: connecting, sending or reading failed.
    Transport(ureq::Error),
    /// S3 answered with a status other than 2xx, or a 2xx carrying an `<Error>`.
    Status(Answer),
    /// A 2xx answer that does not say what it should (no upload id, no ETag).
    Unreadable(String),
}

impl From<SendError> for StepError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Build(e) => StepError::Build(e),
            SendError::Transport(e) => StepError::Transport(e),
        }
    }
}

impl From<S3Error> for StepError {
    fn from(e: S3Error) -> Self {
        StepError::Build(e)
    }
}

impl S3Target {
    /// One signed request; its answer when S3 took it (2xx with no `<Error>` inside).
    fn request(
        &self,
        bucket: &Bucket,
        key: &str,
        command: Command<'_>,
    ) -> Result<Answer, StepError> {
        let answer = send::send(&self.agent, bucket, key, command)?;
        // S3 may answer a multipart completion 200 and then fail it in the body.
        if (200..=299).contains(&answer.status) && !answer.body.contains("<Error>") {
            Ok(answer)
        } else {
            Err(StepError::Status(answer))
        }
    }

    fn put_small(
        &self,
        bucket: &Bucket,
        key: &str,
        body: &[u8],
        h: &PutHeaders,
    ) -> Result<(), StepError> {
        let headers = h.object_headers()?;
        let command = Command::PutObject {
            content: body,
            content_type: h.content_type,
            custom_headers: (!headers.is_empty()).then_some(headers),
            multipart: None,
        };
        self.request(bucket, key, command)?;
        Ok(())
    }

    /// A multipart upload driven step by step: Cache-Control and the ACL go with the
    /// initiation, which is the only request S3 takes them from.
    fn put_multipart(
        &self,
        bucket: &Bucket,
        key: &str,
        file: &mut impl Read,
        path: &Path,
        h: &PutHeaders,
    ) -> Result<(), StepError> {
        let initiating = bucket.with_extra_headers(h.object_headers()?)?;
        let answer = self.request(
            &initiating,
            key,
            Command::InitiateMultipartUpload {
                content_type: h.content_type,
            },
        )?;
        let initiated: InitiateMultipartUploadResponse = quick_xml::de::from_str(&answer.body)
            .map_err(|e| {
                StepError::Unreadable(format!(
                    "the answer to starting a multipart upload has no upload id ({e})"
                ))
            })?;
        let upload_id = initiated.upload_id.as_str();
        let object = initiated.key.as_str();

        self.upload_parts(bucket, object, upload_id, file, path, h.content_type)
            .inspect_err(|_| {
                // Best effort: an upload left behind only costs storage until the bucket's
                // lifecycle rule removes it; the caller's retry starts a fresh one.
                let abort = Command::AbortMultipartUpload { upload_id };
                if let Err(StepError::Transport(e)) = self.request(bucket, object, abort) {
                    log::debug!(
                        "aborting multipart upload of {} failed: {e}",
                        ControlEscaped(key)
                    );
                }
            })
    }

    fn upload_parts(
        &self,
        bucket: &Bucket,
        object: &str,
        upload_id: &str,
        file: &mut impl Read,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StepError> {
        let mut parts = Vec::new();
        let mut chunk = vec![0u8; ::s3::bucket::CHUNK_SIZE];
        for part_number in 1u32.. {
            let len =
                fill(file, &mut chunk).map_err(|e| StepError::Read(read_failure(path, &e)))?;
            if len == 0 && part_number > 1 {
                break;
            }
            let command = Command::PutObject {
                content: &chunk[..len],
                content_type,
                custom_headers: None,
                multipart: Some(Multipart::new(part_number, upload_id)),
            };
            let answer = self.request(bucket, object, command)?;
            let etag = answer.etag.ok_or_else(|| {
                StepError::Unreadable(format!("part {part_number} was stored without an ETag"))
            })?;
            parts.push(Part { etag, part_number });
            if len < chunk.len() {
                break;
            }
        }
        let complete = Command::CompleteMultipartUpload {
            upload_id,
            data: CompleteMultipartUploadData { parts },
        };
        self.request(bucket, object, complete)?;
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn fill(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_failure(path: &Path, e: &std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::NotFound => Failure::Missing(format!("{}: no longer exists", path.display())),
        _ => Failure::Retryable(format!("{}: cannot read: {e}", path.display())),
    }
}

/// Why a request failed for credentials that a role renews, if it did: S3 found them expired,
/// or fetching new ones failed.
fn role_credentials_lapsed(error: &StepError) -> Option<String> {
    match error {
        StepError::Status(answer) => match error_code(&answer.body) {
            Some(code @ ("ExpiredToken" | "TokenRefreshRequired")) => {
                Some(format!("HTTP {} {code}", answer.status))
            }
            _ => None,
        },
        StepError::Build(S3Error::Credentials(e)) => Some(format!("fetching credentials: {e}")),
        _ => None,
    }
}

/// The `<Code>` of an S3 XML error body.
fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    Some(body[start..start + len].trim())
}

fn classify_step(error: StepError, op: &str, bucket: &str, key: &str) -> Failure {
    let object = format!("s3://{bucket}/{key}");
    let answer = match error {
        StepError::Read(failure) => return failure,
        StepError::Build(S3Error::Credentials(e)) => {
            return Failure::Permanent(format!("S3 credentials for bucket {bucket}: {e}"));
        }
        StepError::Build(e) => {
            return Failure::Permanent(format!("S3 {op} {object} cannot be sent: {e}"));
        }
        StepError::Transport(e) => {
            let what = format!("S3 {op} {object}");
            return crate::exec::http::transport_failure(
                &what,
                e,
                send::CONNECT_TIMEOUT,
                REQUEST_TIMEOUT,
            );
        }
        StepError::Unreadable(m) => {
            return Failure::Retryable(format!("S3 {op} {object}: unexpected answer: {m}"));
        }
        StepError::Status(answer) => answer,
    };
    let status = answer.status;
    let code = error_code(&answer.body).unwrap_or("");
    let what = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}")
    };
    match (status, code) {
        (_, "NoSuchBucket") => Failure::Permanent(format!(
            "bucket {bucket} does not exist (emstail never creates buckets)"
        )),
        (300..=399, _) => Failure::Permanent(format!(
            "S3 {op} {object}: {what}, a redirect{} that emstail does not follow; set the \
             plugin's region (or endpoint) to where the bucket is",
            answer
                .location
                .as_deref()
                .map(|l| format!(" to {}", crate::status::redact_url(&clip(l))))
                .unwrap_or_default()
        )),
        (401 | 403, _)
        | (
            _,
            "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired",
        ) => Failure::Permanent(format!(
            "S3 rejected the credentials for bucket {bucket}: {what}"
        )),
        (
            _,
            "SlowDown"
            | "RequestTimeout"
            | "InternalError"
            | "ServiceUnavailable"
            | "RequestTimeTooSkewed",
        )
        | (408 | 429 | 500..=599, _) => Failure::Retryable(format!("S3 {op} {object}: {what}")),
        _ => Failure::Permanent(format!("S3 {op} {object} refused: {what}")),
    }
}

/// At most 200 characters of a value an answer chose, escaped as everywhere else.
fn clip(text: &str) -> String {
    let head: String = text.chars().take(200).collect();
    ControlEscaped(&head).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> UploadParams {
        UploadParams {
            aws_access_key: Some("AKIDEXAMPLE".to_string()),
            aws_secret_key: Some(Secret::new("wJalrXUtnFEMI/K7MDENG")),
            endpoint: Some("http://127.0.0.1:9/".to_string()),
            ..UploadParams::default()
        }
    }

    #[test]
    fn an_endpoint_means_a_custom_region_with_path_style() {
        let t = S3Target::new(&params()).expect("valid params");
        assert!(t.path_style);
        assert_eq!(t.region.endpoint(), "http://127.0.0.1:9");
        assert_eq!(t.region.to_string(), "us-east-1");
    }

    #[test]
    fn without_an_endpoint_the_named_aws_region_is_used() {
        let p = UploadParams {
            endpoint: None,
            region: Some("eu-west-1".to_string()),
            ..params()
        };
        let t = S3Target::new(&p).expect("valid params");
        assert!(!t.path_style);
        assert_eq!(t.region, Region::EuWest1);
    }

    #[test]
    fn a_region_is_trimmed_and_an_empty_one_is_the_default() {
        for (given, used) in [
            (Some(" eu-west-1 "), "eu-west-1"),
            (Some("  "), DEFAULT_REGION),
            (None, DEFAULT_REGION),
        ] {
            let p = UploadParams {
                region: given.map(str::to_string),
                ..params()
            };
            assert_eq!(region_name(&p), used, "{given:?}");
        }
    }

    #[test]
    fn an_endpoint_without_scheme_is_refused() {
        let p = UploadParams {
            endpoint: Some("minio:9000".to_string()),
            ..params()
        };
        let err = S3Target::new(&p).expect_err("no scheme");
        assert!(err.contains("http://"), "{err}");
    }

    #[test]
    fn half_configured_keys_are_refused() {
        let p = UploadParams {
            aws_secret_key: None,
            ..params()
        };
        let err = S3Target::new(&p).expect_err("secret missing");
        assert!(err.contains("aws_secret_key"), "{err}");
    }

    /// A rule may name the bucket from the event (`rec-${payload.name}`): many distinct
    /// names must not each keep a bucket for the life of the process.
    #[test]
    fn buckets_named_by_events_are_not_all_kept() {
        let t = S3Target::new(&params()).expect("valid params");
        for i in 0..1000 {
            let bucket = t.bucket(&format!("rec-cam{i}")).expect("a valid name");
            assert_eq!(bucket.name(), format!("rec-cam{i}"));
        }
        let kept = t.buckets.lock().unwrap().len();
        assert!(kept <= MAX_BUCKETS_KEPT, "{kept} buckets kept");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = S3Target::new(&params()).expect("valid params");
        let shown = format!("{t:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("AKIDEXAMPLE"), "{shown}");
    }

    #[test]
    fn messages_are_scrubbed_of_the_secret() {
        let t = S3Target::new(&params()).expect("valid params");
        let body =
            "<Error><Code>AccessDenied</Code><Message>wJalrXUtnFEMI/K7MDENG</Message></Error>";
        let f = t.classify(StepError::Status(answer(400, body)), "put", "b", "k");
        assert!(!f.to_string().contains("wJalrXUtnFEMI"), "{f}");
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            etag: None,
            location: None,
            body: body.to_string(),
        }
    }

    fn classify_status(status: u16, code: &str) -> Failure {
        let body = format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>");
        classify_step(
            StepError::Status(answer(status, &body)),
            "put",
            "media",
            "a/b.ts",
        )
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        assert!(matches!(
            classify_status(503, "SlowDown"),
            Failure::Retryable(_)
        ));
        assert!(matches!(
            classify_status(500, "InternalError"),
            Failure::Retryable(_)
        ));
        assert!(matches!(classify_status(502, ""), Failure::Retryable(_)));
        assert!(matches!(
            classify_status(400, "RequestTimeout"),
            Failure::Retryable(_)
        ));
    }

    #[test]
    fn credential_and_bucket_problems_are_permanent_and_named() {
        assert_eq!(
            classify_status(403, "SignatureDoesNotMatch"),
            Failure::Permanent(
                "S3 rejected the credentials for bucket media: HTTP 403 SignatureDoesNotMatch"
                    .to_string()
            )
        );
        assert_eq!(
            classify_status(404, "NoSuchBucket"),
            Failure::Permanent(
                "bucket media does not exist (emstail never creates buckets)".to_string()
            )
        );
        assert!(matches!(
            classify_status(400, "AccessControlListNotSupported"),
            Failure::Permanent(m) if m.contains("AccessControlListNotSupported")
        ));
    }
}
