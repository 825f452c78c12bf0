//! Every random value armlet makes (GUIDs, suffixes, secrets, fault dice) comes from here, so
//! that `--seed N` makes them reproducible: the same requests in the same order then produce
//! the same ids. Signing keys and certificates are not covered (they come from the crypto
//! libraries' own generators).

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use uuid::Uuid;

static SEEDED: Mutex<Option<StdRng>> = Mutex::new(None);

/// Makes every later value follow from `seed` (`None`: back to the system's randomness).
pub fn seed(seed: Option<u64>) {
    *SEEDED.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = seed.map(StdRng::seed_from_u64);
}

/// Whether values are currently seeded.
pub fn is_seeded() -> bool {
    SEEDED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
}

/// Random bytes, from the seeded generator when there is one.
pub fn fill(bytes: &mut [u8]) {
    match SEEDED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
        Some(rng) => rng.fill_bytes(bytes),
        None => rand::thread_rng().fill_bytes(bytes),
    }
}

/// A version 4 GUID.
pub fn uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A number in `[0, 1)` (for fault probabilities).
pub fn unit() -> f64 {
    match SEEDED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
        Some(rng) => rng.r#gen::<f64>(),
        None => rand::thread_rng().r#gen::<f64>(),
    }
}

/// `len` lowercase hex digits.
pub fn hex(len: usize) -> String {
    let mut bytes = vec![0u8; len.div_ceil(2)];
    fill(&mut bytes);
    let mut out: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_values_repeat() {
        seed(Some(42));
        let a = (uuid(), hex(8));
        seed(Some(42));
        let b = (uuid(), hex(8));
        seed(None);
        assert_eq!(a, b);
        assert_eq!(a.0.get_version_num(), 4);
        assert_ne!(uuid(), uuid());
    }
}
