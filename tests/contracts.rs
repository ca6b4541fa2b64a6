//! The repository's contracts hold against its code: the gRPC contract
//! stays wire-compatible with the seed's, and every code a device can be
//! sent is documented in `docs/PROTOCOL.md`.
//!
//! Run with: `cargo test -p hse --test contracts`
//!
//! Both checks read the files as text with the standard library only, so
//! this binary stays light.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn devices_proto_keeps_every_method_and_field_of_the_seed() {
    let seed = Proto::parse(&read("proto/seed-devices.proto"));
    let ours = Proto::parse(&read("proto/devices.proto"));
    assert!(
        seed.rpcs.len() >= 5 && seed.fields() > 30,
        "the seed parsed"
    );
    let problems = seed.breaks(&ours);
    assert!(
        problems.is_empty(),
        "proto/devices.proto is not wire-compatible with proto/seed-devices.proto:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_compatibility_check_finds_each_kind_of_break() {
    let seed = Proto::parse(
        "package devices;\nservice S { rpc Get(A) returns (stream B); }\n\
         message A { string id = 1; // the id\n repeated int64 ts = 2; }\nmessage B { bool ok = 1; }",
    );
    assert!(seed.breaks(&seed).is_empty());
    let renamed = Proto::parse(
        "package devices;\nservice S { rpc Get(A) returns (stream B); }\n\
         message A { string device_id = 1; repeated int64 ts = 2; string extra = 3; }\nmessage B { bool ok = 1; }",
    );
    assert!(seed.breaks(&renamed).is_empty(), "a rename keeps the wire");
    for (broken, why) in [
        (
            "package other;\nservice S { rpc Get(A) returns (stream B); }\nmessage A { string id = 1; repeated int64 ts = 2; }\nmessage B { bool ok = 1; }",
            "package",
        ),
        (
            "package devices;\nservice S { rpc Get(A) returns (B); }\nmessage A { string id = 1; repeated int64 ts = 2; }\nmessage B { bool ok = 1; }",
            "rpc S.Get",
        ),
        (
            "package devices;\nservice S { }\nmessage A { string id = 1; repeated int64 ts = 2; }\nmessage B { bool ok = 1; }",
            "missing rpc",
        ),
        (
            "package devices;\nservice S { rpc Get(A) returns (stream B); }\nmessage A { string id = 1; int64 ts = 2; }\nmessage B { bool ok = 1; }",
            "A.ts",
        ),
        (
            "package devices;\nservice S { rpc Get(A) returns (stream B); }\nmessage A { string id = 5; repeated int64 ts = 2; }\nmessage B { bool ok = 1; }",
            "A.id",
        ),
        (
            "package devices;\nservice S { rpc Get(A) returns (stream B); }\nmessage A { string id = 1; repeated int64 ts = 2; bool x = 1; }\nmessage B { bool ok = 1; }",
            "used twice",
        ),
        (
            "package devices;\nservice S { rpc Get(A) returns (stream B); }\nmessage A { string id = 1; repeated int64 ts = 2; }",
            "missing message B",
        ),
    ] {
        let problems = seed.breaks(&Proto::parse(broken));
        assert!(
            problems.iter().any(|p| p.contains(why)),
            "{why}: {problems:?}"
        );
    }
}

