using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace SecretlessProxy.Hosting;

/// <summary>Host-level hooks: the clock, and extra logging or tracing sinks (tests capture everything emitted).</summary>
internal sealed class ProxyAppOptions
{
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Configuration keys laid over the file (and the environment), e.g. by <c>run -- command</c>.</summary>
    public IReadOnlyDictionary<string, string?>? ConfigOverrides { get; init; }

    /// <summary>Called after the default console logging is set up.</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }

    /// <summary>When set, tracing is on even without OTEL_* variables, and this adds exporters.</summary>
    public Action<TracerProviderBuilder>? ConfigureTracing { get; init; }

    /// <summary>Adds metric readers (tests capture every measurement).</summary>
    public Action<MeterProviderBuilder>? ConfigureMetrics { get; init; }

    /// <summary>Console logs go to standard error (the wrapped command owns standard output).</summary>
    public bool LogToStandardError { get; init; }

    /// <summary>Write logs to the console (off in tests that capture logs themselves).</summary>
    public bool ConsoleLogging { get; init; } = true;

    /// <summary>
    /// This process is the proxy alone (the <c>run</c> command), so it may choose process-wide runtime
    /// settings: a proxy whose listeners are all database listeners turns on inline socket
    /// completions (see <see cref="ProxyApp"/>). Off in-process (tests, <c>run --</c>), where the
    /// process is shared.
    /// </summary>
    public bool OwnsProcess { get; init; }

    /// <summary>
    /// Mark the process not dumpable before any secret is read (<see cref="ProcessHardening"/>), so
    /// other processes of its uid cannot read its memory, environment or descriptors through /proc.
    /// Set by the <c>run</c> command (with and without a wrapped command) when the CLI is the
    /// process; off in-process (tests), where it would change the test host.
    /// </summary>
    public bool NotDumpable { get; init; }

    /// <summary>
    /// How long one caller resolution may scan /proc (see <c>LoopbackCallerResolver.ScanBudget</c>);
    /// null for its default. Tests on a saturated machine give more, so that a slow scan does not
    /// turn an allowed caller into an unresolved one.
    /// </summary>
    internal TimeSpan? CallerScanBudget { get; init; }
}
