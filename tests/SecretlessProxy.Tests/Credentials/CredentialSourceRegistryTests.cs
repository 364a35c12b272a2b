using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Xunit;
using SecretlessProxy.Configuration;
using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Tests.Configuration;

namespace SecretlessProxy.Tests.Credentials;

/// <summary>
/// Credential sources are registered kinds: the registry, the schema and the policy checks agree
/// on them, and a policy or listener asks a credential what it yields, never which source it is.
/// </summary>
public sealed class CredentialSourceRegistryTests : IDisposable
{
    private const string Root = "SecretlessProxy";

    private readonly HttpMessageInvoker _tokenClient = new(new SocketsHttpHandler());

    public void Dispose() => _tokenClient.Dispose();

    [Fact]
    public void Every_registered_source_is_in_the_schema_Source_enum_and_every_enum_value_is_registered()
    {
        var credential = SchemaCredential();
        var schemaNames = credential.GetProperty("properties").GetProperty("Source").GetProperty("enum").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var registered = CredentialSourceRegistry.Default.Kinds.Select(k => k.Name).ToArray();

        Assert.Equal(schemaNames.Order(StringComparer.Ordinal), registered.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_schema_describes_exactly_the_keys_the_shared_options_and_the_source_kinds_bind()
    {
        var schemaKeys = SchemaCredential().GetProperty("properties").EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var bound = PropertyNames(typeof(CredentialOptions))
            .Concat(CredentialSourceRegistry.Default.Kinds.SelectMany(k => PropertyNames(OptionsTypeOf(k))))
            .ToHashSet(StringComparer.Ordinal);

        Assert.Empty(schemaKeys.Except(bound));
        Assert.Empty(bound.Except(schemaKeys));
    }

    [Fact]
    public void A_source_is_found_by_name_ignoring_case_and_errors_list_every_registered_name()
    {
        var registry = CredentialSourceRegistry.Default;

        Assert.Equal("Vault", registry.Find("vault")?.Name);
        Assert.Equal("OAuth2TokenExchange", registry.Find("OAUTH2TOKENEXCHANGE")?.Name);
        Assert.Null(registry.Find("Keychain"));
        Assert.Null(registry.Find(null));
        Assert.Equal("File, OAuth2ClientCredentials, OAuth2TokenExchange, AwsWebIdentity, AzureWorkloadIdentity, AzureManagedIdentity, Vault, SpiffeX509Svid or AwsRdsAuthToken", registry.Expected);
        Assert.Equal("AwsWebIdentity", registry.NamesYielding(CredentialShape.SigningKeys));
    }

    public static TheoryData<string, string[], int> Sources() => new()
    {
        { "File", ["Path=/run/secrets/key"], (int)(CredentialShape.Token) },
        { "File", ["Path=/run/secrets/password", "Username=orders"], (int)(CredentialShape.Token | CredentialShape.UsernamePassword) },
        { "OAuth2ClientCredentials", ["TokenUrl=https://idp.example.com/token", "ClientId=orders", "ClientSecretFile=/run/secrets/client"], (int)(CredentialShape.Token | CredentialShape.IssuedToken) },
        { "OAuth2TokenExchange", ["TokenUrl=https://sts.example.com/token"], (int)(CredentialShape.Token | CredentialShape.IssuedToken) },
        { "AwsWebIdentity", ["RoleArn=arn:aws:iam::123456789012:role/exporter", "Region=eu-west-1"], (int)(CredentialShape.SigningKeys) },
        { "AzureWorkloadIdentity", ["TenantId=contoso.onmicrosoft.com", "ClientId=orders", "Scopes:0=https://storage.azure.com/.default"], (int)(CredentialShape.Token | CredentialShape.IssuedToken) },
        { "AzureManagedIdentity", ["Scopes:0=https://ossrdbms-aad.database.windows.net/.default", "Username=orders@contoso"], (int)(CredentialShape.Token | CredentialShape.UsernamePassword | CredentialShape.IssuedToken) },
        { "AwsRdsAuthToken", ["SigningCredential=other", "Endpoint=db.example.com:5432", "Region=eu-west-1", "Username=orders"], (int)(CredentialShape.Token | CredentialShape.UsernamePassword | CredentialShape.IssuedToken) },
        { "Vault", ["Address=https://vault.example.com:8200", "AuthMethod=Jwt", "Role=orders", "SecretPath=secret/orders/api", "Field=key"], (int)(CredentialShape.Token) },
        { "Vault", ["Address=https://vault.example.com:8200", "AuthMethod=Jwt", "Role=orders", "DynamicPath=database/creds/orders"], (int)(CredentialShape.Token | CredentialShape.UsernamePassword) },
    };

    [Theory]
    [MemberData(nameof(Sources))]
    public void What_a_source_yields_decides_which_injections_and_logins_accept_its_credential(string source, string[] keys, int expectedShape)
    {
        var expected = (CredentialShape)expectedShape;
        var values = ConfigWithEveryUse(source, keys);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var section = configuration.GetSection(Root);
        var kind = CredentialSourceRegistry.Default.Find(source)!;
        var yields = kind.Bind(section.GetSection("Credentials:c")).Yields(hasUsername: keys.Any(k => k.StartsWith("Username", StringComparison.Ordinal)));

        var errors = Compile(CredentialSourceRegistry.Default, configuration);

        Assert.Equal(expected, yields);
        Assert.Equal(!yields.HasFlag(CredentialShape.Token), errors.Any(e => e.Key == Root + ":Policies:header:Inject"));
        Assert.Equal(!yields.HasFlag(CredentialShape.UsernamePassword), errors.Any(e => e.Key.StartsWith(Root + ":Policies:basic:Inject", StringComparison.Ordinal)));
        Assert.Equal(!yields.HasFlag(CredentialShape.SigningKeys), errors.Any(e => e.Key == Root + ":Policies:signed:Inject:AwsSigV4" && e.Message.StartsWith("signs with", StringComparison.Ordinal)));
        Assert.Equal(!yields.HasFlag(CredentialShape.UsernamePassword), errors.Any(e => e.Key == Root + ":Listeners:db:Credential"));
    }

    [Fact]
    public void A_source_is_judged_by_what_it_yields_not_by_its_name()
    {
        var registry = new CredentialSourceRegistry([new FileSourceKind(), new SignerKind()]);
        var values = ConfigWithEveryUse("Signer", []);
        values[Root + ":Credentials:file:Source"] = "File";
        values[Root + ":Credentials:file:Path"] = "/run/secrets/key";
        values[Root + ":Policies:file-signed:Match:Hosts:0"] = "sqs.eu-west-1.amazonaws.com";
        values[Root + ":Policies:file-signed:Credential"] = "file";
        values[Root + ":Policies:file-signed:Inject:AwsSigV4:Service"] = "sqs";
        values[Root + ":Policies:file-signed:Inject:AwsSigV4:Region"] = "eu-west-1";

        var errors = Compile(registry, new ConfigurationBuilder().AddInMemoryCollection(values).Build());

        Assert.Contains(new ConfigError(Root + ":Policies:header:Inject", "an Signer credential can only sign requests: use AwsSigV4"), errors);
        Assert.Contains(new ConfigError(Root + ":Listeners:db:Credential", "an Signer credential holds signing keys, not a database password"), errors);
        Assert.Contains(new ConfigError(Root + ":Policies:file-signed:Inject:AwsSigV4", "signs with temporary AWS keys: the policy's credential must have Source Signer"), errors);
        Assert.DoesNotContain(errors, e => e.Key.StartsWith(Root + ":Policies:signed", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Key.StartsWith(Root + ":Credentials", StringComparison.Ordinal));
    }

    /// <summary>Credential <c>c</c> of the given source, used by a Header, a Basic and a SigV4 policy and by a Postgres listener.</summary>
    private static Dictionary<string, string?> ConfigWithEveryUse(string source, string[] keys)
    {
        var values = new Dictionary<string, string?>
        {
            [Root + ":Admin:Url"] = "http://127.0.0.1:0",
            [Root + ":Identity:Source"] = "TokenFile",
            [Root + ":Identity:Path"] = "/var/run/secrets/tokens/proxy",
            [Root + ":Listeners:api:Mode"] = "Route",
            [Root + ":Listeners:api:Url"] = "http://127.0.0.1:0",
            [Root + ":Listeners:api:Upstream"] = "https://api.example.com",
            [Root + ":Listeners:db:Mode"] = "Postgres",
            [Root + ":Listeners:db:Url"] = "tcp://127.0.0.1:0",
            [Root + ":Listeners:db:Upstream"] = "db.example.com:5432",
            [Root + ":Listeners:db:Credential"] = "c",
            [Root + ":Credentials:c:Source"] = source,
            [Root + ":Policies:header:Match:Hosts:0"] = "header.example.com",
            [Root + ":Policies:header:Credential"] = "c",
            [Root + ":Policies:header:Inject:Header"] = "Authorization",
            [Root + ":Policies:header:Inject:Format"] = "Bearer {token}",
            [Root + ":Policies:basic:Match:Hosts:0"] = "basic.example.com",
            [Root + ":Policies:basic:Credential"] = "c",
            [Root + ":Policies:basic:Inject:Basic"] = "true",
            [Root + ":Policies:signed:Match:Hosts:0"] = "s3.eu-west-1.amazonaws.com",
            [Root + ":Policies:signed:Credential"] = "c",
            [Root + ":Policies:signed:Inject:AwsSigV4:Service"] = "s3",
            [Root + ":Policies:signed:Inject:AwsSigV4:Region"] = "eu-west-1",
        };
        foreach (var pair in keys)
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            values[Root + ":Credentials:c:" + pair[..equals]] = pair[(equals + 1)..];
        }

        return values;
    }

    private List<ConfigError> Compile(CredentialSourceRegistry registry, IConfiguration configuration)
    {
        var options = new SecretlessProxyOptions();
        var section = configuration.GetSection(Root);
        section.Bind(options);
        var errors = new List<ConfigError>();
        new SnapshotCompiler(TimeProvider.System, _tokenClient, Path.GetTempPath(), checkFiles: false, identity: null, loggerFactory: null, registry).Compile(options, section, errors);
        return errors;
    }

    private static JsonElement SchemaCredential()
    {
        using var schema = JsonDocument.Parse(File.ReadAllText(RepoPaths.Combine("appsettings.schema.json")));
        return schema.RootElement.GetProperty("definitions").GetProperty("Credential").Clone();
    }

    private static IEnumerable<string> PropertyNames(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => p.Name);

    /// <summary>The settings class a kind binds: the type argument of its <see cref="CredentialSourceKind{TOptions}"/> base.</summary>
    private static Type OptionsTypeOf(ICredentialSourceKind kind)
    {
        for (var type = kind.GetType(); type is not null; type = type.BaseType)
        {
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(CredentialSourceKind<>))
            {
                return type.GetGenericArguments()[0];
            }
        }

        throw new InvalidOperationException(kind.GetType().Name + " does not derive from CredentialSourceKind<TOptions>");
    }

    /// <summary>A source that yields signing keys under a name no check in the compiler knows.</summary>
    private sealed class SignerKind : CredentialSourceKind<SignerKind.Options>
    {
        public override string Name => "Signer";

        public override CredentialShape MayYield => CredentialShape.SigningKeys;

        public override CredentialShape Yields(Options options, bool hasUsername) => CredentialShape.SigningKeys;

        public override ICredentialSource? Compile(Options options, CredentialSourceContext context) =>
            new FileCredentialSource("/run/secrets/unused", null, null, context.Time);

        protected override Options BindOptions(IConfigurationSection section) => new();

        public sealed class Options;
    }
}
