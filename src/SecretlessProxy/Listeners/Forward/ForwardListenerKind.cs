using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Forward;

/// <summary>
/// <c>Mode: Forward</c>: an HTTP_PROXY/HTTPS_PROXY forward proxy. Absolute-form <c>http://</c>
/// requests go to the shared request handler; a CONNECT is decided by
/// <see cref="ForwardProxyConnectionHandler"/> below HTTP (refused, relayed blind, or intercepted
/// with the local CA and handed back to HTTP).
/// </summary>
internal sealed class ForwardListenerKind : IListenerKind
{
    public string Mode => "Forward";

    public IReadOnlyList<InjectionTarget> Injects { get; } = [InjectionTarget.HttpRequest, InjectionTarget.TlsClientCertificate];

    public bool InterceptsTls => true;

    public bool ClientSpeaksHttpFirst => true;

    public ListenerDefinition? Compile(ListenerCompilation listener)
    {
        var options = listener.Options;
        var bind = listener.HttpOrUnixBindUrl();
        var unmatched = listener.Unmatched();
        if (options.Upstream is not null)
        {
            listener.Add("Upstream", "is not used by a Forward listener: each request names its destination");
        }

        ForwardListenerSettings? settings = null;
        if (options.AllowedConnectPorts is { Length: > 0 } ports)
        {
            for (var i = 0; i < ports.Length; i++)
            {
                if (ports[i] is < 1 or > 65535)
                {
                    listener.Add("AllowedConnectPorts:" + i, ports[i] + " is not a TCP port");
                }
            }

            settings = new ForwardListenerSettings(ports);
        }

        var queryRecording = listener.QueryRecording();
        var limits = listener.Limits();
        return bind is not null
            ? new ListenerDefinition(listener.Name, Mode, bind, unmatched, HttpDestination.RequestTarget, upstream: null, queryRecording, settings, limits, injects: Injects)
            : null;
    }

    public IReadOnlyCollection<string> OwnKeys { get; } = ["Unmatched", "AllowedConnectPorts", "RecordQuery", "RedactQueryParameters"];

    public void AddServices(IServiceCollection services, TimeProvider time)
    {
        services.TryAddSingleton<TlsInterceptor>();
        services.TryAddSingleton<BlindRelay>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<ForwardProxyConnectionHandler>(sp, time));
    }

    public void Configure(ListenOptions listen, ListenerDefinition listener)
    {
        // Cleartext requests (CONNECT, absolute-form) are HTTP/1.1; inside an intercepted
        // tunnel, ALPN chooses HTTP/2 or HTTP/1.1 (see TunnelTlsFeature).
        listen.Protocols = HttpProtocols.Http1AndHttp2;
        listen.Use(next =>
        {
            var handler = listen.ApplicationServices.GetRequiredService<ForwardProxyConnectionHandler>();
            return connection => handler.OnConnectionAsync(connection, next, listener.Name);
        });
    }

    public string DescribeDestination(ListenerDefinition listener) => "the destination each request names";
}
