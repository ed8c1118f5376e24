//! The Systems Manager API as the delivery loop sees it: a small trait ([`SsmApi`]) with the real
//! implementation on `aws-sdk-ssm` (default credential chain — environment, shared files such as
//! the one the SSM agent writes on hybrid `mi-*` nodes, the instance role via IMDSv2 — and the
//! SDK's own endpoint overrides `AWS_ENDPOINT_URL_SSM` / `AWS_ENDPOINT_URL`). The SDK's own retries
//! are off: [`super::deliver`] retries with backoff inside one deadline, and every attempt here is
//! bounded by a timeout, so a response that never comes cannot outlive Run Command's timeout.
//! Errors are sorted into what to retry, what the service refused for good (the payload), and
//! what blocks delivery from this host until someone acts (credentials, permissions, registration).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::primitives::DateTime;
use aws_sdk_ssm::types::{
    ComplianceExecutionSummary, ComplianceItemEntry, ComplianceSeverity, ComplianceStatus,
    ComplianceUploadType, InventoryItem, ParameterType,
};

use super::payload::{ComplianceUpload, InventoryUpload};

/// How one API call ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Throttling, a 5xx, a reset connection, a timeout: try again later.
    #[error("{0}")]
    Retryable(String),
    /// The service refused this payload (validation, size, content): retrying cannot help.
    #[error("{code}: {message}")]
    Rejected { code: String, message: String },
    /// Nothing can be delivered from this host until someone acts: no or bad credentials, no
    /// permission, the instance not registered with SSM, no region.
    #[error("{code}: {message}")]
    Blocked { code: String, message: String },
}

impl ApiError {
    pub fn code(&self) -> &str {
        match self {
            ApiError::Retryable(_) => "Retryable",
            ApiError::Rejected { code, .. } | ApiError::Blocked { code, .. } => code,
        }
    }
}

/// What delivery needs from Systems Manager.
pub trait SsmApi {
    fn put_compliance_items(&mut self, upload: &ComplianceUpload) -> Result<(), ApiError>;
    fn put_inventory(&mut self, upload: &InventoryUpload) -> Result<(), ApiError>;
    /// Where requests go, for messages (`https://ssm.eu-west-1.amazonaws.com`, an override URL).
    fn endpoint(&self) -> String;
    /// Bound the next attempt to `limit` (what is left of the delivery deadline).
    fn set_attempt_timeout(&mut self, _limit: Duration) {}
}

/// Parameter Store, for pinning the FIM manifest digest.
pub trait ParameterApi {
    fn get_parameter(&mut self, name: &str) -> Result<String, ApiError>;
    fn put_parameter(&mut self, name: &str, value: &str, description: &str)
        -> Result<(), ApiError>;
}

/// Longest a single request may take (the whole delivery has its own deadline on top).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The real client.
pub struct SdkSsm {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_ssm::Client,
    endpoint: String,
    /// Per-attempt timeout (never more than [`ATTEMPT_TIMEOUT`]); lowered as the deadline nears.
    pub attempt_timeout: Duration,
}

impl SdkSsm {
    /// A client for `region` (else the SDK's region chain: `AWS_REGION`, the profile, IMDS).
    pub fn new(region: Option<&str>) -> Result<SdkSsm, ApiError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ApiError::Blocked {
                code: "Runtime".into(),
                message: format!("starting the async runtime: {e}"),
            })?;
        // HTTPS through rustls with ring's primitives and the system's trust store; used by the
        // SSM client and by the SDK's own credential and region providers alike.
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        let conf = rt.block_on(loader.load());
        let Some(region) = conf.region().map(|r| r.to_string()) else {
            return Err(ApiError::Blocked {
                code: "NoRegion".into(),
                message: "no AWS region: pass --region, or run under SSM (AWS_SSM_REGION_NAME), or set AWS_REGION".into(),
            });
        };
        let ssm_conf = aws_sdk_ssm::config::Builder::from(&conf).build();
        let endpoint = std::env::var("AWS_ENDPOINT_URL_SSM")
            .ok()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("https://ssm.{region}.amazonaws.com"));
        Ok(SdkSsm {
            rt,
            client: aws_sdk_ssm::Client::from_conf(ssm_conf),
            endpoint,
            attempt_timeout: ATTEMPT_TIMEOUT,
        })
    }

    /// Run one call within the attempt timeout.
    fn call<T, E, F>(&self, fut: F) -> Result<T, ApiError>
    where
        F: std::future::Future<
            Output = Result<T, SdkError<E, aws_sdk_ssm::config::http::HttpResponse>>,
        >,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let timeout = self.attempt_timeout;
        self.rt.block_on(async move {
            match tokio::time::timeout(timeout, fut).await {
                Err(_) => Err(ApiError::Retryable(format!(
                    "no response within {:.1} s",
                    timeout.as_secs_f64()
                ))),
                Ok(r) => r.map_err(classify),
            }
        })
    }
}

