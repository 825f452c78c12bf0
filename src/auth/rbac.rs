//! Azure RBAC's one question — may principal P perform action A at scope S now? — answered in
//! one place, over role assignments at S and every scope above it, with the propagation delay
//! on the simulated clock: an assignment takes effect `delay` after it was created and stops
//! taking effect `delay` after it was deleted.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::arm::resource_id::key;

/// One permission block of a role definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub data_actions: Vec<String>,
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

/// The facts about an assignment the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The assignment's full id.
    pub id: String,
    pub scope: String,
    pub principal_id: String,
    pub role_definition_id: String,
    pub role_name: String,
    pub permissions: Vec<Permission>,
    pub created_on: OffsetDateTime,
    pub deleted_on: Option<OffsetDateTime>,
}

impl Grant {
    /// When the assignment starts to count.
    pub fn effective_from(&self, delay: Duration) -> OffsetDateTime {
        self.created_on + delay
    }

    /// Whether the assignment counts at `now`.
    pub fn is_effective(&self, now: OffsetDateTime, delay: Duration) -> bool {
        self.effective_from(delay) <= now && self.deleted_on.is_none_or(|deleted| now < deleted + delay)
    }

    /// Whether the role's (non-data) permissions include `action`.
    pub fn permits(&self, action: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p.actions.iter().any(|a| matches(a, action)) && !p.not_actions.iter().any(|n| matches(n, action)))
    }
}

/// Case-insensitive glob where `*` matches any run of characters (including `/`), as ARM
/// matches `Microsoft.Compute/*/read` or `*`; a `/*/` segment also matches no segment at all,
/// which is how Managed Identity Operator's `userAssignedIdentities/*/assign/action` grants
/// `userAssignedIdentities/assign/action`.
pub fn matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        if p.starts_with(b"/*/") && go(&p[2..], a) {
            return true;
        }
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..])),
            Some((c, rest)) => a.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &a[1..]),
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Whether `outer` is `inner` or one of its ancestors (`/` contains everything).
pub fn scope_contains(outer: &str, inner: &str) -> bool {
    let (outer, inner) = (key(outer), key(inner));
    outer == "/" || inner == outer || inner.starts_with(&format!("{outer}/"))
}

/// The scopes whose assignments apply at `scope`: itself and every ancestor, root first.
pub fn ancestors(scope: &str) -> Vec<String> {
    let segments: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = vec!["/".to_owned()];
    let mut i = 0;
    while i < segments.len() {
        // Scopes come in (type, name) pairs; `providers/{namespace}` opens the first resource
        // pair, so the step there covers four segments.
        let step = if segments[i].eq_ignore_ascii_case("providers") { 4 } else { 2 };
        i = (i + step).min(segments.len());
        out.push(format!("/{}", segments[..i].join("/")));
    }
    out.dedup();
    out
}

/// The outcome of a check, with what explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this grant.
    Allowed(Box<Grant>),
    /// Denied; `pending` lists grants that would allow it once they take effect.
    Denied { pending: Vec<(Grant, OffsetDateTime)> },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// Decides whether `principal` may perform `action` at `scope` at `now`, given every grant
