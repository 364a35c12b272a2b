using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging.Abstractions;
using SecretlessProxy.Cli;
using SecretlessProxy.Cli.Webhook;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// The serving certificate follows its files (rotated as the kubelet updates a cert-manager Secret)
/// without a restart, keeps serving the last good pair when a new one does not load, and the
/// command refuses to start without a usable pair or with bad flags, saying why.
/// </summary>
public sealed class WebhookCertificateTests
{
    [Fact]
    public async Task A_rotated_certificate_is_presented_on_the_next_connection()
    {
        await using var server = await WebhookServer.StartAsync();
        var first = server.CurrentThumbprint;
        Assert.Equal(first, await PresentedAsync(server));

        server.Rotate();
        var second = server.CurrentThumbprint;

        Assert.NotEqual(first, second);
        Assert.Equal(second, await PresentedAsync(server));
        await WebhookRefusalTests.AssertStillServesAsync(server);
    }

    [Fact]
    public async Task A_handshake_that_took_the_previous_certificate_completes_after_a_rotation()
    {
        // The window between Kestrel taking the context and the handshake signing with its key is too
        // short to hit over HTTP: take the context, rotate, let the next handshake swap it, then
        // shake hands with the one taken first, as a connection accepted just before the swap does.
        await using var server = await WebhookServer.StartAsync();
        using var certificate = WebhookCertificate.Load(server.CertificateFile, server.KeyFile, NullLogger.Instance);
        var taken = certificate.Current;
        var first = server.CurrentThumbprint;

        server.Rotate();
        var swapped = certificate.Current;
        Assert.NotSame(taken, swapped);
        Assert.Equal(server.CurrentThumbprint, swapped.TargetCertificate.Thumbprint);

        Assert.Equal(first, await HandshakeAsync(taken, server.Pki));
        Assert.Equal(server.CurrentThumbprint, await HandshakeAsync(swapped, server.Pki));
    }

    [Fact]
    public async Task A_pair_that_does_not_load_leaves_the_last_good_certificate_serving()
    {
        await using var server = await WebhookServer.StartAsync();
        var good = server.CurrentThumbprint;

        server.Rotate(keyMatches: false);

        Assert.Equal(good, await PresentedAsync(server));
        Assert.Equal(good, await PresentedAsync(server));

        server.Rotate();
        Assert.Equal(server.CurrentThumbprint, await PresentedAsync(server));
    }

    [Fact]
    public async Task The_command_does_not_start_without_a_usable_certificate_and_names_the_problem()
    {
        var directory = Directory.CreateTempSubdirectory("webhook-cert-").FullName;
        try
        {
            var missing = Path.Combine(directory, "missing.crt");
            var (code, error) = await RunAsync(["webhook", "--url", "https://127.0.0.1:0", "--tls-cert", missing, "--tls-key", missing]);
            Assert.Equal(ExitCodes.Failure, code);
            Assert.Contains("could not start", error, StringComparison.Ordinal);

            // A certificate with a key that is not its own.
            using var pki = new TestPki(directory);
            using var certificate = pki.IssueServer();
            using var other = System.Security.Cryptography.ECDsa.Create();
            await File.WriteAllTextAsync(Path.Combine(directory, "tls.crt"), certificate.ExportCertificatePem());
            await File.WriteAllTextAsync(Path.Combine(directory, "tls.key"), other.ExportPkcs8PrivateKeyPem());
            (code, error) = await RunAsync(["webhook", "--url", "https://127.0.0.1:0", "--tls-cert", Path.Combine(directory, "tls.crt"), "--tls-key", Path.Combine(directory, "tls.key")]);
            Assert.Equal(ExitCodes.Failure, code);
            Assert.Contains("could not start", error, StringComparison.Ordinal);
            Assert.DoesNotContain("PRIVATE KEY", error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Bad_flags_are_each_named()
    {
        var (code, error) = await RunAsync(
        [
            "webhook", "--url", "http://0.0.0.0:8443", "--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key",
            "--failure-policy", "1", "--image-pull-policy", "Maybe", "--max-request-bytes", "10",
        ]);

        Assert.Equal(ExitCodes.InvalidConfig, code);
        Assert.Contains("--url: 'http://0.0.0.0:8443' is not https://ADDRESS:PORT", error, StringComparison.Ordinal);
        Assert.Contains("--failure-policy: '1' is not Fail or Ignore", error, StringComparison.Ordinal);
        Assert.Contains("--image-pull-policy: 'Maybe'", error, StringComparison.Ordinal);
        Assert.Contains("--max-request-bytes: 10", error, StringComparison.Ordinal);
    }

    private static async Task<string> PresentedAsync(WebhookServer server)
    {
        X509Certificate2? presented = null;
        using var client = server.CreateClient(c => presented = c);
        Assert.Equal("ok\n", await client.GetStringAsync("/healthz"));
        using (presented)
        {
            return presented!.Thumbprint;
        }
    }

    /// <summary>A TLS handshake on loopback with the server side presenting <paramref name="context"/>; the thumbprint the client saw.</summary>
    private static async Task<string> HandshakeAsync(SslStreamCertificateContext context, TestPki pki)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        using var accepted = await listener.AcceptTcpClientAsync();
        await using var serverStream = new SslStream(accepted.GetStream());
        string? presented = null;
        await using var clientStream = new SslStream(client.GetStream(), false, (_, certificate, _, _) =>
        {
            using var leaf = X509CertificateLoader.LoadCertificate(certificate!.GetRawCertData());
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(pki.Ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            presented = leaf.Thumbprint;
            return chain.Build(leaf);
        });
        var clientHandshake = clientStream.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" });
        try
        {
            await serverStream.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = context });
        }
        catch
        {
            // Close the connection so the client's handshake ends too, and report the server's failure.
            accepted.Dispose();
            throw;
        }

        await clientHandshake;
        return presented!;
    }

    private static async Task<(int Code, string Error)> RunAsync(string[] arguments)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await CliApp.InvokeAsync(arguments, output, error);
        return (code, error.ToString());
    }
}
