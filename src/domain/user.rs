//! Who is calling, and per-user idempotency keys.

use crate::error::Error;

/// A user id: the token's `sub`, a decimal integer >= 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(i64);

impl UserId {
    pub fn parse(sub: &str) -> Option<Self> {
        // Only the canonical decimal form: no sign, no spaces, no leading
        // zeros ("0042" and "42" must not both name user 42).
        if sub.is_empty() || !sub.bytes().all(|b| b.is_ascii_digit()) || sub.starts_with('0') {
            return None;
        }
        sub.parse::<i64>().ok().filter(|id| *id >= 1).map(UserId)
    }

    pub fn new(id: i64) -> Option<Self> {
        (id >= 1).then_some(UserId(id))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// An `Idempotency-Key`: 1 to 255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &[u8]) -> Result<Self, Error> {
        let field = "Idempotency-Key";
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(Error::invalid_field(
                field,
                format!("must be 1 to {} characters", Self::MAX_LEN),
            ));
        }
        if !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(Error::invalid_field(
                field,
                "must contain printable ASCII characters only",
            ));
        }
        Ok(Self(
            String::from_utf8(raw.to_vec()).expect("ASCII is UTF-8"),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Keys are client secrets of a sort (they name requests): keep them out of logs.
impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_positive_decimals() {
        assert_eq!(UserId::parse("42").map(UserId::get), Some(42));
        for bad in [
            "0",
            "-1",
            "+1",
            " 1",
            "1.0",
            "0042",
            "01",
            "abc",
            "",
            "99999999999999999999",
        ] {
            assert!(UserId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse(b"abc-123").is_ok());
        assert!(IdempotencyKey::parse(&[b'a'; 255]).is_ok());
        assert!(IdempotencyKey::parse(&[b'a'; 256]).is_err());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"a\tb").is_err());
        assert!(IdempotencyKey::parse("ключ".as_bytes()).is_err());
        assert_eq!(
            format!("{:?}", IdempotencyKey::parse(b"secret").unwrap()),
            "IdempotencyKey(<redacted>)"
        );
    }
}
