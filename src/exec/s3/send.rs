//! One S3 request: rust-s3 builds and signs it, ureq sends it.
//!
//! rust-s3's blocking client sends through attohttpc, which follows a redirect (carrying the
//! file and the signed `Authorization` header to wherever `Location` points, and counting the
//! answer there as the upload) and reads an error body whole (a 1 GB answer to a failed PUT
//! grew the process by as much); neither can be turned off through rust-s3. So rust-s3 does
//! what it does well — the URL, the SigV4 headers, each command's query and XML, through its
//! public `Request` trait — and ureq, already the EMS client, carries the request: no redirect
//! is followed, and no more than [`MAX_ANSWER_BYTES`] of any answer is read.

use ::s3::Bucket;
use ::s3::command::{Command, HttpMethod};
use ::s3::error::S3Error;
use ::s3::request::Request as _;
use ::s3::request::blocking::AttoRequest;
use http::header::{CONTENT_LENGTH, ETAG, LOCATION};
use std::io::Read;
use std::time::Duration;

/// The most of an answer's body ever read: S3's XML answers (errors, an upload's id, a
/// multipart completion) are a few hundred bytes.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Connecting has this long; an S3 endpoint that does not answer a SYN by then is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An S3 answer, whatever its status, with its body read up to [`MAX_ANSWER_BYTES`].
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    /// Where a redirect pointed (never followed).
    pub location: Option<String>,
    pub body: String,
}

/// Why a request brought no answer.
#[derive(Debug)]
pub enum SendError {
    /// rust-s3 could not build or sign it (credentials, a header value): the same each time.
    Build(S3Error),
    /// Connecting, sending or reading failed.
    Transport(ureq::Error),
}

/// The agent every request of one S3 target goes through.
pub fn agent(request_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(request_timeout))
        // The status is judged by the caller, with the body still readable.
        .http_status_as_error(false)
        // A redirect would carry the file and the signature elsewhere: S3 itself only
        // redirects to say the bucket lives in another region, which is the config's to fix.
        .max_redirects(0)
        .max_redirects_will_error(false)
        // A connection per request, as before ureq carried them: a connection that S3 closed
        // while it sat in a pool fails the next request sent on it.
        .max_idle_connections(0)
        .build()
        .into()
}

/// Sends `command` for `key` in `bucket`, signed, and reads the answer.
pub fn send(
    agent: &ureq::Agent,
    bucket: &Bucket,
    key: &str,
    command: Command<'_>,
) -> Result<Answer, SendError> {
    let request = AttoRequest::new(bucket, key, command).map_err(SendError::Build)?;
    let url = request.url().map_err(SendError::Build)?;
    let mut headers = request.headers().map_err(SendError::Build)?;
    // ureq writes the length of the body it is given, which is the one signed.
    headers.remove(CONTENT_LENGTH);
    let method = match request.command.http_verb() {
        HttpMethod::Get => http::Method::GET,
        HttpMethod::Put => http::Method::PUT,
        HttpMethod::Post => http::Method::POST,
        HttpMethod::Delete => http::Method::DELETE,
        HttpMethod::Head => http::Method::HEAD,
    };
    let owned;
    let body: &[u8] = match &request.command {
        Command::PutObject { content, .. } => content,
        _ => {
            owned = request.request_body().map_err(SendError::Build)?;
            &owned
        }
    };
    let builder = http::Request::builder()
        .method(method.clone())
        .uri(url.as_str());
    let sent = if body.is_empty() && method != http::Method::POST && method != http::Method::PUT {
        let mut http_request = builder
            .body(())
            .map_err(|e| SendError::Transport(ureq::Error::Http(e)))?;
        *http_request.headers_mut() = headers;
        agent.run(http_request)
    } else {
        let mut http_request = builder
            .body(body)
            .map_err(|e| SendError::Transport(ureq::Error::Http(e)))?;
        *http_request.headers_mut() = headers;
        agent.run(http_request)
    };
    let mut response = sent.map_err(SendError::Transport)?;
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, location) = (header(ETAG), header(LOCATION));
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    let read = response
        .body_mut()
        .as_reader()
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut bytes);
    // An answer that broke off is still an answer when its status says it failed; a success
    // whose body did not arrive is not.
    if let Err(e) = read
        && (200..=299).contains(&status)
    {
        return Err(SendError::Transport(ureq::Error::Io(e)));
    }
    Ok(Answer {
        status,
        etag,
        location,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}
