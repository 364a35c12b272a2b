using System.Buffers;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;

namespace SecretlessProxy.Injection;

/// <summary>
/// A request body read once to be signed, then replayed to the upstream from the same memory: the
/// SHA-256 the signature covers is computed while the body is read, so nothing is copied twice.
/// Every byte it holds is reserved first from the process-wide <see cref="SigningBufferBudget"/>.
/// </summary>
/// <remarks>
/// <para>A declared <c>Content-Length</c> is reserved whole before anything is read and read into
/// one array of exactly that size. Without one (chunked, HTTP/2 without the header) the body goes
/// into pooled segments of <see cref="SegmentSize"/>, each reserved before it is rented, so what
/// is held never runs ahead of the budget by more than one segment's reservation.</para>
/// <para>The memory goes back to the pool and the bytes to the budget when the body is disposed
/// (by its <see cref="SigningBufferScope"/> when the request ends) and no send is still reading
/// it: HTTP/1.1 may still be sending the body after the response arrived, and a pooled segment
/// handed to another request meanwhile would send that request's bytes.</para>
/// </remarks>
internal sealed class SignedBody : HttpContent
{
    /// <summary>Pooled segment size for a body of unknown length.</summary>
    internal const int SegmentSize = 64 * 1024;

    private readonly SigningBufferBudget _budget;
    private readonly long _limit;
    private readonly long? _declared;
    private byte[]? _exact;
    private List<Segment>? _segments;
    private long _lastSegmentStart;
    private IncrementalHash? _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _length;
    private long _reserved;
    private Exception? _failure;
    private int _references = 1;
    private int _disposed;

    private SignedBody(SigningBufferBudget budget, long limit, long? declared)
    {
        _budget = budget;
        _limit = limit;
        _declared = declared;
        if (declared is { } length)
        {
            _reserved = length;
            _exact = length == 0 ? [] : GC.AllocateUninitializedArray<byte>(checked((int)length));
        }
        else
        {
            _segments = [];
        }
    }

    /// <summary>Lower-case hex SHA-256 of the body, as <c>x-amz-content-sha256</c> carries it.</summary>
    public string Sha256Hex { get; private set; } = string.Empty;