#[test]
fn every_device_error_code_is_documented_in_the_protocol() {
    let protocol = read("docs/PROTOCOL.md");
    let codes_table = protocol
        .split("\n## Codes\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/PROTOCOL.md has a Codes section");
    let source = read("hse-devices/src/error.rs");
    let codes = wire_codes(&source);
    assert!(codes.len() >= 13, "the codes parsed: {codes:?}");
    let missing: Vec<&String> = codes
        .iter()
        .filter(|code| !codes_table.contains(&format!("| `{code}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes of hse-devices/src/error.rs missing from the Codes table of docs/PROTOCOL.md: {missing:?}"
    );
}

/// The wire codes of `ErrorCode::as_str`: its `Self::X => "code"` arms.
fn wire_codes(source: &str) -> Vec<String> {
    let body = source
        .split("fn as_str(self)")
        .nth(1)
        .and_then(|rest| rest.split("\n    }\n").next())
        .unwrap_or_default();
    body.lines()
        .filter_map(|line| line.split("=> \"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// What makes a proto file's wire format: its package, methods and fields.
#[derive(Debug, Default)]
struct Proto {
    package: String,
    /// `Service.Method` → (request streams, request, response streams, response).
    rpcs: BTreeMap<String, (bool, String, bool, String)>,
    /// message → field name → (number, type, label).
    messages: BTreeMap<String, BTreeMap<String, Field>>,
}

type Field = (u32, String, String);

impl Proto {
    fn parse(text: &str) -> Self {
        let text = strip_comments(text);
        let mut proto = Self::default();
        for statement in text.split(';') {
            let words: Vec<&str> = statement.split_whitespace().collect();
            if let ["package", name] = words[..] {
                proto.package = name.to_owned();
            }
        }
        for (service, body) in blocks(&text, "service") {
            for rpc in body.split("rpc ").skip(1) {
                if let Some((name, signature)) = parse_rpc(rpc) {
                    proto.rpcs.insert(format!("{service}.{name}"), signature);
                }
            }
        }
        for (message, body) in blocks(&text, "message") {
            let fields = body.split(';').filter_map(parse_field).collect();
            proto.messages.insert(message, fields);
        }
        proto
    }

    fn fields(&self) -> usize {
        self.messages.values().map(BTreeMap::len).sum()
    }

    /// What `new` breaks of this (the old) contract.
    fn breaks(&self, new: &Self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.package != new.package {
            problems.push(format!(
                "package {:?} is not the seed's {:?}",
                new.package, self.package
            ));
        }
        for (rpc, signature) in &self.rpcs {
            match new.rpcs.get(rpc) {
                None => problems.push(format!("missing rpc {rpc}")),
                Some(got) if got != signature => {
                    problems.push(format!("rpc {rpc} is {got:?}, the seed's is {signature:?}"));
                }
                Some(_) => {}
            }
        }
        for (message, fields) in &self.messages {
            let Some(got) = new.messages.get(message) else {
                problems.push(format!("missing message {message}"));
                continue;
            };
            for (name, spec) in fields {
                match got.get(name) {
                    Some(field) if field != spec => {
                        problems.push(format!(
                            "{message}.{name} is {field:?}, the seed's is {spec:?}"
                        ));
                    }
                    // A renamed field keeps the wire if number, type and label match.
                    None if !got.values().any(|field| field == spec) => {
                        problems.push(format!("{message}.{name} {spec:?} is missing"));
                    }
                    _ => {}
                }
            }
            let mut numbers = BTreeMap::new();
            for (name, (number, _, _)) in got {
                if let Some(other) = numbers.insert(number, name) {
                    problems.push(format!(
                        "{message}: field number {number} used twice ({other}, {name})"
                    ));
                }
            }
        }
        problems
    }
}

fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        match (rest.find("//"), rest.find("/*")) {
            (Some(line), block) if block.is_none_or(|b| line < b) => {
                out.push_str(&rest[..line]);
                rest = rest[line..]
                    .find('\n')
                    .map_or("", |end| &rest[line + end..]);
            }
            (_, Some(block)) => {
                out.push_str(&rest[..block]);
                rest = rest[block..]
                    .find("*/")
                    .map_or("", |end| &rest[block + end + 2..]);
            }
            (None, None) => {
                out.push_str(rest);
                rest = "";
            }
            (Some(_), None) => unreachable!("handled by the first arm"),
        }
    }
    out
}

/// `(name, body)` of every `kind Name { ... }` block, nested ones included.
fn blocks(text: &str, kind: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let keyword = format!("{kind} ");
    for (at, _) in text.match_indices(&keyword) {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let after = &text[at + keyword.len()..];
        let Some(open) = after.find('{') else {
            continue;
        };
        let name = after[..open].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        let mut depth = 0usize;
        let body_start = open + 1;
        for (i, c) in after[body_start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    found.push((
                        name.to_owned(),
                        after[body_start..body_start + i].to_owned(),
                    ));
                    break;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
    }
    found
}

/// `Name(stream? Req) returns (stream? Resp)` after `rpc `.
fn parse_rpc(text: &str) -> Option<(String, (bool, String, bool, String))> {
    let (name, rest) = text.split_once('(')?;
    let (request, rest) = rest.split_once(')')?;
    let rest = rest.trim_start().strip_prefix("returns")?;
    let (_, rest) = rest.split_once('(')?;
    let (response, _) = rest.split_once(')')?;
    let side = |s: &str| {
        let s = s.trim();
        match s.strip_prefix("stream ") {
            Some(t) => (true, t.trim().to_owned()),
            None => (false, s.to_owned()),
        }
    };
    let (request_streams, request) = side(request);
    let (response_streams, response) = side(response);
    Some((
        name.trim().to_owned(),
        (request_streams, request, response_streams, response),
    ))
}

/// `[repeated|optional] type name = number [options]`, ignoring nested
/// block headers and enum values.
fn parse_field(statement: &str) -> Option<(String, Field)> {
    let statement = statement.rsplit(['{', '}']).next()?;
    let (declaration, number) = statement.split_once('=')?;
    let number: u32 = number
        .split_whitespace()
        .next()?
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let declaration = declaration.replace(" ,", ",").replace(", ", ",");
    let words: Vec<&str> = declaration.split_whitespace().collect();
    let (label, kind, name) = match words[..] {
        [label @ ("repeated" | "optional"), kind, name] => (label, kind, name),
        [kind, name] => ("", kind, name),
        _ => return None,
    };
    Some((
        name.to_owned(),
        (number, kind.replace(' ', ""), label.to_owned()),
    ))
}
