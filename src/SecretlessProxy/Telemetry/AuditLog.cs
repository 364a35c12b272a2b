using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using SecretlessProxy.Configuration;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// The audit trail: every decision is kept in a ring of the most recent ones (served by the admin
/// port's <c>/decisions</c>) and, when a sink is configured, written as one JSON line to standard
/// output or to a size-rotated file by a background writer, so a slow disk never delays a request.
/// </summary>
public sealed partial class AuditLog : IAsyncDisposable
{
    public const int RecentCapacity = 512;

    private readonly AuditRecord?[] _recent = new AuditRecord?[RecentCapacity];
    private readonly object _recentGate = new();
    private readonly Channel<AuditRecord>? _queue;
    private readonly Task? _writer;
    private readonly AuditSettings _settings;
    private readonly ILogger _logger;
    private long _count;

    public AuditLog(AuditSettings settings, ILogger<AuditLog> logger)
    {
        _settings = settings;
        _logger = logger;
        if (settings.Sink != AuditSink.None)
        {
            // Unbounded: an audit record is never dropped to protect the request path; a stuck sink
            // shows as memory growth, which the soak bench watches.
            _queue = Channel.CreateUnbounded<AuditRecord>(new UnboundedChannelOptions { SingleReader = true });
            _writer = Task.Run(WriteLoopAsync);
        }
    }

    public void Record(AuditRecord record)
    {
        lock (_recentGate)
        {
            _recent[_count++ % RecentCapacity] = record;
        }

        _queue?.Writer.TryWrite(record);
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

    private async Task WriteLoopAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        Stream? file = null;
        try
        {
            await foreach (var record in _queue!.Reader.ReadAllAsync().ConfigureAwait(false))
            {
                buffer.Clear();
                using (var writer = new Utf8JsonWriter(buffer))
                {
                    record.WriteTo(writer);
                }

                buffer.Write("\n"u8);
                try
                {
                    if (_settings.Sink == AuditSink.Stdout)
                    {
                        await using var stdout = Console.OpenStandardOutput();
                        await stdout.WriteAsync(buffer.WrittenMemory).ConfigureAwait(false);
                        continue;
                    }

                    file ??= OpenFile();
                    if (file.Length + buffer.WrittenCount > _settings.MaxFileBytes && file.Length > 0)
                    {
                        await file.DisposeAsync().ConfigureAwait(false);
                        File.Move(_settings.Path!, _settings.Path + ".1", overwrite: true);
                        file = OpenFile();
                    }

                    await file.WriteAsync(buffer.WrittenMemory).ConfigureAwait(false);
                    // Flushed per record: an audit line that sits in a buffer when the pod dies is lost.
                    await file.FlushAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Log.WriteFailed(_logger, _settings.Path ?? "stdout", ex.GetType().Name);
                    file?.Dispose();
                    file = null;
                }
            }
        }
        finally
        {
            if (file is not null)
            {
                await file.DisposeAsync().ConfigureAwait(false);
            }
        }
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
            _queue.Writer.TryComplete();
            await _writer!.ConfigureAwait(false);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.AuditWriteFailed, LogLevel.Error, "Writing the audit trail to {Sink} failed ({Error}); retrying with the next record")]
        public static partial void WriteFailed(ILogger logger, string sink, string error);
    }
}
