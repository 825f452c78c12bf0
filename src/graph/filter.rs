//! The OData `$filter` subset Graph clients send: clauses joined by `and`, each one of
//! `prop eq 'v'` (or `true`/`false`/`null`), `prop in ('a','b')`, `startswith(prop,'v')`,
//! `collection/any(x:x eq 'v')`, optionally parenthesised. String comparisons ignore case, as
//! the directory's do. Anything else is refused with `Request_UnsupportedQuery`.

use super::error::{GraphError, GraphResult};

/// A literal on the right of `eq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Null,
}

/// One clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    Eq(String, Literal),
    In(String, Vec<String>),
    StartsWith(String, String),
    /// `collection/any(x:x eq 'value')`
    Any(String, String),
}

/// A parsed filter: every clause must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    pub clauses: Vec<Clause>,
}

/// A property's value, as a resource exposes it to filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Str(String),
    Bool(bool),
    Null,
    List(Vec<String>),
}

impl From<&str> for Field {
    fn from(s: &str) -> Self {
        Field::Str(s.to_owned())
    }
}

impl From<Option<&str>> for Field {
    fn from(s: Option<&str>) -> Self {
        s.map_or(Field::Null, Field::from)
    }
}

impl From<&[String]> for Field {
    fn from(items: &[String]) -> Self {
        Field::List(items.to_vec())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
    Slash,
}

fn invalid(filter: &str, why: &str) -> GraphError {
    GraphError::unsupported_query(format!("Invalid filter clause: {why} (in '{filter}')."))
}

fn tokenize(filter: &str) -> GraphResult<Vec<Token>> {
    let chars: Vec<char> = filter.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            '/' => {
                tokens.push(Token::Slash);
                i += 1;
            }
            '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(invalid(filter, "unterminated string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(value));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '@' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-' | '@')) {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(invalid(filter, &format!("unexpected character '{other}'"))),
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    filter: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Token, what: &str) -> GraphResult<()> {
        match self.next() {
            Some(t) if &t == want => Ok(()),
            _ => Err(invalid(self.filter, &format!("expected {what}"))),
        }
    }

    fn ident(&mut self, what: &str) -> GraphResult<String> {
        match self.next() {
            Some(Token::Ident(s)) => Ok(s),
            _ => Err(invalid(self.filter, &format!("expected {what}"))),
        }
    }

    fn string(&mut self) -> GraphResult<String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            _ => Err(invalid(self.filter, "expected a quoted string")),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(s)) if s.eq_ignore_ascii_case(word))
    }

    /// `clause ('and' clause)*`, appending to `out`.
    fn conjunction(&mut self, out: &mut Vec<Clause>) -> GraphResult<()> {
        self.clause(out)?;
        while self.keyword("and") {
            self.pos += 1;
            self.clause(out)?;
        }
        if self.keyword("or") || self.keyword("not") {
            return Err(GraphError::unsupported_query(format!(
                "Unsupported query: armlet evaluates clauses joined by 'and' only (in '{}').",
                self.filter
            )));
        }
        Ok(())
    }

    fn clause(&mut self, out: &mut Vec<Clause>) -> GraphResult<()> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            self.conjunction(out)?;
            return self.expect(&Token::Close, "')'");
        }
        let name = self.ident("a property or function name")?;
        if name.eq_ignore_ascii_case("startswith") {
            self.expect(&Token::Open, "'(' after startswith")?;
            let property = self.ident("a property name")?;
            self.expect(&Token::Comma, "','")?;
            let value = self.string()?;
            self.expect(&Token::Close, "')'")?;
            out.push(Clause::StartsWith(property, value));
            return Ok(());
        }
        if self.peek() == Some(&Token::Slash) {
            self.pos += 1;
            let lambda = self.ident("'any'")?;
            if !lambda.eq_ignore_ascii_case("any") {
                return Err(GraphError::unsupported_query(format!(
                    "Unsupported query: only '{name}/any(x:x eq ...)' is evaluated, not '{lambda}' (in '{}').",
                    self.filter
                )));
            }
            self.expect(&Token::Open, "'('")?;
            let var = self.ident("a lambda variable")?;
            self.expect(&Token::Colon, "':'")?;
            let used = self.ident("the lambda variable")?;
            if used != var {
                return Err(invalid(self.filter, &format!("'{used}' is not the lambda variable '{var}'")));
            }
            if !self.keyword("eq") {
                return Err(GraphError::unsupported_query(format!(
                    "Unsupported query: lambda bodies must be '{var} eq ...' (in '{}').",
                    self.filter
                )));
            }
            self.pos += 1;
            let value = self.string()?;
            self.expect(&Token::Close, "')'")?;
            out.push(Clause::Any(name, value));
            return Ok(());
        }
        let operator = self.ident("an operator")?;
        if operator.eq_ignore_ascii_case("eq") {
            let value = match self.next() {
                Some(Token::Str(s)) => Literal::Str(s),
                Some(Token::Ident(s)) if s.eq_ignore_ascii_case("true") => Literal::Bool(true),
                Some(Token::Ident(s)) if s.eq_ignore_ascii_case("false") => Literal::Bool(false),
                Some(Token::Ident(s)) if s.eq_ignore_ascii_case("null") => Literal::Null,
                Some(Token::Ident(s)) if s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-') => {
                    // An unquoted GUID literal (`id eq 5f3c...`), as OData allows.
                    Literal::Str(s)
                }
                _ => return Err(invalid(self.filter, "expected a literal after 'eq'")),
            };
            out.push(Clause::Eq(name, value));
            return Ok(());
        }
        if operator.eq_ignore_ascii_case("in") {
            self.expect(&Token::Open, "'(' after 'in'")?;
            let mut values = vec![self.string()?];
            while self.peek() == Some(&Token::Comma) {
                self.pos += 1;
                values.push(self.string()?);
            }
            self.expect(&Token::Close, "')'")?;
            out.push(Clause::In(name, values));
            return Ok(());
        }
        Err(GraphError::unsupported_query(format!(
            "Unsupported query: the operator '{operator}' is not supported (in '{}').",
            self.filter
        )))
    }
}

