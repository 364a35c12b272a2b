using System.Text.Json;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// Checks audit files written by <see cref="AuditLog"/> against their hash chain (<see cref="AuditChain"/>)
/// and names the first place it breaks: a line changed, removed, inserted or moved, a torn last line,
/// or a last record that does not match a head kept elsewhere. Files are given oldest first
/// (<c>audit.jsonl.1 audit.jsonl</c>); the first line read is the anchor, since older files may be gone.
/// </summary>
internal static class AuditChainVerifier
{
    public static AuditVerification Verify(IReadOnlyList<string> paths, string? expectedHead = null)
    {
        var lines = new List<Line>();
        foreach (var path in paths)
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return AuditVerification.Broken(path, 0, "cannot be read: " + ex.Message);
            }

            var start = 0;
            var number = 0;
            while (start < bytes.Length)
            {
                number++;
                var end = Array.IndexOf(bytes, (byte)'\n', start);
                if (end < 0)
                {
                    return AuditVerification.Broken(path, number, "is incomplete (no newline): a torn write, or the file was cut here");
                }

                var text = bytes.AsMemory(start, end - start);
                lines.Add(new Line(path, number, text, AuditChain.SeqOf(text.Span), PrevOf(text.Span)));
                start = end + 1;
            }
        }

        if (lines.Count == 0)
        {
            return AuditVerification.Broken(paths.Count > 0 ? paths[^1] : "-", 0, "holds no audit record");
        }

        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.Seq is not { } seq || line.Prev is not { } prev)
            {
                return AuditVerification.Broken(line.Path, line.Number, "is not part of the chain (no seq and prev): changed, or inserted");
            }

            if (i == 0)
            {
                continue;
            }

            var before = lines[i - 1];
            var expected = before.Seq!.Value + 1;
            if (seq > expected)
            {
                var later = lines.Skip(i + 1).FirstOrDefault(l => l.Seq == expected);
                return later is not null
                    ? AuditVerification.Broken(line.Path, line.Number, "has seq " + seq + " where seq " + expected + " belongs; that record comes later (" + later.Path + ":" + later.Number + "): records were moved")
                    : AuditVerification.Broken(line.Path, line.Number, "has seq " + seq + " after seq " + before.Seq + ": record(s) " + Range(expected, seq - 1) + " were removed");
            }

            if (seq < expected)
            {
                var first = lines.Take(i).FirstOrDefault(l => l.Seq == seq);
                return AuditVerification.Broken(line.Path, line.Number, first is not null
                    ? "repeats seq " + seq + " of " + first.Path + ":" + first.Number + ": a record was inserted or copied"
                    : "has seq " + seq + " after seq " + before.Seq + ": records were moved");
            }

            if (!string.Equals(prev, AuditChain.Hash(before.Text.Span), StringComparison.Ordinal))
            {
                var repeated = lines.Skip(i + 1).Any(l => l.Seq == seq);
                return repeated
                    ? AuditVerification.Broken(line.Path, line.Number, "was inserted: its prev is not the hash of the record before it, and its seq " + seq + " appears again later")
                    : AuditVerification.Broken(before.Path, before.Number, "was changed (seq " + before.Seq + "): its hash no longer matches the prev of the record after it");
            }
        }

        var last = lines[^1];
        var head = AuditChain.Hash(last.Text.Span);
        if (expectedHead is not null && !string.Equals(head, expectedHead.Trim().ToLowerInvariant(), StringComparison.Ordinal))
        {
            return AuditVerification.Broken(last.Path, last.Number, "does not match the expected head " + expectedHead.Trim() + ": the last record was changed, or records after it were removed");
        }

        return AuditVerification.Verified(lines.Count, lines[0].Seq!.Value, last.Seq!.Value, head, string.Equals(lines[0].Prev, AuditChain.Genesis, StringComparison.Ordinal));
    }

    private static string Range(long from, long to) => from == to ? "seq " + from : "seq " + from + " to " + to;

    private static string? PrevOf(ReadOnlySpan<byte> line)
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
                var isPrev = reader.ValueTextEquals("prev"u8);
                if (!reader.Read())
                {
                    return null;
                }

                if (isPrev)
                {
                    return reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
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

    private sealed record Line(string Path, int Number, ReadOnlyMemory<byte> Text, long? Seq, string? Prev);
}
