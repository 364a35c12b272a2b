using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SecretlessProxy.Tests.Identity;

/// <summary>
/// An HTTP/1.1 upstream on 127.0.0.1:0 that records each request head exactly as the bytes
/// arrived (nothing parsed or normalised) and answers 200 "ok" with keep-alive. Requests are
/// bodiless here (GET), so a head is everything up to the blank line.
/// </summary>
internal sealed class RecordingRawUpstream : IAsyncDisposable
{
    private static readonly byte[] Answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"u8.ToArray();

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _requests = [];
    private readonly List<Task> _connections = [];
    private readonly Task _accepting;

    public RecordingRawUpstream()
    {
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string Url => "http://127.0.0.1:" + ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Every request head received so far, in arrival order, decoded as Latin-1 (one char per byte).</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return _requests.ToArray();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        Task[] connections;
        lock (_connections)
        {
            connections = _connections.ToArray();
        }

        await Task.WhenAll(connections);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var socket = await _listener.AcceptSocketAsync(_stop.Token);
            lock (_connections)
            {
                _connections.Add(ServeAsync(socket));
            }
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using (socket)
        {
            var buffer = new byte[16 * 1024];
            var pending = new List<byte>();
            try
            {
                while (true)
                {
                    var read = await socket.ReceiveAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    pending.AddRange(buffer.AsSpan(0, read));
                    int end;
                    while ((end = IndexOfBlankLine(pending)) >= 0)
                    {
                        var head = Encoding.Latin1.GetString(pending.GetRange(0, end + 4).ToArray());
                        pending.RemoveRange(0, end + 4);
                        lock (_requests)
                        {
                            _requests.Add(head);
                        }

                        await socket.SendAsync(Answer, _stop.Token);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
            }
        }
    }

    private static int IndexOfBlankLine(List<byte> bytes)
    {
        for (var i = 0; i + 3 < bytes.Count; i++)
        {
            if (bytes[i] == '\r' && bytes[i + 1] == '\n' && bytes[i + 2] == '\r' && bytes[i + 3] == '\n')
            {
                return i;
            }
        }

        return -1;
    }
}
