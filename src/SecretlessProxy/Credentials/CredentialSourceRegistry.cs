using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>
/// The credential sources a configuration may name, one line each. Adding a source is its folder,
/// its line here and its value in the schema's <c>Source</c> enum.
/// </summary>
internal sealed class CredentialSourceRegistry
{
    public static CredentialSourceRegistry Default { get; } = new(
    [
        new FileSourceKind(),
        new OAuth2ClientCredentialsSourceKind(),
        new OAuth2TokenExchangeSourceKind(),
        new AwsWebIdentitySourceKind(),
        new AzureWorkloadIdentitySourceKind(),
        new AzureManagedIdentitySourceKind(),
        new VaultSourceKind(),
        new SpiffeX509SvidSourceKind(),
        new AwsRdsAuthTokenSourceKind(),
    ]);

    private readonly Dictionary<string, ICredentialSourceKind> _byName;

    public CredentialSourceRegistry(IReadOnlyList<ICredentialSourceKind> kinds)
    {
        Kinds = kinds;
        _byName = kinds.ToDictionary(k => k.Name, StringComparer.OrdinalIgnoreCase);
        Expected = Join(kinds.Select(k => k.Name).ToArray());
    }

    /// <summary>In the order messages list them.</summary>
    public IReadOnlyList<ICredentialSourceKind> Kinds { get; }

    /// <summary>The names as a message lists them: <c>File, OAuth2ClientCredentials … or Vault</c>.</summary>
    public string Expected { get; }

    /// <summary>The kind a <c>Source</c> value names, ignoring case; null for null or an unknown name.</summary>
    public ICredentialSourceKind? Find(string? name) => name is not null && _byName.TryGetValue(name, out var kind) ? kind : null;

    /// <summary>The names of the kinds that can yield <paramref name="shape"/>, as a message lists them.</summary>
    public string NamesYielding(CredentialShape shape) => Join(Kinds.Where(k => k.MayYield.HasFlag(shape)).Select(k => k.Name).ToArray());

    private static string Join(string[] names) => names.Length < 2 ? string.Join(string.Empty, names) : string.Join(", ", names[..^1]) + " or " + names[^1];
}
