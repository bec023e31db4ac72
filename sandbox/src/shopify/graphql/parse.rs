//! Tokenizer and recursive-descent parser for executable GraphQL documents: operations
//! with variable definitions, fields with aliases, arguments and directives. Fragments and
//! subscriptions are refused; deep nesting is refused before it can exhaust the stack.

use super::{Directive, Field, GqlError, Operation, OperationKind, Value, VariableDefinition};

/// Deepest nesting of selections, lists and objects accepted.
const MAX_DEPTH: usize = 32;

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
