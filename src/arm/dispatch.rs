//! ARM paths nest to any depth and match case-insensitively, so instead of a web router the
//! ARM surface goes through one table of swagger-style path templates
//! (`/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}`). A leading
//! `{scope}` matches any scope, for extension resources such as role assignments.

use std::future::Future;
use std::pin::Pin;

use axum::http::Method;
use axum::response::Response;

use super::error::{ArmError, ArmResult};
use super::request::ArmRequest;
use crate::arm_error;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A route handler: state and request in, response out.
pub type Handler<S> = fn(S, ArmRequest) -> BoxFuture<ArmResult<Response>>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(&'static str),
}

/// A parsed path template.
#[derive(Debug, Clone)]
pub struct PathPattern {
    template: &'static str,
    /// Whether the template starts with `{scope}`.
    scoped: bool,
    segments: Vec<Segment>,
}

impl PathPattern {
    pub fn new(template: &'static str) -> Self {
        let mut segments: Vec<Segment> = template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name),
                None => Segment::Literal(s.to_lowercase()),
            })
            .collect();
        let scoped = segments.first() == Some(&Segment::Param("scope"));
        if scoped {
            segments.remove(0);
        }
        Self { template, scoped, segments }
    }

    pub fn template(&self) -> &'static str {
        self.template
    }

    /// Captures the parameters if `path` (as decoded segments) matches.
    pub fn matches(&self, path: &[String]) -> Option<Vec<(&'static str, String)>> {
        if path.len() < self.segments.len() || (!self.scoped && path.len() != self.segments.len()) {
            return None;
        }
        let split = path.len() - self.segments.len();
        let (scope, rest) = path.split_at(split);
        let mut params = Vec::new();
        if self.scoped {
            params.push(("scope", format!("/{}", scope.join("/"))));
        }
        for (segment, actual) in self.segments.iter().zip(rest) {
            match segment {
                Segment::Literal(lit) if lit.eq_ignore_ascii_case(actual) => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((*name, actual.clone())),
            }
        }
        Some(params)
    }
}

/// One ARM operation.
pub struct Route<S> {
    pub method: Method,
    pub pattern: PathPattern,
    /// Full resource type whose api-versions apply, e.g. `Microsoft.Resources/resourceGroups`.
    pub resource_type: &'static str,
    /// The swagger operationId this route emulates.
    pub operation_id: &'static str,
    pub handler: Handler<S>,
}

/// The ARM route table.
pub struct RouteTable<S> {
    routes: Vec<Route<S>>,
}

impl<S> Default for RouteTable<S> {
    fn default() -> Self {
        Self { routes: Vec::new() }
    }
}

/// What resolving a request found.
pub struct Resolved<'a, S> {
    pub route: &'a Route<S>,
    pub params: Vec<(&'static str, String)>,
}

impl<S> RouteTable<S> {
    pub fn add(
        &mut self,
        method: Method,
        template: &'static str,
        resource_type: &'static str,
        operation_id: &'static str,
        handler: Handler<S>,
    ) -> &mut Self {
        self.routes.push(Route { method, pattern: PathPattern::new(template), resource_type, operation_id, handler });
        self
    }

    pub fn routes(&self) -> &[Route<S>] {
        &self.routes
    }

    /// Finds the route for a request. Earlier routes win, so specific templates come before
    /// `{scope}` ones. A path that matches with another method gets 405; no match gets the
    /// error ARM gives for an unknown namespace or type.
    pub fn resolve(
        &self,
        method: &Method,
        path: &[String],
        knows_namespace: &dyn Fn(&str) -> bool,
    ) -> ArmResult<Resolved<'_, S>> {
        super::resource_id::check_segments(path)?;
        let mut path_matched = false;
        let mut get_for_head = None;
        for route in &self.routes {
            if let Some(params) = route.pattern.matches(path) {
                if route.method == *method {
                    return Ok(Resolved { route, params });
                }
                // HEAD is answered by the GET handler unless a route declares its own HEAD.
                if *method == Method::HEAD && route.method == Method::GET && get_for_head.is_none() {
                    get_for_head = Some(Resolved { route, params });
                }
                path_matched = true;
            }
        }
        if let Some(resolved) = get_for_head {
            return Ok(resolved);
        }
        if path_matched {
            return Err(arm_error!(
                MethodNotAllowed,
                "The requested resource does not support http method '{method}'."
            ));
        }
        Err(unknown_path(path, knows_namespace))
    }
}

/// The RBAC action and scope ARM checks for a request: `{Namespace}/{types}/{read|write|delete}`
/// (or `{types}/{name}/action` for POST) at the resource the path names, or at the parent of
/// a collection.
pub fn authorization_target(method: &Method, path: &[String]) -> (String, String) {
    let mut namespace = "Microsoft.Resources".to_owned();
    let mut types: Vec<String> = Vec::new();
    let mut scope_end = 0;
    let mut i = 0;
    while i < path.len() {
        let segment = &path[i];
        if segment.eq_ignore_ascii_case("providers") && i + 1 < path.len() {
            namespace = path[i + 1].clone();
            types.clear();
            i += 2;
            continue;
        }
        let canonical = if segment.eq_ignore_ascii_case("subscriptions") {
            "subscriptions".to_owned()
        } else if segment.eq_ignore_ascii_case("resourcegroups") {
            "resourceGroups".to_owned()
        } else {
            segment.clone()
        };
        types.push(canonical);
        if i + 1 < path.len() {
            scope_end = i + 2;
        }
        i += 2;
    }
    let verb = match *method {
        Method::GET | Method::HEAD => "read".to_owned(),
        Method::PUT | Method::PATCH => "write".to_owned(),
        Method::DELETE => "delete".to_owned(),
        _ => format!("{}/action", types.pop().unwrap_or_default()),
    };
    let action = if types.is_empty() {
        format!("{namespace}/{verb}")
    } else {
        format!("{namespace}/{}/{verb}", types.join("/"))
    };
    (action, format!("/{}", path[..scope_end.min(path.len())].join("/")))
}

