using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// Test classes that read a proxy's <c>/metrics</c> series without a label of their own (a gauge
/// such as <c>signing_buffer_held_bytes</c>). OpenTelemetry's MeterProvider subscribes to meters by
/// name across the whole process, so while other tests run their proxies in this test process, one
/// proxy's scrape also shows the others' series. This collection runs alone, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessMetricsCollection
{
    public const string Name = "process-wide metrics";
}
