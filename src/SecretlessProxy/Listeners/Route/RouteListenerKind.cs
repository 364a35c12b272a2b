using Microsoft.AspNetCore.Server.Kestrel.Core;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Route;

/// <summary>
/// <c>Mode: Route</c>: an explicit local route, every request forwarded to the listener's
/// <c>Upstream</c>, which is also the destination policy matches. HTTP through the shared request handler.
/// </summary>
internal sealed class RouteListenerKind : IListenerKind
{
    public string Mode => "Route";

    public IReadOnlyList<InjectionTarget> Injects { get; } = [InjectionTarget.HttpRequest, InjectionTarget.TlsClientCertificate];

    public bool InterceptsTls => false;

    public bool ClientSpeaksHttpFirst => true;

    public ListenerDefinition? Compile(ListenerCompilation listener)
    {
        var bind = listener.HttpOrUnixBindUrl();
        var unmatched = listener.Unmatched();
        var upstream = CompileUpstream(listener);
        var queryRecording = listener.QueryRecording();
        var limits = listener.Limits();
        return bind is not null && upstream is not null
            ? new ListenerDefinition(listener.Name, Mode, bind, unmatched, HttpDestination.Upstream, upstream, queryRecording, limits: limits, injects: Injects)
            : null;
    }

    public IReadOnlyCollection<string> OwnKeys { get; } = ["Upstream", "Unmatched", "RecordQuery", "RedactQueryParameters"];

    public void AddServices(IServiceCollection services, TimeProvider time) =>
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<RouteConnectionHandler>(sp, time));

    public void Configure(ListenOptions listen, ListenerDefinition listener) =>
        listen.Use(next =>
        {
            var handler = listen.ApplicationServices.GetRequiredService<RouteConnectionHandler>();
            return connection => handler.OnConnectionAsync(connection, next, listener.Name);
        });

    public string DescribeDestination(ListenerDefinition listener) => listener.Upstream!.ToString();

    private static Uri? CompileUpstream(ListenerCompilation listener)
    {
        var upstreamText = listener.Options.Upstream;
        if (string.IsNullOrWhiteSpace(upstreamText))
        {
            listener.Add("Upstream", "is required for a Route listener (for example http://127.0.0.1:9000)");
            return null;
        }

        if (!Uri.TryCreate(upstreamText, UriKind.Absolute, out var upstream) || upstream.Scheme is not ("http" or "https") || string.IsNullOrEmpty(upstream.Host))
        {
            listener.Add("Upstream", "'" + listener.WithoutUserInfo(upstreamText) + "' is not an absolute http or https URL");
            return null;
        }

        if (!string.IsNullOrEmpty(upstream.UserInfo) || !string.IsNullOrEmpty(upstream.Query) || !string.IsNullOrEmpty(upstream.Fragment))
        {
            // User info in a URL is a credential in the config; query and fragment have no meaning for a route prefix.
            listener.Add("Upstream", "must not contain user info, a query or a fragment");
            return null;
        }

        return upstream;
    }
}