fn unknown_path(path: &[String], knows_namespace: &dyn Fn(&str) -> bool) -> ArmError {
    let providers = path.iter().rposition(|s| s.eq_ignore_ascii_case("providers"));
    match providers.and_then(|i| path.get(i + 1).map(|ns| (i, ns))) {
        Some((i, namespace)) => {
            let types: Vec<&str> = path[i + 2..].iter().step_by(2).map(String::as_str).collect();
            if types.is_empty() || !knows_namespace(namespace) {
                arm_error!(InvalidResourceNamespace, "The resource namespace '{namespace}' is invalid.")
            } else {
                arm_error!(
                    InvalidResourceType,
                    "The resource type '{}' could not be found in the namespace '{namespace}'.",
                    types.join("/")
                )
            }
        }
        None => arm_error!(NotFound, "The requested path '/{}' is not an ARM resource path.", path.join("/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        super::super::resource_id::segments(p)
    }

    #[test]
    fn literal_segments_match_case_insensitively_and_params_keep_case() {
        let p = PathPattern::new("/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}");
        let params = p.matches(&segs("/SUBSCRIPTIONS/abc/resourceGroups/MyRG")).unwrap();
        assert_eq!(params, vec![("subscriptionId", "abc".to_owned()), ("resourceGroupName", "MyRG".to_owned())]);
        assert!(p.matches(&segs("/subscriptions/abc/resourcegroups")).is_none());
        assert!(p.matches(&segs("/subscriptions/abc/resourcegroups/rg/extra")).is_none());
    }

    #[test]
    fn scope_captures_any_prefix() {
        let p = PathPattern::new("/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}");
        let params = p
            .matches(&segs("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleassignments/g"))
            .unwrap();
        assert_eq!(params[0], ("scope", "/subscriptions/s/resourceGroups/rg".to_owned()));
        assert_eq!(params[1], ("roleAssignmentName", "g".to_owned()));
        let root = p.matches(&segs("/providers/Microsoft.Authorization/roleAssignments/g")).unwrap();
        assert_eq!(root[0], ("scope", "/".to_owned()));
    }

    #[test]
    fn authorization_targets_follow_arm_action_names() {
        let t = |m: Method, p: &str| authorization_target(&m, &segs(p));
        assert_eq!(
            t(Method::PUT, "/subscriptions/s/resourcegroups/rg"),
            (
                "Microsoft.Resources/subscriptions/resourceGroups/write".into(),
                "/subscriptions/s/resourcegroups/rg".into()
            )
        );
        assert_eq!(
            t(Method::GET, "/subscriptions/s/resourcegroups"),
            ("Microsoft.Resources/subscriptions/resourceGroups/read".into(), "/subscriptions/s".into())
        );
        assert_eq!(
            t(
                Method::DELETE,
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
            ),
            (
                "Microsoft.ManagedIdentity/userAssignedIdentities/delete".into(),
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
                    .into()
            )
        );
        assert_eq!(
            t(Method::GET, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x/federatedIdentityCredentials").0,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read"
        );
        assert_eq!(
            t(
                Method::POST,
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/listClusterUserCredential"
            ),
            (
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action".into(),
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c".into()
            )
        );
        assert_eq!(
            t(Method::PUT, "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/g").0,
            "Microsoft.Authorization/roleAssignments/write"
        );
        assert_eq!(
            t(Method::GET, "/subscriptions/s/resources"),
            ("Microsoft.Resources/subscriptions/resources/read".into(), "/subscriptions/s".into())
        );
    }

    #[test]
    fn unknown_paths_name_what_is_wrong() {
        let table: RouteTable<()> = RouteTable::default();
        let known = |ns: &str| ns.eq_ignore_ascii_case("Microsoft.Foo");
        let err =
            table.resolve(&Method::GET, &segs("/subscriptions/s/providers/Microsoft.Nope"), &known).err().unwrap();
        assert_eq!(err.code.as_str(), "InvalidResourceNamespace");
        let err = table
            .resolve(&Method::GET, &segs("/subscriptions/s/providers/Microsoft.Foo/bars/x"), &known)
            .err()
            .unwrap();
        assert_eq!(err.code.as_str(), "InvalidResourceType");
        let err = table
            .resolve(&Method::GET, &segs("/subscriptions/s/providers/Microsoft.Nope/bars/x"), &known)
            .err()
            .unwrap();
        assert_eq!(err.code.as_str(), "InvalidResourceNamespace");
    }
}
