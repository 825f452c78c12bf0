//! Node images (VHDs) and their releases, on the simulated clock. AKS ships a new node image
//! every couple of weeks and rolls it out region by region over a few days; a node image
//! upgrade only does something once a newer image has reached the pool's region. armlet's
//! schedule comes from `fixtures/node_images.json` (a release every `cadenceDays` since
//! `firstRelease`, regions reached ring by ring over `rolloutHours`); releases published through
//! the control API (`armlet node-images publish`) are stored and join the schedule.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::fixtures;
use crate::store::{StoreError, Tx};

const PUBLISHED_PREFIX: &str = "nodeimage/";

/// One node image release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// `YYYYMM.DD.N`, the part after the OS SKU prefix.
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub released: OffsetDateTime,
    /// Hours from the first ring to the last.
    pub rollout_hours: i64,
    /// Only these regions get it (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<String>>,
    /// Published through the control API rather than scheduled.
    #[serde(default)]
    pub published: bool,
}

/// `YYYYMM.DD.N` as numbers, for ordering.
pub fn version_key(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.');
    let month = parts.next()?;
    let day = parts.next()?;
    let build = parts.next()?;
    if parts.next().is_some() || month.len() != 6 || day.len() != 2 {
        return None;
    }
    Some((month.parse().ok()?, day.parse().ok()?, build.parse().ok()?))
}

/// The version part of a full image name (`AKSUbuntu-2404gen2containerd-202611.16.0`).
pub fn version_of(image: &str) -> &str {
    image.rsplit('-').next().unwrap_or(image)
}

/// The image name prefix for an OS SKU (Ubuntu's for unknown SKUs).
pub fn prefix_for(os_sku: &str) -> &'static str {
    let catalog = fixtures::node_images();
    catalog
        .os_skus
        .iter()
        .find(|(sku, _)| sku.eq_ignore_ascii_case(os_sku))
        .or_else(|| catalog.os_skus.iter().find(|(sku, _)| sku.as_str() == "Ubuntu"))
        .map(|(_, prefix)| prefix.as_str())
        .unwrap_or("AKSUbuntu-2404gen2containerd")
}

/// The ring a region is in (regions in no ring form the last).
fn ring_of(location: &str) -> usize {
    let rings = &fixtures::node_images().rings;
    rings.iter().position(|ring| ring.iter().any(|r| r.eq_ignore_ascii_case(location))).unwrap_or(rings.len())
}

impl Release {
    /// When the release reaches `location`, if it ever does.
    pub fn available_at(&self, location: &str) -> Option<OffsetDateTime> {
        if let Some(only) = &self.locations
            && !only.iter().any(|l| l.eq_ignore_ascii_case(location))
        {
            return None;
        }
        let rings = fixtures::node_images().rings.len() as i64;
        let minutes = self.rollout_hours * 60 * ring_of(location) as i64 / rings.max(1);
        Some(self.released + Duration::minutes(minutes))
    }

    pub fn is_available(&self, location: &str, now: OffsetDateTime) -> bool {
        self.available_at(location).is_some_and(|at| at <= now)
    }
}

fn scheduled(index: i64) -> Release {
    let catalog = fixtures::node_images();
    let released = catalog.first_release + Duration::days(catalog.cadence_days * index);
    Release {
        version: format!("{:04}{:02}.{:02}.0", released.year(), released.month() as u8, released.day()),
        released,
        rollout_hours: catalog.rollout_hours,
        locations: None,
        published: false,
    }
}

/// Scheduled releases from `from` to `to`.
fn scheduled_between(from: OffsetDateTime, to: OffsetDateTime) -> Vec<Release> {
    let catalog = fixtures::node_images();
    let cadence = Duration::days(catalog.cadence_days.max(1));
    let index = |at: OffsetDateTime| ((at - catalog.first_release).whole_seconds() / cadence.whole_seconds()).max(0);
    (index(from)..=index(to)).map(scheduled).filter(|r| r.released >= from && r.released <= to).collect()
}

/// The releases armlet knows at a moment: the schedule and what was published.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    published: Vec<Release>,
}

impl Catalog {
    pub fn load(tx: &Tx<'_>) -> Result<Self, StoreError> {
        Ok(Self { published: tx.scan::<Release>(PUBLISHED_PREFIX)?.into_iter().map(|(_, r)| r).collect() })
    }

    /// Releases that could matter at `now`: the recent schedule and every published one.
    pub fn releases_around(&self, now: OffsetDateTime, past: Duration, ahead: Duration) -> Vec<Release> {
        let mut all = scheduled_between(now - past, now + ahead);
        all.extend(self.published.iter().cloned());
        all.sort_by_key(|r| version_key(&r.version));
        all
    }

