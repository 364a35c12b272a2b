using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using SecretlessProxy.Core;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// The audit trail: every decision is kept in a ring of the most recent ones (served by the admin
/// port's <c>/decisions</c>) and, when a sink is configured, written as one JSON line to standard
/// output or to a size-rotated file by a background writer, so a slow disk never delays a request.
/// </summary>
internal sealed partial class AuditLog : IAsyncDisposable
{
    public const int RecentCapacity = 512;

    /// <summary>
    /// Records waiting for a slow or stuck sink (a few MB at most). Beyond it a record is not
    /// written (it stays in <c>/decisions</c>) and the loss is logged, rather than let an app that
    /// sends requests faster than the sink writes grow the proxy without bound.
    /// </summary>
    public const int QueueCapacity = 16_384;

    private readonly AuditRecord?[] _recent = new AuditRecord?[RecentCapacity];
    private readonly object _recentGate = new();
    private readonly Channel<AuditRecord>? _queue;
    private readonly Task? _writer;
    private readonly AuditSettings _settings;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ILogger? _exportLogger;
    private readonly int _queueCapacity;
    private long _count;
    private long _dropped;
    private volatile bool _closing;

    /// <summary>The log category whose records carry the audit trail to OpenTelemetry (OTLP logs), and only there.</summary>
    public const string ExportCategory = "SecretlessProxy.Audit";

    /// <param name="exportLogger">When OTLP log export is on: every record is also a log record of <see cref="ExportCategory"/>.</param>
    public AuditLog(AuditSettings settings, TimeProvider time, ILogger<AuditLog> logger, ILogger? exportLogger = null)
        : this(settings, time, logger, QueueCapacity, exportLogger)
    {
    }