/// (the caller passes those at `scope` and its ancestors; others are ignored here anyway).
pub fn decide(
    grants: &[Grant],
    principal: &str,
    action: &str,
    scope: &str,
    now: OffsetDateTime,
    delay: Duration,
) -> Decision {
    let mut pending = Vec::new();
    for grant in grants {
        if !grant.principal_id.eq_ignore_ascii_case(principal)
            || !scope_contains(&grant.scope, scope)
            || !grant.permits(action)
        {
            continue;
        }
        if grant.is_effective(now, delay) {
            return Decision::Allowed(Box::new(grant.clone()));
        }
        if grant.deleted_on.is_none() {
            pending.push((grant.clone(), grant.effective_from(delay)));
        }
    }
    Decision::Denied { pending }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);
    const DELAY: Duration = Duration::seconds(60);

    fn grant(scope: &str, actions: &[&str], not_actions: &[&str]) -> Grant {
        Grant {
            id: format!("{scope}/providers/Microsoft.Authorization/roleAssignments/x"),
            scope: scope.into(),
            principal_id: "p".into(),
            role_definition_id: "r".into(),
            role_name: "Role".into(),
            permissions: vec![Permission {
                actions: actions.iter().map(|s| s.to_string()).collect(),
                not_actions: not_actions.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }],
            created_on: T0,
            deleted_on: None,
        }
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "Microsoft.Compute/virtualMachines/read"));
        assert!(matches("*/read", "Microsoft.Compute/virtualMachines/read"));
        assert!(!matches("*/read", "Microsoft.Compute/virtualMachines/write"));
        assert!(matches(
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "microsoft.managedidentity/userassignedidentities/x/assign/action"
        ));
        assert!(matches("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write"));
        assert!(!matches("Microsoft.Network/*", "Microsoft.Compute/disks/read"));
        assert!(matches(
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
        ));
        assert!(!matches(
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.ManagedIdentity/userAssignedIdentities/write"
        ));
    }

    #[test]
    fn ancestors_walk_up_through_resources() {
        assert_eq!(
            ancestors("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a"),
            vec![
                "/",
                "/subscriptions/s",
                "/subscriptions/s/resourceGroups/rg",
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a",
            ]
        );
        assert_eq!(ancestors("/"), vec!["/"]);
    }

    #[test]
    fn inheritance_and_not_actions() {
        let contributor = grant("/subscriptions/s", &["*"], &["Microsoft.Authorization/*/Write"]);
        let grants = vec![contributor];
        let later = T0 + DELAY;
        let rg = "/subscriptions/S/resourcegroups/RG";
        assert!(
            decide(&grants, "p", "Microsoft.Resources/subscriptions/resourceGroups/write", rg, later, DELAY)
                .is_allowed()
        );
        assert!(!decide(&grants, "p", "Microsoft.Authorization/roleAssignments/write", rg, later, DELAY).is_allowed());
        assert!(!decide(&grants, "other", "x/read", rg, later, DELAY).is_allowed());
        // A grant at a group does not reach a sibling group or the subscription.
        let reader = vec![grant("/subscriptions/s/resourceGroups/a", &["*/read"], &[])];
        assert!(
            decide(&reader, "p", "x/read", "/subscriptions/s/resourceGroups/a/providers/N/t/n", later, DELAY)
                .is_allowed()
        );
        assert!(!decide(&reader, "p", "x/read", "/subscriptions/s/resourceGroups/ab", later, DELAY).is_allowed());
        assert!(!decide(&reader, "p", "x/read", "/subscriptions/s", later, DELAY).is_allowed());
    }

    #[test]
    fn propagation_delay_on_create_and_delete() {
        let mut g = grant("/subscriptions/s", &["*"], &[]);
        let scope = "/subscriptions/s";
        match decide(std::slice::from_ref(&g), "p", "a/read", scope, T0 + Duration::seconds(10), DELAY) {
            Decision::Denied { pending } => assert_eq!(pending[0].1, T0 + DELAY),
            other => panic!("expected pending, got {other:?}"),
        }
        assert!(decide(std::slice::from_ref(&g), "p", "a/read", scope, T0 + DELAY, DELAY).is_allowed());
        let deleted = T0 + Duration::hours(1);
        g.deleted_on = Some(deleted);
        assert!(
            decide(std::slice::from_ref(&g), "p", "a/read", scope, deleted + Duration::seconds(30), DELAY).is_allowed()
        );
        assert_eq!(
            decide(std::slice::from_ref(&g), "p", "a/read", scope, deleted + DELAY, DELAY),
            Decision::Denied { pending: vec![] }
        );
        assert!(decide(&[g], "p", "a/read", scope, T0 + DELAY, Duration::ZERO).is_allowed());
    }
}
