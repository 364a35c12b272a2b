using Xunit;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// Test classes that start many spans of a kind other tests count (database connections, credential
/// fetches). The proxy's ActivitySource is process-wide and every <see cref="ProxyHarness"/> exports
/// every span started in this test process, so a class that runs beside them would add spans to
/// their assertions. This collection runs alone, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessSpansCollection
{
    public const string Name = "process-wide spans";
}
