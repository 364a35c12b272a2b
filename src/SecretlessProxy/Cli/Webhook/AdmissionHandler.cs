using System.Text.Json;
using k8s.Models;
using Microsoft.AspNetCore.Http.Features;
using SecretlessProxy.Telemetry;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>
/// <c>POST /mutate</c>: reads an AdmissionReview, answers with the same envelope and the request's
/// uid. A body that is not a review (not JSON, another kind, no request or uid, too large) gets a
/// plain 400 or 413 with the reason, since there is no uid to answer to; a review about a pod the
/// webhook cannot inject is answered by the failure policy.
/// </summary>
internal sealed partial class AdmissionHandler(WebhookOptions options, ILogger<AdmissionHandler> logger)
{
    public async Task HandleAsync(HttpContext context)
    {
        var bodyLimit = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodyLimit is { IsReadOnly: false })
        {
            bodyLimit.MaxRequestBodySize = options.MaxRequestBytes;
        }

        if (context.Request.ContentLength > options.MaxRequestBytes)
        {
            await RejectAsync(context, StatusCodes.Status413PayloadTooLarge, "the review is larger than " + options.MaxRequestBytes + " bytes").ConfigureAwait(false);
            return;
        }

        AdmissionReview? review;
        try
        {
            review = await JsonSerializer.DeserializeAsync(context.Request.Body, WebhookJsonContext.Default.AdmissionReview, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            // The parser's message names the position, not the content.
            await RejectAsync(context, StatusCodes.Status400BadRequest, "the body is not an AdmissionReview in JSON: " + ex.Message).ConfigureAwait(false);
            return;
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await RejectAsync(context, StatusCodes.Status413PayloadTooLarge, "the review is larger than " + options.MaxRequestBytes + " bytes").ConfigureAwait(false);
            return;
        }

        if (review is null || review.ApiVersion != AdmissionReview.Version || review.Kind != AdmissionReview.KindName)
        {
            await RejectAsync(context, StatusCodes.Status400BadRequest, "expected kind AdmissionReview, apiVersion " + AdmissionReview.Version + " (set admissionReviewVersions: [v1] in the MutatingWebhookConfiguration)").ConfigureAwait(false);
            return;
        }

        if (review.Request is not { Uid: { Length: > 0 } uid } request)
        {
            await RejectAsync(context, StatusCodes.Status400BadRequest, "the AdmissionReview has no request, or its request has no uid").ConfigureAwait(false);
            return;
        }

        var response = Decide(request);
        response.Uid = uid;
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(
            context.Response.Body,
            new AdmissionReview { ApiVersion = AdmissionReview.Version, Kind = AdmissionReview.KindName, Response = response },
            WebhookJsonContext.Default.AdmissionReview,
            context.RequestAborted).ConfigureAwait(false);
    }

    private AdmissionResponse Decide(AdmissionRequest request)
    {
        // Only pods being created: the webhook configuration's rules say so too, but a broader rule
        // (or an UPDATE, where a pod's containers cannot change) is admitted untouched.
        if (request.Kind is not { IsPod: true } || !string.IsNullOrEmpty(request.SubResource) || request.Operation != "CREATE")
        {
            return new AdmissionResponse { Allowed = true };
        }

        var where = request.Namespace ?? string.Empty;
        if (request.Object is not { ValueKind: JsonValueKind.Object } podJson)
        {
            return Impossible(where, PodName(request, null), "the review's object is missing or not a JSON object");
        }

        V1Pod? pod;
        try
        {
            pod = podJson.Deserialize(PodJsonContext.Default.V1Pod);
        }
        catch (JsonException ex)
        {
            return Impossible(where, PodName(request, null), "the review's object is not a readable Pod: " + ex.Message);
        }

        if (pod is null)
        {
            return Impossible(where, PodName(request, null), "the review's object is not a Pod");
        }

        var outcome = SidecarInjector.Inject(pod, options.Sidecar);
        switch (outcome.Kind)
        {
            case InjectionOutcomeKind.Injected:
                Log.Injected(logger, where, PodName(request, pod), outcome.Mode!.Value, outcome.Patch.Count);
                return new AdmissionResponse
                {
                    Allowed = true,
                    PatchType = AdmissionResponse.JsonPatchType,
                    Patch = JsonSerializer.SerializeToUtf8Bytes([.. outcome.Patch], WebhookJsonContext.Default.ListJsonPatchOperation),
                    Warnings = outcome.Warnings.Count > 0 ? [.. outcome.Warnings.Select(w => "secretless-proxy injection: " + w)] : null,
                };
            case InjectionOutcomeKind.Impossible:
                return Impossible(where, PodName(request, pod), outcome.Reason!);
            case InjectionOutcomeKind.AlreadyInjected:
                Log.LeftAlone(logger, where, PodName(request, pod), "it has the proxy already");
                return new AdmissionResponse { Allowed = true };
            default:
                return new AdmissionResponse { Allowed = true };
        }
    }

    private AdmissionResponse Impossible(string where, string pod, string reason)
    {
        var message = "secretless-proxy injection: " + reason;
        Log.InjectionImpossible(logger, where, pod, reason, options.FailurePolicy);
        return options.FailurePolicy == WebhookFailurePolicy.Ignore
            ? new AdmissionResponse { Allowed = true, Warnings = [message + " (admitted without the proxy: failure policy Ignore)"] }
            : new AdmissionResponse { Allowed = false, Status = new AdmissionStatus { Code = StatusCodes.Status400BadRequest, Message = message } };
    }

    /// <summary>A Deployment's pods have no name yet at admission, only a generateName prefix.</summary>
    private static string PodName(AdmissionRequest request, V1Pod? pod) =>
        request.Name is { Length: > 0 } name ? name
        : pod?.Metadata?.Name is { Length: > 0 } podName ? podName
        : (pod?.Metadata?.GenerateName ?? string.Empty) + "*";

    private async Task RejectAsync(HttpContext context, int status, string reason)
    {
        Log.ReviewRejected(logger, status, reason);
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync("secretless-proxy webhook: " + reason + "\n", context.RequestAborted).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventIds.WebhookInjected, LogLevel.Information, "Injected the proxy ({Mode}) into pod {Namespace}/{Pod}: {OperationCount} patch operation(s)")]
        public static partial void Injected(ILogger logger, string @namespace, string pod, InjectionMode mode, int operationCount);

        [LoggerMessage(EventIds.WebhookLeftAlone, LogLevel.Debug, "Pod {Namespace}/{Pod} left alone: {Reason}")]
        public static partial void LeftAlone(ILogger logger, string @namespace, string pod, string reason);

        [LoggerMessage(EventIds.WebhookInjectionImpossible, LogLevel.Warning, "Pod {Namespace}/{Pod} asks for the proxy but cannot get it ({Reason}); failure policy {FailurePolicy}")]
        public static partial void InjectionImpossible(ILogger logger, string @namespace, string pod, string reason, WebhookFailurePolicy failurePolicy);

        [LoggerMessage(EventIds.WebhookReviewRejected, LogLevel.Warning, "Admission review rejected with {StatusCode}: {Reason}")]
        public static partial void ReviewRejected(ILogger logger, int statusCode, string reason);
    }
}
