namespace SecretlessProxy.Telemetry;

/// <summary>Stable log event ids, kept in one place so operators can alert on them.</summary>
internal static class EventIds
{
    public const int ProxyStarted = 1;
    public const int ListenerBound = 2;
    public const int ProxyStopping = 3;
    public const int ConfigInvalid = 4;
    public const int ConfigReloaded = 5;
    public const int ConfigReloadRejected = 6;
    public const int ConfigWatchUnavailable = 7;

    public const int RequestAllowed = 10;
    public const int RequestDenied = 11;
    public const int RequestPassedThrough = 12;
    public const int CredentialUnavailable = 13;
    public const int UpstreamFailed = 14;
    public const int IdentityUnavailableForRequest = 15;

    public const int ConnectRefused = 30;
    public const int TunnelIntercepted = 31;
    public const int TunnelBlind = 32;
    public const int TunnelHandshakeFailed = 33;
    public const int TunnelSniMismatch = 34;
    public const int BlindTunnelClosedByReload = 35;

    public const int AuditWriteFailed = 40;

    public const int IdentityTokenAccepted = 50;
    public const int IdentityTokenRejected = 51;
    public const int IdentityKeysFetched = 52;
    public const int IdentityKeysFetchFailed = 53;

    public const int VaultLoggedIn = 160;
    public const int VaultLoginAgain = 161;
    public const int VaultLeaseIssued = 162;
    public const int VaultLeaseRenewed = 163;
    public const int VaultLeaseRenewalShort = 164;
    public const int VaultLeaseRenewalFailed = 165;
    public const int VaultLeaseRevoked = 166;
    public const int VaultLeaseRevokeFailed = 167;

    public const int CallerResolved = 60;
    public const int CallerUnresolved = 61;

    public const int CallerChanged = 360;

    public const int CredentialFetched = 20;
    public const int CredentialFetchFailed = 21;

    public const int DatabaseConnected = 70;
    public const int DatabaseConnectionRefused = 71;
    public const int DatabaseClientRejected = 72;
    public const int DatabaseCancelForwarded = 73;
    public const int DatabaseCancelIgnored = 74;
    public const int DatabaseCancelFailed = 75;
    public const int DatabaseLoginError = 76;

    public const int TransparentRefused = 80;
    public const int TransparentLoopRefused = 81;
    public const int TransparentBlind = 82;
    public const int TransparentHttp = 83;

    public const int ShutdownRequested = 90;
    public const int Draining = 91;
    public const int Stopped = 92;

    public const int RequestRefused = 280;
    public const int ConnectionRefused = 320;
    public const int HandshakeTimedOut = 321;
    public const int AdminCallAuthorized = 340;
    public const int AdminCallRefused = 341;
    public const int AdminTokenUnavailable = 342;

    public const int ClientCertificateLoaded = 190;
    public const int ClientCertificateReloadFailed = 191;

    public const int ResponseMaskingSecretTooShort = 300;

    // run -- command: the wrapped command's user, and the proxy's own process protection (380-389).
    public const int WrappedCommandStarted = 380;
    public const int WrappedCommandExited = 381;
    public const int WrappedCommandSharesUid = 382;
    public const int WrappedCommandRefused = 383;
    public const int ProcessNotDumpable = 384;
    public const int ProcessStillDumpable = 385;
    public const int IssuerLoopbackSquattingAccepted = 390;
    public const int IssuerPlainHttp = 391;
    // Weakened database logins, host names and the leaf certificate cache (400-409).
    public const int DatabaseWeakAuthenticationRefused = 400;
    public const int ConnectInvalidHost = 401;
    public const int TransparentInvalidServerName = 402;
    public const int TunnelInvalidServerName = 403;
    public const int LeafCertificateEvicted = 404;
    public const int SigningBufferFull = 410;
    public const int SigningBodyTooLarge = 411;
    public const int AuditQueueFull = 412;
    public const int AuditRecordsDropped = 413;
    public const int AuditChainHead = 414;
    public const int AuditRecordExported = 415;
    // Redis listener (430-439).
    public const int RedisLoginCommandsRewritten = 430;
    // SPIFFE Workload API (440-449).
    public const int SpiffeJwtSvidAccepted = 440;
    public const int SpiffeJwtSvidFetchFailed = 441;
    public const int SpiffeX509SvidRotated = 442;
    public const int SpiffeX509SvidStreamFailed = 443;

    // Sidecar injection webhook (460-469).
    public const int WebhookListening = 460;
    public const int WebhookInjected = 461;
    public const int WebhookLeftAlone = 462;
    public const int WebhookInjectionImpossible = 463;
    public const int WebhookReviewRejected = 464;
    public const int WebhookCertificateLoaded = 465;
    public const int WebhookCertificateReloadFailed = 466;
}
