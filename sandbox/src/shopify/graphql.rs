//! Just enough GraphQL for the Shopify emulator: a tokenizer and a recursive-descent parser
//! for executable documents (operations with variables, fields with aliases, arguments and
//! directives), value coercion against the request's variables, and the projection of a
//! resolved JSON tree onto a selection set. Fragments and subscriptions are refused with an
//! error; nothing here panics on any input.

use serde_json::{Map, Value as Json};

/// Deepest nesting of selections, lists and objects accepted.
const MAX_DEPTH: usize = 32;

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

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Variable(String),
    Int(i64),
    Float(f64),
    Str(String),
    Punct(char),
    Spread,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
    column: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            chars: src.char_indices().peekable(),
            line: 1,
            column: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|&(_, c)| c)
    }

    fn error(&self, message: impl Into<String>) -> GqlError {
        GqlError {
            message: message.into(),
            line: Some(self.line),
            column: Some(self.column),
            code: None,
        }
    }

    /// All tokens with their positions.
    fn tokens(mut self) -> Result<Vec<(Token, usize, usize)>, GqlError> {
        let mut out = Vec::new();
        loop {
            while let Some(c) = self.peek() {
                match c {
                    ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => {
                        self.bump();
                    }
                    '#' => {
                        while self.peek().is_some_and(|c| c != '\n') {
                            self.bump();
                        }
                    }
                    _ => break,
                }
            }
            let (line, column) = (self.line, self.column);
            let Some(c) = self.peek() else {
                return Ok(out);
            };
            let token = match c {
                '!' | '$' | '&' | '(' | ')' | ':' | '=' | '@' | '[' | ']' | '{' | '|' | '}' => {
                    self.bump();
                    if c == '$' {
                        match self.name() {
                            Some(name) => Token::Variable(name),
                            None => return Err(self.error("expected a variable name after $")),
                        }
                    } else {
                        Token::Punct(c)
                    }
                }
                '.' => {
                    for _ in 0..3 {
                        if self.bump() != Some('.') {
                            return Err(self.error("unexpected character '.'"));
                        }
                    }
                    Token::Spread
                }
                '"' => self.string()?,
                '-' | '0'..='9' => self.number()?,
                c if c == '_' || c.is_ascii_alphabetic() => match self.name() {
                    Some(name) => Token::Name(name),
                    None => return Err(self.error("expected a name")),
                },
                other => return Err(self.error(format!("unexpected character {other:?}"))),
            };
            out.push((token, line, column));
        }
    }

    fn name(&mut self) -> Option<String> {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == '_' || c.is_ascii_alphanumeric() {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        (!s.is_empty() && !s.starts_with(|c: char| c.is_ascii_digit())).then_some(s)
    }

    fn number(&mut self) -> Result<Token, GqlError> {
        let mut s = String::new();
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                '0'..='9' | '-' | '+' => {}
                '.' | 'e' | 'E' => float = true,
                _ => break,
            }
            s.push(c);
            self.bump();
        }
        if float {
            s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Token::Float)
                .ok_or_else(|| self.error(format!("invalid number {s}")))
        } else {
            s.parse::<i64>()
                .map(Token::Int)
                .map_err(|_| self.error(format!("invalid integer {s}")))
        }
    }

    fn string(&mut self) -> Result<Token, GqlError> {
        self.bump();
        // Block strings: """...""" taken verbatim (no indentation stripping).
        if self.peek() == Some('"') {
            self.bump();
            if self.peek() != Some('"') {
                return Ok(Token::Str(String::new()));
            }
            self.bump();
            let mut s = String::new();
            loop {
                match self.bump() {
                    None => return Err(self.error("unterminated block string")),
                    Some('"') if s.ends_with("\"\"") => {
                        s.truncate(s.len() - 2);
                        return Ok(Token::Str(s));
                    }
                    Some(c) => s.push(c),
                }
            }
        }
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err(self.error("unterminated string")),
                Some('"') => return Ok(Token::Str(s)),
                Some('\\') => {
                    let c = match self.bump() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('/') => '/',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('u') => {
                            let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error("invalid unicode escape"))?
                        }
                        _ => return Err(self.error("invalid escape in string")),
                    };
                    s.push(c);
                }
                Some(c) => s.push(c),
            }
        }
    }
}

struct Parser {
    tokens: Vec<(Token, usize, usize)>,
    at: usize,
    depth: usize,
}

