using System.Text.Json;
using SecretlessProxy.Core;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// One decision, as the audit trail records it: who (listener, attested caller process, workload
/// identity subject), where to (scheme, host, port, method, path without query), what was decided and
/// why, with which credential (by name), and the trace to find it in. Never a value.
/// </summary>
internal sealed record AuditRecord(
    DateTimeOffset Time,
    string Listener,
    string Decision,
    string Reason,
    string? Policy,
    string? CredentialName,
    string? CredentialSource,
    AccessOutcome Outcome,
    string Scheme,
    string Host,
    int Port,
    string Method,
    string Path,
    string? TraceId,
    Caller? Caller = null,
    string? IdentitySubject = null,
    string? DatabaseUser = null)
{
    public void WriteTo(Utf8JsonWriter writer) => WriteTo(writer, null, null);

    /// <summary>The record as a line of the audit file: first its place in the hash chain (<see cref="AuditChain"/>).</summary>
    public void WriteTo(Utf8JsonWriter writer, long? seq, string? prev)
    {
        writer.WriteStartObject();
        if (seq is { } s)
        {
            writer.WriteNumber("seq", s);
            writer.WriteString("prev", prev);
        }

        writer.WriteString("time", Time);
        writer.WriteString("decision", Decision);
        writer.WriteString("reason", Reason);
        writer.WriteString("outcome", Outcome.ToWireName());
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
        if (Caller is { IsKnown: true } caller)
        {
            writer.WriteStartObject("caller");
            WriteOptional(writer, "uid", caller.Uid);
            WriteOptional(writer, "pid", caller.Pid);
            WriteOptional(writer, "executable", caller.Executable);
            WriteOptional(writer, "sha256", caller.ExecutableSha256);
            WriteOptional(writer, "container", caller.ContainerId);
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteString("caller", "unknown");
        }

        if (IdentitySubject is null)
        {
            writer.WriteNull("identity");
        }
        else
        {
            writer.WriteStartObject("identity");
            writer.WriteString("subject", IdentitySubject);
            writer.WriteEndObject();
        }

        if (DatabaseUser is not null)
        {
            // A database connection: the user the proxy logged in as (the database is the path).
            writer.WriteString("databaseUser", DatabaseUser);
        }

        WriteOptional(writer, "traceId", TraceId);
        writer.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, int? value)
    {
        if (value is { } v)
        {
            writer.WriteNumber(name, v);
        }
        else
        {
            writer.WriteNull(name);
        }
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
