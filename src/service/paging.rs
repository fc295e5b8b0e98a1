//! What every list checks the same way.

use base64::Engine;

/// The page size to serve: the default for 0 (or, from a caller that
/// skipped the proto's rules, a negative size), and at most `max`.
pub fn page_size(requested: i32, default: i32, max: i32) -> usize {
    let size = match requested {
        n if n <= 0 => default,
        n => n.min(max),
    };
    size as usize
}

/// A `ListResponses` token: the session, the last response served, and
/// the last response of the first page's snapshot. Opaque to clients:
/// versioned and base64url-encoded.
pub fn encode_response_token(session_id: i64, after: i64, upto: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("r1:{session_id}:{after}:{upto}"))
}

/// `(session_id, after, upto)` of a token `encode_response_token` made.
pub fn decode_response_token(token: &str) -> Option<(i64, i64, i64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let parts: Vec<i64> = text
        .strip_prefix("r1:")?
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [session, after, upto] if session >= 1 && after >= 0 && upto >= after => {
            Some((session, after, upto))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_tokens_round_trip_and_refuse_forgeries() {
        let token = encode_response_token(7, 40, 90);
        assert_eq!(decode_response_token(&token), Some((7, 40, 90)));
        for bad in [
            "",
            "x",
            "cjE6Nzo0MA",
            "!!!",
            &encode_response_token(7, 91, 90),
        ] {
            assert_eq!(decode_response_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0, 20, 100), 20);
        assert_eq!(page_size(7, 20, 100), 7);
        assert_eq!(page_size(1000, 20, 100), 100);
        assert_eq!(page_size(-1, 20, 100), 20);
    }
}
