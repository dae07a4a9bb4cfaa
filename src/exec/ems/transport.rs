//! How a command reaches EMS: the HTTP agent, the request URL, the API proxy's
//! `Authorization` header, and which transport failures and HTTP statuses are worth a retry.
//! Reads no envelope and knows no command's meaning.

use super::envelope::{clip, quote_body};
use super::{EmsClient, EmsClientConfig};
use crate::action::{ApiTarget, Params};
use crate::exec::Failure;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Larger answers (a `listConfig` of a very busy server) are refused rather than buffered.
pub(super) const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// ureq's per-connection buffers: the request line with its base64 parameters must fit.
const IO_BUFFER_BYTES: usize = 32 * 1024;

/// The HTTP agent every request goes through, with the client's timeouts.
pub(super) fn agent(config: &EmsClientConfig) -> ureq::Agent {
    let agent = ureq::Agent::config_builder()
        .timeout_connect(Some(config.connect_timeout))
        .timeout_global(Some(config.request_timeout))
        // Status codes are judged here, with the body still readable.
        .http_status_as_error(false)
        // EMS answers `Connection: close`; a pooled socket would only risk a stale reuse.
        .max_idle_connections(0)
        // Each request is a new connection, whose buffers are allocated and zeroed anew:
        // ureq's 128 KiB defaults cost more than the request. Answers are read in pieces
        // through the input buffer; the output one holds the request line and headers.
        .input_buffer_size(IO_BUFFER_BYTES)
        .output_buffer_size(IO_BUFFER_BYTES)
        // EMS never redirects; following one could carry the request somewhere else.
        .max_redirects(0)
        // The EMS API is local or on the LAN; an HTTP_PROXY meant for the internet must
        // not capture it.
        .proxy(None)
        .build();
    ureq::Agent::with_parts(
        agent,
        ureq::unversioned::transport::DefaultConnector::default(),
        LiteralFirst::default(),
    )
}

/// Resolves IP-address hosts (what EMS APIs nearly always are) without a lookup; other names
/// go to ureq's resolver. That one starts a thread per lookup whenever a timeout is set, which
/// was a tenth of the CPU of every call.
#[derive(Debug, Default)]
struct LiteralFirst {
    names: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.host().and_then(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = host.parse().ok()?;
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            Some(std::net::SocketAddr::new(ip, port))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

impl EmsClient {
    /// Sends one request; the body of a 2xx answer, or the failure the status means.
    pub(super) fn fetch(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<(String, Vec<u8>), Failure> {
        let (what, mut response) = self.send(target, command, params)?;
        let status = response.status().as_u16();
        let body = self.read_body(&what, &mut response)?;
        if (200..=299).contains(&status) {
            Ok((what, body))
        } else {
            Err(status_failure(&what, status, &body))
        }
    }

    /// Sends one request; what it was (for messages) and the answer, its body unread.
    pub(super) fn send(
        &self,
        target: &ApiTarget,
        command: &str,
        params: &Params,
    ) -> Result<(String, http::Response<ureq::Body>), Failure> {
        let what = format!("{command} on {target}");
        let url = request_url(target, command, params)
            .map_err(|e| Failure::Permanent(format!("{what}: {e}")))?;
        log::debug!(
            "EMS {what}: {}",
            crate::action::ControlEscaped(&params.to_command_line())
        );

        let mut request = self.agent.get(&url);
        if let Some(authorization) = basic_authorization(target) {
            request = request.header("Authorization", authorization);
        }
        let response = request
            .call()
            .map_err(|e| transport_failure(&what, e, &self.config))?;
        Ok((what, response))
    }

    pub(super) fn read_body(
        &self,
        what: &str,
        response: &mut http::Response<ureq::Body>,
    ) -> Result<Vec<u8>, Failure> {
        response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| transport_failure(what, e, &self.config))
    }
}

/// The failure a non-2xx HTTP status means.
pub(super) fn status_failure(what: &str, status: u16, body: &[u8]) -> Failure {
    match status {
        401 | 403 => Failure::Permanent(format!(
            "{what}: authentication failed (HTTP {status}); check the API proxy user and password"
        )),
        // Timeout and throttling answers say "try later", not "this request is wrong".
        408 | 429 | 500..=599 => {
            Failure::Retryable(format!("{what}: HTTP {status}{}", quote_body(body)))
        }
        _ => Failure::Permanent(format!("{what}: HTTP {status}{}", quote_body(body))),
    }
}

/// `<base><command>` plus `?params=<standard base64>` when there are params. The base64 goes
/// in raw: EMS does not percent-decode, and `+/=` are legal in a query.
fn request_url(target: &ApiTarget, command: &str, params: &Params) -> Result<String, String> {
    if command.is_empty() || !command.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{:?} is not an EMS command name", clip(command)));
    }
    let base = target.base.trim();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err("the API base URL must start with http:// or https://".to_string());
    }
    // A value may carry a stream name twice or more (a pull's URI and localStreamName): sent
    // longer than EMS takes, it would fail, or be cut, on every attempt.
    let line = params.to_command_line();
    if line.len() > super::MAX_COMMAND_BYTES {
        return Err(format!(
            "the command is {} bytes, more than the {} bytes EMS takes; sending it again \
             would fail the same way",
            line.len(),
            super::MAX_COMMAND_BYTES
        ));
    }
    let mut url = String::with_capacity(base.len() + command.len() + 64);
    url.push_str(base);
    if !url.ends_with('/') {
        url.push('/');
    }
    url.push_str(command);
    if !params.0.is_empty() {
        url.push_str("?params=");
        url.push_str(&STANDARD.encode(line));
    }
    Ok(url)
}

