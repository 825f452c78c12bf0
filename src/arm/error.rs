//! ARM's error envelope, `{"error":{"code","message","target","details"}}`, built from one
//! catalogue of codes (common-types v6 `ErrorResponse`; RPC "Error Response Content").

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Every error code armlet answers with, and the status ARM sends it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // ---- request shape ----
    MissingApiVersionParameter,
    InvalidApiVersionParameter,
    NoRegisteredProviderFound,
    InvalidRequestContent,
    RequestEntityTooLarge,
    InvalidResourceNamespace,
    InvalidResourceType,
    InvalidSubscriptionId,
    LocationRequired,
    LocationNotAvailableForResourceGroup,
    LocationNotAvailableForResourceType,
    InvalidResourceGroup,
    InvalidResourceGroupLocation,
    InvalidResourceName,
    InvalidFilterInQueryString,
    BadRequest,
    MethodNotAllowed,
    UnsupportedMediaType,
    RequestTimeout,
    InvalidResourceId,
    // ---- authorization ----
    RoleDefinitionDoesNotExist,
    InvalidRoleDefinitionId,
    RoleDefinitionWithSameNameExists,
    RoleDefinitionNameNullOrEmpty,
    RoleDefinitionHasAssignments,
    InvalidRoleAssignmentId,
    InvalidPrincipalId,
    PrincipalNotFound,
    RoleAssignmentUpdateNotPermitted,
    RoleAssignmentNotFound,
    // ---- lookups ----
    SubscriptionNotFound,
    ResourceGroupNotFound,
    ResourceNotFound,
    NotFound,
    OperationNotFound,
    // ---- authentication ----
    AuthenticationFailed,
    InvalidAuthenticationToken,
    InvalidAuthenticationTokenAudience,
    InvalidAuthenticationTokenTenant,
    ExpiredAuthenticationToken,
    // ---- state ----
    RoleAssignmentExists,
    AuthorizationFailed,
    LinkedAuthorizationFailed,
    Conflict,
    ResourceGroupBeingDeleted,
    PreconditionFailed,
    // ---- Microsoft.ContainerService ----
    K8sVersionNotSupported,
    OperationNotAllowed,
    CustomKubeletIdentityMissingPermissionError,
    CustomKubeletIdentityOnlySupportedOnUserAssignedMSICluster,
    RegionNotSupported,
    MustDefineAtLeastOneSystemPool,
    ServicePrincipalNotFound,
    ServicePrincipalValidationClientError,
    PropertyChangeNotAllowed,
    NodeResourceGroupAlreadyExists,
    NodeResourceGroupSameAsResourceGroup,
    GetUserAssignedIdentityResourceError,
    InvalidParameter,
    AgentPoolNotFound,
    NotSupported,
    CustomKubeletIdentityPropertyError,
    OIDCIssuerCannotBeDisabled,
    InvalidRequestFormat,
    InvalidAddressPrefixFormat,
    NetcfgSubnetRangeOutsideVnet,
    NetcfgSubnetRangesOverlap,
    // ---- armlet's side ----
    NotImplemented,
    InternalServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MissingApiVersionParameter => "MissingApiVersionParameter",
            InvalidApiVersionParameter => "InvalidApiVersionParameter",
            NoRegisteredProviderFound => "NoRegisteredProviderFound",
            InvalidRequestContent => "InvalidRequestContent",
            RequestEntityTooLarge => "RequestEntityTooLarge",
            InvalidResourceNamespace => "InvalidResourceNamespace",
            InvalidResourceType => "InvalidResourceType",
            InvalidSubscriptionId => "InvalidSubscriptionId",
            LocationRequired => "LocationRequired",
            LocationNotAvailableForResourceGroup => "LocationNotAvailableForResourceGroup",
            LocationNotAvailableForResourceType => "LocationNotAvailableForResourceType",
            InvalidResourceGroup => "InvalidResourceGroup",
            InvalidResourceGroupLocation => "InvalidResourceGroupLocation",
            InvalidResourceName => "InvalidResourceName",
            InvalidFilterInQueryString => "InvalidFilterInQueryString",
            BadRequest => "BadRequest",
            MethodNotAllowed => "MethodNotAllowed",
            UnsupportedMediaType => "UnsupportedMediaType",
            RequestTimeout => "RequestTimeout",
            InvalidResourceId => "InvalidResourceId",
            RoleDefinitionDoesNotExist => "RoleDefinitionDoesNotExist",
            InvalidRoleDefinitionId => "InvalidRoleDefinitionId",
            RoleDefinitionWithSameNameExists => "RoleDefinitionWithSameNameExists",
            RoleDefinitionNameNullOrEmpty => "RoleDefinitionNameNullOrEmpty",
            RoleDefinitionHasAssignments => "RoleDefinitionHasAssignments",
            InvalidRoleAssignmentId => "InvalidRoleAssignmentId",
            InvalidPrincipalId => "InvalidPrincipalId",
            PrincipalNotFound => "PrincipalNotFound",
            RoleAssignmentUpdateNotPermitted => "RoleAssignmentUpdateNotPermitted",
            RoleAssignmentNotFound => "RoleAssignmentNotFound",
            RoleAssignmentExists => "RoleAssignmentExists",
            AuthorizationFailed => "AuthorizationFailed",
            LinkedAuthorizationFailed => "LinkedAuthorizationFailed",
            SubscriptionNotFound => "SubscriptionNotFound",
            ResourceGroupNotFound => "ResourceGroupNotFound",
            ResourceNotFound => "ResourceNotFound",
            NotFound => "NotFound",
            OperationNotFound => "OperationNotFound",
            AuthenticationFailed => "AuthenticationFailed",
            InvalidAuthenticationToken => "InvalidAuthenticationToken",
            InvalidAuthenticationTokenAudience => "InvalidAuthenticationTokenAudience",
            InvalidAuthenticationTokenTenant => "InvalidAuthenticationTokenTenant",
            ExpiredAuthenticationToken => "ExpiredAuthenticationToken",
            Conflict => "Conflict",
            ResourceGroupBeingDeleted => "ResourceGroupBeingDeleted",
            PreconditionFailed => "PreconditionFailed",
            K8sVersionNotSupported => "K8sVersionNotSupported",
            OperationNotAllowed => "OperationNotAllowed",
            CustomKubeletIdentityMissingPermissionError => "CustomKubeletIdentityMissingPermissionError",
            CustomKubeletIdentityOnlySupportedOnUserAssignedMSICluster => {
                "CustomKubeletIdentityOnlySupportedOnUserAssignedMSICluster"
            }
            RegionNotSupported => "RegionNotSupported",
            MustDefineAtLeastOneSystemPool => "MustDefineAtLeastOneSystemPool",
            ServicePrincipalNotFound => "ServicePrincipalNotFound",
            ServicePrincipalValidationClientError => "ServicePrincipalValidationClientError",
            PropertyChangeNotAllowed => "PropertyChangeNotAllowed",
            NodeResourceGroupAlreadyExists => "NodeResourceGroupAlreadyExists",
            NodeResourceGroupSameAsResourceGroup => "NodeResourceGroupSameAsResourceGroup",
            GetUserAssignedIdentityResourceError => "GetUserAssignedIdentityResourceError",
            InvalidParameter => "InvalidParameter",
            AgentPoolNotFound => "AgentPoolNotFound",
            NotSupported => "NotSupported",
            CustomKubeletIdentityPropertyError => "CustomKubeletIdentityPropertyError",
            OIDCIssuerCannotBeDisabled => "OIDCIssuerCannotBeDisabled",
            InvalidRequestFormat => "InvalidRequestFormat",
            InvalidAddressPrefixFormat => "InvalidAddressPrefixFormat",
            NetcfgSubnetRangeOutsideVnet => "NetcfgSubnetRangeOutsideVnet",
            NetcfgSubnetRangesOverlap => "NetcfgSubnetRangesOverlap",
            NotImplemented => "NotImplemented",
            InternalServerError => "InternalServerError",
        }
    }

    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            SubscriptionNotFound
            | ResourceGroupNotFound
            | ResourceNotFound
            | NotFound
            | OperationNotFound
            | InvalidResourceNamespace => StatusCode::NOT_FOUND,
            AuthenticationFailed
            | InvalidAuthenticationToken
            | InvalidAuthenticationTokenAudience
            | InvalidAuthenticationTokenTenant
            | ExpiredAuthenticationToken => StatusCode::UNAUTHORIZED,
            Conflict | ResourceGroupBeingDeleted | InvalidResourceGroupLocation | RoleAssignmentExists => {
                StatusCode::CONFLICT
            }
            AuthorizationFailed | LinkedAuthorizationFailed => StatusCode::FORBIDDEN,
            RoleAssignmentNotFound | AgentPoolNotFound => StatusCode::NOT_FOUND,
            OperationNotAllowed => StatusCode::CONFLICT,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            NotImplemented => StatusCode::NOT_IMPLEMENTED,
            InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An ARM error response.
