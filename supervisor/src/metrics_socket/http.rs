//! The little HTTP the metrics page needs, without I/O: is a request complete, what does
//! it ask, and the bytes of each answer. One request per connection; the answer closes it.

/// The largest request read: a scraper's request is a few hundred bytes.
pub(crate) const MAX_REQUEST: usize = 8 * 1024;

/// The path served.
pub(crate) const METRICS_PATH: &str = "/metrics";

/// Where a request being read is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Its head has not ended yet.
    Incomplete,
    /// Its head is longer than [`MAX_REQUEST`].
    TooLarge,
    /// Not a request line `METHOD TARGET HTTP/x.y`.
    Malformed,
    /// A complete head: its method and path (without the query).
    Complete { method: String, path: String },
}

/// Reads what `bytes` hold so far.
pub(crate) fn parse(bytes: &[u8]) -> Request {
    let end = find(bytes, b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| find(bytes, b"\n\n").map(|at| (at, 2)));
    let Some((end, blank_line)) = end else {
        return if bytes.len() >= MAX_REQUEST { Request::TooLarge } else { Request::Incomplete };
    };
    if end + blank_line > MAX_REQUEST {
        return Request::TooLarge;
    }
    let head = String::from_utf8_lossy(&bytes[..end]);
    let line = head.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Request::Malformed;
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Request::Malformed;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Request::Complete { method: method.to_string(), path: path.to_string() }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The metrics page; `with_body`: false for `HEAD`.
    Metrics {
        with_body: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

pub(crate) fn route(request: &Request) -> Option<Route> {
    Some(match request {
        Request::Incomplete => return None,
        Request::TooLarge => Route::TooLarge,
        Request::Malformed => Route::BadRequest,
        Request::Complete { method, path } => match (method.as_str(), path == METRICS_PATH) {
            ("GET", true) => Route::Metrics { with_body: true },
            ("HEAD", true) => Route::Metrics { with_body: false },
            (_, false) => Route::NotFound,
            _ => Route::MethodNotAllowed,
        },
    })
}

/// The whole answer: status line, headers, body.
pub(crate) fn response(status: &str, content_type: &str, body: &str, with_body: bool) -> Vec<u8> {
    let allow = if status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The answer to a request that is not the metrics page.
pub(crate) fn refusal(route: Route) -> Vec<u8> {
    let (status, body) = match route {
        Route::NotFound => ("404 Not Found", "not found: the metrics are at /metrics\n"),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "only GET and HEAD are served\n"),
        Route::TooLarge => ("413 Content Too Large", "request too large\n"),
        Route::BadRequest | Route::Metrics { .. } => ("400 Bad Request", "bad request\n"),
    };
    response(status, "text/plain; charset=utf-8", body, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(bytes: &[u8]) -> Option<Route> {
        route(&parse(bytes))
    }

    #[test]
    fn requests_are_routed_once_their_head_is_complete() {
        assert_eq!(route_of(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            route_of(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Route::Metrics { with_body: true })
        );
        assert_eq!(
            route_of(b"HEAD /metrics HTTP/1.0\n\n"),
            Some(Route::Metrics { with_body: false })
        );
        assert_eq!(route_of(b"GET / HTTP/1.1\r\n\r\n"), Some(Route::NotFound));
        assert_eq!(route_of(b"POST /metrics HTTP/1.1\r\n\r\n"), Some(Route::MethodNotAllowed));
        assert_eq!(route_of(b"POST /other HTTP/1.1\r\n\r\n"), Some(Route::NotFound));
        assert_eq!(route_of(b"GET /metrics\r\n\r\n"), Some(Route::BadRequest));
        assert_eq!(route_of(b"GET metrics HTTP/1.1\r\n\r\n"), Some(Route::BadRequest));
    }

    #[test]
    fn a_head_over_the_limit_is_too_large() {
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST, b'a');
        assert_eq!(route_of(&big), Some(Route::TooLarge), "no end in sight at the limit");
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(route_of(&big), Some(Route::TooLarge), "complete, but over the limit");
    }

    #[test]
    fn answers_say_their_length_and_close() {
        let answer = String::from_utf8(response("200 OK", "text/plain", "ab", true)).unwrap();
        assert_eq!(
            answer,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
             Connection: close\r\n\r\nab"
        );
        let head = String::from_utf8(response("200 OK", "text/plain", "ab", false)).unwrap();
        assert!(head.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"));
        let refused = String::from_utf8(refusal(Route::MethodNotAllowed)).unwrap();
        assert!(refused.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(refused.contains("\r\nAllow: GET, HEAD\r\n"));
    }
}
