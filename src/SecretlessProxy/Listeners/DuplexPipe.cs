using System.IO.Pipelines;

namespace SecretlessProxy.Listeners;

/// <summary>A reader and a writer presented as a connection transport.</summary>
internal sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}
