namespace SecretlessProxy.Fleet;

/// <summary>A timer of <see cref="VirtualClock"/>. A change or dispose leaves the old queue entry behind, ignored when it comes up.</summary>
internal sealed class VirtualTimer : ITimer
{
    private readonly VirtualClock _clock;
    private readonly TimerCallback _callback;
    private readonly object? _state;
    private readonly Lock _gate = new();
    private long _due = -1;
    private long _period = -1;

    public VirtualTimer(VirtualClock clock, TimerCallback callback, object? state)
    {
        _clock = clock;
        _callback = callback;
        _state = state;
    }

    public bool Change(TimeSpan dueTime, TimeSpan period)
    {
        long due;
        lock (_gate)
        {
            _period = period == Timeout.InfiniteTimeSpan ? -1 : period.Ticks;
            _due = dueTime == Timeout.InfiniteTimeSpan ? -1 : _clock.GetTimestamp() + dueTime.Ticks;
            due = _due;
        }

        if (due >= 0)
        {
            _clock.Enqueue(this, due);
        }

        return true;
    }

    internal void Fire(long now)
    {
        lock (_gate)
        {
            // A stale entry: changed or disposed since it was queued.
            if (_due < 0 || _due > now)
            {
                return;
            }

            _due = _period > 0 ? _due + _period : -1;
            if (_due >= 0)
            {
                _clock.Enqueue(this, _due);
            }
        }

        _callback(_state);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _due = -1;
        }
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
