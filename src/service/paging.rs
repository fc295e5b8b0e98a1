//! What every list checks the same way.

/// The page size to serve: the default for 0 (or, from a caller that
/// skipped the proto's rules, a negative size), and at most `max`.
pub fn page_size(requested: i32, default: i32, max: i32) -> usize {
    let size = match requested {
        n if n <= 0 => default,
        n => n.min(max),
    };
    size as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0, 20, 100), 20);
        assert_eq!(page_size(7, 20, 100), 7);
        assert_eq!(page_size(1000, 20, 100), 100);
        assert_eq!(page_size(-1, 20, 100), 20);
    }
}
