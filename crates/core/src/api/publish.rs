//! `publish` and `broadcast`: server data into channels, with each generation's check order
//! (2.x checks the payload before the channel, the current API the reverse) and the current
//! API's publish options (tags, idempotency key, delta, version).

use rotor_protocol::api::PublishFields;

use super::{ApiError, ApiGeneration};
use crate::engine::{PublishOptions, StreamPosition};
use crate::node::Node;

impl Node {
    pub(super) fn api_options(
        &self,
        channel: &str,
    ) -> Result<crate::config::ChannelOptions, ApiError> {
        if channel.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        self.rules()
            .options(channel)
            .cloned()
            .ok_or(ApiError::UNKNOWN_CHANNEL)
    }

    /// Publishes server data (no publisher info) and returns the stream position.
    pub async fn api_publish(
        &self,
        generation: ApiGeneration,
        channel: &str,
        fields: &PublishFields,
    ) -> Result<StreamPosition, ApiError> {
        let (data, opts) = if generation.is_legacy() {
            // 2.x: the payload is checked before the channel.
            let data = fields.data.clone().ok_or(ApiError::BAD_REQUEST)?;
            (data, self.api_options(channel)?)
        } else {
            if channel.is_empty() {
                return Err(ApiError::BAD_REQUEST);
            }
            let payload = fields.payload().map_err(|_| ApiError::BAD_REQUEST)?;
            let opts = self.api_options(channel)?;
            // `publication_data_format`: its default refuses empty data, `binary` takes it.
            let format = opts.publication_data_format;
            let data = match payload {
                Some(d) => d,
                None if format == crate::config::DataFormat::Binary => bytes::Bytes::new(),
                None => return Err(ApiError::BAD_REQUEST),
            };
            if !format.accepts(&data) {
                return Err(ApiError::BAD_REQUEST);
            }
            (data, opts)
        };
        let mut popts = PublishOptions {
            tags: (!fields.tags.is_empty()).then(|| std::sync::Arc::new(fields.tags.clone())),
            idempotency_key: (!fields.idempotency_key.is_empty())
                .then(|| fields.idempotency_key.clone()),
            // 6.x `delta_publish` marks every publication of the namespace.
            delta: fields.delta || opts.delta_publish,
            version: fields.version,
            version_epoch: fields.version_epoch.clone(),
            ..Default::default()
        };
        if !fields.skip_history {
            popts.history_size = opts.history_size;
            popts.history_lifetime = opts.history_lifetime;
            popts.history_meta_ttl = opts.history_meta_ttl;
        }
        let started = std::time::Instant::now();
        let result = self.broker().publish(channel, data, None, popts).await;
        crate::metrics::METRICS
            .broker_publish_duration
            .observe(started.elapsed());
        result.map_err(|e| {
            tracing::error!(channel, error = %e, "api publish failed");
            ApiError::from_engine(e)
        })
    }

    /// Publishes the same data to several channels; one result per channel, in order. 2.x
    /// ends the call at the first bad channel (those before it are published).
    pub async fn api_broadcast(
        &self,
        generation: ApiGeneration,
        channels: &[String],
        fields: &PublishFields,
    ) -> Result<Vec<Result<StreamPosition, ApiError>>, ApiError> {
        if channels.is_empty() {
            return Err(ApiError::BAD_REQUEST);
        }
        if generation.is_legacy() {
            if fields.data.is_none() {
                return Err(ApiError::BAD_REQUEST);
            }
            let mut out = Vec::with_capacity(channels.len());
            for ch in channels {
                out.push(Ok(self.api_publish(generation, ch, fields).await?));
            }
            return Ok(out);
        }
        fields.payload().map_err(|_| ApiError::BAD_REQUEST)?;
        let all = channels
            .iter()
            .map(|ch| self.api_publish(generation, ch, fields));
        Ok(futures_util::future::join_all(all).await)
    }
}
