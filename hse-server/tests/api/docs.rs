//! `docs/API.md` is `/openapi.json` rendered to Markdown: the document the
//! server serves (fetched through the router, as a client would) must
//! render to exactly what is committed below the file's generated marker.
//!
//! Re-bless after changing a route, a schema or a doc comment they show:
//!
//! ```sh
//! HSE_BLESS=1 cargo test -p hse-server --test api docs::
//! ```
//!
//! Blessing keeps the hand-written introduction above the marker and
//! rewrites everything below it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use axum::http::Method;
use serde_json::{Map, Value};

use crate::client::App;

/// The line that separates the hand-written introduction from the
/// generated reference.
const MARKER: &str = "<!-- Generated from /openapi.json by hse-server/tests/api/docs.rs: do not edit below this line; re-bless with `HSE_BLESS=1 cargo test -p hse-server --test api docs::` -->";

/// HTTP methods in the order they are listed under a path.
const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

fn api_md() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/API.md")
}

#[tokio::test]
async fn api_md_is_the_rendered_openapi_document() {
    let app = App::memory().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, 200, "{}", doc.body);
    let generated = render(&doc.body);
    let path = api_md();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let Some((intro, below)) = committed.split_once(MARKER) else {
        panic!(
            "{} has no generated marker line; put this line under its introduction:\n{MARKER}",
            path.display()
        );
    };
    if std::env::var_os("HSE_BLESS").is_some_and(|v| v == "1") {
        let text = format!("{intro}{MARKER}\n{generated}");
        std::fs::write(&path, text).expect("docs/API.md is writable");
        return;
    }
    let below = below.strip_prefix('\n').unwrap_or(below);
    if below != generated {
        let line = first_difference(below, &generated);
        panic!(
            "docs/API.md is not the rendered /openapi.json (first difference at line {line} \
             below the marker: committed {:?}, generated {:?}).\nRe-bless it with: \
             HSE_BLESS=1 cargo test -p hse-server --test api docs::",
            below.lines().nth(line - 1).unwrap_or("<end>"),
            generated.lines().nth(line - 1).unwrap_or("<end>"),
        );
    }
}

#[test]
fn the_renderer_lists_an_operation_with_its_parameters_body_and_responses() {
    let doc = serde_json::json!({
        "paths": {"/v1/things/{id}": {"patch": {
            "tags": ["things"],
            "summary": "Renames a thing.",
            "parameters": [{"name": "id", "in": "path", "required": true,
                            "schema": {"type": "string", "format": "uuid"},
                            "description": "the thing"}],
            "requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/RenameThing"}}}},
            "responses": {
                "200": {"description": "renamed", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Thing"}}}},
                "4XX": {"description": "a | b", "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}}
            },
            "security": [{"bearer": []}]
        }}},
        "components": {"schemas": {"Thing": {"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "description": "its name"},
                           "tags": {"type": ["array", "null"], "items": {"type": "string"}},
                           "size": {"type": ["integer", "null"], "format": "int64"}}}}}
    });
    let md = render(&doc);
    for expected in [
        "## things",
        "### `PATCH /v1/things/{id}`",
        "Renames a thing.",
        "Authentication: bearer.",
        "| `id` | path | string (uuid) | yes | the thing |",
        "Request body: [`RenameThing`](#renamething) (`application/json`).",
        "| 200 | [`Thing`](#thing) (`application/json`) | renamed |",
        "| 4XX | [`Problem`](#problem) (`application/problem+json`) | a \\| b |",
        "### `Thing`",
        "| `name` | string | yes | its name |",
        "| `tags` | array of string, or null | no |  |",
        "| `size` | integer (int64), or null | no |  |",
    ] {
        assert!(md.contains(expected), "{expected:?} missing in:\n{md}");
    }
}

/// The whole reference: operations by tag, then the schemas.
fn render(doc: &Value) -> String {
    let mut by_tag: BTreeMap<String, Vec<(String, String, &Value)>> = BTreeMap::new();
    for (path, item) in object(&doc["paths"]) {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let tag = operation["tags"][0].as_str().unwrap_or("other").to_owned();
                by_tag
                    .entry(tag)
                    .or_default()
                    .push((path.clone(), method.to_owned(), operation));
            }
        }
    }
    let mut out = String::from("\n# Operations\n");
    for (tag, mut operations) in by_tag {
        operations.sort_by(|a, b| (&a.0, method_rank(&a.1)).cmp(&(&b.0, method_rank(&b.1))));
        let _ = write!(out, "\n## {tag}\n");
        for (path, method, operation) in operations {
            render_operation(&mut out, &path, &method, operation);
        }
    }
    render_schemas(&mut out, &doc["components"]["schemas"]);
    out
}

fn method_rank(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len())
}

