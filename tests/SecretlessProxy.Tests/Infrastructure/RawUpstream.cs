using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// An HTTP/1.1 upstream on 127.0.0.1 that normalises nothing: it records each request head exactly
/// as the bytes arrived (request line, every header, in order), then answers 200 "raw-ok". With a
/// certificate it serves TLS and records the SNI. What a test asserts about "what the upstream got"
/// is what went on the wire, not what a framework made of it.
/// </summary>
public sealed class RawUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly X509Certificate2? _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    private RawUpstream(X509Certificate2? certificate)
    {
        _certificate = certificate;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public ConcurrentQueue<RawRequest> Received { get; } = new();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Extra response headers and body, for tests of what comes back.</summary>
    public Func<RawRequest, (string Headers, string Body)>? Respond { get; set; }

    public static RawUpstream Start(X509Certificate2? certificate = null) => new(certificate);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            Stream stream = client.GetStream();
            var sni = string.Empty;
            if (_certificate is not null)
            {
                var tls = new SslStream(stream);
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificateSelectionCallback = (_, name) =>
                    {
                        sni = name ?? string.Empty;
                        return _certificate;
                    },
                }, _stop.Token);
                stream = tls;
            }

            var buffer = new List<byte>();
            var chunk = new byte[8192];
            while (true)
            {
                var end = IndexOfHeadEnd(buffer);
                while (end < 0)
                {
                    var read = await stream.ReadAsync(chunk, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    buffer.AddRange(chunk.AsSpan(0, read));
                    end = IndexOfHeadEnd(buffer);
                }

                var head = Encoding.Latin1.GetString(buffer.GetRange(0, end).ToArray());
                buffer.RemoveRange(0, end + 4);
                var request = new RawRequest(head, sni);
                var length = request.Header("Content-Length") is { } cl && int.TryParse(cl, out var n) ? n : 0;
                while (buffer.Count < length)
                {
                    var read = await stream.ReadAsync(chunk, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    buffer.AddRange(chunk.AsSpan(0, read));
                }

                buffer.RemoveRange(0, length);
                Received.Enqueue(request);
                var (headers, body) = Respond?.Invoke(request) ?? (string.Empty, "raw-ok");
                var bytes = Encoding.UTF8.GetBytes(body);
                var response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + bytes.Length + "\r\n" + headers + "\r\n";
                await stream.WriteAsync(Encoding.Latin1.GetBytes(response), _stop.Token);
                await stream.WriteAsync(bytes, _stop.Token);
                await stream.FlushAsync(_stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Where the head ends (the index of its CRLF CRLF) in bytes received so far, or -1; shared with <see cref="FakeIssuer"/>.</summary>
    internal static int IndexOfHeadEnd(List<byte> buffer)
    {
        for (var i = 3; i < buffer.Count; i++)
        {
            if (buffer[i] == '\n' && buffer[i - 1] == '\r' && buffer[i - 2] == '\n' && buffer[i - 3] == '\r')
            {
                return i - 3;
            }
        }

        return -1;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }

    /// <summary>One request head as received: the request line and the header lines, untouched.</summary>
    public sealed record RawRequest(string Head, string Sni)
    {
        public string RequestLine => Head.Split("\r\n")[0];

        public string Method => RequestLine.Split(' ')[0];

        /// <summary>The request target exactly as sent (between the first and last space of the request line).</summary>
        public string Target => RequestLine[(RequestLine.IndexOf(' ') + 1)..RequestLine.LastIndexOf(' ')];

        public IEnumerable<(string Name, string Value)> Headers =>
            Head.Split("\r\n").Skip(1).Select(l => (l[..l.IndexOf(':')], l[(l.IndexOf(':') + 1)..].Trim()));

        public string? Header(string name) => Headers.Where(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).FirstOrDefault();

        public override string ToString() => Head;
    }
}
