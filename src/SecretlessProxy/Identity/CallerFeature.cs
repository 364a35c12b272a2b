namespace SecretlessProxy.Identity;

/// <summary>
/// Set on each connection by its listener: the calling process, resolved on first use and then
/// kept for the connection's life (the kernel's answer cannot change while the socket is open).
/// Resolution waits for the first request so connections that never send one cost nothing.
/// </summary>
public sealed class CallerFeature
{
    private readonly Func<Caller> _resolve;
    private Caller? _caller;

    public CallerFeature(Func<Caller> resolve)
    {
        _resolve = resolve;
    }

    /// <summary>A connection whose caller is known without a lookup (or known to be unknowable).</summary>
    public CallerFeature(Caller caller)
    {
        _caller = caller;
        _resolve = () => caller;
    }

    // Requests on one HTTP/1.1 connection are sequential; on HTTP/2 two streams may race here, and
    // both resolving once is harmless (same answer), so no lock.
    public Caller Caller => _caller ??= _resolve();
}
