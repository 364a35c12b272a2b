namespace SecretlessProxy.Telemetry;

/// <summary>
/// Loggers for what the configuration compiles (credential sources) before the host and its
/// logging exist: each forwards to the host's factory once <see cref="Attach"/> has been called,
/// and drops entries before that (nothing logs during compilation itself).
/// </summary>
internal sealed class DeferredLoggerFactory : ILoggerFactory
{
    private volatile ILoggerFactory? _inner;

    public void Attach(ILoggerFactory inner) => _inner = inner;

    public ILogger CreateLogger(string categoryName) => new DeferredLogger(this, categoryName);

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException("providers belong to the host's logging");

    public void Dispose()
    {
        // The host owns the inner factory.
    }

    private sealed class DeferredLogger(DeferredLoggerFactory owner, string category) : ILogger
    {
        private ILogger? _logger;

        private ILogger? Inner => _logger ??= owner._inner?.CreateLogger(category);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => Inner?.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => Inner?.IsEnabled(logLevel) ?? false;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Inner?.Log(logLevel, eventId, state, exception, formatter);
    }
}