/// Codes that say "this host cannot deliver until someone fixes something".
const BLOCKING_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationToken",
    "InvalidResourceId",
    "InvalidInstanceId",
    "ParameterNotFound",
];

/// Codes worth another attempt.
const RETRY_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "TooManyUpdates",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Sort an SDK error into retry / rejected / blocked.
fn classify<E>(e: SdkError<E, aws_sdk_ssm::config::http::HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let message = se
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}"));
            if RETRY_CODES.contains(&code.as_str()) || status >= 500 {
                ApiError::Retryable(format!("{code} (HTTP {status}): {message}"))
            } else if BLOCKING_CODES.contains(&code.as_str()) || status == 403 {
                ApiError::Blocked { code, message }
            } else {
                ApiError::Rejected { code, message }
            }
        }
        SdkError::ConstructionFailure(_) => ApiError::Blocked {
            code: "RequestNotBuilt".into(),
            message: DisplayErrorContext(&e).to_string(),
        },
        SdkError::DispatchFailure(d) if !(d.is_io() || d.is_timeout() || d.is_other()) => {
            // Credentials that could not be resolved end here.
            ApiError::Blocked {
                code: "NotSent".into(),
                message: DisplayErrorContext(&e).to_string(),
            }
        }
        _ => ApiError::Retryable(DisplayErrorContext(&e).to_string()),
    }
}

fn not_built(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Rejected {
        code: "RequestNotBuilt".into(),
        message: format!("{what}: {e}"),
    }
}

impl SsmApi for SdkSsm {
    fn put_compliance_items(&mut self, u: &ComplianceUpload) -> Result<(), ApiError> {
        let mut items = Vec::with_capacity(u.items.len());
        for i in &u.items {
            items.push(
                ComplianceItemEntry::builder()
                    .id(&i.id)
                    .title(&i.title)
                    .severity(ComplianceSeverity::from(i.severity.as_str()))
                    .status(ComplianceStatus::from(i.status.as_str()))
                    .set_details(Some(
                        i.details
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect::<HashMap<_, _>>(),
                    ))
                    .build()
                    .map_err(|e| not_built("compliance item", e))?,
            );
        }
        let summary = ComplianceExecutionSummary::builder()
            .execution_time(DateTime::from_secs(u.execution_time))
            .set_execution_id(u.execution_id.clone())
            .set_execution_type(u.execution_type.clone())
            .build()
            .map_err(|e| not_built("execution summary", e))?;
        let fut = self
            .client
            .put_compliance_items()
            .resource_id(&u.resource_id)
            .resource_type(&u.resource_type)
            .compliance_type(&u.compliance_type)
            .execution_summary(summary)
            .set_items(Some(items))
            .item_content_hash(&u.item_content_hash)
            .upload_type(ComplianceUploadType::from(u.upload_type.as_str()))
            .send();
        self.call(fut).map(|_| ())
    }

    fn put_inventory(&mut self, u: &InventoryUpload) -> Result<(), ApiError> {
        let item = InventoryItem::builder()
            .type_name(&u.type_name)
            .schema_version(&u.schema_version)
            .capture_time(&u.capture_time)
            .content_hash(&u.content_hash)
            .content(
                u.content
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
            .build()
            .map_err(|e| not_built("inventory item", e))?;
        let fut = self
            .client
            .put_inventory()
            .instance_id(&u.instance_id)
            .items(item)
            .send();
        self.call(fut).map(|_| ())
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    fn set_attempt_timeout(&mut self, limit: Duration) {
        self.attempt_timeout = limit.min(ATTEMPT_TIMEOUT);
    }
}

impl ParameterApi for SdkSsm {
    fn get_parameter(&mut self, name: &str) -> Result<String, ApiError> {
        let fut = self.client.get_parameter().name(name).send();
        let out = self.call(fut)?;
        out.parameter()
            .and_then(|p| p.value())
            .map(str::to_string)
            .ok_or_else(|| ApiError::Rejected {
                code: "EmptyParameter".into(),
                message: format!("parameter {name} has no value"),
            })
    }

    fn put_parameter(
        &mut self,
        name: &str,
        value: &str,
        description: &str,
    ) -> Result<(), ApiError> {
        let fut = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .description(description)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send();
        self.call(fut).map(|_| ())
    }
}
