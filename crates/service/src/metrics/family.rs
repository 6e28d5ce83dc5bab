//! Writers of whole metric families from values read at scrape time, shared by the collectors
//! (the key pool, the camera hub, the streaming loops): one unlabelled series, or one series per
//! label set.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// A family's result: formatting into the scrape's buffer can fail.
type Written = Result<(), std::fmt::Error>;

/// Writes a gauge family with one unlabelled series.
pub(crate) fn gauge<V>(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: V) -> Written
where
    ConstGauge<V>: EncodeMetric,
{
    ConstGauge::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Writes a counter family (`name` without `_total`) with one unlabelled series.
pub(crate) fn counter<N>(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: N) -> Written
where
    ConstCounter<N>: EncodeMetric,
{
    ConstCounter::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// Writes a gauge family with one series per `(labels, value)`; no series when empty.
pub(crate) fn gauges<L, V>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, V)>,
) -> Written
where
    L: EncodeLabelSet,
    ConstGauge<V>: EncodeMetric,
{
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes a counter family (`name` without `_total`) with one series per `(labels, value)`.
pub(crate) fn counters<L, N>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, N)>,
) -> Written
where
    L: EncodeLabelSet,
    ConstCounter<N>: EncodeMetric,
{
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}
