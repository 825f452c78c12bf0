//! The credential behind every managed identity, and its 46-day rotation.
//!
//! Azure backs each managed identity with a certificate that is valid for 90 days and renewed
//! after 46. armlet derives the whole series from the identity's creation time on the
//! simulated clock: credential `k` has `notBefore = created + k·46d`, `renewAfter =
//! notBefore + 46d` and `notAfter = notBefore + 90d`, so when the clock passes a renewAfter
//! the next credential is current while the previous one stays valid until its notAfter.
//! Thumbprints are derived from the principal and `k`, so they are stable across restarts.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::clock::rfc3339;
use crate::directory::ServicePrincipal;

/// Azure renews a managed identity's credential after 46 days...
pub const RENEW_AFTER: Duration = Duration::days(46);
/// ...and each credential is valid for 90.
pub const LIFETIME: Duration = Duration::days(90);

/// One credential in an identity's series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiCredential {
    /// Position in the series (0 = issued at creation).
    pub index: i64,
    pub thumbprint: String,
    pub not_before: OffsetDateTime,
    pub renew_after: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl MiCredential {
    pub fn of(principal: &ServicePrincipal, index: i64) -> Self {
        let not_before = principal.created_date_time + RENEW_AFTER * index as f64;
        let digest = Sha256::digest(format!("{}:{index}", principal.id.to_lowercase()).as_bytes());
        let thumbprint: String = digest[..20].iter().map(|b| format!("{b:02X}")).collect();
        Self { index, thumbprint, not_before, renew_after: not_before + RENEW_AFTER, not_after: not_before + LIFETIME }
    }

    /// The credential current at `now`.
    pub fn current(principal: &ServicePrincipal, now: OffsetDateTime) -> Self {
        let elapsed = (now - principal.created_date_time).max(Duration::ZERO);
        let index = (elapsed.whole_seconds() / RENEW_AFTER.whole_seconds()).max(0);
        Self::of(principal, index)
    }

    /// Every credential still valid at `now`, newest first.
    pub fn valid(principal: &ServicePrincipal, now: OffsetDateTime) -> Vec<Self> {
        let current = Self::current(principal, now);
        (0..=current.index).rev().map(|k| Self::of(principal, k)).take_while(|c| c.not_after > now).collect()
    }

    /// Rotations that happened in `(from, to]`: the credentials issued in that window.
    pub fn rotations_between(principal: &ServicePrincipal, from: OffsetDateTime, to: OffsetDateTime) -> Vec<Self> {
        let first = Self::current(principal, from).index + 1;
        let last = Self::current(principal, to).index;
        (first..=last).map(|k| Self::of(principal, k)).collect()
    }

    /// What the identity's `clientSecretUrl` answers: the credential's metadata, never a key.
    pub fn metadata(&self, principal: &ServicePrincipal, client_secret_url: &str, authority: &str) -> Value {
        json!({
            "client_id": principal.app_id,
            "tenant_id": principal.tenant_id,
            "object_id": principal.id,
            "client_secret_url": client_secret_url,
            "authentication_endpoint": authority,
            "thumbprint": self.thumbprint,
            "not_before": rfc3339(self.not_before),
            "renew_after": rfc3339(self.renew_after),
            "cannot_renew_after": rfc3339(self.not_after),
            "not_after": rfc3339(self.not_after),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn principal() -> ServicePrincipal {
        ServicePrincipal {
            id: "p1".into(),
            app_id: "a1".into(),
            display_name: "id".into(),
            tenant_id: "t".into(),
            service_principal_type: "ManagedIdentity".into(),
            service_principal_names: vec![],
            alternative_names: vec![],
            password_credentials: vec![],
            created_date_time: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn rotates_every_46_days_and_old_credentials_live_90() {
        let p = principal();
        let start = p.created_date_time;
        let first = MiCredential::current(&p, start);
        assert_eq!(first.index, 0);
        assert_eq!(MiCredential::current(&p, start + Duration::days(45)).thumbprint, first.thumbprint);
        let after46 = start + Duration::days(46);
        let second = MiCredential::current(&p, after46);
        assert_eq!(second.index, 1);
        assert_ne!(second.thumbprint, first.thumbprint);
        assert_eq!(MiCredential::valid(&p, after46).len(), 2, "the old credential is still inside its notAfter");
        assert_eq!(MiCredential::rotations_between(&p, start, after46).len(), 1);
        assert_eq!(MiCredential::rotations_between(&p, start, start + Duration::days(92)).len(), 2);
        let later = start + Duration::days(92);
        let valid = MiCredential::valid(&p, later);
        assert_eq!(valid.iter().map(|c| c.index).collect::<Vec<_>>(), vec![2, 1], "credential 0 expired at day 90");
    }
}
