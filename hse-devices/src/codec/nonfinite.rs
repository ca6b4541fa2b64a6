//! Numbers beyond `f64`'s range (`1e309`, `-1e400`): `serde_json` refuses
//! the whole text on them, which left the device an `error` without the
//! frame's `seq`. [`mark`] rewrites each such number as a marker string, so
//! the frame parses again and the field that held it is refused with a
//! `nack invalid` (a string is not a valid `value` or `ts_ms`; [`marked`]
//! finds it inside `metadata`).
//!
//! Only the failing path pays for this: one linear scan of the frame.

use serde_json::{Map, Value};

/// What a non-finite number becomes: a string no valid event field holds
/// (it contains NUL, which every field refuses).
pub(super) const MARKER: &str = "\u{0}non-finite number\u{0}";
/// [`MARKER`] as JSON text.
const MARKER_JSON: &[u8] = br#""\u0000non-finite number\u0000""#;

/// `line` with every number token outside strings that parses to an
/// infinite `f64` replaced by [`MARKER`]; `None` when there is none (the
/// parse failed for another reason) or the text is not UTF-8.
pub(super) fn mark(line: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(line.len() + 64);
    let mut replaced = false;
    let (mut i, mut in_string, mut escaped) = (0, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let end = number_end(bytes, i);
            let token = &text[i..end];
            if token.parse::<f64>().is_ok_and(f64::is_infinite) {
                out.extend_from_slice(MARKER_JSON);
                replaced = true;
            } else {
                out.extend_from_slice(token.as_bytes());
            }
            i = end;
            continue;
        }
        out.push(b);
        i += 1;
    }
    replaced.then_some(out)
}

/// Where the number token starting at `start` ends.
fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start + 1;
    while end < bytes.len() && matches!(bytes[end], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
    {
        end += 1;
    }
    end
}

/// Whether [`MARKER`] occurs anywhere in `map` (values, nested).
pub(super) fn marked(map: &Map<String, Value>) -> bool {
    map.values().any(value_marked)
}

fn value_marked(value: &Value) -> bool {
    match value {
        Value::String(s) => s == MARKER,
        Value::Array(list) => list.iter().any(value_marked),
        Value::Object(map) => marked(map),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_infinite_numbers_outside_strings_are_marked() {
        let line = br#"{"a":1e309,"b":"1e309","c":[-1e400,2.5,1e-400],"d":"\"1e999"}"#;
        let marked = mark(line).unwrap();
        let value: Value = serde_json::from_slice(&marked).unwrap();
        assert_eq!(value["a"], MARKER);
        assert_eq!(value["b"], "1e309");
        assert_eq!(value["c"][0], MARKER);
        assert_eq!(value["c"][1], 2.5);
        assert_eq!(value["c"][2], 0.0);
        assert_eq!(value["d"], "\"1e999");
        assert!(mark(br#"{"a":1.5}"#).is_none());
        assert!(mark(&[0xff, b'1']).is_none());
    }
}
