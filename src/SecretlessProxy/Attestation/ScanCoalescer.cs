namespace SecretlessProxy.Attestation;

/// <summary>
/// Runs a scan for many waiters at once, off the thread pool: each caller gets the result of the
/// first pass that <em>starts after</em> it asked (so the pass sees everything the caller's own
/// scan would have seen), and every caller that asked before that pass started shares it.
/// </summary>
/// <remarks>
/// Attesting a new connection's caller scans every process's descriptors (milliseconds on a busy
/// host). Done per connection on the thread pool, 32 connections opened together meant 32 scans
/// holding both of a 2-core machine's workers, and every request of every other connection waited
/// behind them (the p99.9 of each benchmark run). Here the scan runs on a thread of its own, started
/// when a pass is wanted and gone when none is; the waiters' continuations run on the pool.
/// </remarks>
/// <typeparam name="TKey">What a waiter looks for (a socket inode): a pass records only what its waiters asked for.</typeparam>
/// <typeparam name="T">What a pass produces.</typeparam>
internal sealed class ScanCoalescer<TKey, T>
    where TKey : notnull
{
    private readonly Func<bool, IReadOnlySet<TKey>, T> _scan;
    private readonly string _threadName;
    private readonly Lock _gate = new();
    private TaskCompletionSource<T>? _next;
    private HashSet<TKey> _nextKeys = [];
    private bool _nextIncludesSelf;
    private bool _running;

    /// <param name="scan">
    /// One pass: whether any waiter needs this process's own descriptors read too, and the keys the
    /// waiters look for (so that a process holding a million sockets costs time, not memory).
    /// </param>
    /// <param name="threadName">The pass thread's name, as tools show it.</param>
    public ScanCoalescer(Func<bool, IReadOnlySet<TKey>, T> scan, string threadName)
    {
        _scan = scan;
        _threadName = threadName;
    }

    /// <summary>How many passes ran (for tests: fewer than waiters when they coalesced).</summary>
    public long Passes => Interlocked.Read(ref _passes);

    private long _passes;

    /// <summary>The result of the next pass to start, which looks for <paramref name="key"/>.</summary>
    public Task<T> NextAsync(TKey key, bool includeSelf)
    {
        lock (_gate)
        {
            _next ??= new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            _nextKeys.Add(key);
            _nextIncludesSelf |= includeSelf;
            var task = _next.Task;
            if (!_running)
            {
                try
                {
                    // UnsafeStart: the pass serves every waiter; it carries none's execution context.
                    new Thread(Run) { IsBackground = true, Name = _threadName }.UnsafeStart();
                    _running = true;
                }
                catch (Exception ex) when (ex is OutOfMemoryException or ThreadStartException)
                {
                    // No thread (the pod's pid limit reached): these waiters fail now, the next ask tries again.
                    var failed = _next;
                    _next = null;
                    _nextKeys = [];
                    _nextIncludesSelf = false;
                    failed.SetException(ex);
                }
            }

            return task;
        }
    }

    private void Run()
    {
        while (true)
        {
            TaskCompletionSource<T> waiters;
            HashSet<TKey> keys;
            bool includeSelf;
            lock (_gate)
            {
                if (_next is null)
                {
                    _running = false;
                    return;
                }

                // Everyone who asked so far is answered by this pass; who asks from now on, by the next.
                waiters = _next;
                keys = _nextKeys;
                includeSelf = _nextIncludesSelf;
                _next = null;
                _nextKeys = [];
                _nextIncludesSelf = false;
            }

            try
            {
                var result = _scan(includeSelf, keys);
                Interlocked.Increment(ref _passes);
                waiters.SetResult(result);
            }
            catch (Exception ex)
            {
                // A scan reads /proc and catches what it expects; anything else reaches the waiters.
                waiters.SetException(ex);
            }
        }
    }
}
