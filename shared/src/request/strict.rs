//! JSON parsed without parser differentials: an object that names the same key twice is refused
//! instead of letting the last value win. A proxy, WAF or audit tool that reads the first
//! `"target"` of `{"target":"8.8.8.8","target":"10.0.0.5"}` would otherwise see a different
//! request than the one that runs. Both front doors (REST bodies, MCP messages) parse through
//! [`parse`].

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a JSON text was refused.
#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    /// An object names `key` twice; `path` is where that object sits (`$`, `$.params.arguments`).
    #[error("duplicate key `{key}` in the JSON object at {path}: each key may appear once")]
    DuplicateKey { key: String, path: String },
    /// Not JSON at all.
    #[error("{0}")]
    Syntax(serde_json::Error),
}

impl StrictJsonError {
    /// The duplicated key, when that is the reason.
    pub fn duplicate_key(&self) -> Option<&str> {
        match self {
            Self::DuplicateKey { key, .. } => Some(key),
            Self::Syntax(_) => None,
        }
    }
}

/// Parses `bytes` as one JSON value, refusing any object with a repeated key.
pub fn parse(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Strict {
        found: &found,
        path: "$".to_owned(),
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, found.into_inner()) {
        (_, Some((key, path))) => Err(StrictJsonError::DuplicateKey { key, path }),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(StrictJsonError::Syntax(e)),
    }
}

/// Builds a [`Value`] and remembers the first duplicate key it meets.
struct Strict<'a> {
    found: &'a RefCell<Option<(String, String)>>,
    path: String,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let mut i = 0usize;
        while let Some(v) = seq.next_element_seed(Strict {
            found: self.found,
            path: format!("{}[{i}]", self.path),
        })? {
            out.push(v);
            i += 1;
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                let mut found = self.found.borrow_mut();
                if found.is_none() {
                    *found = Some((key.clone(), self.path.clone()));
                }
                return Err(A::Error::custom(format!("duplicate key `{key}`")));
            }
            let v = map.next_value_seed(Strict {
                found: self.found,
                path: format!("{}.{key}", self.path),
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_top_level_key_is_refused_by_name() {
        let err = parse(br#"{"target":"8.8.8.8","target":"10.0.0.5"}"#).unwrap_err();
        assert_eq!(err.duplicate_key(), Some("target"));
        assert!(err.to_string().contains("`target`"), "{err}");
        assert!(err.to_string().contains(" $:"), "{err}");
    }

    #[test]
    fn a_repeated_nested_key_names_its_path() {
        let err = parse(br#"{"params":{"arguments":{"args":"-p 1","args":"-p 2"}}}"#).unwrap_err();
        assert_eq!(err.duplicate_key(), Some("args"));
        assert!(err.to_string().contains("$.params.arguments"), "{err}");
        let err = parse(br#"[{"a":1},{"b":1,"b":2}]"#).unwrap_err();
        assert!(err.to_string().contains("$[1]"), "{err}");
    }

    #[test]
    fn the_same_key_in_sibling_objects_is_fine() {
        let v = parse(br#"{"a":{"x":1},"b":{"x":2},"c":[1,2.5,null,true,"s"]}"#).unwrap();
        assert_eq!(v["b"]["x"], 2);
        assert_eq!(v["c"][1], 2.5);
    }

    #[test]
    fn syntax_errors_and_trailing_text_are_syntax_errors() {
        assert!(matches!(parse(b"{"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(parse(b"{} x"), Err(StrictJsonError::Syntax(_))));
        assert_eq!(parse(b" 7 ").unwrap(), 7);
    }

    #[test]
    fn it_agrees_with_serde_json_on_documents_without_duplicates() {
        let text = br#"{"tool":"nmap","n":-3,"big":18446744073709551615,"f":1e3,"u":"\u00e9"}"#;
        let lax: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(parse(text).unwrap(), lax);
    }
}
