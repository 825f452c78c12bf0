//! The ARM protocol core, driven through the whole app: ids, api-versions, the error
//! envelope and headers, request bodies, paging and long-running operations.

mod api_version;
mod errors;
mod lro;
mod paging;
mod resource_id;
