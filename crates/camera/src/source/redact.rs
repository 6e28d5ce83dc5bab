//! Camera URLs without their secrets, for logs, errors and `/api/cameras`.

use url::Url;

/// Parts of query parameter names that mark a secret (`pwd`, `password`, `token`,
/// `access_token`, `apikey`, `auth`, `signature`, ...), compared in lower case.
const SECRET_PARAMS: [&str; 8] = [
    "pass", "pwd", "token", "secret", "key", "auth", "sig", "cred",
];

/// Whether a query parameter named `name` carries a secret.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|part| name.contains(part))
}

/// The URL with any password replaced, in the user part and in query parameters whose names
/// mark a secret (many cameras take `?user=admin&pwd=...`), for logs, errors and
/// `/api/cameras`.
pub fn redact(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return "<invalid URL>".to_string();
    };
    let mut changed = false;
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
        changed = true;
    }
    if u.query_pairs().any(|(name, _)| is_secret_param(&name)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret_param(&name) {
                    "***".to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        u.to_string()
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("rtsp://admin:hunter2@cam/x"),
            "rtsp://admin:***@cam/x"
        );
        assert_eq!(redact("rtsp://cam/x"), "rtsp://cam/x");
        assert_eq!(
            redact("rtsp://cam/x?user=admin&pwd=hunter2&channel=1"),
            "rtsp://cam/x?user=admin&pwd=***&channel=1"
        );
        assert_eq!(
            redact("http://cam/video.cgi?Password=a%20b&access_token=t&resolution=640"),
            "http://cam/video.cgi?Password=***&access_token=***&resolution=640"
        );
        assert_eq!(redact("rtsp://cam/x?loop=1"), "rtsp://cam/x?loop=1");
        assert!(!redact("rtsp://a:b@c d").contains('b'));
    }
}
