using System.Net.Security;
using SecretlessProxy.Identity.Spiffe;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Upstream connections that present a client certificate with its intermediates (an X.509-SVID
/// issued under an intermediate CA). A selection callback can only return the leaf, and
/// SocketsHttpHandler takes a certificate context per handler, not per connection: so each context
/// (each rotation) gets its own handler, and the next request after a rotation goes out on new
/// connections presenting the new chain. The handler it replaces keeps serving the requests already
/// on it and is disposed at the rotation after.
/// </summary>
internal sealed class ClientCertificateChainHandler : HttpMessageHandler
{
    private readonly IClientCertificateChain _source;
    private readonly HttpMessageInvoker _fallback;
    private readonly Func<SslStreamCertificateContext, SocketsHttpHandler> _create;
    private readonly Lock _gate = new();
    private volatile Entry? _current;
    private HttpMessageInvoker? _previous;
    private bool _disposed;

    /// <param name="source">The chain to present.</param>
    /// <param name="fallback">Used while there is no valid certificate (it presents none; the request handler answers 503 first).</param>
    /// <param name="create">A handler configured like the others, presenting the given context.</param>
    public ClientCertificateChainHandler(IClientCertificateChain source, HttpMessageHandler fallback, Func<SslStreamCertificateContext, SocketsHttpHandler> create)
    {
        _source = source;
        _fallback = new HttpMessageInvoker(fallback, disposeHandler: true);
        _create = create;
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        Current().SendAsync(request, cancellationToken);

    private HttpMessageInvoker Current()
    {
        if (!_source.TryGetCurrentContext(out var context, out _) || context is null)
        {
            return _fallback;
        }

        if (_current is { } current && ReferenceEquals(current.Context, context))
        {
            return current.Invoker;
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_current is { } again && ReferenceEquals(again.Context, context))
            {
                return again.Invoker;
            }

            var retired = _previous;
            _previous = _current?.Invoker;
            var next = new Entry(context, new HttpMessageInvoker(_create(context), disposeHandler: true));
            _current = next;
            retired?.Dispose();
            return next.Invoker;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            lock (_gate)
            {
                if (!_disposed)
                {
                    _disposed = true;
                    _current?.Invoker.Dispose();
                    _previous?.Dispose();
                    _fallback.Dispose();
                }
            }
        }

        base.Dispose(disposing);
    }

    private sealed record Entry(SslStreamCertificateContext Context, HttpMessageInvoker Invoker);
}
