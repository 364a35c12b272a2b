namespace SecretlessProxy.Policy;

/// <summary>Which of a policy's conditions turned a request away; <see cref="None"/> when all hold.</summary>
internal enum ConditionFailure
{
    None = 0,
    CallerUnknown,
    CallerUid,
    CallerExecutable,
    CallerExecutableHash,
    IdentityUnavailable,
    IdentitySubject,
    IdentityIssuer,
    IdentityAudience,
    IdentityNamespace,
    IdentityServiceAccount,
    Day,
    Hours,
    Label,
}
