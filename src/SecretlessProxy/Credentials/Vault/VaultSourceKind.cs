using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary><c>Source: Vault</c>: logged in to with the workload token; a KV v2 field or a dynamic secret's lease.</summary>
internal sealed class VaultSourceKind : CredentialSourceKind<VaultSourceOptions>
{
    public override string Name => "Vault";

    public override CredentialShape MayYield => CredentialShape.Token | CredentialShape.UsernamePassword;

    /// <summary>A dynamic secret brings its own user name with each lease; a KV field has one only when configured.</summary>
    public override CredentialShape Yields(VaultSourceOptions options, bool hasUsername) =>
        options.DynamicPath is not null || hasUsername ? CredentialShape.Token | CredentialShape.UsernamePassword : CredentialShape.Token;

    public override ICredentialSource? Compile(VaultSourceOptions c, CredentialSourceContext context)
    {
        var key = context.Key;
        var errors = context.Errors;
        var start = errors.Count;
        if (!context.IdentityConfigured)
        {
            errors.Add(new(key + ":AuthMethod", "needs the workload identity: configure SecretlessProxy:Identity (Vault is logged in to with the workload token)"));
        }

        // https, or http to this host only: the hop carries the workload token, the Vault token and
        // dynamic passwords. (A mesh that adds TLS to plain http would need an explicit opt-in; not built.)
        Uri? address = null;
        if (string.IsNullOrWhiteSpace(c.Address))
        {
            errors.Add(new(key + ":Address", "is required for a Vault credential (for example https://vault.internal:8200)"));
        }
        else if (!Uri.TryCreate(c.Address, UriKind.Absolute, out address) || address.Scheme is not ("http" or "https") || string.IsNullOrEmpty(address.Host) ||
                 !string.IsNullOrEmpty(address.UserInfo) || !string.IsNullOrEmpty(address.Query) || !string.IsNullOrEmpty(address.Fragment))
        {
            errors.Add(new(key + ":Address", "'" + ConfigChecks.WithoutUserInfo(c.Address) + "' is not an absolute http or https URL without user info, query or fragment"));
        }
        else if (address is { Scheme: "http" } && !Loopback.IsLoopbackHost(address) && c.UnixSocket is null)
        {
            errors.Add(new(key + ":Address", "'" + ConfigChecks.WithoutUserInfo(c.Address) + "' must be https (http only for loopback): the hop carries the workload token, the Vault token and secrets"));
        }

        string? defaultMount = null;
        switch (c.AuthMethod?.ToLowerInvariant())
        {
            case "jwt":
                defaultMount = "jwt";
                break;
            case "kubernetes":
                defaultMount = "kubernetes";
                break;
            case null:
                errors.Add(new(key + ":AuthMethod", "is required (Jwt or Kubernetes): how Vault is logged in to with the workload token"));
                break;
            default:
                errors.Add(new(key + ":AuthMethod", "'" + c.AuthMethod + "' is not a Vault auth method; expected Jwt or Kubernetes"));
                break;
        }

        var authMount = c.AuthMount ?? defaultMount;
        if (c.AuthMount is not null && !c.AuthMount.Split('/').All(IsPathSegment))
        {
            errors.Add(new(key + ":AuthMount", "'" + c.AuthMount + "' is not a Vault mount path (segments of letters, digits, '-', '_', '.'; no leading or trailing '/')"));
        }

        if (string.IsNullOrWhiteSpace(c.Role))
        {
            errors.Add(new(key + ":Role", "is required: the Vault role of the " + (defaultMount ?? "auth") + " method to log in as"));
        }

        var dynamic = false;
        string? readPath = null;
        string? configuredPath = null;
        if (c.SecretPath is not null && c.DynamicPath is not null)
        {
            errors.Add(new(key + ":DynamicPath", "give SecretPath (with Field) or DynamicPath, not both"));
        }
        else if (c.SecretPath is not null)
        {
            // KV v2: mount/path reads GET /v1/mount/data/path (the first segment is the mount).
            var segments = c.SecretPath.Split('/');
            if (segments.Length < 2 || !segments.All(IsPathSegment))
            {
                errors.Add(new(key + ":SecretPath", "'" + c.SecretPath + "' is not a KV v2 path mount/path (for example secret/payments/api)"));
            }
            else
            {
                configuredPath = c.SecretPath;
                readPath = Uri.EscapeDataString(segments[0]) + "/data/" + string.Join('/', segments.Skip(1).Select(Uri.EscapeDataString));
            }

            if (string.IsNullOrEmpty(c.Field))
            {
                errors.Add(new(key + ":Field", "is required with SecretPath: the key inside the secret whose value is injected"));
            }
        }
        else if (c.DynamicPath is not null)
        {
            dynamic = true;
            var segments = c.DynamicPath.Split('/');
            if (segments.Length < 2 || !segments.All(IsPathSegment))
            {
                errors.Add(new(key + ":DynamicPath", "'" + c.DynamicPath + "' is not a Vault path (for example database/creds/orders)"));
            }
            else
            {
                configuredPath = c.DynamicPath;
                readPath = string.Join('/', segments.Select(Uri.EscapeDataString));
            }

            if (c.Field is not null)
            {
                errors.Add(new(key + ":Field", "applies to SecretPath only: DynamicPath injects the lease's username and password"));
            }

            // One lease gives both; a configured user name would pair with another user's password.
            if (context.Username is not null)
            {
                errors.Add(new(key + ":Username", "does not apply with DynamicPath: the lease gives the user name"));
            }

            if (context.UsernameFile is not null)
            {
                errors.Add(new(key + ":UsernameFile", "does not apply with DynamicPath: the lease gives the user name"));
            }
        }
        else
        {
            errors.Add(new(key, "give SecretPath with Field (a KV v2 secret) or DynamicPath (dynamic credentials such as database/creds/orders)"));
            if (c.Field is not null)
            {
                errors.Add(new(key + ":Field", "applies with SecretPath only"));
            }
        }

        string? caFile = null;
        if (c.CaFile is not null)
        {
            caFile = context.RequireFile(c.CaFile, key + ":CaFile");
            if (context.CheckFiles && File.Exists(caFile) && !HoldsPemCertificate(caFile))
            {
                errors.Add(new(key + ":CaFile", "file '" + caFile + "' holds no PEM certificate"));
            }
        }

        var (timeout, retryAttempts, retryDelay) = context.CompileFetchLimits(c);

        // KV secrets do not expire; DefaultLifetime is how long a read value is served before it is
        // read again (ahead, at RefreshAt), so a rotation in Vault reaches requests within it.
        var readInterval = ConfigChecks.Positive(c.DefaultLifetime, TimeSpan.FromMinutes(5), key + ":DefaultLifetime", errors);

        IssuerEndpoint? endpoint = null;
        if (errors.Count == start)
        {
            endpoint = context.CompileIssuerEndpoint("Address", address!, c, "the workload token at login, then the Vault token with every read");
            if (caFile is not null && c.PinnedCertificateSha256 is not null)
            {
                errors.Add(new(key + ":CaFile", "give CaFile or PinnedCertificateSha256, not both: a pinned certificate is trusted by its fingerprint alone"));
            }
        }

        if (errors.Count > start || endpoint is null)
        {
            return null;
        }

        var settings = new VaultSettings(
            address!, authMount!, c.Role!, dynamic, configuredPath!, readPath!, dynamic ? null : c.Field, caFile,
            readInterval, timeout, retryAttempts, retryDelay, context.Username, context.UsernameFile, endpoint);
        return new VaultCredentialSource(settings, context.TokenClient, context.Time, context.Identity, context.LoggerFactory.CreateLogger<VaultCredentialSource>());
    }

    protected override VaultSourceOptions BindOptions(IConfigurationSection section) => section.Get<VaultSourceOptions>() ?? new();

    private static bool IsPathSegment(string s) => s.Length > 0 && s is not ("." or "..") && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@' or '+' or '=' or ',' or ':');

    private static bool HoldsPemCertificate(string path)
    {
        try
        {
            var collection = new X509Certificate2Collection();
            collection.ImportFromPemFile(path);
            var any = collection.Count > 0;
            foreach (var certificate in collection)
            {
                certificate.Dispose();
            }

            return any;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            return false;
        }
    }
}