    /// The newest version available in `location` at `now`.
    pub fn latest_version(&self, location: &str, now: OffsetDateTime) -> String {
        let rollout = Duration::hours(fixtures::node_images().rollout_hours.max(0));
        let window = Duration::days(fixtures::node_images().cadence_days.max(1) * 2) + rollout;
        self.releases_around(now, window, Duration::ZERO)
            .into_iter()
            .filter(|r| r.is_available(location, now))
            .max_by_key(|r| version_key(&r.version))
            .map(|r| r.version)
            .unwrap_or_else(|| scheduled(0).version)
    }

    /// The newest image for an OS SKU in `location` at `now`.
    pub fn latest(&self, os_sku: &str, location: &str, now: OffsetDateTime) -> String {
        format!("{}-{}", prefix_for(os_sku), self.latest_version(location, now))
    }

    /// Images released to `location` in the last 90 days (what a rollback may pick).
    pub fn recent(&self, os_sku: &str, location: &str, now: OffsetDateTime) -> Vec<String> {
        self.releases_around(now, Duration::days(90), Duration::ZERO)
            .into_iter()
            .filter(|r| r.is_available(location, now))
            .map(|r| format!("{}-{}", prefix_for(os_sku), r.version))
            .collect()
    }

    /// The release `version`, scheduled or published.
    pub fn find(&self, version: &str, now: OffsetDateTime) -> Option<Release> {
        self.published.iter().find(|r| r.version == version).cloned().or_else(|| {
            let far = Duration::days(3650);
            scheduled_between(now - far, now + far).into_iter().find(|r| r.version == version)
        })
    }

    /// A version for a release published at `at`: its date, numbered after any release of
    /// the same day, so it is newer than everything released before it.
    pub fn next_version(&self, at: OffsetDateTime) -> String {
        let day = format!("{:04}{:02}.{:02}", at.year(), at.month() as u8, at.day());
        let taken = self
            .releases_around(at, Duration::days(1), Duration::days(1))
            .into_iter()
            .filter(|r| r.version.starts_with(&format!("{day}.")))
            .filter_map(|r| version_key(&r.version).map(|k| k.2))
            .max();
        format!("{day}.{}", taken.map_or(0, |n| n + 1))
    }
}

/// Stores a published release.
pub fn publish(tx: &mut Tx<'_>, release: &Release) -> Result<(), StoreError> {
    tx.put(format!("{PUBLISHED_PREFIX}{}", release.version), release)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn empty() -> Catalog {
        Catalog::default()
    }

    #[test]
    fn versions_order_numerically() {
        assert!(version_key("202611.16.0") < version_key("202611.16.1"));
        assert!(version_key("202611.30.0") > version_key("202611.16.9"));
        assert_eq!(version_key("2026.11.16"), None);
        assert_eq!(version_of("AKSUbuntu-2404gen2containerd-202611.16.0"), "202611.16.0");
    }

    #[test]
    fn a_release_reaches_regions_ring_by_ring() {
        let catalog = empty();
        // 2026-03-09 is a scheduled release (every 14 days since 2025-09-08).
        let release = datetime!(2026-03-09 00:00 UTC);
        let before = catalog.latest_version("westus2", release - Duration::hours(1));
        let canary = catalog.latest_version("westcentralus", release + Duration::hours(1));
        assert_eq!(canary, "202603.09.0");
        assert_eq!(catalog.latest_version("westus2", release + Duration::hours(1)), before, "not in westus2 yet");
        assert_eq!(catalog.latest_version("westus2", release + Duration::hours(96)), "202603.09.0");
        assert_eq!(catalog.latest_version("brazilsouth", release + Duration::hours(95)), before, "last ring");
    }

    #[test]
    fn a_published_release_is_newer_and_can_target_regions() {
        let now = datetime!(2026-03-12 12:00 UTC);
        let mut catalog = empty();
        let version = catalog.next_version(now);
        assert_eq!(version, "202603.12.0");
        catalog.published.push(Release {
            version: version.clone(),
            released: now,
            rollout_hours: 0,
            locations: Some(vec!["westus2".into()]),
            published: true,
        });
        assert_eq!(catalog.latest_version("westus2", now), version);
        assert_ne!(catalog.latest_version("eastus", now), version);
        assert_eq!(catalog.next_version(now), "202603.12.1");
        assert!(catalog.latest("AzureLinux", "westus2", now).starts_with("AKSAzureLinux-V3gen2-202603.12.0"));
    }
}
