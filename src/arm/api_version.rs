//! api-version rules (RPC "API Versioning"): every ARM request names one; ARM-owned types
//! answer an unknown one with InvalidApiVersionParameter, provider types with
//! NoRegisteredProviderFound, each listing what is supported.

use std::collections::HashMap;

use super::error::{ArmError, ArmResult};
use crate::arm_error;

/// Supported api-versions per resource type.
#[derive(Debug, Default)]
pub struct Registry {
    /// Keyed by the lower-cased `Namespace/type/path`.
    types: HashMap<String, TypeVersions>,
}

#[derive(Debug)]
struct TypeVersions {
    /// As ARM spells it, e.g. `Microsoft.ManagedIdentity/userAssignedIdentities`.
    name: String,
    versions: Vec<String>,
    arm_owned: bool,
}

/// Whether `v` has ARM's shape: `YYYY-MM-DD` with an optional `-preview`-like suffix.
pub fn is_well_formed(v: &str) -> bool {
    // Bytes, not chars: a non-ASCII api-version must not split inside a character.
    let (date, suffix) = v.as_bytes().split_at(v.len().min(10));
    let date_ok = date.len() == 10
        && date.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    let suffix_ok = suffix.is_empty()
        || ["-preview", "-alpha", "-beta", "-rc", "-privatepreview"]
            .iter()
            .any(|s| suffix.eq_ignore_ascii_case(s.as_bytes()));
    date_ok && suffix_ok
}

impl Registry {
    pub fn add(&mut self, namespace: &str, resource_type: &str, versions: &[String], arm_owned: bool) {
        let name = format!("{namespace}/{resource_type}");
        self.types.insert(name.to_lowercase(), TypeVersions { name, versions: versions.to_vec(), arm_owned });
    }

    pub fn knows_namespace(&self, namespace: &str) -> bool {
        let prefix = format!("{}/", namespace.to_lowercase());
        self.types.keys().any(|k| k.starts_with(&prefix))
    }

    pub fn knows_type(&self, full_type: &str) -> bool {
        self.types.contains_key(&full_type.to_lowercase())
    }

    /// Checks `version` for `full_type`. `location` only shapes the message.
    pub fn check(&self, full_type: &str, version: Option<&str>, location: Option<&str>) -> ArmResult<String> {
        let Some(version) = version.filter(|v| !v.is_empty()) else {
            return Err(arm_error!(
                MissingApiVersionParameter,
                "The api-version query parameter (?api-version=) is required for all requests."
            ));
        };
        let Some(known) = self.types.get(&full_type.to_lowercase()) else {
            return Ok(version.to_owned());
        };
        if known.versions.iter().any(|v| v.eq_ignore_ascii_case(version)) {
            return Ok(version.to_owned());
        }
        let supported = known.versions.join(",");
        if known.arm_owned || !is_well_formed(version) {
            return Err(arm_error!(
                InvalidApiVersionParameter,
                "The api-version '{version}' is invalid. The supported versions are '{supported}'."
            ));
        }
        let (_, short_type) = known.name.split_once('/').unwrap_or(("", &known.name));
        Err(ArmError::new(
            super::ErrorCode::NoRegisteredProviderFound,
            format!(
                "No registered resource provider found for location '{}' and API version '{version}' for type '{short_type}'. The supported api-versions are '{}'.",
                location.unwrap_or("global"),
                known.versions.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_well_formed("2024-11-01"));
        assert!(is_well_formed("2025-05-31-preview"));
        assert!(!is_well_formed("2024-11"));
        assert!(!is_well_formed("latest"));
        assert!(!is_well_formed("2024-11-01-foo"));
    }
}
