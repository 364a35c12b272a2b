using System.IO.Pipelines;

namespace SecretlessProxy.Listeners;

/// <summary>
/// The time a new connection has to get to its first request: one budget from accept across every
/// stage before HTTP (CONNECT head, TLS handshake, first bytes), so a client cannot hold a
/// connection by spending almost the whole allowance on each stage in turn. The timer runs on the
/// injected <see cref="TimeProvider"/>.
/// </summary>
internal sealed class HandshakeDeadline : IDisposable
{
    private readonly CancellationTokenSource _timer;
    private readonly CancellationTokenSource _linked;

    public HandshakeDeadline(TimeSpan timeout, TimeProvider time, CancellationToken connectionClosed)
    {
        Timeout = timeout;
        _timer = new CancellationTokenSource(timeout, time);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(_timer.Token, connectionClosed);
    }

    public TimeSpan Timeout { get; }

    /// <summary>Cancelled when the deadline passes or the client goes away.</summary>
    public CancellationToken Token => _linked.Token;

    /// <summary>The deadline passed (as opposed to the client leaving).</summary>
    public bool Expired => _timer.IsCancellationRequested;

    /// <summary>The connection reached HTTP: from here Kestrel's own request-head and keep-alive limits apply.</summary>
    public void Stop()
    {
        if (!_timer.IsCancellationRequested)
        {
            _timer.CancelAfter(System.Threading.Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// Waits, within the deadline, until the client has sent at least one byte, and leaves it unread
    /// for whoever parses the connection. False when the client went away or the deadline passed
    /// (<see cref="Expired"/> tells which).
    /// </summary>
    public async Task<bool> WaitForFirstBytesAsync(PipeReader input)
    {
        ReadResult read;
        try
        {
            read = await input.ReadAsync(Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (Exception ex) when (ex is IOException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            return false;
        }

        input.AdvanceTo(read.Buffer.Start);
        return !read.Buffer.IsEmpty;
    }

    public void Dispose()
    {
        _linked.Dispose();
        _timer.Dispose();
    }
}
