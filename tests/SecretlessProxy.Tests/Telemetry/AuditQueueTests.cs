using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Xunit;
using SecretlessProxy.Core;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Telemetry;

/// <summary>
/// The audit queue is bounded: a sink that stops reading (here a FIFO nobody reads yet) costs at
/// most the queue's records, and every record not written is counted in the log.
/// </summary>
public sealed class AuditQueueTests : IDisposable
{
    private const int Capacity = 4;
    private const int Recorded = 10;

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("audit-queue-");

    [Fact]
    public async Task A_sink_that_stops_reading_loses_only_what_does_not_fit_the_queue_and_the_log_counts_it()
    {
        var fifo = Path.Combine(_directory.FullName, "audit.pipe");
        using (var mkfifo = Process.Start("mkfifo", [fifo]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(l => l.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        var audit = new AuditLog(new AuditSettings(AuditSink.File, fifo, 10 * 1024 * 1024), TimeProvider.System, factory.CreateLogger<AuditLog>(), Capacity);

        // Nobody reads the pipe: the writer blocks opening it with the first record it takes, the
        // queue fills, and the rest are not kept.
        for (var i = 0; i < Recorded; i++)
        {
            audit.Record(Record(i));
        }

        // A collector starts reading: what was kept is written, in order, then the sink closes.
        var reading = Task.Run(async () =>
        {
            using var reader = new StreamReader(new FileStream(fifo, FileMode.Open, FileAccess.Read));
            var lines = new List<string>();
            while (await reader.ReadLineAsync() is { } line)
            {
                lines.Add(line);
            }

            return lines;
        });
        await audit.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(1));
        // The chain's start and stop records frame the decisions (AuditChainTests checks them).
        var written = (await reading.WaitAsync(TimeSpan.FromMinutes(1)))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => !r.TryGetProperty("chain", out _))
            .Select(r => r.GetProperty("destination").GetProperty("path").GetString()!)
            .ToList();

        // The first record (taken before the sink blocked) and at most the queue's worth after it.
        Assert.Equal("/r/0", written[0]);
        Assert.InRange(written.Count, Capacity, Capacity + 1);
        Assert.Equal(written.OrderBy(p => int.Parse(p[3..], System.Globalization.CultureInfo.InvariantCulture)), written);

        var entries = logs.Entries;
        Assert.Contains(entries, e => e.EventId.Id == EventIds.AuditQueueFull && e.Level == LogLevel.Error);
        var dropped = entries.Where(e => e.EventId.Id == EventIds.AuditRecordsDropped)
            .Sum(e => Convert.ToInt64(e.State.Single(kv => kv.Key == "Dropped").Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(Recorded - written.Count, dropped);

        // The admin port's recent decisions still hold every one of them.
        Assert.Equal(Enumerable.Range(0, Recorded).Reverse().Select(i => "/r/" + i), audit.Recent(Recorded).Select(r => r.Path));
    }

    public void Dispose() => _directory.Delete(recursive: true);

    private static AuditRecord Record(int i) =>
        new(DateTimeOffset.UnixEpoch, "l", "allow", "r", "p", "c", "File", AccessOutcome.Forwarded, "http", "127.0.0.1", 80, "GET", "/r/" + i, null);
}