/// Parses a `$filter` value.
pub fn parse(filter: &str) -> GraphResult<Filter> {
    let tokens = tokenize(filter)?;
    if tokens.is_empty() {
        return Err(invalid(filter, "the filter is empty"));
    }
    let mut parser = Parser { filter, tokens, pos: 0 };
    let mut clauses = Vec::new();
    parser.conjunction(&mut clauses)?;
    if parser.pos < parser.tokens.len() {
        return Err(invalid(filter, "unexpected text after the last clause"));
    }
    Ok(Filter { clauses })
}

impl Clause {
    pub fn property(&self) -> &str {
        match self {
            Clause::Eq(p, _) | Clause::In(p, _) | Clause::StartsWith(p, _) | Clause::Any(p, _) => p,
        }
    }
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

impl Filter {
    /// Checks every clause against the properties `resource` may be filtered on (`filterable`
    /// returns the field, or `None` if the property cannot be filtered), before any object is
    /// looked at, so an unsupported filter fails even on an empty directory.
    pub fn validate(&self, resource: &str, probe: impl Fn(&str) -> Option<Field>) -> GraphResult<()> {
        for clause in &self.clauses {
            let unsupported = || {
                GraphError::unsupported_query(format!(
                    "Unsupported or invalid query filter clause specified for property '{}' of resource '{resource}'.",
                    clause.property()
                ))
            };
            let field = probe(clause.property()).ok_or_else(unsupported)?;
            let fits = match (clause, &field) {
                (Clause::Any(..), Field::List(_)) => true,
                (Clause::Any(..), _) | (_, Field::List(_)) => false,
                (Clause::StartsWith(..), Field::Bool(_)) | (Clause::In(..), Field::Bool(_)) => false,
                _ => true,
            };
            if !fits {
                return Err(unsupported());
            }
        }
        Ok(())
    }

