using Grpc.Core;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>A Workload API call failed; the message is fit for a 503 problem and the log (no key, no token).</summary>
internal sealed class WorkloadApiException : Exception
{
    public WorkloadApiException(string message, StatusCode? status = null)
        : base(message)
    {
        Status = status;
    }

    public WorkloadApiException()
    {
    }

    public WorkloadApiException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The gRPC status, when the call reached gRPC.</summary>
    public StatusCode? Status { get; }
}
