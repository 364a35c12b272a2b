using System.Buffers;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>
/// Bytes as a multi-segment <see cref="ReadOnlySequence{T}"/>, the shape a pipe hands a parser when
/// a message arrived in several reads.
/// </summary>
public static class SegmentedSequence
{
    /// <summary><paramref name="bytes"/> cut before each offset in <paramref name="cuts"/> (ascending, inside the array).</summary>
    public static ReadOnlySequence<byte> Create(byte[] bytes, params int[] cuts)
    {
        if (cuts.Length == 0)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        var first = new Segment(bytes.AsMemory(0, cuts[0]), 0);
        var last = first;
        var start = cuts[0];
        foreach (var cut in cuts.Skip(1).Append(bytes.Length))
        {
            last = last.Append(bytes.AsMemory(start, cut - start));
            start = cut;
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>One segment per byte: every boundary a reader can meet.</summary>
    public static ReadOnlySequence<byte> BytewiseOf(byte[] bytes) =>
        bytes.Length <= 1 ? new ReadOnlySequence<byte>(bytes) : Create(bytes, Enumerable.Range(1, bytes.Length - 1).ToArray());

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
