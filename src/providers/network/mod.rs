//! Microsoft.Network: the virtual networks and subnets custom-VNet AKS clusters use.

pub mod subnets;
pub mod virtual_networks;

use crate::arm::ArmResult;
use crate::arm_error;

/// Microsoft.Network's naming rule: `min..=max` characters, word characters, `.`, `-` and
/// `_`, beginning with a word character and ending with one or with `_`.
pub fn validate_name(name: &str, min: usize, max: usize) -> ArmResult<()> {
    let chars: Vec<char> = name.chars().collect();
    let word = |c: &char| c.is_alphanumeric() || *c == '_';
    let valid = (min..=max).contains(&chars.len())
        && chars.iter().all(|c| word(c) || *c == '.' || *c == '-')
        && chars.first().is_some_and(word)
        && chars.last().is_some_and(word);
    if valid {
        return Ok(());
    }
    Err(arm_error!(
        InvalidResourceName,
        "Resource name {name} is invalid. The name can be up to {max} characters long. It must begin with a word character, and it must end with a word character or with '_'. The name may contain word characters or '.', '-', '_'."
    ))
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn network_names() {
        assert!(validate_name("vnet-1", 2, 64).is_ok());
        assert!(validate_name("a_", 2, 64).is_ok());
        assert!(validate_name("a", 2, 64).is_err());
        assert!(validate_name("-vnet", 2, 64).is_err());
        assert!(validate_name("vnet.", 2, 64).is_err());
        assert!(validate_name("v net", 2, 64).is_err());
        assert!(validate_name(&"s".repeat(80), 1, 80).is_ok());
        assert!(validate_name(&"s".repeat(81), 1, 80).is_err());
    }
}
