using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// The real <c>secretless-proxy webhook</c> command, run in-process on 127.0.0.1 with a free port
/// and a server certificate from a test CA, its files laid out as the kubelet mounts a Secret
/// (<c>tls.crt -> ..data/tls.crt</c>, <c>..data -> ..version</c>), so a rotation swaps one symlink.
/// </summary>
public sealed class WebhookServer : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly StringWriter _outputText = new();
    private readonly StringWriter _errorText = new();
    private readonly TextWriter _output;
    private readonly TextWriter _error;
    private Task<int>? _run;
    private int _version;

    private WebhookServer()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("webhook-test-").FullName;
        Pki = new TestPki(Directory);
        _output = TextWriter.Synchronized(_outputText);
        _error = TextWriter.Synchronized(_errorText);
    }

    public string Directory { get; }

    public TestPki Pki { get; }

    /// <summary>The CA's PEM file, for curl's --cacert.</summary>
    public string CaFile => Pki.CaFile;

    public Uri BaseUri { get; private set; } = null!;

    public Uri MutateUri => new(BaseUri, "/mutate");

    public string CertificateFile => Path.Combine(Directory, "tls", "tls.crt");

    public string KeyFile => Path.Combine(Directory, "tls", "tls.key");

    /// <summary>The thumbprint of the certificate last written to the files.</summary>
    public string CurrentThumbprint { get; private set; } = string.Empty;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _outputText.ToString();
            }
        }
    }

    public string Error
    {
        get
        {
            lock (_error)
            {
                return _errorText.ToString();
            }
        }
    }

    public static async Task<WebhookServer> StartAsync(params string[] extraArguments)
    {
        var server = new WebhookServer();
        try
        {
            System.IO.Directory.CreateDirectory(Path.Combine(server.Directory, "tls"));
            server.Rotate();
            File.CreateSymbolicLink(server.CertificateFile, "..data/tls.crt");
            File.CreateSymbolicLink(server.KeyFile, "..data/tls.key");
            await server.RunAsync(server.CertificateFile, server.KeyFile, extraArguments);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>The command with certificate files made elsewhere (the bootstrap script's).</summary>
    public static async Task<WebhookServer> StartWithFilesAsync(string certificateFile, string keyFile)
    {
        var server = new WebhookServer();
        try
        {
            await server.RunAsync(certificateFile, keyFile, []);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private async Task RunAsync(string certificateFile, string keyFile, string[] extraArguments)
    {
        string[] arguments = ["webhook", "--url", "https://127.0.0.1:0", "--tls-cert", certificateFile, "--tls-key", keyFile, .. extraArguments];
        var run = Task.Run(() => CliApp.InvokeAsync(arguments, _output, _error, _stop.Token));
        _run = run;
        await Poll.UntilAsync(() => Output.Contains("listening on https://", StringComparison.Ordinal) || run.IsCompleted, "the webhook to listen");
        Assert.False(run.IsCompleted, "the webhook exited: " + Error + Output);
        var line = Output.Split('\n').First(l => l.Contains("listening on https://", StringComparison.Ordinal));
        BaseUri = new Uri(line[line.IndexOf("https://", StringComparison.Ordinal)..].Trim());
    }

    /// <summary>
    /// Writes a new certificate and key into a new version folder and swaps the <c>..data</c> link
    /// to it in one rename, as the kubelet updates a Secret volume when cert-manager renews.
    /// </summary>
    public void Rotate(bool keyMatches = true)
    {
        var tls = Path.Combine(Directory, "tls");
        var version = "..v" + ++_version;
        System.IO.Directory.CreateDirectory(Path.Combine(tls, version));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var certificate = Pki.IssueServer();
        using var serverKey = certificate.GetECDsaPrivateKey()!;
        File.WriteAllText(Path.Combine(tls, version, "tls.crt"), certificate.ExportCertificatePem() + "\n" + Pki.Ca.ExportCertificatePem() + "\n");
        File.WriteAllText(Path.Combine(tls, version, "tls.key"), (keyMatches ? serverKey : key).ExportPkcs8PrivateKeyPem());
        var link = Path.Combine(tls, "..data_tmp");
        File.Delete(link);
        System.IO.Directory.CreateSymbolicLink(link, version);
        // rename(2) over the old link (mv -T; File.Move will not move a link to a folder): readers
        // see the old pair or the new one, never a mix.
        using var move = System.Diagnostics.Process.Start("mv", ["-T", "-f", link, Path.Combine(tls, "..data")]);
        move.WaitForExit();
        Assert.Equal(0, move.ExitCode);
        if (keyMatches)
        {
            CurrentThumbprint = certificate.Thumbprint;
        }
    }

    /// <summary>A client on a new connection that trusts only the test CA and records the certificate the server presented.</summary>
    public HttpClient CreateClient(Action<X509Certificate2>? presented = null)
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.Zero,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    if (certificate is null)
                    {
                        return false;
                    }

                    using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.Add(Pki.Ca);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    presented?.Invoke(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
                    return chain.Build(leaf);
                },
            },
        };
        return new HttpClient(handler) { BaseAddress = BaseUri };
    }

    /// <summary>Posts a body with curl (as a client outside .NET would), returning the status and the body.</summary>
    public async Task<(int Status, string Body)> CurlAsync(string body, string contentType = "application/json")
    {
        var file = Path.Combine(Directory, "review-" + Guid.NewGuid().ToString("N") + ".json");
        await File.WriteAllTextAsync(file, body, new UTF8Encoding(false));
        var result = await ExternalClient.RunAsync("curl",
        [
            "-sS", "--cacert", CaFile, "-X", "POST", "-H", "Content-Type: " + contentType,
            "--data-binary", "@" + file, "-w", "\n%{http_code}", MutateUri.ToString(),
        ]);
        Assert.True(result.ExitCode == 0, "curl failed\n" + result);
        var cut = result.Output.LastIndexOf('\n');
        return (int.Parse(result.Output[(cut + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture), result.Output[..cut]);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_run is not null)
        {
            await _run;
        }

        _stop.Dispose();
        Pki.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