/// Parse an executable document into its operations.
pub fn parse(src: &str) -> Result<Vec<Operation>, GqlError> {
    let tokens = Lexer::new(src).tokens()?;
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let mut ops = Vec::new();
    while p.at < p.tokens.len() {
        ops.push(p.operation()?);
    }
    if ops.is_empty() {
        return Err(GqlError::new("syntax error, the document has no operation"));
    }
    Ok(ops)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _, _)| t)
    }

    fn error(&self, message: impl Into<String>) -> GqlError {
        let (line, column) = self
            .tokens
            .get(self.at)
            .or(self.tokens.last())
            .map_or((1, 1), |&(_, l, c)| (l, c));
        GqlError {
            message: format!("syntax error, {}", message.into()),
            line: Some(line),
            column: Some(column),
            code: None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).map(|(t, _, _)| t.clone());
        self.at += 1;
        t
    }

    fn punct(&mut self, c: char) -> Result<(), GqlError> {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{c}'")))
        }
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Token::Punct(c))
    }

    fn name(&mut self) -> Result<String, GqlError> {
        match self.peek() {
            Some(Token::Name(n)) => {
                let n = n.clone();
                self.at += 1;
                Ok(n)
            }
            _ => Err(self.error("expected a name")),
        }
    }

    fn enter(&mut self) -> Result<(), GqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("the document nests too deeply"));
        }
        Ok(())
    }

    fn operation(&mut self) -> Result<Operation, GqlError> {
        if self.is_punct('{') {
            return Ok(Operation {
                kind: OperationKind::Query,
                name: None,
                variables: Vec::new(),
                selection: self.selection_set()?,
            });
        }
        let kind = match self.peek() {
            Some(Token::Name(n)) if n == "query" => OperationKind::Query,
            Some(Token::Name(n)) if n == "mutation" => OperationKind::Mutation,
            Some(Token::Name(n)) if n == "subscription" => {
                return Err(GqlError::new("subscriptions are not supported"));
            }
            Some(Token::Name(n)) if n == "fragment" => {
                return Err(GqlError::new(
                    "fragments are not supported by the sandbox emulator",
                ));
            }
            _ => return Err(self.error("expected an operation")),
        };
        self.at += 1;
        let name = match self.peek() {
            Some(Token::Name(_)) => Some(self.name()?),
            _ => None,
        };
        let mut variables = Vec::new();
        if self.is_punct('(') {
            self.at += 1;
            while !self.is_punct(')') {
                let Some(Token::Variable(var)) = self.next() else {
                    self.at -= 1;
                    return Err(self.error("expected a variable definition"));
                };
                self.punct(':')?;
                let non_null = self.type_ref()?;
                let default = if self.is_punct('=') {
                    self.at += 1;
                    Some(self.value(true)?)
                } else {
                    None
                };
                variables.push(VariableDefinition {
                    name: var,
                    non_null,
                    default,
                });
            }
            self.punct(')')?;
        }
        // Operation directives are accepted and ignored.
        self.directives()?;
        Ok(Operation {
            kind,
            name,
            variables,
            selection: self.selection_set()?,
        })
    }

    /// A type reference; true when it is non-null.
    fn type_ref(&mut self) -> Result<bool, GqlError> {
        self.enter()?;
        if self.is_punct('[') {
            self.at += 1;
            self.type_ref()?;
            self.punct(']')?;
        } else {
            self.name()?;
        }
        self.depth -= 1;
        let non_null = self.is_punct('!');
        if non_null {
            self.at += 1;
        }
        Ok(non_null)
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, GqlError> {
        self.enter()?;
        self.punct('{')?;
        let mut fields = Vec::new();
        while !self.is_punct('}') {
            if self.peek() == Some(&Token::Spread) {
                return Err(GqlError::new(
                    "fragments are not supported by the sandbox emulator",
                ));
            }
            fields.push(self.field()?);
        }
        self.punct('}')?;
        self.depth -= 1;
        if fields.is_empty() {
            return Err(self.error("a selection set cannot be empty"));
        }
        Ok(fields)
    }

    fn field(&mut self) -> Result<Field, GqlError> {
        let first = self.name()?;
        let (alias, name) = if self.is_punct(':') {
            self.at += 1;
            (Some(first), self.name()?)
        } else {
            (None, first)
        };
        let arguments = self.arguments()?;
        let directives = self.directives()?;
        let selection = if self.is_punct('{') {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Field {
            alias,
            name,
            arguments,
            directives,
            selection,
        })
    }

    fn arguments(&mut self) -> Result<Vec<(String, Value)>, GqlError> {
        let mut args = Vec::new();
        if !self.is_punct('(') {
            return Ok(args);
        }
        self.at += 1;
        while !self.is_punct(')') {
            let name = self.name()?;
            self.punct(':')?;
            args.push((name, self.value(false)?));
        }
        self.punct(')')?;
        Ok(args)
    }

    fn directives(&mut self) -> Result<Vec<Directive>, GqlError> {
        let mut out = Vec::new();
        while self.is_punct('@') {
            self.at += 1;
            let name = self.name()?;
            let arguments = self.arguments()?;
            out.push(Directive { name, arguments });
        }
        Ok(out)
    }

    fn value(&mut self, constant: bool) -> Result<Value, GqlError> {
        self.enter()?;
        let v = match self.next() {
            Some(Token::Variable(v)) if !constant => Value::Variable(v),
            Some(Token::Int(i)) => Value::Int(i),
            Some(Token::Float(f)) => Value::Float(f),
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Name(n)) => match n.as_str() {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                "null" => Value::Null,
                _ => Value::Enum(n),
            },
            Some(Token::Punct('[')) => {
                let mut items = Vec::new();
                while !self.is_punct(']') {
                    if self.peek().is_none() {
                        return Err(self.error("unterminated list"));
                    }
                    items.push(self.value(constant)?);
                }
                self.at += 1;
                Value::List(items)
            }
            Some(Token::Punct('{')) => {
                let mut fields = Vec::new();
                while !self.is_punct('}') {
                    let name = self.name()?;
                    self.punct(':')?;
                    fields.push((name, self.value(constant)?));
                }
                self.at += 1;
                Value::Object(fields)
            }
            _ => {
                self.at = self.at.saturating_sub(1);
                return Err(self.error("expected a value"));
            }
        };
        self.depth -= 1;
        Ok(v)
    }
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
