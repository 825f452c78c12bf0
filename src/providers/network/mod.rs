//! Microsoft.Network: the virtual networks and subnets custom-VNet AKS clusters use.

pub mod subnets;
pub mod virtual_networks;
