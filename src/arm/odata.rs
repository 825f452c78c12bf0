//! The small OData `$filter` dialect ARM list operations accept: clauses joined by `and`,
//! each `field eq 'value'` or a function call such as `atScope()` / `assignedTo('id')`.

use super::error::ArmResult;
use crate::arm_error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// `field eq 'value'`
    Eq(String, String),
    /// `name()` or `name('arg')`
    Call(String, Option<String>),
}

fn invalid(filter: &str) -> super::ArmError {
    arm_error!(InvalidFilterInQueryString, "Invalid $filter '{filter}' specified in the query string.")
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

/// Parses a `$filter` value.
pub fn parse(filter: &str) -> ArmResult<Vec<Clause>> {
    let mut clauses = Vec::new();
    for part in split_and(filter) {
        let part = part.trim();
        if let Some(open) = part.find('(')
            && part.ends_with(')')
            && !part[..open].contains(' ')
        {
            let name = part[..open].trim().to_owned();
            let arg = part[open + 1..part.len() - 1].trim();
            let arg = if arg.is_empty() { None } else { Some(unquote(arg).ok_or_else(|| invalid(filter))?) };
            clauses.push(Clause::Call(name, arg));
            continue;
        }
        let lower = part.to_lowercase();
        let at = lower.find(" eq ").ok_or_else(|| invalid(filter))?;
        let field = part[..at].trim().to_owned();
        let value = unquote(&part[at + 4..]).ok_or_else(|| invalid(filter))?;
        if field.is_empty() {
            return Err(invalid(filter));
        }
        clauses.push(Clause::Eq(field, value));
    }
    if clauses.is_empty() {
        return Err(invalid(filter));
    }
    Ok(clauses)
}

/// Splits on ` and ` outside quotes, case-insensitively.
fn split_and(filter: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            in_quote = !in_quote;
        }
        if !in_quote && c == ' ' {
            let rest: String = chars[i..chars.len().min(i + 5)].iter().collect();
            if rest.eq_ignore_ascii_case(" and ") {
                parts.push(std::mem::take(&mut current));
                i += 5;
                continue;
            }
        }
        current.push(c);
        i += 1;
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_az_sends() {
        assert_eq!(
            parse("resourceType eq 'Microsoft.ContainerRegistry/registries'").unwrap(),
            vec![Clause::Eq("resourceType".into(), "Microsoft.ContainerRegistry/registries".into())]
        );
        assert_eq!(
            parse("atScope() and assignedTo('abc')").unwrap(),
            vec![Clause::Call("atScope".into(), None), Clause::Call("assignedTo".into(), Some("abc".into()))]
        );
        assert_eq!(
            parse("tagName eq 'a and b' AND tagValue eq 'it''s'").unwrap(),
            vec![Clause::Eq("tagName".into(), "a and b".into()), Clause::Eq("tagValue".into(), "it's".into())]
        );
        assert!(parse("garbage").is_err());
        assert!(parse("name eq unquoted").is_err());
        assert!(parse("").is_err());
    }
}