/// The `Authorization` header for an API proxy target; the password goes only here.
fn basic_authorization(target: &ApiTarget) -> Option<String> {
    if target.user.is_none() && target.password.is_none() {
        return None;
    }
    let user = target.user.as_deref().unwrap_or("");
    let password = target.password.as_ref().map_or("", |p| p.expose());
    Some(format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{password}"))
    ))
}

/// Sorts a ureq error into "try again" (EMS down, restarting or slow) or "give up".
pub(super) fn transport_failure(
    what: &str,
    error: ureq::Error,
    config: &EmsClientConfig,
) -> Failure {
    crate::exec::http::transport_failure(
        what,
        error,
        config.connect_timeout,
        config.request_timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::ems::tests::proxy_target;

    #[test]
    fn ip_hosts_resolve_without_a_lookup_and_names_still_resolve() {
        use ureq::unversioned::resolver::Resolver;
        let resolver = LiteralFirst::default();
        let config = ureq::config::Config::default();
        let resolve = |uri: &str| {
            let uri: ureq::http::Uri = uri.parse().expect("a valid test URI");
            resolver
                .resolve(
                    &uri,
                    &config,
                    ureq::unversioned::transport::NextTimeout::default(),
                )
                .map(|addrs| addrs.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            resolve("http://127.0.0.1:7777/x").unwrap(),
            ["127.0.0.1:7777"]
        );
        assert_eq!(
            resolve("http://[::1]:8888/apiproxy/").unwrap(),
            ["[::1]:8888"]
        );
        assert_eq!(resolve("http://10.0.0.2/version").unwrap(), ["10.0.0.2:80"]);
        assert!(
            resolve("http://localhost:7777/")
                .unwrap()
                .iter()
                .all(|a| a.ends_with(":7777"))
        );
    }

    #[test]
    fn url_has_raw_standard_base64_of_the_escaped_command_line() {
        let target = ApiTarget::plain("http://127.0.0.1:7777");
        // ">>>" and "???" encode to "Pj4+" and "Pz8/": the + and / must stay as they are.
        let params = Params::new().with("a", ">>>???").with("b", "x y");
        let url = request_url(&target, "pullStream", &params).expect("valid request");
        let expected = STANDARD.encode(params.to_command_line());
        assert_eq!(
            url,
            format!("http://127.0.0.1:7777/pullStream?params={expected}")
        );
        assert!(
            expected.contains('+') && expected.contains('/'),
            "{expected}"
        );
        assert!(!url.contains('%'));
    }

    #[test]
    fn url_without_params_has_no_query() {
        let target = ApiTarget::plain("http://127.0.0.1:7777/");
        let url = request_url(&target, "listTimers", &Params::new()).expect("valid request");
        assert_eq!(url, "http://127.0.0.1:7777/listTimers");
    }

    #[test]
    fn command_names_that_would_change_the_url_are_refused() {
        let target = ApiTarget::plain("http://127.0.0.1:7777/");
        for bad in ["", "pull?x=1", "../version", "a b", "version#"] {
            assert!(
                request_url(&target, bad, &Params::new()).is_err(),
                "{bad:?}"
            );
        }
        let no_scheme = ApiTarget::plain("127.0.0.1:7777");
        assert!(request_url(&no_scheme, "version", &Params::new()).is_err());
    }

    #[test]
    fn basic_auth_header_carries_user_and_password_and_url_does_not() {
        let target = proxy_target();
        let header = basic_authorization(&target).expect("credentials set");
        assert_eq!(
            header,
            format!("Basic {}", STANDARD.encode("admin:hunter2-secret"))
        );
        let url = request_url(&target, "version", &Params::new()).expect("valid request");
        assert!(!url.contains("hunter2"), "{url}");
        assert!(!url.contains('@'), "{url}");
        assert_eq!(basic_authorization(&ApiTarget::plain("http://h/")), None);
    }
}