#[derive(Debug, Clone)]
pub struct ArmError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub target: Option<String>,
    pub details: Vec<ArmError>,
    /// Extra headers, e.g. `WWW-Authenticate` on 401s.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Builds an [`ArmError`] with the code's status: `arm_error!(ResourceNotFound, "... {x}")`.
#[macro_export]
macro_rules! arm_error {
    ($code:ident, $($fmt:tt)+) => {
        $crate::arm::error::ArmError::new($crate::arm::error::ErrorCode::$code, format!($($fmt)+))
    };
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<Detail<'a>>,
}

impl ArmError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            message: message.into(),
            target: None,
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    fn detail(&self) -> Detail<'_> {
        Detail {
            code: self.code.as_str(),
            message: &self.message,
            target: self.target.as_deref(),
            details: self.details.iter().map(Self::detail).collect(),
        }
    }

    /// The JSON body, `{"error":{...}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body { error: self.detail() }).unwrap_or_default()
    }

    // ---- the errors every provider needs ----

    pub fn subscription_not_found(subscription: &str) -> Self {
        arm_error!(SubscriptionNotFound, "The subscription '{subscription}' could not be found.")
    }

    pub fn resource_group_not_found(group: &str) -> Self {
        arm_error!(ResourceGroupNotFound, "Resource group '{group}' could not be found.")
    }

    /// `type_name` is the full type, e.g. `Microsoft.ManagedIdentity/userAssignedIdentities`.
    pub fn resource_not_found(type_name: &str, name: &str, group: &str) -> Self {
        arm_error!(
            ResourceNotFound,
            "The Resource '{type_name}/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        )
    }

    pub fn invalid_request_content(reason: &str) -> Self {
        arm_error!(InvalidRequestContent, "The request content was invalid and could not be deserialized: '{reason}'.")
    }

    pub fn internal(reason: &str) -> Self {
        tracing::error!(error = reason, "internal error");
        arm_error!(InternalServerError, "The server encountered an internal error. Please retry the request.")
    }
}

impl From<StoreError> for ArmError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e.to_string())
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert("x-ms-failure-cause", HeaderValue::from_static("gateway"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

pub type ArmResult<T> = Result<T, ArmError>;
