using SecretlessProxy.Core;
using SecretlessProxy.Identity.Spiffe;

namespace SecretlessProxy.Credentials;

/// <summary>
/// <c>Source: SpiffeX509Svid</c>: the workload's X.509-SVID, streamed by the SPIFFE Workload API
/// and presented as the TLS client certificate of policies that name it in
/// <c>Inject:ClientCertificate:Credential</c>.
/// </summary>
internal sealed class SpiffeX509SvidSourceKind : CredentialSourceKind<SpiffeX509SvidSourceOptions>
{
    public override string Name => SpiffeX509SvidSource.SourceName;

    public override CredentialShape MayYield => CredentialShape.Certificate;

    public override CredentialShape Yields(SpiffeX509SvidSourceOptions options, bool hasUsername) => CredentialShape.Certificate;

    public override ICredentialSource? Compile(SpiffeX509SvidSourceOptions o, CredentialSourceContext context)
    {
        var start = context.Errors.Count;
        if (context.Username is not null || context.UsernameFile is not null)
        {
            context.Errors.Add(new(context.Key + (context.Username is not null ? ":Username" : ":UsernameFile"), "does not apply to SpiffeX509Svid: a certificate has no user name"));
        }

        var value = o.Socket ?? Environment.GetEnvironmentVariable(SpiffeEndpoint.EnvironmentVariable);
        string? socketPath = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            context.Errors.Add(new(context.Key + ":Socket", "is required when " + SpiffeEndpoint.EnvironmentVariable + " is not set: the SPIFFE Workload API socket (unix:///run/spire/sockets/agent.sock)"));
        }
        else if (!SpiffeEndpoint.TryParse(value, out socketPath, out var error))
        {
            context.Errors.Add(new(context.Key + ":Socket", o.Socket is null ? SpiffeEndpoint.EnvironmentVariable + " " + error : error));
        }

        if (o.SpiffeId is not null && !SpiffeId.TryParse(o.SpiffeId, out _, out var idError))
        {
            context.Errors.Add(new(context.Key + ":SpiffeId", "'" + o.SpiffeId + "' " + idError));
        }

        return context.Errors.Count > start
            ? null
            : new SpiffeX509SvidSource(new X509SvidWatcher(socketPath!, o.SpiffeId, context.Time, context.LoggerFactory.CreateLogger<X509SvidWatcher>()));
    }

    protected override SpiffeX509SvidSourceOptions BindOptions(IConfigurationSection section) => section.Get<SpiffeX509SvidSourceOptions>() ?? new();
}
