//! Typed reads of a JSON object's fields, each refusal a [`ValidationError`] naming the field
//! with a hint. The one set of helpers behind a REST submit body ([`JobSpec::from_json`]) and
//! the MCP tools' `arguments`, so both front doors refuse a value in the same words.
//!
//! [`JobSpec::from_json`]: super::JobSpec::from_json

use serde_json::{Map, Value};

use crate::validate::ValidationError;

/// Refuses the first field that is not in `accepted`.
pub fn only(obj: &Map<String, Value>, accepted: &[&str]) -> Result<(), ValidationError> {
    match obj.keys().find(|k| !accepted.contains(&k.as_str())) {
        Some(unknown) => Err(ValidationError::new(
            unknown,
            format!("`{unknown}` is not a known field"),
            format!("accepted fields: {}", accepted.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A string field; absent and `null` are `None`.
pub fn string<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    hint: &str,
) -> Result<Option<&'a str>, ValidationError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ValidationError::new(field, "must be a string", hint)),
    }
}

/// A whole number in `lo..=hi`; absent and `null` are `None`.
pub fn uint(
    obj: &Map<String, Value>,
    field: &str,
    lo: u64,
    hi: u64,
) -> Result<Option<u64>, ValidationError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(ValidationError::new(
                field,
                format!("must be a whole number from {lo} to {hi}"),
                format!("e.g. {lo}"),
            )),
        },
    }
}

/// A boolean field; absent and `null` are `false`.
pub fn boolean(obj: &Map<String, Value>, field: &str) -> Result<bool, ValidationError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ValidationError::new(
            field,
            "must be true or false",
            "true or false",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn absent_and_null_fields_are_none_and_wrong_types_are_named() {
        let o = obj(json!({"a": null, "n": "7", "s": 3, "b": "yes"}));
        assert_eq!(string(&o, "a", "h").unwrap(), None);
        assert_eq!(uint(&o, "missing", 0, 9).unwrap(), None);
        assert!(!boolean(&o, "a").unwrap());
        assert_eq!(uint(&o, "n", 0, 9).unwrap_err().field, "n");
        assert_eq!(string(&o, "s", "h").unwrap_err().field, "s");
        assert_eq!(boolean(&o, "b").unwrap_err().field, "b");
    }

    #[test]
    fn numbers_outside_the_range_are_refused_with_the_range() {
        let o = obj(json!({"n": 51}));
        let e = uint(&o, "n", 0, 50).unwrap_err();
        assert!(e.message.contains("0 to 50"), "{}", e.message);
        assert_eq!(uint(&o, "n", 0, 51).unwrap(), Some(51));
    }

    #[test]
    fn the_first_unknown_field_is_named_with_the_accepted_ones() {
        let o = obj(json!({"target": "x", "colour": "red"}));
        let e = only(&o, &["target"]).unwrap_err();
        assert_eq!(e.field, "colour");
        assert!(e.hint.contains("target"));
        assert!(only(&o, &["target", "colour"]).is_ok());
    }
}
