namespace SecretlessProxy.Injection;

/// <summary>
/// One request's claim on the <see cref="SigningBufferBudget"/>: the budget a signer reserves
/// from, and the body it buffered, released when the request ends whichever way it ends
/// (answered, refused, failed, aborted). The request handler owns it and hands it to the
/// signer on the outgoing message (<see cref="OptionsKey"/>).
/// </summary>
internal sealed class SigningBufferScope : IDisposable
{
    public static readonly HttpRequestOptionsKey<SigningBufferScope> OptionsKey = new("SecretlessProxy.SigningBufferScope");

    private readonly Lock _gate = new();
    private SignedBody? _held;
    private bool _ended;

    public SigningBufferScope(SigningBufferBudget budget)
    {
        ArgumentNullException.ThrowIfNull(budget);
        Budget = budget;
    }

    public SigningBufferBudget Budget { get; }

    /// <summary>Keeps <paramref name="body"/> until the request ends; a request that already ended releases it at once.</summary>
    internal void Hold(SignedBody body)
    {
        SignedBody? previous;
        lock (_gate)
        {
            if (_ended)
            {
                previous = body;
            }
            else
            {
                previous = _held;
                _held = body;
            }
        }

        previous?.Dispose();
        if (ReferenceEquals(previous, body))
        {
            throw new OperationCanceledException("the request ended while its body was being buffered");
        }
    }

    /// <summary>The request ended: its body's bytes go back to the budget once nothing is sending them.</summary>
    public void Dispose()
    {
        SignedBody? held;
        lock (_gate)
        {
            _ended = true;
            held = _held;
            _held = null;
        }

        held?.Dispose();
    }
}
