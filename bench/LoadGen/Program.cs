// A load generator for what wrk cannot do: HTTPS through a forward proxy over kept-alive CONNECT
// tunnels, and the cost of a new tunnel (CONNECT + TLS handshake) per host. Used by bench/run.sh.
//
//   loadgen load --url URL [--proxy URL] [--ca FILE] [--connections N] [--seconds S]
//     prints: rps p50_ms p99_ms requests errors
//   loadgen handshake --proxy URL --ca FILE --host PATTERN --count N
//     PATTERN may contain {i} for a new host per iteration; prints: mean_ms p50_ms p99_ms
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

var options = ParseOptions(args.Skip(1));
var ca = options.TryGetValue("ca", out var caFile) ? X509CertificateLoader.LoadCertificateFromFile(caFile) : null;

return args.FirstOrDefault() switch
{
    "load" => await LoadAsync(),
    "handshake" => await HandshakeAsync(),
    _ => Usage(),
};

async Task<int> LoadAsync()
{
    var url = new Uri(options["url"]);
    var connections = int.Parse(options.GetValueOrDefault("connections", "32"), CultureInfo.InvariantCulture);
    var seconds = double.Parse(options.GetValueOrDefault("seconds", "10"), CultureInfo.InvariantCulture);
    using var handler = new SocketsHttpHandler
    {
        MaxConnectionsPerServer = connections,
        UseProxy = options.ContainsKey("proxy"),
        Proxy = options.TryGetValue("proxy", out var proxy) ? new WebProxy(proxy) : null,
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, c, _, e) => Trusted(c, e) },
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
    };
    using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    var latencies = new List<double>[connections];
    var errors = 0;
    var end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
    var started = Stopwatch.GetTimestamp();
    await Task.WhenAll(Enumerable.Range(0, connections).Select(async c =>
    {
        var mine = latencies[c] = new List<double>(100_000);
        while (Stopwatch.GetTimestamp() < end)
        {
            var t0 = Stopwatch.GetTimestamp();
            try
            {
                using var response = await client.GetAsync(url);
                await response.Content.ReadAsByteArrayAsync();
                if (!response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref errors);
                }
            }
            catch (HttpRequestException)
            {
                Interlocked.Increment(ref errors);
            }

            mine.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
    }));
    var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
    var all = latencies.SelectMany(l => l).Order().ToArray();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{all.Length / elapsed:F2} {Percentile(all, 0.5):F3} {Percentile(all, 0.99):F3} {all.Length} {errors}"));
    return 0;
}

async Task<int> HandshakeAsync()
{
    var proxy = new Uri(options["proxy"]);
    var pattern = options["host"];
    var port = int.Parse(options.GetValueOrDefault("port", "443"), CultureInfo.InvariantCulture);
    var count = int.Parse(options.GetValueOrDefault("count", "100"), CultureInfo.InvariantCulture);
    var times = new List<double>(count);
    for (var i = 0; i < count; i++)
    {
        var host = pattern.Replace("{i}", i.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        var t0 = Stopwatch.GetTimestamp();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(proxy.Host, proxy.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"));
        var buffer = new byte[256];
        var read = await socket.ReceiveAsync(buffer);
        if (!Encoding.ASCII.GetString(buffer, 0, read).StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
        {
            Console.Error.WriteLine("CONNECT refused: " + Encoding.ASCII.GetString(buffer, 0, read));
            return 1;
        }

        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), false, (_, c, _, e) => Trusted(c, e));
        await tls.AuthenticateAsClientAsync(host);
        times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }

    var sorted = times.Order().ToArray();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{sorted.Average():F3} {Percentile(sorted, 0.5):F3} {Percentile(sorted, 0.99):F3}"));
    return 0;
}

bool Trusted(X509Certificate? certificate, SslPolicyErrors errors)
{
    if (errors == SslPolicyErrors.None)
    {
        return true;
    }

    if (ca is null || certificate is null || errors != SslPolicyErrors.RemoteCertificateChainErrors)
    {
        return false;
    }

    using var chain = new X509Chain();
    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
    chain.ChainPolicy.CustomTrustStore.Add(ca);
    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
    return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
}

static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

static Dictionary<string, string> ParseOptions(IEnumerable<string> arguments)
{
    var result = new Dictionary<string, string>();
    string? key = null;
    foreach (var argument in arguments)
    {
        if (argument.StartsWith("--", StringComparison.Ordinal))
        {
            key = argument[2..];
            result[key] = "true";
        }
        else if (key is not null)
        {
            result[key] = argument;
            key = null;
        }
    }

    return result;
}

static int Usage()
{
    Console.Error.WriteLine("usage: loadgen load --url URL [--proxy URL] [--ca FILE] [--connections N] [--seconds S] | loadgen handshake --proxy URL --ca FILE --host PATTERN [--port N] [--count N]");
    return 2;
}
