//! Static description of an AWS service's shapes, as emitted by `cargo xtask codegen`.
//!
//! The tables hold what request checking and body transcoding need: operations with their input
//! shape, output shape and modelled errors, and for every shape reachable from an input, an
//! output or an error its type, members, required members, bounds, pattern, enum values and the
//! exception / event-stream / error traits, and what the awsQuery protocol needs besides (the
//! service's protocol and XML namespace, each output's result wrapper, flattened lists and maps,
//! XML item and entry names). Shapes refer to each other by index into [`ServiceModel::shapes`]; the generator
//! guarantees the indices are in range (and a test re-checks it), but lookups still go through
//! [`ServiceModel::shape`] so that a broken table degrades to "nothing to check" instead of a panic.

/// One service's operations and shapes.
#[derive(Debug)]
pub struct ServiceModel {
    /// `metadata.serviceId`, e.g. `Kinesis`.
    pub service_id: &'static str,
    /// `metadata.targetPrefix`, the part of `X-Amz-Target` before the dot, e.g. `Kinesis_20131202`;
    /// empty for awsQuery services, which name the operation in the `Action` parameter.
    pub target_prefix: &'static str,
    /// `metadata.apiVersion`, e.g. `2013-12-02`; awsQuery requests carry it as `Version`.
    pub api_version: &'static str,
    /// The SigV4 signing name: `metadata.signingName`, else `metadata.endpointPrefix` (`kinesis`,
    /// `monitoring`).
    pub signing_name: &'static str,
    /// `metadata.jsonVersion` (`1.0`, `1.1`): the content type is `application/x-amz-json-<v>`;
    /// empty where the model has none (awsQuery, restJson1).
    pub json_version: &'static str,
    /// `metadata.protocol`: how requests and replies are encoded.
    pub protocol: Protocol,
    /// `metadata.xmlNamespace`, the `xmlns` of awsQuery replies and errors (e.g.
    /// `https://iam.amazonaws.com/doc/2010-05-08/`); empty for JSON services.
    pub xml_namespace: &'static str,
    /// Java package of the service's Coral classes, used where AWS prints a structure's
    /// `toString()` (e.g. `com.amazonaws.kinesis.v20131202`).
    pub java_package: &'static str,
    /// Every operation, sorted by name.
    pub operations: &'static [Operation],
    /// Every shape reachable from an operation input, output or modelled error, sorted by name.
    pub shapes: &'static [Shape],
}

/// The wire protocol of a service (`metadata.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// awsJson 1.0 / 1.1 (`json`): `X-Amz-Target` names the operation, JSON bodies.
    Json,
    /// awsQuery (`query`): form-encoded POST with `Action` and `Version`, XML replies.
    Query,
    /// restJson1 (`rest-json`): the method and path name the operation, members are bound to
    /// the URI, query string, headers or the JSON body ([`HttpOperation`]).
    RestJson,
}

impl ServiceModel {
    /// The operation called `name` (exact, case-sensitive), if the model has it.
    pub fn operation(&self, name: &str) -> Option<&'static Operation> {
        let operations: &'static [Operation] = self.operations;
        let index = operations
            .binary_search_by(|operation| operation.name.cmp(name))
            .ok()?;
        operations.get(index)
    }

    /// The shape at `index` in [`ServiceModel::shapes`].
    pub fn shape(&self, index: usize) -> Option<&'static Shape> {
        let shapes: &'static [Shape] = self.shapes;
        shapes.get(index)
    }

    /// The shape called `name`, if it is reachable from an operation input, output or error.
    pub fn shape_named(&self, name: &str) -> Option<&'static Shape> {
        let shapes: &'static [Shape] = self.shapes;
        let index = shapes.binary_search_by(|shape| shape.name.cmp(name)).ok()?;
        shapes.get(index)
    }

    /// The input structure of operation `name`, if the operation exists and takes input.
    pub fn input_shape(&self, name: &str) -> Option<&'static Shape> {
        self.operation(name)?
            .input
            .and_then(|index| self.shape(index))
    }

    /// The output structure of operation `name`, if the operation exists and has output.
    pub fn output_shape(&self, name: &str) -> Option<&'static Shape> {
        self.operation(name)?
            .output
            .and_then(|index| self.shape(index))
    }
}

/// An operation: its name (the part of `X-Amz-Target` after the dot), its input and output
/// shapes and the errors it models.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub name: &'static str,
    /// Index of the input structure in [`ServiceModel::shapes`]; `None` when the model gives none.
    pub input: Option<usize>,
    /// Index of the output structure in [`ServiceModel::shapes`]; `None` when the operation
    /// answers with an empty body.
    pub output: Option<usize>,
    /// Indices of the modelled error structures, in model order.
    pub errors: &'static [usize],
    /// awsQuery only: the element that wraps the output members inside the reply (the output's
    /// `resultWrapper`, e.g. `CreateUserResult`).
    pub result_wrapper: Option<&'static str>,
}

