//! Microsoft.ContainerRegistry: registries clusters pull images from.

pub mod registries;
