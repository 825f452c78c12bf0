//! The one source of time. Every timestamp, expiry, rotation, propagation delay and
//! operation duration reads [`Clock::now`]; direct calls to the system time are banned by
//! clippy's `disallowed-methods` (see `clippy.toml`) everywhere but here.
//!
//! In *real* mode simulated time follows the wall clock plus an offset (advancing jumps ahead
//! and time keeps running); in *frozen* mode it moves only when told.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// How simulated time moves between explicit advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClockMode {
    /// Wall time plus an offset.
    Real,
    /// Stands still until advanced.
    Frozen,
}

/// The persisted form of the clock: enough to restore it after a restart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClockState {
    pub mode: ClockMode,
    /// Simulated minus wall time, in nanoseconds (real mode).
    pub offset_ns: i64,
    /// The instant time stands at (frozen mode).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub frozen_at: Option<OffsetDateTime>,
}

/// A refused clock change.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("the clock never moves backwards: {to} is before the current time {now}")]
    Backwards { now: String, to: String },
    #[error("advancing by {by} would leave the range of representable times")]
    OutOfRange { by: String },
}

/// Simulated time, shared by the whole server.
#[derive(Debug)]
pub struct Clock {
    state: Mutex<ClockState>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::real()
    }
}

impl Clock {
    /// A clock that follows wall time.
    pub fn real() -> Self {
        Self::from_state(ClockState { mode: ClockMode::Real, offset_ns: 0, frozen_at: None })
    }

    /// A clock standing still at `at` (tests use this for determinism).
    pub fn frozen_at(at: OffsetDateTime) -> Self {
        Self::from_state(ClockState { mode: ClockMode::Frozen, offset_ns: 0, frozen_at: Some(at) })
    }

    pub fn from_state(state: ClockState) -> Self {
        Self { state: Mutex::new(state) }
    }

    /// Wall time. Only token lifetimes use it, because clients (az, MSAL) cache tokens by
    /// their own wall clock; everything simulated uses [`Clock::now`].
    #[expect(clippy::disallowed_methods, reason = "the one place wall time is read")]
    pub fn wall_now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// The current simulated time.
    pub fn now(&self) -> OffsetDateTime {
        Self::now_of(&self.lock())
    }

