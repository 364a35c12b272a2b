using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>
/// An injector that writes the credential into the outgoing HTTP request. It owns what it writes:
/// whatever the app sent under the same header or query parameter is removed first, so the app can
/// neither supply nor steer the credential.
/// </summary>
internal abstract class HttpRequestInjector : InjectionRule
{
    public sealed override InjectionTarget Target => InjectionTarget.HttpRequest;

    /// <summary>Replaces the app's value, if any, with the credential on the outgoing request.</summary>
    public abstract void Apply(HttpRequestMessage proxyRequest, Credential credential);

    /// <summary>
    /// The asynchronous form, for injectors that must read the request (a signer hashing the body).
    /// Runs as the last step before the wire, after every header the forwarder sets.
    /// </summary>
    public virtual ValueTask ApplyAsync(HttpRequestMessage proxyRequest, Credential credential, CancellationToken cancellationToken)
    {
        Apply(proxyRequest, credential);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// A reason to refuse this request before any credential goes on the wire, or null. For
    /// injectors whose credential also authorizes what the request names besides its own target
    /// (a signed <c>x-amz-copy-source</c> reads another object): the request handler calls it after
    /// the policy allowed <paramref name="destination"/> and answers 403 with the reason.
    /// </summary>
    public virtual string? RefuseRequest(HttpRequest request, in RequestDestination destination, string pathPrefix) => null;

    /// <summary>
    /// Every form in which this injector puts the credential on the wire (the raw value and each
    /// encoding it sends), so that a response echoing any of them can be masked before the app sees
    /// it. Empty for injectors that put no secret into the HTTP request.
    /// </summary>
    internal virtual IEnumerable<string> WireForms(Credential credential) => [];

    /// <summary>
    /// Removes a header from whichever collection may hold it: .NET keeps content headers
    /// (Content-*, Allow, Expires, Last-Modified) apart from request headers and throws when a name
    /// is used on the wrong one (so removing Authorization from a request with a body must not
    /// touch the content headers).
    /// </summary>
    protected static void RemoveHeader(HttpRequestMessage request, string name)
    {
        if (IsContentHeader(name))
        {
            request.Content?.Headers.Remove(name);
        }
        else
        {
            request.Headers.Remove(name);
        }
    }

    private static bool IsContentHeader(string name) =>
        name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) ||
        string.Equals(name, "Allow", StringComparison.OrdinalIgnoreCase) ||
        string.Equals(name, "Expires", StringComparison.OrdinalIgnoreCase) ||
        string.Equals(name, "Last-Modified", StringComparison.OrdinalIgnoreCase);
}
