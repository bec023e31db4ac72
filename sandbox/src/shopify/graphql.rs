//! Just enough GraphQL for the Shopify emulator: a tokenizer and a recursive-descent parser
//! for executable documents (operations with variables, fields with aliases, arguments and
//! directives), value coercion against the request's variables, and the projection of a
//! resolved JSON tree onto a selection set. Fragments and subscriptions are refused with an
//! error; nothing here panics on any input.

use serde_json::{Map, Value as Json};

mod parse;

pub use parse::parse;

/// A syntax or validation error, with where it happened when known.
#[derive(Debug, Clone, PartialEq)]
pub struct GqlError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub code: Option<&'static str>,
}

impl GqlError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line: None,
            column: None,
            code: None,
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn to_json(&self) -> Json {
        let mut e = serde_json::json!({ "message": self.message });
        if let (Some(line), Some(column)) = (self.line, self.column) {
            e["locations"] = serde_json::json!([{ "line": line, "column": column }]);
        }
        if let Some(code) = self.code {
            e["extensions"] = serde_json::json!({ "code": code });
        }
        e
    }
}

/// A literal or variable in a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Variable(String),
    Int(i64),
    Float(f64),
    String(String),
    Boolean(bool),
    Null,
    Enum(String),
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub name: String,
    pub arguments: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub arguments: Vec<(String, Value)>,
    pub directives: Vec<Directive>,
    pub selection: Vec<Field>,
}

impl Field {
    /// The key this field has in the response.
    pub fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    pub fn argument(&self, name: &str) -> Option<&Value> {
        self.arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub fn directive(&self, name: &str) -> Option<&Directive> {
        self.directives.iter().find(|d| d.name == name)
    }

    /// The first sub-field of this name.
    pub fn child(&self, name: &str) -> Option<&Field> {
        self.selection.iter().find(|f| f.name == name)
    }
}

impl Directive {
    pub fn argument(&self, name: &str) -> Option<&Value> {
        self.arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariableDefinition {
    pub name: String,
    pub non_null: bool,
    pub default: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OperationKind,
    pub name: Option<String>,
    pub variables: Vec<VariableDefinition>,
    pub selection: Vec<Field>,
}

/// The request's variables after defaults, checked against the operation's definitions.
pub fn variables(op: &Operation, given: &Map<String, Json>) -> Result<Map<String, Json>, GqlError> {
    let mut out = Map::new();
    for def in &op.variables {
        let value = match (given.get(&def.name), &def.default) {
            (Some(v), _) => v.clone(),
            (None, Some(default)) => to_json(default, &Map::new())?,
            (None, None) => Json::Null,
        };
        if def.non_null && value.is_null() {
            return Err(GqlError::new(format!(
                "Variable ${} of type non-null was provided invalid value",
                def.name
            ))
            .code("INVALID_VARIABLE"));
        }
        out.insert(def.name.clone(), value);
    }
    Ok(out)
}

/// A document value as JSON, variables substituted (an undeclared variable is an error).
pub fn to_json(value: &Value, vars: &Map<String, Json>) -> Result<Json, GqlError> {
    Ok(match value {
        Value::Variable(v) => vars.get(v).cloned().ok_or_else(|| {
            GqlError::new(format!("Variable ${v} is used but not declared"))
                .code("undefinedVariable")
        })?,
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) | Value::Enum(s) => Json::String(s.clone()),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Null => Json::Null,
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|i| to_json(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, vars)?)))
                .collect::<Result<_, GqlError>>()?,
        ),
    })
}

/// A field argument as JSON (`Null` when absent).
pub fn argument(field: &Field, name: &str, vars: &Map<String, Json>) -> Result<Json, GqlError> {
    field
        .argument(name)
        .map_or(Ok(Json::Null), |v| to_json(v, vars))
}

/// A field-argument hook of the projection: the value a field with arguments shows.
pub type ArgHook<'a> = &'a dyn Fn(&Field, &Json, &Map<String, Json>) -> Result<Json, GqlError>;

/// Keep only the selected fields of a resolved tree (aliases honoured); asking for a field
/// the type does not have is an error naming the type (`__typename` of the object).
pub fn project(
    value: &Json,
    selection: &[Field],
    vars: &Map<String, Json>,
    hook: ArgHook<'_>,
) -> Result<Json, GqlError> {
    match value {
        Json::Null => Ok(Json::Null),
        Json::Array(items) => items
            .iter()
            .map(|i| project(i, selection, vars, hook))
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array),
        Json::Object(map) => {
            let typename = map
                .get("__typename")
                .and_then(Json::as_str)
                .unwrap_or("Object");
            if selection.is_empty() {
                return Err(GqlError::new(format!(
                    "Field must have selections (an object of type {typename})"
                ))
                .code("selectionMismatch"));
            }
            let mut out = Map::new();
            for field in selection {
                let Some(inner) = map.get(&field.name) else {
                    return Err(GqlError::new(format!(
                        "Field '{}' doesn't exist on type '{typename}'",
                        field.name
                    ))
                    .code("undefinedField"));
                };
                let inner = if field.arguments.is_empty() {
                    inner.clone()
                } else {
                    hook(field, inner, vars)?
                };
                out.insert(
                    field.key().to_owned(),
                    project(&inner, &field.selection, vars, hook)?,
                );
            }
            Ok(Json::Object(out))
        }
        scalar if selection.is_empty() => Ok(scalar.clone()),
        _ => Err(GqlError::new("Selections can't be made on scalars").code("selectionMismatch")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_mutation_with_directive_and_variables() {
        let ops = parse(
            r#"mutation Set($input: InventorySetQuantitiesInput!) {
              inventorySetQuantities(input: $input) @idempotent(key: "k-1") {
                g: inventoryAdjustmentGroup { id changes(quantityNames: ["available"]) { delta } }
                userErrors { code field message }
              } }"#,
        )
        .expect("parses");
        let op = &ops[0];
        assert_eq!(op.kind, OperationKind::Mutation);
        assert_eq!(op.variables[0].name, "input");
        assert!(op.variables[0].non_null);
        let f = &op.selection[0];
        assert_eq!(f.name, "inventorySetQuantities");
        assert_eq!(
            f.directive("idempotent").and_then(|d| d.argument("key")),
            Some(&Value::String("k-1".into()))
        );
        assert_eq!(f.selection[0].key(), "g");
    }

    #[test]
    fn refuses_what_it_does_not_understand_without_panicking() {
        for doc in [
            "",
            "{",
            "query { a(b: ) }",
            "query { ...F }",
            "fragment F on X { a }",
            "{ a(b: \"unterminated) }",
            "{ a(b: [1, 2) }",
            "$",
            "...",
            "{ a(b: 99999999999999999999) }",
            &"{ a ".repeat(100),
            &format!("{{ a(b: {}) }}", "[".repeat(200)),
        ] {
            assert!(parse(doc).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn projects_aliases_and_rejects_unknown_fields() {
        let ops = parse("{ x { a b: c } }").expect("parses");
        let value = serde_json::json!({"x": {"__typename": "T", "a": 1, "c": 2, "d": 3}});
        let hook = |_: &Field, v: &Json, _: &Map<String, Json>| Ok(v.clone());
        let out = project(&value, &ops[0].selection, &Map::new(), &hook).expect("projects");
        assert_eq!(out, serde_json::json!({"x": {"a": 1, "b": 2}}));
        let ops = parse("{ x { e } }").expect("parses");
        let err = project(&value, &ops[0].selection, &Map::new(), &hook).expect_err("no e");
        assert_eq!(err.message, "Field 'e' doesn't exist on type 'T'");
    }
}
