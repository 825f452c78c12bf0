//! `Subscriptions_ListLocations`: the regions of `fixtures/locations.json`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::arm::{ArmRequest, ArmResult};
use crate::state::AppState;
use crate::{arm_error, fixtures};

/// `GET /subscriptions/{subscriptionId}/locations`.
pub async fn list_locations(_state: AppState, req: ArmRequest) -> ArmResult<Response> {
    let sub = req.param("subscriptionId");
    let items: Vec<Value> = fixtures::regions()
        .iter()
        .map(|r| {
            let paired: Vec<Value> = r
                .paired_region
                .iter()
                .map(|p| json!({ "name": p, "id": format!("/subscriptions/{sub}/locations/{p}") }))
                .collect();
            json!({
                "id": format!("/subscriptions/{sub}/locations/{}", r.name),
                "name": r.name,
                "type": "Region",
                "displayName": r.display_name,
                "regionalDisplayName": r.regional_display_name,
                "metadata": {
                    "regionType": r.region_type,
                    "regionCategory": r.region_category,
                    "geography": r.geography,
                    "geographyGroup": r.geography_group,
                    "longitude": r.longitude,
                    "latitude": r.latitude,
                    "physicalLocation": r.physical_location,
                    "pairedRegion": paired,
                },
            })
        })
        .collect();
    // ARM answers locations in one page.
    crate::arm::json(StatusCode::OK, json!({ "value": items }))
}

/// Resolves a location for a resource type as ARM does (display names normalised).
pub fn normalize_location(location: &str, type_name: &str) -> ArmResult<String> {
    fixtures::region(location).map(|r| r.name.clone()).ok_or_else(|| {
        let names: Vec<&str> = fixtures::regions().iter().map(|r| r.display_name.as_str()).collect();
        arm_error!(
            LocationNotAvailableForResourceType,
            "The provided location '{location}' is not available for resource type '{type_name}'. List of available regions for the resource type is '{}'.",
            names.join(",").to_lowercase().replace(' ', "")
        )
    })
}

/// A tracked resource's `location`: required (`LocationRequired`), then normalised.
pub fn required_location(location: Option<&str>, type_name: &str) -> ArmResult<String> {
    let location = location
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| arm_error!(LocationRequired, "The location property is required for this definition."))?;
    normalize_location(location, type_name)
}
