using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Transparent;

/// <summary>
/// <c>Mode: Transparent</c>: connections iptables REDIRECTed here (<c>secretless-proxy iptables</c>),
/// their destination the kernel's original one. <see cref="TransparentConnectionHandler"/> peeks at
/// the first bytes: TLS is intercepted or relayed blind, plain HTTP goes to the shared request
/// handler, anything else is relayed blind or closed.
/// </summary>
internal sealed class TransparentListenerKind : IListenerKind
{
    public string Mode => "Transparent";

    public IReadOnlyList<InjectionTarget> Injects { get; } = [InjectionTarget.HttpRequest, InjectionTarget.TlsClientCertificate];

    public bool InterceptsTls => true;

    // The app may speak TLS or anything else: a connection over the cap is closed, not answered.
    public bool ClientSpeaksHttpFirst => false;

    public ListenerDefinition? Compile(ListenerCompilation listener)
    {
        var start = listener.Errors.Count;
        var options = listener.Options;

        // iptables REDIRECT can only send to a local TCP port, so a Unix socket or an http:// URL
        // (which reads as if the listener spoke only HTTP) would mislead.
        var bind = listener.ParseTcpBindUrl(options.Url, listener.Key + ":Url", example: "tcp://127.0.0.1:15001");
        var unmatched = listener.Unmatched();

        if (options.Upstream is not null)
        {
            listener.Add("Upstream", "is not used by a Transparent listener: each connection's original destination is its upstream");
        }

        if (options.AllowedConnectPorts is not null)
        {
            listener.Add("AllowedConnectPorts", "applies to Forward listeners only; a Transparent listener gets the ports iptables redirects (secretless-proxy iptables --redirect-ports)");
        }

        var queryRecording = listener.QueryRecording();
        var limits = listener.Limits();
        return listener.Errors.Count > start || bind is null
            ? null
            : new ListenerDefinition(listener.Name, Mode, bind, unmatched, HttpDestination.Connection, upstream: null, queryRecording, limits: limits, injects: Injects);
    }

    public IReadOnlyCollection<string> OwnKeys { get; } = ["Unmatched", "RecordQuery", "RedactQueryParameters"];

    public void AddServices(IServiceCollection services, TimeProvider time)
    {
        services.TryAddSingleton<TlsInterceptor>();
        services.TryAddSingleton<BlindRelay>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<TransparentConnectionHandler>(sp, time));
    }

    public void Configure(ListenOptions listen, ListenerDefinition listener)
    {
        // As in forward mode: HTTP/1.1 in cleartext, ALPN's choice inside intercepted TLS.
        listen.Protocols = HttpProtocols.Http1AndHttp2;
        listen.Use(next =>
        {
            var handler = listen.ApplicationServices.GetRequiredService<TransparentConnectionHandler>();
            return connection => handler.OnConnectionAsync(connection, next, listener.Name);
        });
    }

    public string DescribeDestination(ListenerDefinition listener) => "the destination each request names";
}