/// A named shape and its constraints.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub kind: ShapeKind,
    /// Minimum length (string chars, blob bytes, list or map entries) or value (numbers).
    pub min: Option<i64>,
    /// Maximum length or value, as for `min`.
    pub max: Option<i64>,
    /// Regular expression in Java syntax, unanchored, exactly as AWS prints it in messages.
    pub pattern: Option<&'static str>,
    /// Allowed values of a string enum, in model order; empty when the string is free-form.
    pub enum_values: &'static [&'static str],
    /// The structure is a modelled error (`exception` trait); its members are the error body.
    pub exception: bool,
    /// The structure is an event-stream union (`eventstream` trait): each member is one event or
    /// exception type that can be sent on the stream.
    pub event_stream: bool,
    /// The structure is the payload of one event type (`event` trait).
    pub event: bool,
    /// The structure is a modelled error with an `error` trait: the code AWS sends for it, which
    /// can differ from the shape name (`NoSuchEntityException` is sent as `NoSuchEntity`).
    pub error: Option<ErrorTrait>,
    /// Lists and maps (awsQuery / XML): the items are not wrapped in a `member` / `entry` element
    /// but repeated under the member's own name (`flattened` trait).
    pub flattened: bool,
    /// Lists (awsQuery / XML): the name of each item, the list member's `locationName`; `None`
    /// means `member`.
    pub member_name: Option<&'static str>,
    /// Maps (awsQuery / XML): the names of an entry's key and value (`locationName` of the map's
    /// key and value); `None` means `key` and `value`.
    pub entry_names: Option<(&'static str, &'static str)>,
}

/// The `error` trait of an error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorTrait {
    /// The code on the wire (`Error/Code` in awsQuery).
    pub code: &'static str,
    /// The HTTP status the service answers with.
    pub http_status: u16,
    /// Whether the client caused it (`Sender`) rather than the service (`Receiver`).
    pub sender_fault: bool,
}

impl Shape {
    /// A shape without constraints; the generated tables add them with the methods below.
    pub const fn new(name: &'static str, kind: ShapeKind) -> Shape {
        Shape {
            name,
            kind,
            min: None,
            max: None,
            pattern: None,
            enum_values: &[],
            exception: false,
            event_stream: false,
            event: false,
            error: None,
            flattened: false,
            member_name: None,
            entry_names: None,
        }
    }

    pub const fn min(mut self, min: i64) -> Shape {
        self.min = Some(min);
        self
    }

    pub const fn max(mut self, max: i64) -> Shape {
        self.max = Some(max);
        self
    }

    pub const fn pattern(mut self, pattern: &'static str) -> Shape {
        self.pattern = Some(pattern);
        self
    }

    pub const fn enum_values(mut self, values: &'static [&'static str]) -> Shape {
        self.enum_values = values;
        self
    }

    pub const fn exception(mut self) -> Shape {
        self.exception = true;
        self
    }

    pub const fn event_stream(mut self) -> Shape {
        self.event_stream = true;
        self
    }

    pub const fn event(mut self) -> Shape {
        self.event = true;
        self
    }

    pub const fn error(
        mut self,
        code: &'static str,
        http_status: u16,
        sender_fault: bool,
    ) -> Shape {
        self.error = Some(ErrorTrait {
            code,
            http_status,
            sender_fault,
        });
        self
    }

    pub const fn flattened(mut self) -> Shape {
        self.flattened = true;
        self
    }

    pub const fn member_name(mut self, name: &'static str) -> Shape {
        self.member_name = Some(name);
        self
    }

    pub const fn entry_names(mut self, key: &'static str, value: &'static str) -> Shape {
        self.entry_names = Some((key, value));
        self
    }
}

/// The type of a shape, with the shapes it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    /// Members in model order.
    Structure(&'static [Member]),
    /// Index of the element shape.
    List(usize),
    /// Indices of the key and value shapes.
    Map {
        key: usize,
        value: usize,
    },
    String,
    Blob,
    Boolean,
    Integer,
    Long,
    Float,
    Double,
    Timestamp,
}

impl ShapeKind {
    /// Whether values of this kind are single JSON scalars (not structures, lists or maps).
    pub fn is_scalar(&self) -> bool {
        !matches!(
            self,
            ShapeKind::Structure(_) | ShapeKind::List(_) | ShapeKind::Map { .. }
        )
    }
}

/// A structure member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The name on the wire: the JSON key, the awsQuery parameter name and the XML element name
    /// (the member's `locationName` when it has one).
    pub name: &'static str,
    /// Index of the member's shape in [`ServiceModel::shapes`].
    pub shape: usize,
    pub required: bool,
}

impl Member {
    pub const fn required(name: &'static str, shape: usize) -> Member {
        Member {
            name,
            shape,
            required: true,
        }
    }

    pub const fn optional(name: &'static str, shape: usize) -> Member {
        Member {
            name,
            shape,
            required: false,
        }
    }
}

/// Where a restJson1 member travels (its `location` trait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A `{label}` of the request URI.
    Uri,
    /// A query-string parameter.
    Query,
    /// One HTTP header.
    Header,
    /// Every header starting with the binding's name (a map).
    Headers,
    /// The response's HTTP status code.
    StatusCode,
}

/// A structure member bound to a part of the HTTP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpBinding {
    /// The member's name (its key in the JSON document the service sees).
    pub member: &'static str,
    pub location: Location,
    /// The label, parameter or header name (`locationName`).
    pub name: &'static str,
}

/// One restJson1 operation: method, URI template, success code and the members bound outside
/// the JSON body.
#[derive(Debug, Clone, Copy)]
pub struct HttpOperation {
    pub name: &'static str,
    pub method: &'static str,
    /// The `requestUri`, e.g. `/2015-03-31/functions/{FunctionName}/invocations`; `{Label+}`
    /// is greedy; a `?` part lists literal query parameters the operation requires.
    pub uri: &'static str,
    /// The status of a success (`responseCode`, 200 when the model gives none).
    pub code: u16,
    pub input: &'static [HttpBinding],
    /// The input member that is the whole request body (`payload`), if any.
    pub input_payload: Option<&'static str>,
    pub output: &'static [HttpBinding],
    /// The output member that is the whole response body, if any.
    pub output_payload: Option<&'static str>,
}
