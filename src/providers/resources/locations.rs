//! `Subscriptions_ListLocations`: the regions of `fixtures/locations.json`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::arm::{ArmRequest, ArmResult};
use crate::fixtures;
use crate::state::AppState;

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