fn object(value: &Value) -> BTreeMap<String, &Value> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

fn render_operation(out: &mut String, path: &str, method: &str, op: &Value) {
    let _ = write!(out, "\n### `{} {path}`\n\n", method.to_uppercase());
    for text in [&op["summary"], &op["description"]] {
        if let Some(text) = text.as_str().filter(|t| !t.trim().is_empty()) {
            let _ = write!(out, "{}\n\n", text.trim());
        }
    }
    let _ = writeln!(out, "Authentication: {}.", security(&op["security"]));
    render_parameters(out, &op["parameters"]);
    if let Some((schema, media)) = first_content(&op["requestBody"]["content"]) {
        let _ = write!(out, "\nRequest body: {} (`{media}`).\n", type_of(schema));
    }
    out.push_str("\n| status | body | description |\n|---|---|---|\n");
    for (status, response) in object(&op["responses"]) {
        let body = first_content(&response["content"]).map_or_else(String::new, |(s, media)| {
            format!("{} (`{media}`)", type_of(s))
        });
        let description = cell(response["description"].as_str().unwrap_or(""));
        let _ = writeln!(out, "| {status} | {body} | {description} |");
    }
}

fn security(requirements: &Value) -> String {
    let schemes: Vec<String> = requirements
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| object(r).into_keys())
        .collect();
    if schemes.is_empty() {
        "none".to_owned()
    } else {
        schemes.join(" or ")
    }
}

fn render_parameters(out: &mut String, parameters: &Value) {
    let Some(list) = parameters.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    out.push_str("\n| parameter | in | type | required | description |\n|---|---|---|---|---|\n");
    for p in list {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            p["name"].as_str().unwrap_or(""),
            p["in"].as_str().unwrap_or(""),
            type_of(&p["schema"]),
            yes_no(p["required"].as_bool().unwrap_or(false)),
            cell(p["description"].as_str().unwrap_or("")),
        );
    }
}

/// The schema and media type of the first (alphabetical) content entry.
fn first_content(content: &Value) -> Option<(&Value, String)> {
    object(content)
        .into_iter()
        .next()
        .map(|(media, c)| (&c["schema"], media))
}

fn render_schemas(out: &mut String, schemas: &Value) {
    let schemas = object(schemas);
    if schemas.is_empty() {
        return;
    }
    out.push_str("\n# Schemas\n");
    for (name, schema) in schemas {
        let _ = write!(out, "\n### `{name}`\n\n");
        if let Some(text) = schema["description"].as_str() {
            let _ = write!(out, "{}\n\n", text.trim());
        }
        let properties = schema["properties"].as_object();
        match properties {
            Some(properties) if !properties.is_empty() => {
                render_properties(out, properties, &schema["required"]);
            }
            _ => {
                let _ = writeln!(out, "Type: {}.", type_of(schema));
            }
        }
    }
}

fn render_properties(out: &mut String, properties: &Map<String, Value>, required: &Value) {
    let required: Vec<&str> = required
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str("| field | type | required | description |\n|---|---|---|---|\n");
    let sorted: BTreeMap<&String, &Value> = properties.iter().collect();
    for (field, schema) in sorted {
        let _ = writeln!(
            out,
            "| `{field}` | {} | {} | {} |",
            type_of(schema),
            yes_no(required.contains(&field.as_str())),
            cell(schema["description"].as_str().unwrap_or("")),
        );
    }
}

/// A schema's type in words: a link to a named schema, `array of ..`,
/// `string (uuid)`, alternatives joined by `, or `.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(list) = schema[key].as_array() {
            return list.iter().map(type_of).collect::<Vec<_>>().join(", or ");
        }
    }
    if let Some(list) = schema["allOf"].as_array() {
        return list.iter().map(type_of).collect::<Vec<_>>().join(" and ");
    }
    let mut kinds: Vec<String> = match &schema["type"] {
        Value::String(kind) => vec![one_type(kind, schema)],
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .map(|k| one_type(k, schema))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        kinds = vec![format!("one of {}", values.join(", "))];
        if schema["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|k| k == "null"))
        {
            kinds.push("null".to_owned());
        }
    }
    if kinds.is_empty() {
        "any".to_owned()
    } else {
        kinds.join(", or ")
    }
}

fn one_type(kind: &str, schema: &Value) -> String {
    match (kind, schema["format"].as_str()) {
        ("array", _) => format!("array of {}", type_of(&schema["items"])),
        ("null", _) => "null".to_owned(),
        (kind, Some(format)) => format!("{kind} ({format})"),
        (kind, None) => kind.to_owned(),
    }
}

fn yes_no(yes: bool) -> &'static str {
    if yes { "yes" } else { "no" }
}

/// Text safe inside a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
        + 1
}
