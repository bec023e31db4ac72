//! Checking sandbox traffic against the vendors' specs in ../shared/channel-specs/.
//!
//! The specs are read as they are, not copied into fixtures: the Amazon one is JSON
//! (Swagger 2.0); the BigCommerce one is YAML and the workspace has no YAML parser, so
//! [`yaml`] reads the block-style subset that file uses (mappings, sequences, quoted and
//! plain scalars, `|` block scalars, `{}`/`[]`). [`validate`] checks the JSON-Schema subset
//! those specs use: `$ref`, `type`, `required`, `properties`, `items`, `enum`, `minimum`,
//! `minItems` and `oneOf`. Unknown properties are allowed, as both specs allow them.

use serde_json::{Map, Value};

/// A spec file: `$ONHAND_CHANNEL_SPECS/<name>`, or the project's `../shared/channel-specs/`.
pub fn spec_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("ONHAND_CHANNEL_SPECS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/channel-specs"),
        std::path::PathBuf::from,
    );
    dir.join(name)
}

/// The schema at a JSON pointer of the spec.
pub fn schema<'a>(spec: &'a Value, pointer: &str) -> &'a Value {
    spec.pointer(pointer)
        .unwrap_or_else(|| panic!("spec has no schema at {pointer}"))
}

/// Panics listing every violation of `schema` by `value`.
pub fn assert_conforms(spec: &Value, pointer: &str, value: &Value) {
    let mut errors = Vec::new();
    validate(spec, schema(spec, pointer), value, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{value} does not conform to {pointer}: {errors:#?}"
    );
}

pub fn validate(root: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = root
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolvable $ref {reference}"));
        return validate(root, target, value, at, errors);
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|o| {
                let mut e = Vec::new();
                validate(root, o, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: matches {matching} of the oneOf schemas"));
        }
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("unsupported type {other}"),
        };
        if !ok {
            errors.push(format!("{at}: expected {ty}, got {value}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        errors.push(format!("{at}: {n} is below the minimum {min}"));
    }
    if let Some(object) = value.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                errors.push(format!("{at}: required property {name} is missing"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in properties {
                if let Some(v) = object.get(name) {
                    validate(root, sub, v, &format!("{at}.{name}"), errors);
                }
            }
        }
    }
    if let Some(array) = value.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (array.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(items) = schema.get("items") {
            for (i, v) in array.iter().enumerate() {
                validate(root, items, v, &format!("{at}[{i}]"), errors);
            }
        }
    }
}

/// The block-style YAML subset of the BigCommerce spec, as JSON.
pub fn yaml(text: &str) -> Value {
    let lines = text.lines().map(str::to_owned).collect();
    let mut reader = Yaml { lines, at: 0 };
    reader.node(0)
}

struct Yaml {
    lines: Vec<String>,
    at: usize,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `key: rest` when the line is a mapping entry.
fn entry(content: &str) -> Option<(String, &str)> {
    if let Some(quote) = content.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let end = content[1..].find(quote)? + 1;
        let rest = content[end + 1..].strip_prefix(':')?;
        return Some((content[1..end].to_owned(), rest.trim()));
    }
    let colon = content
        .find(": ")
        .or_else(|| content.ends_with(':').then(|| content.len() - 1))?;
    Some((content[..colon].to_owned(), content[colon + 1..].trim()))
}

fn scalar(s: &str) -> Value {
    match s {
        "{}" => return Value::Object(Map::new()),
        "[]" => return Value::Array(Vec::new()),
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" | "~" => return Value::Null,
        _ => {}
    }
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        return Value::String(s[1..s.len() - 1].replace("''", "'"));
    }
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return Value::String(s[1..s.len() - 1].replace("\\\"", "\""));
    }
    if let Ok(n) = s.parse::<i64>() {
        return Value::from(n);
    }
    Value::String(s.to_owned())
}

impl Yaml {
    /// The next non-blank, non-comment line's indent, if any.
    fn peek(&mut self) -> Option<usize> {
        while let Some(line) = self.lines.get(self.at) {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                self.at += 1;
            } else {
                return Some(indent(line));
            }
        }
        None
    }

    fn node(&mut self, min: usize) -> Value {
        match self.peek() {
            Some(i) if i >= min => {
                if self.lines[self.at].trim_start().starts_with('-') {
                    self.seq(i)
                } else {
                    self.map(i)
                }
            }
            _ => Value::Null,
        }
    }

    fn map(&mut self, ind: usize) -> Value {
        let mut map = Map::new();
        while self.peek() == Some(ind) {
            let content = self.lines[self.at].trim().to_owned();
            if content.starts_with("- ") || content == "-" {
                break;
            }
            let Some((key, rest)) = entry(&content) else {
                panic!("unsupported YAML at line {}: {content}", self.at + 1)
            };
            let rest = rest.to_owned();
            self.at += 1;
            let value = match rest.as_str() {
                "" => match self.peek() {
                    Some(i) if i > ind => self.node(i),
                    Some(i) if i == ind && self.lines[self.at].trim_start().starts_with("- ") => {
                        self.seq(ind)
                    }
                    _ => Value::Null,
                },
                "|" | "|-" | ">" | ">-" => self.block(ind),
                other => scalar(other),
            };
            map.insert(key, value);
        }
        Value::Object(map)
    }

    fn seq(&mut self, ind: usize) -> Value {
        let mut items = Vec::new();
        while self.peek() == Some(ind) {
            let line = self.lines[self.at].clone();
            let content = line.trim_start();
            let Some(item) = content.strip_prefix('-') else {
                break;
            };
            let item = item.trim_start();
            if item.is_empty() {
                self.at += 1;
                items.push(self.node(ind + 1));
            } else if entry(item).is_some() {
                // Read `- key: value` as a mapping indented past the dash.
                let offset = line.len() - item.len();
                self.lines[self.at] = format!("{}{item}", " ".repeat(offset));
                items.push(self.map(offset));
            } else {
                self.at += 1;
                items.push(scalar(item));
            }
        }
        Value::Array(items)
    }

    fn block(&mut self, ind: usize) -> Value {
        let mut text = Vec::new();
        while let Some(line) = self.lines.get(self.at) {
            if !line.trim().is_empty() && indent(line) <= ind {
                break;
            }
            text.push(line.trim());
            self.at += 1;
        }
        Value::String(text.join("\n"))
    }
}

#[test]
fn reads_the_bigcommerce_spec() {
    let text = std::fs::read_to_string(spec_path("bigcommerce-inventory-v3.yml")).expect("spec");
    let spec = yaml(&text);
    assert_eq!(spec["openapi"], "3.0.3");
    assert_eq!(
        spec.pointer("/components/schemas/ErrorResponse/properties/status/type"),
        Some(&Value::from("integer"))
    );
    let one_of = spec
        .pointer("/components/schemas/AdjustmentsAbsoluteRequest/properties/items/items/oneOf")
        .and_then(Value::as_array)
        .expect("oneOf");
    assert_eq!(one_of.len(), 3);
    assert_eq!(
        one_of[0]["required"],
        serde_json::json!(["location_id", "sku", "quantity"])
    );
    assert_eq!(
        spec.pointer("/paths/~1inventory~1adjustments~1absolute/put/responses/422/content/application~1problem+json/schema/$ref"),
        Some(&Value::from("#/components/schemas/ErrorResponse"))
    );
    let mut errors = Vec::new();
    validate(
        &spec,
        schema(&spec, "/components/schemas/ErrorResponse"),
        &serde_json::json!({"status": "422"}),
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 1, "a string status is caught: {errors:?}");
}
