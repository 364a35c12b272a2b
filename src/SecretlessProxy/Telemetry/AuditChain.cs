using System.Security.Cryptography;
using System.Text.Json;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// The hash chain that makes the audit file tamper-evident: every line carries <c>seq</c> (one more
/// than the line before) and <c>prev</c> (the SHA-256 of the line before, as written, without its
/// newline), so a line changed, removed, inserted or moved breaks the chain at that point. The
/// chain continues across size rotation and restarts: a new writer resumes from the file's last line.
/// A chain without a key proves order and integrity against everyone who cannot rewrite the whole
/// tail; the head the proxy logs at start and stop (and <c>audit verify --head</c>) anchors the rest.
/// </summary>
internal sealed class AuditChain
{
    /// <summary>The <c>prev</c> of the first line ever written: no line came before it.</summary>
    public static readonly string Genesis = new('0', 64);

    private const int TailBytes = 64 * 1024;

    public AuditChain(long lastSeq, string lastHash)
    {
        LastSeq = lastSeq;
        LastHash = lastHash;
    }

    /// <summary>The sequence number of the last line written (0 before the first).</summary>
    public long LastSeq { get; private set; }

    /// <summary>The hash of the last line written (<see cref="Genesis"/> before the first): the chain head.</summary>
    public string LastHash { get; private set; }

    /// <summary>The next line's <c>seq</c> and <c>prev</c>.</summary>
    public (long Seq, string Prev) Next() => (LastSeq + 1, LastHash);

    /// <summary>Moves the head past a line just written (its bytes without the newline).</summary>
    public void Advance(long seq, ReadOnlySpan<byte> line)
    {
        LastSeq = seq;
        LastHash = Hash(line);
    }

    public static string Hash(ReadOnlySpan<byte> line) => Convert.ToHexStringLower(SHA256.HashData(line));

    /// <summary>
    /// Resumes from the last complete line of <paramref name="path"/> (its seq and hash). A file
    /// that does not exist, is empty, or ends in a line that is not a chain record starts a new
    /// chain (seq after the last one found, prev the hash of that line when there is one).
    /// </summary>
    public static AuditChain ResumeFrom(string path)
    {
        // A FIFO or device (a collector's pipe) has length 0 and is never opened for reading here:
        // that would wait for a writer. Such a sink starts a new chain, as stdout does.
        var info = new FileInfo(path);
        if (!info.Exists || info.Length == 0)
        {
            return new AuditChain(0, Genesis);
        }

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        if (!file.CanSeek || file.Length == 0)
        {
            return new AuditChain(0, Genesis);
        }

        var start = Math.Max(0, file.Length - TailBytes);
        file.Seek(start, SeekOrigin.Begin);
        var tail = new byte[file.Length - start];
        file.ReadExactly(tail);
        var end = tail.Length;
        while (end > 0 && tail[end - 1] == (byte)'\n')
        {
            end--;
        }

        if (end == 0)
        {
            return new AuditChain(0, Genesis);
        }

        var lineStart = Array.LastIndexOf(tail, (byte)'\n', end - 1) + 1;
        var line = tail.AsSpan(lineStart, end - lineStart);
        return new AuditChain(SeqOf(line) ?? 0, Hash(line));
    }

    /// <summary>The line's <c>seq</c>, or null when it is not a chain record (an older file, a torn write).</summary>
    public static long? SeqOf(ReadOnlySpan<byte> line)
    {
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isSeq = reader.ValueTextEquals("seq"u8);
                if (!reader.Read())
                {
                    return null;
                }

                if (isSeq)
                {
                    return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var seq) ? seq : null;
                }

                reader.Skip();
            }

            return null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
