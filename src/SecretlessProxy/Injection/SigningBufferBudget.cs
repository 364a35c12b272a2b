namespace SecretlessProxy.Injection;

/// <summary>
/// The bytes of request bodies the whole proxy may hold at once to sign them (AWS SigV4 payload
/// hashes). One instance per running proxy (<c>Hosting/ProxyState</c>): every request that
/// buffers a body reserves its bytes here first and gives them back when the request ends, so
/// many concurrent large bodies are refused instead of growing the process without bound.
/// </summary>
/// <remarks>
/// Lock-free: a reservation is one compare-and-swap on the held total. A reload may lower
/// <see cref="Capacity"/> below what is held; nothing held is taken back, later reservations wait
/// for the total to fall under the new capacity.
/// </remarks>
internal sealed class SigningBufferBudget
{
    private long _capacity;
    private long _held;

    public SigningBufferBudget(long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>The most bytes held at once (<c>Limits:SigningBufferBytes</c>).</summary>
    public long Capacity
    {
        get => Volatile.Read(ref _capacity);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            Volatile.Write(ref _capacity, value);
        }
    }

    /// <summary>The bytes reserved now, by every request together.</summary>
    public long Held => Volatile.Read(ref _held);

    /// <summary>Reserves <paramref name="bytes"/> if they fit under <see cref="Capacity"/> with everything already held.</summary>
    public bool TryReserve(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        var held = Volatile.Read(ref _held);
        while (true)
        {
            if (bytes > Capacity - held)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _held, held + bytes, held);
            if (seen == held)
            {
                return true;
            }

            held = seen;
        }
    }

    /// <summary>Gives back bytes an earlier <see cref="TryReserve"/> granted.</summary>
    public void Release(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        var after = Interlocked.Add(ref _held, -bytes);
        if (after < 0)
        {
            // A release without its reservation is a bug here, not something an app can cause;
            // repaired rather than let the budget grow by the difference.
            Interlocked.Add(ref _held, bytes);
            throw new InvalidOperationException("released more signing-buffer bytes than were reserved");
        }
    }
}
