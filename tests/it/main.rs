//! armlet's integration tests, one binary laid out like the source tree.

mod common;

mod admin;
mod arm_core;
mod auth;
mod authorization;
mod concurrency;
mod container_registry;
mod container_service;
mod crash_safety;
mod durability;
mod network;
mod regressions;
mod resources;
mod security;
