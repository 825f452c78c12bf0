//! ARM paths and resource ids. ARM matches every literal segment and name
//! case-insensitively, yet answers with the casing the caller last used, so ids are compared
//! through [`key`] (lower-cased) and stored as given.

use percent_encoding::percent_decode_str;

/// The storage/comparison form of a resource id or scope: lower-cased, one leading slash,
/// no trailing slash.
pub fn key(id: &str) -> String {
    let trimmed = id.trim_matches('/');
    format!("/{}", trimmed.to_lowercase())
}

/// Where a resource (of any kind: group, tracked, child, extension) is stored.
pub fn storage_key(id: &str) -> String {
    format!("res{}", key(id))
}

/// The storage prefix of everything beneath `id`.
pub fn storage_prefix_under(id: &str) -> String {
    format!("res{}/", key(id))
}

/// Splits a request path into percent-decoded segments; empty segments (from `//`) are dropped.
pub fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned()).collect()
}

/// The parts of a resource id or scope that ARM itself resolves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeParts {
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
    /// `(namespace, type path, name)` of the resource the scope points into, if any.
    pub resource: Option<(String, String, String)>,
}

/// Parses a scope such as `/subscriptions/S/resourceGroups/RG/providers/NS/type/name`.
/// Returns `None` when it is not a well-formed ARM scope.
pub fn parse_scope(scope: &str) -> Option<ScopeParts> {
    let segs = segments(scope);
    let mut parts = ScopeParts::default();
    let mut i = 0;
    if segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case("subscriptions")) {
        parts.subscription = Some(segs.get(i + 1)?.clone());
        i += 2;
        if segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case("resourceGroups")) {
            parts.resource_group = Some(segs.get(i + 1)?.clone());
            i += 2;
        }
    }
    if i == segs.len() {
        return Some(parts);
    }
    if !segs[i].eq_ignore_ascii_case("providers") {
        return None;
    }
    let namespace = segs.get(i + 1)?.clone();
    let rest = &segs[i + 2..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return None;
    }
    let types: Vec<&str> = rest.iter().step_by(2).map(String::as_str).collect();
    parts.resource = Some((namespace, types.join("/"), rest[rest.len() - 1].clone()));
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_slashes() {
        assert_eq!(key("/subscriptions/S/resourceGroups/RG/"), "/subscriptions/s/resourcegroups/rg");
        assert_eq!(key("subscriptions/S"), "/subscriptions/s");
    }

    #[test]
    fn segments_are_decoded_and_double_slashes_dropped() {
        assert_eq!(segments("//metadata/endpoints"), vec!["metadata", "endpoints"]);
        assert_eq!(segments("/a%20b/c"), vec!["a b", "c"]);
    }

    #[test]
    fn scopes_parse() {
        let p = parse_scope(
            "/subscriptions/S/resourcegroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1",
        )
        .unwrap();
        assert_eq!(p.subscription.as_deref(), Some("S"));
        assert_eq!(p.resource_group.as_deref(), Some("RG"));
        assert_eq!(
            p.resource,
            Some(("Microsoft.ManagedIdentity".into(), "userAssignedIdentities".into(), "id1".into()))
        );
        let child =
            parse_scope("/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/v/subnets/s")
                .unwrap();
        assert_eq!(child.resource.unwrap().1, "virtualNetworks/subnets");
        assert_eq!(parse_scope("/subscriptions/S").unwrap().resource_group, None);
        assert_eq!(parse_scope("/").unwrap(), ScopeParts::default());
        assert!(parse_scope("/subscriptions").is_none());
        assert!(parse_scope("/subscriptions/S/foo/bar").is_none());
        assert!(parse_scope("/subscriptions/S/providers/NS/type").is_none());
    }
}