    /// <summary>
    /// Reads <paramref name="source"/> to its end within <paramref name="maxBodyBytes"/> and the
    /// budget. Throws <see cref="PayloadTooLargeException"/> past the policy's limit and
    /// <see cref="SigningBufferRefusedException"/> when the budget cannot hold it; either way what
    /// was reserved is given back before the exception leaves.
    /// </summary>
    public static async Task<SignedBody> ReadAsync(HttpContent source, long maxBodyBytes, SigningBufferBudget budget, CancellationToken cancellationToken)
    {
        var declared = source.Headers.ContentLength;
        if (declared > maxBodyBytes)
        {
            throw new PayloadTooLargeException(maxBodyBytes);
        }

        // A length beyond one array's reach is read in segments like an undeclared one.
        if (declared > Array.MaxLength)
        {
            declared = null;
        }

        if (declared is { } length)
        {
            if (length > budget.Capacity)
            {
                throw SigningBufferRefusedException.TooLarge(length, budget);
            }

            if (!budget.TryReserve(length))
            {
                throw SigningBufferRefusedException.Full(length, budget);
            }
        }

        SignedBody body;
        try
        {
            body = new SignedBody(budget, maxBodyBytes, declared);
        }
        catch
        {
            // The array could not be allocated: what was reserved for it goes back.
            budget.Release(declared ?? 0);
            throw;
        }

        try
        {
            using (var writer = new Writer(body))
            {
                await source.CopyToAsync(writer, cancellationToken).ConfigureAwait(false);
            }

            // Checked here, not only thrown from Write: the forwarder's content reports a failed
            // write to its destination through its own completion task and returns normally, which
            // would leave a truncated body to sign.
            if (body._failure is { } failure)
            {
                throw failure;
            }

            if (body._declared is { } expected && body._length != expected)
            {
                throw new IOException("the request body ended after " + body._length.ToString(CultureInfo.InvariantCulture) + " of its declared " + expected.ToString(CultureInfo.InvariantCulture) + " bytes");
            }

            body.Complete(source);
            return body;
        }
        catch
        {
            body.Dispose();
            throw;
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        // Counted as a reader, so a dispose meanwhile leaves the memory alone until this send ends.
        if (!TryAddReference())
        {
            throw new ObjectDisposedException(nameof(SignedBody), "the request ended before its body was sent");
        }

        try
        {
            if (_exact is { } exact)
            {
                await stream.WriteAsync(exact, cancellationToken).ConfigureAwait(false);
                return;
            }

            var segments = _segments!;
            for (var i = 0; i < segments.Count; i++)
            {
                var used = i < segments.Count - 1 ? segments[i].Size : (int)(_length - _lastSegmentStart);
                await stream.WriteAsync(segments[i].Array.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ReleaseReference();
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _length;
        return true;
    }

    protected override Task<Stream> CreateContentReadStreamAsync() =>
        throw new NotSupportedException("a body buffered for signing is only replayed to the upstream");

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            ReleaseReference();
        }

        base.Dispose(disposing);
    }

    private void Complete(HttpContent source)
    {
        Sha256Hex = Convert.ToHexStringLower(_hash!.GetHashAndReset());
        _hash.Dispose();
        _hash = null;
        foreach (var (name, values) in source.Headers.NonValidated)
        {
            if (!name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var value in values)
                {
                    Headers.TryAddWithoutValidation(name, value);
                }
            }
        }

        Headers.ContentLength = _length;
    }

    private void Append(ReadOnlySpan<byte> data)
    {
        if (_failure is { } failure)
        {
            throw failure;
        }

        _hash!.AppendData(data);
        if (_exact is { } exact)
        {
            if (data.Length > exact.Length - _length)
            {
                Fail(new IOException("the request body is longer than its Content-Length"));
            }

            data.CopyTo(exact.AsSpan((int)_length));
            _length += data.Length;
            return;
        }

        while (!data.IsEmpty)
        {
            var room = (int)(_reserved - _length);
            if (room == 0)
            {
                Grow(data.Length);
                room = (int)(_reserved - _length);
            }

            var take = Math.Min(room, data.Length);
            data[..take].CopyTo(_segments![^1].Array.AsSpan((int)(_length - _lastSegmentStart)));
            _length += take;
            data = data[take..];
        }
    }

    /// <summary>Reserves and rents the next segment, up to the policy's limit and the budget's capacity.</summary>
    private void Grow(int pending)
    {
        var capacity = _budget.Capacity;
        var allowed = Math.Min(_limit, capacity) - _reserved;
        if (allowed <= 0)
        {
            Fail(_limit <= capacity ? new PayloadTooLargeException(_limit) : SigningBufferRefusedException.TooLarge(_length + pending, _budget));
        }

        var size = (int)Math.Min(SegmentSize, allowed);
        if (!_budget.TryReserve(size))
        {
            Fail(SigningBufferRefusedException.Full(_reserved + size, _budget));
        }

        _reserved += size;
        _lastSegmentStart = _length;
        // Only the reserved part of the rented array is ever written or sent.
        _segments!.Add(new Segment(ArrayPool<byte>.Shared.Rent(size), size));
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Fail(Exception failure)
    {
        _failure = failure;
        throw failure;
    }

    private bool TryAddReference()
    {
        var current = Volatile.Read(ref _references);
        while (current > 0)
        {
            var seen = Interlocked.CompareExchange(ref _references, current + 1, current);
            if (seen == current)
            {
                return true;
            }

            current = seen;
        }

        return false;
    }

    private void ReleaseReference()
    {
        if (Interlocked.Decrement(ref _references) != 0)
        {
            return;
        }

        if (_segments is { } segments)
        {
            foreach (var segment in segments)
            {
                ArrayPool<byte>.Shared.Return(segment.Array);
            }

            segments.Clear();
        }

        _exact = null;
        _hash?.Dispose();
        _hash = null;
        var reserved = _reserved;
        _reserved = 0;
        _budget.Release(reserved);
    }

    /// <summary>A pooled array and the bytes of it reserved (the pool may hand out a larger one).</summary>
    private readonly record struct Segment(byte[] Array, int Size);

    /// <summary>The destination the forwarder's content copies the app's body into.</summary>
    private sealed class Writer(SignedBody body) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => body.Append(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer) => body.Append(buffer);

        public override void WriteByte(byte value) => body.Append([value]);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            body.Append(buffer.AsSpan(offset, count));
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            body.Append(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
