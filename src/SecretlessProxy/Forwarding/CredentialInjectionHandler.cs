namespace SecretlessProxy.Forwarding;

/// <summary>
/// Applies the policy's injection as the last step before the request goes on the wire. Doing it
/// here rather than in YARP's transform keeps the credential out of everything the forwarder logs
/// about the request (its "Proxying to {url}" line would otherwise carry a query-string secret),
/// and it is where a request signer must run: after every header that is part of the signature.
/// </summary>
internal sealed class CredentialInjectionHandler : DelegatingHandler
{
    public static readonly HttpRequestOptionsKey<ForwardingFeature> FeatureKey = new("SecretlessProxy.Forwarding");

    public CredentialInjectionHandler(HttpMessageHandler inner)
        : base(inner)
    {
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Options.TryGetValue(FeatureKey, out var feature) && feature.Rule is { } rule)
        {
            var applied = rule.ApplyAsync(request, feature.Credential!, cancellationToken);
            if (!applied.IsCompletedSuccessfully)
            {
                return ApplyThenSendAsync(applied, request, cancellationToken);
            }

            applied.GetAwaiter().GetResult();
        }

        return base.SendAsync(request, cancellationToken);
    }

    private async Task<HttpResponseMessage> ApplyThenSendAsync(ValueTask applied, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        await applied.ConfigureAwait(false);
        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }
}
