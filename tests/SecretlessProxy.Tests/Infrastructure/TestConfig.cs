using System.Text.Json;
using System.Text.Json.Nodes;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// Builds a proxy config file and its secret files in a temporary folder, the way an operator
/// would lay them out. Every listener and the admin endpoint bind 127.0.0.1:0; the admin endpoint
/// has a token file (<see cref="AdminToken"/>), so reload and revoke work as an operator's would.
/// </summary>
public sealed class TestConfig : IDisposable
{
    private readonly JsonObject _section = new()
    {
        ["Admin"] = new JsonObject { ["Url"] = "http://127.0.0.1:0" },
        ["Listeners"] = new JsonObject(),
        ["Credentials"] = new JsonObject(),
        ["Policies"] = new JsonObject(),
    };

    public TestConfig()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("secretless-test-").FullName;
        AdminToken = "admin-token-" + Guid.NewGuid().ToString("N");
        AdminTokenFile = SecretFile("admin-token", AdminToken);
        _section["Admin"]!["TokenFile"] = AdminTokenFile;
    }

    /// <summary>The token in <see cref="AdminTokenFile"/>, which <c>Admin:TokenFile</c> names.</summary>
    public string AdminToken { get; }

    public string AdminTokenFile { get; }

    public string Directory { get; }

    public JsonObject Section => _section;

    public TestConfig RouteListener(string name, string upstream, string? unmatched = null)
    {
        var listener = new JsonObject { ["Mode"] = "Route", ["Url"] = "http://127.0.0.1:0", ["Upstream"] = upstream };
        if (unmatched is not null)
        {
            listener["Unmatched"] = unmatched;
        }

        _section["Listeners"]![name] = listener;
        return this;
    }

    public TestConfig ForwardListener(string name, int[] allowedConnectPorts, string? unmatched = null)
    {
        var listener = new JsonObject
        {
            ["Mode"] = "Forward",
            ["Url"] = "http://127.0.0.1:0",
            ["AllowedConnectPorts"] = new JsonArray(allowedConnectPorts.Select(p => (JsonNode)p).ToArray()),
        };
        if (unmatched is not null)
        {
            listener["Unmatched"] = unmatched;
        }

        _section["Listeners"]![name] = listener;
        return this;
    }

    /// <summary>A Postgres listener on 127.0.0.1:0 logging in to <paramref name="upstream"/> (host:port) with <paramref name="credential"/>.</summary>
    public TestConfig PostgresListener(string name, string upstream, string credential, JsonObject? tls = null)
    {
        var listener = new JsonObject { ["Mode"] = "Postgres", ["Url"] = "tcp://127.0.0.1:0", ["Upstream"] = upstream, ["Credential"] = credential };
        if (tls is not null)
        {
            listener["Tls"] = tls;
        }

        _section["Listeners"]![name] = listener;
        return this;
    }

    public TestConfig Credential(string name, JsonObject definition)
    {
        _section["Credentials"]![name] = definition;
        return this;
    }

    public TestConfig Policy(string name, JsonObject definition)
    {
        _section["Policies"]![name] = definition;
        return this;
    }

    public TestConfig Set(string key, JsonNode? value)
    {
        _section[key] = value;
        return this;
    }

    /// <summary>Writes a secret file (with the trailing newline an editor leaves) and returns its path.</summary>
    public string SecretFile(string fileName, string value)
    {
        var path = Path.Combine(Directory, fileName);
        File.WriteAllText(path, value + "\n");
        return path;
    }

    public string Write(string fileName = "proxy.json")
    {
        var path = Path.Combine(Directory, fileName);
        File.WriteAllText(path, new JsonObject { ["SecretlessProxy"] = JsonNode.Parse(_section.ToJsonString()) }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    public static JsonObject Match(string[] hosts, string? pathPrefix = null, string[]? methods = null, int[]? ports = null)
    {
        var match = new JsonObject { ["Hosts"] = new JsonArray(hosts.Select(h => (JsonNode)h).ToArray()) };
        if (pathPrefix is not null) match["PathPrefix"] = pathPrefix;
        if (methods is not null) match["Methods"] = new JsonArray(methods.Select(m => (JsonNode)m).ToArray());
        if (ports is not null) match["Ports"] = new JsonArray(ports.Select(p => (JsonNode)p).ToArray());
        return match;
    }

    /// <summary>
    /// An OAuth2 client-credentials credential whose client secret is in <paramref name="clientSecretFile"/>.
    /// A loopback token URL (the tests' WireMock) comes with <c>AllowLoopbackSquatting</c>, without which it is a config error.
    /// </summary>
    public static JsonObject OAuth2(string tokenUrl, string clientSecretFile, string clientId = "orders-service")
    {
        var credential = new JsonObject
        {
            ["Source"] = "OAuth2ClientCredentials",
            ["TokenUrl"] = tokenUrl,
            ["ClientId"] = clientId,
            ["ClientSecretFile"] = clientSecretFile,
        };
        if (SecretlessProxy.Core.Loopback.IsLoopbackHost(new Uri(tokenUrl)))
        {
            credential["AllowLoopbackSquatting"] = true;
        }

        return credential;
    }

    public static JsonObject HeaderPolicy(JsonObject match, string credential, string header = "Authorization", string format = "Bearer {token}") => new()
    {
        ["Match"] = match,
        ["Credential"] = credential,
        ["Inject"] = new JsonObject { ["Header"] = header, ["Format"] = format },
    };

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
