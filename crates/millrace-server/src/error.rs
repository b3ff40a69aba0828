//! AWS error responses and the single mapping from engine errors onto them.

use millrace_engine::Error;
use millrace_wire::validate::InputError;

/// An error as the client sees it: code, HTTP status and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub status: u16,
    pub message: Option<String>,
    /// `message` for modelled Kinesis errors, `Message` for SerializationException.
    pub capital_message_key: bool,
    /// How the body is written when it is not the request's format: CBOR for errors found
    /// before a JSON 1.1 request was recognised, or a fixed body (XML, Coral 1.0 JSON).
    pub wire: Option<ErrorWire>,
}

/// An error body in a shape other than the request's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorWire {
    /// `{"__type": …}` in CBOR.
    Cbor,
    /// A fixed body, with its content type if it has one.
    Fixed {
        content_type: Option<&'static str>,
        body: Vec<u8>,
    },
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: 400,
            message: Some(message.into()),
            capital_message_key: false,
            wire: None,
        }
    }

    /// An error with a fixed body (and no `__type` JSON).
    pub fn fixed(
        code: &'static str,
        status: u16,
        content_type: Option<&'static str>,
        body: impl Into<Vec<u8>>,
    ) -> ApiError {
        ApiError {
            code,
            status,
            message: None,
            capital_message_key: false,
            wire: Some(ErrorWire::Fixed {
                content_type,
                body: body.into(),
            }),
        }
    }

    /// The same error, written in CBOR.
    pub fn in_cbor(mut self) -> ApiError {
        self.wire = Some(ErrorWire::Cbor);
        self
    }

    /// An error whose body is only `{"__type": code}`.
    pub fn bare(code: &'static str) -> ApiError {
        ApiError {
            code,
            status: 400,
            message: None,
            capital_message_key: false,
            wire: None,
        }
    }

    pub fn serialization(message: Option<String>) -> ApiError {
        ApiError {
            code: "SerializationException",
            status: 400,
            message,
            capital_message_key: true,
            wire: None,
        }
    }

    pub fn internal() -> ApiError {
        ApiError {
            code: "InternalFailure",
            status: 500,
            message: None,
            capital_message_key: false,
            wire: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), self.code.into());
        if let Some(message) = &self.message {
            let key = if self.capital_message_key {
                "Message"
            } else {
                "message"
            };
            body.insert(key.into(), message.clone().into());
        }
        serde_json::to_vec(&body).expect("error bodies serialize")
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> ApiError {
        match error {
            InputError::Serialization { message } => ApiError::serialization(message),
            InputError::Validation { message } => ApiError::new("ValidationException", message),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        match error {
            Error::ResourceNotFound(m) => ApiError::new("ResourceNotFoundException", m),
            Error::ResourceInUse(m) => ApiError::new("ResourceInUseException", m),
            Error::LimitExceeded(m) => ApiError::new("LimitExceededException", m),
            Error::InvalidArgument(m) => ApiError::new("InvalidArgumentException", m),
            Error::ExpiredIterator(m) => ApiError::new("ExpiredIteratorException", m),
            Error::ProvisionedThroughputExceeded(m) => {
                ApiError::new("ProvisionedThroughputExceededException", m)
            }
            Error::ExpiredNextToken(m) => ApiError::new("ExpiredNextTokenException", m),
            Error::Validation(m) => ApiError::new("ValidationException", m),
            Error::AccessDenied(m) => ApiError::new("AccessDeniedException", m),
            Error::KmsDisabled(m) => ApiError::new("KMSDisabledException", m),
            Error::KmsInvalidState(m) => ApiError::new("KMSInvalidStateException", m),
            Error::KmsNotFound(m) => ApiError::new("KMSNotFoundException", m),
            Error::KmsAccessDenied(m) => ApiError::new("KMSAccessDeniedException", m),
            Error::KmsThrottling(m) => ApiError::new("KMSThrottlingException", m),
            Error::Internal(detail) => {
                tracing::error!(%detail, "request failed inside the server");
                ApiError::internal()
            }
        }
    }
}
