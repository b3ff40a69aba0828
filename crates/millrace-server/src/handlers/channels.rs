//! Kinesis Channels: the five channel operations, validated against the model, authorized on
//! the channel ARN (`arn:aws:kinesis:<region>:<account>:channel/<name>`; ListChannels on `*`,
//! CreateChannel also `iam:PassRole` on its service execution role), then run by the channel
//! service behind [`crate::channels_route::ChannelsFront`].

use super::Context;
use crate::error::ApiError;

/// The channel operations of the Kinesis model.
pub const OPERATIONS: &[&str] = &[
    "CreateChannel",
    "DescribeChannel",
    "ListChannels",
    "UpdateChannel",
    "DeleteChannel",
];

pub async fn call(
    context: &Context<'_>,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let input = crate::json::validate(operation, body)?;
    match operation {
        "CreateChannel" => {
            let name = input["ChannelName"].as_str().unwrap_or_default();
            let arn = format!(
                "arn:aws:kinesis:{}:{}:channel/{name}",
                context.region,
                context.engine.account_id()
            );
            context.authz.check(context.engine, &arn, None)?;
            // Handing the service execution role to the service is passing it (AWS's rule).
            let role = input["ServiceExecutionRoleARN"]
                .as_str()
                .unwrap_or_default();
            context
                .authz
                .check_action("iam:PassRole", role, None)
                .map_err(|(_, message)| ApiError::new("AccessDeniedException", message))?;
        }
        "ListChannels" => context.authz.check(context.engine, "*", None)?,
        _ => {
            let arn = input["ChannelARN"].as_str().unwrap_or_default();
            context.authz.check(context.engine, arn, None)?;
        }
    }
    let Some(channels) = context.channels else {
        return Err(ApiError::new(
            "InvalidArgumentException",
            format!("{operation} is not available: Kinesis Channels are off on this server."),
        ));
    };
    let output = channels
        .call(context.engine, &context.region, operation, &input)
        .await?;
    Ok(if output.is_null() {
        Vec::new()
    } else {
        crate::json::encode(&output)
    })
}

/// DeleteStream is refused while a channel reads the stream.
pub fn refuse_if_channeled(
    context: &Context<'_>,
    region: &str,
    stream: &str,
) -> Result<(), ApiError> {
    let account = context.engine.account_id();
    if context
        .channels
        .is_some_and(|channels| channels.stream_has_channels(account, region, stream))
    {
        return Err(ApiError::new(
            "ResourceInUseException",
            format!(
                "Stream {stream} under account {account} has channels; delete every channel on \
                 the stream first."
            ),
        ));
    }
    Ok(())
}
