using System.Buffers;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Reads an upstream response body with every form of the injected value masked in place (same
/// length, so <c>Content-Length</c> still holds). A form split across reads is found because the
/// bytes at the end of a read that could begin one are held back and put before the next read's
/// bytes; at the end of the body they are released as they are (a prefix alone is not the value).
/// </summary>
/// <remarks>
/// Masking on the read side, in the buffer the forwarder reads into, needs no copy of the body
/// and knows where the body ends: held bytes never stay behind when the upstream has finished,
/// and nothing is left over to prepend to an error response the proxy writes after a failure.
/// </remarks>
internal sealed class SecretMaskingStream : Stream
{
    private readonly Stream _inner;
    private readonly ResponseSecretMasker _masker;

    // Bytes kept between reads: the first _readyCount are scanned and final (only when the caller's
    // buffer was too small to take them), the rest are held back as a possible start of a form.
    private byte[]? _carry;
    private int _carryCount;
    private int _readyCount;
    private bool _ended;

    public SecretMaskingStream(Stream inner, ResponseSecretMasker masker)
    {
        _inner = inner;
        _masker = masker;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (TryTakeKept(buffer.Span, out var taken))
        {
            return taken;
        }

        if (buffer.IsEmpty)
        {
            // The forwarder's zero-byte read, to wait for data without holding a buffer: held bytes
            // cannot be released before more data (or the end) arrives, so wait on the upstream too.
            return await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        while (true)
        {
            var intoCaller = PrepareRead(buffer.Span, out var offset);
            var read = await _inner.ReadAsync(intoCaller ? buffer[offset..] : _carry.AsMemory(offset), cancellationToken).ConfigureAwait(false);
            var count = Complete(buffer.Span, intoCaller, offset, read);
            if (count > 0 || _ended)
            {
                return count;
            }
        }
    }

    public override int Read(Span<byte> buffer)
    {
        if (TryTakeKept(buffer, out var taken))
        {
            return taken;
        }

        if (buffer.IsEmpty)
        {
            return _inner.Read(buffer);
        }

        while (true)
        {
            var intoCaller = PrepareRead(buffer, out var offset);
            var read = _inner.Read(intoCaller ? buffer[offset..] : _carry.AsSpan(offset));
            var count = Complete(buffer, intoCaller, offset, read);
            if (count > 0 || _ended)
            {
                return count;
            }
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            ReturnCarry();
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync()
    {
        ReturnCarry();
        GC.SuppressFinalize(this);
        return _inner.DisposeAsync();
    }

    /// <summary>Serves bytes already final: scanned ones waiting for room, or held ones once the body has ended.</summary>
    private bool TryTakeKept(Span<byte> buffer, out int taken)
    {
        if (_ended)
        {
            _readyCount = _carryCount;
        }

        if (_readyCount == 0)
        {
            taken = 0;
            return _ended;
        }

        taken = Math.Min(_readyCount, buffer.Length);
        _carry.AsSpan(0, taken).CopyTo(buffer);
        _carry.AsSpan(taken, _carryCount - taken).CopyTo(_carry);
        _carryCount -= taken;
        _readyCount -= taken;
        return true;
    }

    /// <summary>
    /// Where the next upstream read goes: into the caller's buffer after the held bytes (copied to
    /// its start), which is the usual case; or, when the buffer cannot take more than the held
    /// bytes, into the carry after them.
    /// </summary>
    private bool PrepareRead(Span<byte> buffer, out int offset)
    {
        if (buffer.Length > _carryCount)
        {
            _carry.AsSpan(0, _carryCount).CopyTo(buffer);
            offset = _carryCount;
            return true;
        }

        // Room for more than the longest form, so a full carry always releases something.
        var capacity = (2 * _masker.LongestForm) + 16;
        if (_carry is null || _carry.Length < capacity)
        {
            var grown = ArrayPool<byte>.Shared.Rent(capacity);
            _carry.AsSpan(0, _carryCount).CopyTo(grown);
            ReturnCarry();
            _carry = grown;
        }

        offset = _carryCount;
        return false;
    }

    /// <summary>Scans what was read with the held bytes before it; returns how many bytes the caller gets (0: read again, unless ended).</summary>
    private int Complete(Span<byte> buffer, bool intoCaller, int offset, int read)
    {
        if (read == 0)
        {
            _ended = true;
            if (intoCaller)
            {
                // The held bytes are already at the start of the caller's buffer.
                _carryCount = 0;
                return offset;
            }

            TryTakeKept(buffer, out var taken);
            return taken;
        }

        var window = intoCaller ? buffer[..(offset + read)] : _carry.AsSpan(0, offset + read);
        _masker.MaskBody(window);
        var hold = _masker.HoldBack(window);
        if (!intoCaller)
        {
            _carryCount = window.Length;
            _readyCount = window.Length - hold;
            TryTakeKept(buffer, out var taken);
            return taken;
        }

        if (hold > 0)
        {
            if (_carry is null || _carry.Length < hold)
            {
                ReturnCarry();
                _carry = ArrayPool<byte>.Shared.Rent(Math.Max(hold, _masker.LongestForm));
            }

            window[^hold..].CopyTo(_carry);
        }

        _carryCount = hold;
        return window.Length - hold;
    }

    private void ReturnCarry()
    {
        if (_carry is { } carry)
        {
            _carry = null;
            ArrayPool<byte>.Shared.Return(carry);
        }
    }
}
