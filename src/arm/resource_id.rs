//! ARM paths and resource ids. ARM matches every literal segment and name
//! case-insensitively, yet answers with the casing the caller last used, so ids are compared
//! through [`key`] (lower-cased) and stored as given.

use percent_encoding::percent_decode_str;

use super::error::{ArmError, ArmResult, ErrorCode};

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

/// What is wrong with one decoded path segment, if anything. A segment may not hold a `/` or
/// `\` (an encoded `%2F` or `%5C` would otherwise smuggle a second segment into a name, and
/// ids are stored and compared as strings, so `rg%2Fproviders%2F...` named another resource
/// while RBAC and routing saw a resource group), control characters (NUL included), or bytes
/// that are not UTF-8; and `.` and `..` (raw or encoded) are refused rather than resolved, so
/// an id means exactly what it spells.
pub fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment == "." || segment == ".." {
        Some("'.' and '..' segments are not allowed")
    } else if segment.contains('/') {
        Some("a segment may not contain an encoded '/'")
    } else if segment.contains('\\') {
        Some("a segment may not contain '\\'")
    } else if segment.chars().any(char::is_control) {
        Some("a segment may not contain control characters")
    } else if segment.contains(char::REPLACEMENT_CHARACTER) {
        Some("a segment must be percent-encoded UTF-8")
    } else {
        None
    }
}

/// Refuses a request path (as [`segments`] decoded it) with a segment [`segment_problem`]
/// finds fault with: 400 `InvalidResourceId`, before anything is looked up or written.
pub fn check_segments(path: &[String]) -> ArmResult<()> {
    match path.iter().find_map(|s| segment_problem(s).map(|why| (s, why))) {
        None => Ok(()),
        Some((segment, why)) => Err(ArmError::new(
            ErrorCode::InvalidResourceId,
            format!("The resource id is invalid at the segment '{}': {why}.", segment.escape_debug()),
        )),
    }
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
    fn smuggled_separators_dot_segments_and_control_characters_are_refused() {
        for (path, bad) in [
            ("/subscriptions/s/resourcegroups/b%2Fproviders%2FNS%2Ft%2Fx", "b/providers/NS/t/x"),
            ("/subscriptions/s/resourcegroups/a%5Cb", "a\\\\b"),
            ("/subscriptions/s/resourcegroups/a\\b", "a\\\\b"),
            ("/subscriptions/s/resourcegroups/a/../b", ".."),
            ("/subscriptions/s/resourcegroups/%2E%2E", ".."),
            ("/subscriptions/s/resourcegroups/.%2e", ".."),
            ("/subscriptions/s/./resourcegroups/b", "."),
            ("/subscriptions/s/resourcegroups/nul%00", r"nul\0"),
            ("/subscriptions/s/resourcegroups/nl%0Ax", r"nl\nx"),
            ("/subscriptions/s/resourcegroups/del%7F", r"del\u{7f}"),
            ("/subscriptions/s/resourcegroups/%FF%FE", "\u{fffd}\u{fffd}"),
        ] {
            let segs = segments(path);
            let err = check_segments(&segs).expect_err(path);
            assert_eq!(err.code.as_str(), "InvalidResourceId", "{path}");
            assert_eq!(err.status.as_u16(), 400, "{path}");
            assert!(err.message.contains(&format!("'{bad}'")), "{path}: {}", err.message);
        }
        for fine in [
            "/subscriptions/s/resourcegroups/my(rg).v1",
            "/subscriptions/s/resourcegroups/%C3%A9t%C3%A9",
            "/subscriptions/s/resourcegroups/a%20b",
            "/subscriptions/s/resourcegroups/...",
            "/subscriptions/s/resourcegroups/.hidden",
            "//subscriptions//s/",
        ] {
            assert!(check_segments(&segments(fine)).is_ok(), "{fine}");
        }
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
