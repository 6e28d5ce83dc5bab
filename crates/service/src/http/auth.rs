//! Optional bearer-token auth (`security.auth_token`, `ALGO_AUTH_TOKEN`). When a token is set,
//! `/api/*` (except the health check) and `/ws` need it: `Authorization: Bearer TOKEN`, or for
//! WebSocket clients that cannot set headers (browsers) the query parameter `token` (SPEC) or
//! `access_token` (the OAuth spelling, also accepted), percent-decoded. The
//! comparison takes the same time wherever the first difference is, and the token is never
//! logged or echoed.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::error;

/// Whether `given` equals `expected`, in time independent of where they differ (their lengths
/// may show).
pub fn same_token(expected: &[u8], given: &[u8]) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// The token a request presents: the bearer header first, then `token` or `access_token` in the
/// query.
pub fn presented<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer.map(std::borrow::Cow::Borrowed).or_else(|| {
        url::form_urlencoded::parse(query?.as_bytes())
            .find(|(name, _)| name == "token" || name == "access_token")
            .map(|(_, value)| value)
    })
}

/// Whether a request may pass: no token configured, or the right one presented.
pub fn allowed(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> bool {
    let Some(expected) = &state.policy.auth_token else {
        return true;
    };
    presented(headers, query)
        .is_some_and(|given| same_token(expected.expose().as_bytes(), given.as_bytes()))
}

/// Middleware for `/api/*`: 401 in the envelope without the token.
pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if allowed(&state, request.headers(), request.uri().query()) {
        return next.run(request).await;
    }
    state.stats.auth_failure("api");
    unauthorized()
}

/// The 401 answer.
pub fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send Authorization: Bearer <token>",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cret", b"s3creT"));
        assert!(!same_token(b"s3cret", b"s3cre"));
        assert!(!same_token(b"s3cret", b""));
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        let mut h = HeaderMap::new();
        let given = |h: &HeaderMap, q| presented(h, q).map(|t| t.into_owned());
        assert_eq!(given(&h, Some("a=1&access_token=q")), Some("q".into()));
        assert_eq!(given(&h, Some("token=a%2Bb%26c&x=1")), Some("a+b&c".into()));
        assert_eq!(given(&h, Some("tokens=no")), None);
        h.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(given(&h, Some("access_token=q")), Some("abc".into()));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(given(&h, None), None);
    }
}
