//! A free-form JSON object bound as a statement parameter.
//!
//! PostgreSQL keeps these objects in `json` columns, not `jsonb`: `jsonb`
//! refuses `\u0000`, which a client may put in any string or key of an
//! object it sends, and `json` keeps it as written, as SQLite's text
//! does. sqlx's own `Json` declares its parameter `jsonb`, which
//! PostgreSQL parses as `jsonb` before the column's type is considered;
//! this one declares it `json`.

use serde_json::{Map, Value};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::types::Json;
use sqlx::{Encode, Postgres, Sqlite, Type};

pub struct JsonParam<'a>(pub &'a Map<String, Value>);

impl Type<Postgres> for JsonParam<'_> {
    fn type_info() -> PgTypeInfo {
        // The built-in `json` type's OID, the same on every server.
        PgTypeInfo::with_oid(Oid(114))
    }
}

impl Encode<'_, Postgres> for JsonParam<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // The binary form of `json` is its text.
        serde_json::to_writer(&mut **buf, self.0)?;
        Ok(IsNull::No)
    }
}

impl Type<Sqlite> for JsonParam<'_> {
    fn type_info() -> SqliteTypeInfo {
        <Json<()> as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for JsonParam<'_> {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode_by_ref(&Json(self.0), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_the_object_as_json_text() {
        let object = serde_json::json!({"b": "\u{0}", "a": [1]});
        let mut buf = PgArgumentBuffer::default();
        let done =
            Encode::<Postgres>::encode_by_ref(&JsonParam(object.as_object().unwrap()), &mut buf)
                .unwrap();
        assert!(matches!(done, IsNull::No));
        assert_eq!(&buf[..], br#"{"b":"\u0000","a":[1]}"#);
    }
}