    /// <param name="queueCapacity">Records that may wait for the sink; <see cref="QueueCapacity"/> but in tests.</param>
    internal AuditLog(AuditSettings settings, TimeProvider time, ILogger<AuditLog> logger, int queueCapacity, ILogger? exportLogger = null)
    {
        _exportLogger = exportLogger;
        _time = time;
        _queueCapacity = queueCapacity;
        _settings = settings;
        _logger = logger;
        if (settings.Sink != AuditSink.None)
        {
            // Bounded (QueueCapacity): a request never waits for the sink, and a sink that cannot
            // keep up loses records, counted and logged, instead of holding them all in memory.
            _queue = Channel.CreateBounded<AuditRecord>(new BoundedChannelOptions(queueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
            _writer = Task.Run(WriteLoopAsync);
        }
    }

    public void Record(AuditRecord record)
    {
        lock (_recentGate)
        {
            _recent[_count++ % RecentCapacity] = record;
        }

        if (_exportLogger is not null)
        {
            // The OpenTelemetry provider batches off the request path; the record's fields become
            // the log record's attributes, named as in the JSON line.
            var caller = record.Caller is { IsKnown: true } c ? c : null;
            Log.Exported(_exportLogger, record.Decision, record.Outcome.ToWireName(), record.Reason, record.Listener, record.Policy, record.CredentialName, record.CredentialSource,
                record.Scheme, record.Host, record.Port, record.Method, record.Path, record.TraceId, caller?.Uid, caller?.Executable, record.IdentitySubject, record.DatabaseUser);
        }

        // TryWrite never waits: false when the queue is full (or the log is being disposed).
        if (_queue is not null && !_queue.Writer.TryWrite(record) && !_closing && Interlocked.Increment(ref _dropped) == 1)
        {
            Log.QueueFull(_logger, _settings.Path ?? "stdout", _queueCapacity);
        }
    }

    /// <summary>The most recent decisions, newest first.</summary>
    public IReadOnlyList<AuditRecord> Recent(int limit)
    {
        lock (_recentGate)
        {
            var available = (int)Math.Min(_count, RecentCapacity);
            var take = Math.Clamp(limit, 0, available);
            var result = new AuditRecord[take];
            for (var i = 0; i < take; i++)
            {
                result[i] = _recent[(_count - 1 - i) % RecentCapacity]!;
            }

            return result;
        }
    }

    /// <summary>
    /// Writes queued records in order, each chained to the one before (<see cref="AuditChain"/>).
    /// The chain's head is written as a <c>chain</c> record and logged when the writer starts and
    /// when it stops, so a collector of the proxy's log holds an anchor the file cannot rewrite.
    /// </summary>
    private async Task WriteLoopAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        Stream? file = null;
        var sink = _settings.Path ?? "stdout";
        AuditChain chain;
        try
        {
            chain = _settings.Sink == AuditSink.File ? AuditChain.ResumeFrom(_settings.Path!) : new AuditChain(0, AuditChain.Genesis);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // An unreadable file is reported when writing to it fails too; the chain restarts visibly.
            Log.WriteFailed(_logger, sink, ex.GetType().Name);
            chain = new AuditChain(0, AuditChain.Genesis);
        }

        try
        {
            file = await WriteLineAsync(file, buffer, chain, w => WriteChainRecord(w, chain, "start"), sink).ConfigureAwait(false);
            Log.ChainHead(_logger, sink, "start", chain.LastSeq, chain.LastHash);
            await foreach (var record in _queue!.Reader.ReadAllAsync().ConfigureAwait(false))
            {
                if (Interlocked.Exchange(ref _dropped, 0) is > 0 and var dropped)
                {
                    Log.RecordsDropped(_logger, sink, dropped);
                }

                var (seq, prev) = chain.Next();
                file = await WriteLineAsync(file, buffer, chain, w => record.WriteTo(w, seq, prev), sink).ConfigureAwait(false);
            }

            file = await WriteLineAsync(file, buffer, chain, w => WriteChainRecord(w, chain, "stop"), sink).ConfigureAwait(false);
            Log.ChainHead(_logger, sink, "stop", chain.LastSeq, chain.LastHash);
        }
        finally
        {
            if (file is not null)
            {
                await file.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private void WriteChainRecord(Utf8JsonWriter writer, AuditChain chain, string chainEvent)
    {
        var (seq, prev) = chain.Next();
        writer.WriteStartObject();
        writer.WriteNumber("seq", seq);
        writer.WriteString("prev", prev);
        writer.WriteString("time", _time.GetUtcNow());
        writer.WriteString("chain", chainEvent);
        writer.WriteEndObject();
    }

    /// <summary>
    /// Writes one line and moves the chain past it. A line that could not be written does not move
    /// the chain: the next line is chained to the last one that was.
    /// </summary>
    private async Task<Stream?> WriteLineAsync(Stream? file, ArrayBufferWriter<byte> buffer, AuditChain chain, Action<Utf8JsonWriter> write, string sink)
    {
        buffer.Clear();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        var lineLength = buffer.WrittenCount;
        var seq = chain.Next().Seq;
        buffer.Write("\n"u8);
        try
        {
            if (_settings.Sink == AuditSink.Stdout)
            {
                await using var stdout = Console.OpenStandardOutput();
                await stdout.WriteAsync(buffer.WrittenMemory).ConfigureAwait(false);
            }
            else
            {
                file ??= OpenFile();
                // A pipe or device (a FIFO a collector reads, /dev/stdout) has no length and is not rotated.
                if (file.CanSeek && file.Length + buffer.WrittenCount > _settings.MaxFileBytes && file.Length > 0)
                {
                    await file.DisposeAsync().ConfigureAwait(false);
                    File.Move(_settings.Path!, _settings.Path + ".1", overwrite: true);
                    file = OpenFile();
                }

                await file.WriteAsync(buffer.WrittenMemory).ConfigureAwait(false);
                // Flushed per record: an audit line that sits in a buffer when the pod dies is lost.
                await file.FlushAsync().ConfigureAwait(false);
            }

            chain.Advance(seq, buffer.WrittenSpan[..lineLength]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.WriteFailed(_logger, sink, ex.GetType().Name);
            file?.Dispose();
            file = null;
        }

        return file;
    }

    private FileStream OpenFile()
    {
        var directory = System.IO.Path.GetDirectoryName(_settings.Path!);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        return new FileStream(_settings.Path!, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    public async ValueTask DisposeAsync()
    {
        if (_queue is not null)
        {
            _closing = true;
            _queue.Writer.TryComplete();
            await _writer!.ConfigureAwait(false);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.AuditWriteFailed, LogLevel.Error, "Writing the audit trail to {Sink} failed ({Error}); retrying with the next record")]
        public static partial void WriteFailed(ILogger logger, string sink, string error);

        [LoggerMessage(EventIds.AuditQueueFull, LogLevel.Error, "The audit sink {Sink} is behind by {QueueCapacity} records: further records are not written until it catches up (the most recent stay in /decisions)")]
        public static partial void QueueFull(ILogger logger, string sink, int queueCapacity);

        [LoggerMessage(EventIds.AuditChainHead, LogLevel.Information, "Audit trail {Sink} chain {ChainEvent}: seq {Seq}, head {Head} (secretless-proxy audit verify --head checks a file against it)")]
        public static partial void ChainHead(ILogger logger, string sink, string chainEvent, long seq, string head);

        [LoggerMessage(EventIds.AuditRecordExported, LogLevel.Information, "{decision} ({outcome}) {method} {scheme}://{host}:{port}{path} on {listener}: {reason}; policy {policy}, credential {credentialName} ({credentialSource}), caller uid {callerUid} {callerExecutable}, identity {identity}, database user {databaseUser}, trace {traceId}")]
        public static partial void Exported(ILogger logger, string decision, string outcome, string reason, string listener, string? policy, string? credentialName, string? credentialSource,
            string scheme, string host, int port, string method, string path, string? traceId, int? callerUid, string? callerExecutable, string? identity, string? databaseUser);

        [LoggerMessage(EventIds.AuditRecordsDropped, LogLevel.Error, "{Dropped} audit record(s) were not written to {Sink} while it was behind; writing again")]
        public static partial void RecordsDropped(ILogger logger, string sink, long dropped);
    }
}
