using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// A token endpoint (or a process squatting where one should be) on a loopback port or a Unix
/// socket, with or without TLS. It records every byte that arrived on the wire, before any TLS
/// decryption, and each request it could read (head and body, decrypted), and answers each with a
/// fresh access token. A test can then say both "the issuer got the secret over this transport"
/// and "the squatter got nothing it could read".
/// </summary>
public sealed class FakeIssuer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly X509Certificate2? _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly MemoryStream _raw = new();
    private readonly string _marker = Guid.NewGuid().ToString("N")[..10];
    private int _connections;
    private int _issued;

    private FakeIssuer(Socket listener, X509Certificate2? certificate)
    {
        _listener = listener;
        _certificate = certificate;
        _listener.Listen(16);
        _accepting = AcceptAsync();
    }

    /// <summary>Each request as it was read (after TLS): the head and the body.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>The JSON body for a request head, instead of a fresh access token (a key set, say).</summary>
    public Func<string, string>? Answer { get; set; }

    /// <summary>Connections accepted, whether or not a request followed.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    /// <summary>Every access token handed out so far.</summary>
    public IReadOnlyList<string> IssuedTokens => Enumerable.Range(1, Volatile.Read(ref _issued)).Select(Token).ToArray();

    /// <summary>Every byte received on the wire, TLS records included, as Latin-1 text.</summary>
    public string RawReceived
    {
        get
        {
            lock (_raw)
            {
                return Encoding.Latin1.GetString(_raw.ToArray());
            }
        }
    }

    public static FakeIssuer OnLoopback(X509Certificate2? certificate = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return new FakeIssuer(socket, certificate);
    }

    public static FakeIssuer OnUnixSocket(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        return new FakeIssuer(socket, null);
    }

    /// <summary>A self-signed server certificate for 127.0.0.1 and localhost, with its key.</summary>
    public static X509Certificate2 SelfSigned(string commonName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + commonName, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        // Round-trip through PKCS#12 so SslStream on Linux gets a key it can use for the server side.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    private string Token(int n) => "issuer-token-" + _marker + "-" + n;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            Interlocked.Increment(ref _connections);
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        await using var network = new RecordingStream(new NetworkStream(client, ownsSocket: true), _raw);
        try
        {
            Stream stream = network;
            if (_certificate is not null)
            {
                var tls = new SslStream(network, leaveInnerStreamOpen: true);
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, _stop.Token);
                stream = tls;
            }

            var buffer = new List<byte>();
            var chunk = new byte[8192];
            int end;
            while ((end = RawUpstream.IndexOfHeadEnd(buffer)) < 0)
            {
                var read = await stream.ReadAsync(chunk, _stop.Token);
                if (read == 0)
                {
                    return;
                }

                buffer.AddRange(chunk.AsSpan(0, read));
            }

            var head = Encoding.Latin1.GetString(buffer.GetRange(0, end).ToArray());
            var length = head.Split("\r\n").Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase)).Select(p => int.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
            while (buffer.Count < end + 4 + length)
            {
                var read = await stream.ReadAsync(chunk, _stop.Token);
                if (read == 0)
                {
                    return;
                }

                buffer.AddRange(chunk.AsSpan(0, read));
            }

            Requests.Enqueue(head + "\r\n\r\n" + Encoding.Latin1.GetString(buffer.GetRange(end + 4, length).ToArray()));
            var body = Encoding.UTF8.GetBytes(Answer is { } answer
                ? answer(head)
                : "{\"access_token\":\"" + Token(Interlocked.Increment(ref _issued)) + "\",\"token_type\":\"Bearer\",\"expires_in\":3600}");
            var response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + body.Length + "\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.Latin1.GetBytes(response), _stop.Token);
            await stream.WriteAsync(body, _stop.Token);
            await stream.FlushAsync(_stop.Token);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _accepting;
        _stop.Dispose();
        _certificate?.Dispose();
    }

    /// <summary>Copies every byte read into a shared buffer: what went over the wire, before TLS.</summary>
    private sealed class RecordingStream(Stream inner, MemoryStream record) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            lock (record)
            {
                record.Write(buffer.Span[..read]);
            }

            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override void Flush() => inner.Flush();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync();
            await base.DisposeAsync();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
