//! Headers ARM puts on every response: `x-ms-request-id`, `x-ms-correlation-request-id`
//! (echoed, or made up), `x-ms-routing-request-id`, the throttling counters, `Date` from the
//! simulated clock, and `x-ms-client-request-id` when the client asks for it back.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use time::OffsetDateTime;

/// The HTTP-date form (`Sun, 29 Nov 2026 03:04:05 GMT`).
pub fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[t.month() as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Adds ARM's response headers, given the request's method and headers.
pub fn decorate(method: &Method, request: &HeaderMap, response: &mut HeaderMap, now: OffsetDateTime) {
    let request_id = crate::ids::uuid().to_string();
    let correlation = request
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.clone(), str::to_owned);
    set(response, "x-ms-request-id", &request_id);
    set(response, "x-ms-correlation-request-id", &correlation);
    let stamp = now.to_offset(time::UtcOffset::UTC);
    set(
        response,
        "x-ms-routing-request-id",
        &format!(
            "LOCAL:{:04}{:02}{:02}T{:02}{:02}{:02}Z:{request_id}",
            stamp.year(),
            stamp.month() as u8,
            stamp.day(),
            stamp.hour(),
            stamp.minute(),
            stamp.second()
        ),
    );
    let (name, remaining) = match *method {
        Method::GET | Method::HEAD => ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
        Method::DELETE => ("x-ms-ratelimit-remaining-subscription-deletes", "14999"),
        _ => ("x-ms-ratelimit-remaining-subscription-writes", "1199"),
    };
    set(response, name, remaining);
    if request
        .get("x-ms-return-client-request-id")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && let Some(client_id) = request.get("x-ms-client-request-id")
    {
        response.insert(HeaderName::from_static("x-ms-client-request-id"), client_id.clone());
    }
    set(response, "date", &http_date(now));
    response.entry(HeaderName::from_static("cache-control")).or_insert(HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(datetime!(2026-11-29 03:04:05 UTC)), "Sun, 29 Nov 2026 03:04:05 GMT");
    }
}