    fn now_of(state: &ClockState) -> OffsetDateTime {
        match state.mode {
            ClockMode::Real => Self::wall_now() + Duration::nanoseconds(state.offset_ns),
            ClockMode::Frozen => state.frozen_at.unwrap_or_else(Self::wall_now),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        // A poisoned clock still holds a valid state: recover it rather than propagate.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts the clock back to a saved state (state import, reset).
    pub fn restore(&self, state: ClockState) {
        *self.lock() = state;
    }

    pub fn state(&self) -> ClockState {
        self.lock().clone()
    }

    pub fn mode(&self) -> ClockMode {
        self.lock().mode
    }

    /// Moves time forward by `by` (which must not be negative).
    pub fn advance_by(&self, by: Duration) -> Result<OffsetDateTime, ClockError> {
        let now = self.now();
        let to = now.checked_add(by).ok_or_else(|| ClockError::OutOfRange { by: by.to_string() })?;
        self.advance_to(to)
    }

    /// Moves time forward to `to`; never backwards.
    pub fn advance_to(&self, to: OffsetDateTime) -> Result<OffsetDateTime, ClockError> {
        let mut state = self.lock();
        let now = Self::now_of(&state);
        if to < now {
            return Err(ClockError::Backwards { now: rfc3339(now), to: rfc3339(to) });
        }
        match state.mode {
            ClockMode::Real => {
                let delta = to - Self::wall_now();
                // Real mode keeps a nanosecond offset: about 292 years of simulated lead.
                state.offset_ns = i64::try_from(delta.whole_nanoseconds())
                    .map_err(|_| ClockError::OutOfRange { by: delta.to_string() })?;
            }
            ClockMode::Frozen => state.frozen_at = Some(to),
        }
        Ok(to)
    }

    /// Stops time at the current instant.
    pub fn freeze(&self) -> OffsetDateTime {
        let mut state = self.lock();
        let now = Self::now_of(&state);
        state.mode = ClockMode::Frozen;
        state.frozen_at = Some(now);
        now
    }

    /// Lets time run again from where it stands.
    pub fn resume(&self) -> OffsetDateTime {
        let mut state = self.lock();
        let now = Self::now_of(&state);
        state.mode = ClockMode::Real;
        state.offset_ns = i64::try_from((now - Self::wall_now()).whole_nanoseconds()).unwrap_or(0);
        state.frozen_at = None;
        now
    }
}

/// Formats an instant as ARM does: RFC 3339 in UTC with seven fractional digits
/// (`2026-11-29T03:04:05.1234567Z`, .NET's round-trip form).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

/// Parses an RFC 3339 instant.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("'{s}' is not an RFC 3339 time: {e}"))
}

/// Parses a duration such as `46d`, `1h30m`, `90s`, `250ms` or `2w`.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("an empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("'{input}' is not a duration (expected e.g. 46d, 1h30m, 90s)"));
        }
        let n: i64 = rest[..digits].parse().map_err(|_| format!("'{input}' is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        // Checked arithmetic: a client's "99999999999999d" is an error, not a panic.
        let seconds_per_unit: Option<i64> = match unit {
            "w" => Some(7 * 86_400),
            "d" => Some(86_400),
            "h" => Some(3_600),
            "m" => Some(60),
            "s" | "" => Some(1),
            "ms" => None,
            _ => return Err(format!("'{input}' has an unknown unit '{unit}' (use w, d, h, m, s, ms)")),
        };
        let part = match seconds_per_unit {
            Some(factor) => n.checked_mul(factor).map(Duration::seconds),
            None => Some(Duration::milliseconds(n)),
        }
        .ok_or_else(|| format!("'{input}' is too large"))?;
        total = total.checked_add(part).ok_or_else(|| format!("'{input}' is too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn arm_timestamps_have_seven_fractional_digits() {
        let t = datetime!(2026-11-29 03:04:05.123456789 UTC);
        assert_eq!(rfc3339(t), "2026-11-29T03:04:05.1234567Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)).unwrap(), datetime!(2026-11-29 03:04:05.1234567 UTC));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("46d").unwrap(), Duration::days(46));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::milliseconds(250));
        assert_eq!(parse_duration("2w").unwrap(), Duration::days(14));
        assert_eq!(parse_duration("90").unwrap(), Duration::seconds(90));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("-3d").is_err());
        assert!(parse_duration("999999999999999d").is_err(), "overflow is an error, not a panic");
        assert!(Clock::real().advance_by(Duration::days(365 * 20_000)).is_err(), "past year 9999");
        assert!(Clock::real().advance_by(Duration::days(365 * 1_000)).is_err(), "past the real-mode offset range");
        assert!(
            Clock::frozen_at(time::macros::datetime!(2026-01-01 0:00 UTC))
                .advance_by(Duration::days(365 * 1_000))
                .is_ok()
        );
    }

    #[test]
    fn frozen_clock_moves_only_when_told_and_never_back() {
        let clock = Clock::frozen_at(datetime!(2026-01-01 0:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-01 0:00 UTC));
        clock.advance_by(Duration::days(46)).unwrap();
        assert_eq!(clock.now(), datetime!(2026-02-16 0:00 UTC));
        assert!(clock.advance_to(datetime!(2026-01-02 0:00 UTC)).is_err());
        assert_eq!(clock.now(), datetime!(2026-02-16 0:00 UTC));
    }

    #[test]
    fn real_clock_keeps_running_after_an_advance() {
        let clock = Clock::real();
        let before = clock.now();
        clock.advance_by(Duration::days(46)).unwrap();
        let after = clock.now();
        assert!(after - before >= Duration::days(46));
        assert!(after - before < Duration::days(46) + Duration::minutes(1));
        let frozen = clock.freeze();
        assert_eq!(clock.now(), frozen);
        clock.resume();
        assert!(clock.now() >= frozen);
    }
}
