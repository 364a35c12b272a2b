using System.Text.Json;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// One decision, as the audit trail records it: who (listener; caller and identity come with
/// attestation), where to (scheme, host, port, method, path without query), what was decided and
/// why, with which credential (by name), and the trace to find it in. Never a value.
/// </summary>
public sealed record AuditRecord(
    DateTimeOffset Time,
    string Listener,
    string Decision,
    string Reason,
    string? Policy,
    string? CredentialName,
    string? CredentialSource,
    string Outcome,
    string Scheme,
    string Host,
    int Port,
    string Method,
    string Path,
    string? TraceId)
{
    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("time", Time);
        writer.WriteString("decision", Decision);
        writer.WriteString("reason", Reason);
        writer.WriteString("outcome", Outcome);
        WriteOptional(writer, "policy", Policy);
        writer.WriteStartObject("credential");
        WriteOptional(writer, "name", CredentialName);
        WriteOptional(writer, "source", CredentialSource);
        writer.WriteEndObject();
        writer.WriteStartObject("destination");
        writer.WriteString("scheme", Scheme);
        writer.WriteString("host", Host);
        writer.WriteNumber("port", Port);
        writer.WriteString("method", Method);
        writer.WriteString("path", Path);
        writer.WriteEndObject();
        writer.WriteString("listener", Listener);
        // Caller attestation and workload identity are not built yet; the keys are there so that
        // consumers of the trail need not change when they are.
        writer.WriteString("caller", "unknown");
        writer.WriteNull("identity");
        WriteOptional(writer, "traceId", TraceId);
        writer.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }
}