    /// Whether an object whose properties `field` returns satisfies every clause.
    pub fn matches(&self, field: impl Fn(&str) -> Option<Field>) -> bool {
        self.clauses.iter().all(|clause| {
            let Some(value) = field(clause.property()) else {
                return false;
            };
            match (clause, value) {
                (Clause::Eq(_, Literal::Str(want)), Field::Str(have)) => eq_ci(&have, want),
                (Clause::Eq(_, Literal::Bool(want)), Field::Bool(have)) => have == *want,
                (Clause::Eq(_, Literal::Null), Field::Null) => true,
                (Clause::In(_, wants), Field::Str(have)) => wants.iter().any(|w| eq_ci(&have, w)),
                (Clause::StartsWith(_, prefix), Field::Str(have)) => {
                    have.to_lowercase().starts_with(&prefix.to_lowercase())
                }
                (Clause::Any(_, want), Field::List(items)) => items.iter().any(|i| eq_ci(i, want)),
                _ => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_az_sends() {
        assert_eq!(
            parse("servicePrincipalNames/any(c:c eq 'a1e70000-0000-4000-8000-000000000003')").unwrap().clauses,
            vec![Clause::Any("servicePrincipalNames".into(), "a1e70000-0000-4000-8000-000000000003".into())]
        );
        assert_eq!(
            parse("displayName eq 'it''s mine'").unwrap().clauses,
            vec![Clause::Eq("displayName".into(), Literal::Str("it's mine".into()))]
        );
        assert_eq!(
            parse("startswith(displayName,'web app') and appId eq 'x'").unwrap().clauses,
            vec![
                Clause::StartsWith("displayName".into(), "web app".into()),
                Clause::Eq("appId".into(), Literal::Str("x".into()))
            ]
        );
        assert_eq!(
            parse("identifierUris/any(s: s eq 'api://x')").unwrap().clauses,
            vec![Clause::Any("identifierUris".into(), "api://x".into())]
        );
        assert_eq!(
            parse("(accountEnabled eq true) AND appId in ('a', 'b')").unwrap().clauses,
            vec![
                Clause::Eq("accountEnabled".into(), Literal::Bool(true)),
                Clause::In("appId".into(), vec!["a".into(), "b".into()])
            ]
        );
        assert_eq!(
            parse("id eq 5f3c0000-0000-4000-8000-000000000001").unwrap().clauses,
            vec![Clause::Eq("id".into(), Literal::Str("5f3c0000-0000-4000-8000-000000000001".into()))]
        );
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for bad in [
            "",
            "displayName",
            "displayName eq",
            "displayName eq 'unterminated",
            "displayName ne 'x'",
            "displayName eq 'a' or displayName eq 'b'",
            "endswith(displayName,'x')",
            "tags/all(t:t eq 'x')",
            "tags/any(t:u eq 'x')",
            "displayName eq 'a' 'b'",
            "displayName eq 'a' and",
            "a eq 'b' ; drop",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.code, "Request_UnsupportedQuery", "{bad}");
            assert_eq!(e.status.as_u16(), 400, "{bad}");
        }
    }

    fn probe(name: &str) -> Option<Field> {
        match name.to_lowercase().as_str() {
            "displayname" => Some(Field::from("My App")),
            "appid" => Some(Field::from("AAAA")),
            "accountenabled" => Some(Field::Bool(true)),
            "serviceprincipalnames" => Some(Field::List(vec!["AAAA".into(), "api://x".into()])),
            "notes" => Some(Field::Null),
            _ => None,
        }
    }

    #[test]
    fn matches_case_insensitively() {
        let yes = [
            "displayName eq 'my app'",
            "startswith(displayName,'MY')",
            "appId eq 'aaaa'",
            "appId in ('b','aaaa')",
            "servicePrincipalNames/any(c:c eq 'API://X')",
            "accountEnabled eq true and displayName eq 'My App'",
            "notes eq null",
        ];
        for f in yes {
            assert!(parse(f).unwrap().matches(probe), "{f}");
        }
        let no = [
            "displayName eq 'my'",
            "startswith(displayName,'app')",
            "servicePrincipalNames/any(c:c eq 'objectid')",
            "accountEnabled eq false",
            "accountEnabled eq true and appId eq 'b'",
        ];
        for f in no {
            assert!(!parse(f).unwrap().matches(probe), "{f}");
        }
    }

    #[test]
    fn validation_names_the_property() {
        let e = parse("mail eq 'x'").unwrap().validate("ServicePrincipal", probe).unwrap_err();
        assert_eq!(e.code, "Request_UnsupportedQuery");
        assert!(e.message.contains("'mail'"), "{}", e.message);
        assert!(parse("displayName/any(c:c eq 'x')").unwrap().validate("ServicePrincipal", probe).is_err());
        assert!(parse("startswith(accountEnabled,'x')").unwrap().validate("ServicePrincipal", probe).is_err());
        assert!(parse("servicePrincipalNames eq 'x'").unwrap().validate("ServicePrincipal", probe).is_err());
        assert!(parse("DISPLAYNAME eq 'x'").unwrap().validate("ServicePrincipal", probe).is_ok());
    }
}
