//! What every list and every id-addressed use case checks the same way.

use crate::error::Error;

/// A path id: >= 1.
pub fn check_id(field: &str, id: i64) -> Result<(), Error> {
    if id < 1 {
        return Err(Error::invalid_field(
            field,
            format!("must be >= 1, got {id}"),
        ));
    }
    Ok(())
}

/// The page size to serve: the default for 0, at most `max`, and never a
/// negative one.
pub fn page_size(requested: i32, default: i32, max: i32) -> Result<usize, Error> {
    if requested < 0 {
        return Err(Error::invalid_field("page_size", "must not be negative"));
    }
    Ok(match requested {
        0 => default,
        n => n.min(max),
    } as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0, 20, 100).unwrap(), 20);
        assert_eq!(page_size(7, 20, 100).unwrap(), 7);
        assert_eq!(page_size(1000, 20, 100).unwrap(), 100);
        assert!(page_size(-1, 20, 100).is_err());
        assert!(check_id("x", 0).is_err());
        assert!(check_id("x", 1).is_ok());
    }
}
