using System.Globalization;
using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>
/// A body to sign could not be buffered within the <see cref="SigningBufferBudget"/>: the
/// request is answered with <see cref="Status"/> and never sent upstream, signed or not.
/// </summary>
internal sealed class SigningBufferRefusedException : Exception
{
    /// <summary>Other requests hold the budget now: 503 with Retry-After.</summary>
    public const string BufferFull = "signing-buffer-full";

    /// <summary>The body alone is larger than the whole budget: 413, a retry cannot help.</summary>
    public const string BodyTooLarge = "signing-body-too-large";

    private SigningBufferRefusedException(string reason, long requested, long held, long capacity, string message)
        : base(message)
    {
        Reason = reason;
        Requested = requested;
        Held = held;
        Capacity = capacity;
    }

    /// <summary><see cref="BufferFull"/> or <see cref="BodyTooLarge"/>.</summary>
    public string Reason { get; }

    /// <summary>The bytes this body needed in all (declared, or read so far plus the next segment).</summary>
    public long Requested { get; }

    /// <summary>The bytes every request held together when this one was refused.</summary>
    public long Held { get; }

    public long Capacity { get; }

    public int Status => Reason == BodyTooLarge ? 413 : 503;

    internal static SigningBufferRefusedException Full(long requested, SigningBufferBudget budget)
    {
        var held = budget.Held;
        return new(BufferFull, requested, held, budget.Capacity, "the proxy already holds " + Bytes(held) + " of its " + Bytes(budget.Capacity) + " for bodies being signed; this body needs " + Bytes(requested) + ": retry later");
    }

    internal static SigningBufferRefusedException TooLarge(long requested, SigningBufferBudget budget) =>
        new(BodyTooLarge, requested, budget.Held, budget.Capacity, "the request body needs " + Bytes(requested) + " or more to be signed, more than the " + Bytes(budget.Capacity) + " the proxy holds for bodies being signed (Limits:SigningBufferBytes)");

    /// <summary>The refusal in <paramref name="exception"/> or anything it wraps (the forwarder wraps what the upstream client throws).</summary>
    public static SigningBufferRefusedException? Find(Exception? exception) => ExceptionChain.Find<SigningBufferRefusedException>(exception);

    private static string Bytes(long bytes) => bytes.ToString(CultureInfo.InvariantCulture) + " bytes";
}
