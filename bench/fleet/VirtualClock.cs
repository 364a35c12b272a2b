namespace SecretlessProxy.Fleet;

/// <summary>
/// The fleet's virtual clock: a <see cref="TimeProvider"/> that moves only when <see cref="Advance"/> is
/// called, with its timers in a priority queue. FakeTimeProvider (which the unit tests use) looks at
/// every pending timer on each advance and each firing; with a timer per credential of 10,000
/// sidecars (a spread prefetch) that made a run take minutes. Timers fire at the end of the step
/// they fall in, with the clock already at that end: the clock has the resolution of a step, so
/// whatever a timer starts is counted at a whole step, the same in every run.
/// </summary>
internal sealed class VirtualClock : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly PriorityQueue<VirtualTimer, (long Due, long Order)> _timers = new();
    private long _ticks;
    private long _order;

    public VirtualClock(DateTimeOffset start) => _ticks = start.UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Volatile.Read(ref _ticks), TimeSpan.Zero);

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Volatile.Read(ref _ticks);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new VirtualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Moves the clock on, then fires every timer due by then, earliest first (on this thread).</summary>
    public void Advance(TimeSpan delta)
    {
        var now = Interlocked.Add(ref _ticks, delta.Ticks);
        while (true)
        {
            VirtualTimer timer;
            lock (_gate)
            {
                if (!_timers.TryPeek(out timer!, out var key) || key.Due > now)
                {
                    return;
                }

                _timers.Dequeue();
            }

            timer.Fire(now);
        }
    }

    internal void Enqueue(VirtualTimer timer, long due)
    {
        lock (_gate)
        {
            _timers.Enqueue(timer, (due, _order++));
        }
    }
}
