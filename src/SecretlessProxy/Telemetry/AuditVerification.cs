namespace SecretlessProxy.Telemetry;

/// <summary>What <see cref="AuditChainVerifier"/> found: an intact chain, or the first place it breaks.</summary>
internal sealed record AuditVerification(bool Intact, string? Path, int Line, string Message, int Records, long FirstSeq, long LastSeq, string? Head, bool StartsAtGenesis)
{
    public static AuditVerification Broken(string path, int line, string message) => new(false, path, line, message, 0, 0, 0, null, false);

    public static AuditVerification Verified(int records, long firstSeq, long lastSeq, string head, bool startsAtGenesis) =>
        new(true, null, 0, "verified", records, firstSeq, lastSeq, head, startsAtGenesis);

    /// <summary><c>path:line: message</c>, as compilers report a position.</summary>
    public override string ToString() => Intact
        ? "verified " + Records + " records, seq " + FirstSeq + " to " + LastSeq + (StartsAtGenesis ? " (from the first record ever written)" : " (the first file continues an older one)") + "; head " + Head
        : Line > 0 ? Path + ":" + Line + ": the record " + Message : Path + ": " + Message;
}
